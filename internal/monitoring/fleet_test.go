package monitoring

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/app/apptest"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/natstest"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestFleetMetricsExported starts a central with two configured sensors,
// one of which runs, on a NATS server, and scrapes both serves'
// metrics.listen: every metric of a sensor's uplink and a central's
// stream consumer that the rules read must be exported.
func TestFleetMetricsExported(t *testing.T) {
	t.Parallel()
	nats := natstest.Start(t, natstest.Options{Nodes: 1, Sensors: []string{"fra-1"}})
	dir := t.TempDir()
	servers := `["` + strings.Join(nats.URLs(), `", "`) + `"]`
	serve := func(name, role, user, extra string) config.Config {
		cfg, err := config.Parse(name+".yaml", []byte(fmt.Sprintf(`data_dir: %s
sensor: %s
role: %s
api: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:%d"}
dns: {listen: []}
transfer: {listen: []}
listen: {http: [], https: [], smtp: [], tcp: [], udp: []}
nats: {servers: %s, credentials: %s, replicas: 1, max_stream_mb: 64}
%s`, filepath.Join(dir, name), name, role, testnet.FreePort(t), servers, nats.Creds(user), extra)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		apptest.Serve(t, cfg, "test")
		return cfg
	}
	central := serve("central", config.RoleCentral, "central", "central: {sensors: [fra-1, ams-1]}\n")
	sensor := serve("fra-1", config.RoleSensor, "fra-1", "")

	exported := map[string]bool{}
	testnet.WaitFor(t, "the sensor's heartbeat on the central's metrics", func() bool {
		exported = scrape(t, central.Metrics.Listen)
		return exported["takedown_collect_sensor_last_seen_seconds"]
	})
	for name := range scrape(t, sensor.Metrics.Listen) {
		exported[name] = true
	}
	if n := checkNames(t, rulesFile, rulesExprs(t), exported, func(name string) bool {
		return strings.HasPrefix(name, "takedown_uplink_") || strings.HasPrefix(name, "takedown_collect_")
	}); n < 5 {
		t.Errorf("only %d names of the uplink and the central's consumer found in the rules", n)
	}
}
