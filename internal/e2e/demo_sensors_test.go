package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoSensors runs `takedown demo --sensors 2 --store clickhouse` as a
// user would: a three-node NATS cluster, a central and two sensors, each a
// process, the bots split between the sensors, the central storing in the
// demo's own clickhouse-server, and a day of backfill; each sensor's share
// stored at the central and the census match the simulator exactly. The
// central on DuckDB with sensors is TestFleet's; the demo's code for
// sensors is the same for either engine. Without nats-server the demo says
// how to install it.
func TestDemoSensors(t *testing.T) {
	bin := takedownBinary(t)
	data := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command(bin, "--data-dir", data, "demo", "--sensors", "2", "--store", "clickhouse",
		"--bots", "2000", "--speed", "3000", "--duration", "5s", "--backfill", "1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo --sensors 2 --store clickhouse: %v\n%s", err, out)
	}
	for _, w := range []string{"NATS JetStream: three nodes", "events go to ClickHouse", "central  pid", "sensor-1 pid", "sensor-2 pid",
		"each sensor's share of the live run", "1 day(s) of callbacks generated", "hash chain verified",
		"ClickHouse stopped", "clickhouse-server --config-file=", "sensors, central and NATS stopped"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("demo output lacks %q:\n%s", w, out)
		}
	}
	// Two sensors' shares and three families, each matching.
	if strings.Contains(string(out), "differs") || strings.Count(string(out), "✓") != 5 {
		t.Errorf("the shares or the census do not match the truth:\n%s", out)
	}
	central, err := os.ReadFile(filepath.Join(data, "central.yaml"))
	if err != nil || !strings.Contains(string(central), "engine: clickhouse") {
		t.Errorf("the central's config does not name ClickHouse (%v):\n%s", err, central)
	}

	cmd = exec.Command(bin, "--data-dir", filepath.Join(t.TempDir(), "demo2"), "demo", "--sensors", "2")
	cmd.Env = append(os.Environ(), "TAKEDOWN_NATS_SERVER=/nonexistent/nats-server")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "install nats-server (Debian package nats-server") {
		t.Errorf("demo --sensors without nats-server: %v\n%s", err, out)
	}
}
