package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/freeport"
)

// startClickHouse is chtest.Start, and restart the cluster's Restart of
// node i.
func startClickHouse(t *testing.T, o chtest.Options) (cl *chtest.Cluster, restart func(i int)) {
	t.Helper()
	cl = chtest.Start(t, o)
	return cl, func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := cl.Cluster.Restart(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
}

// clickHouseConfig is a serve of the single role on loopback port 0, its
// events in the ClickHouse at addr, without sinks: events come in through
// /v1/ingest.
func clickHouseConfig(t *testing.T, addr, user, password string) config.Config {
	t.Helper()
	return clusterConfig(t, []string{addr}, "", user, password)
}

// clusterConfig is clickHouseConfig on the servers addrs, each a shard of
// cluster when cluster is set.
func clusterConfig(t *testing.T, addrs []string, cluster, user, password string) config.Config {
	t.Helper()
	dir := t.TempDir()
	shards := ""
	if cluster != "" {
		shards = strings.Join(addrs, ", ")
	}
	pw := filepath.Join(dir, "clickhouse.password")
	if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:0"}
dns: {listen: []}
transfer: {listen: []}
listen: {http: [], https: [], smtp: []}
pipeline: {batch_size: 50, flush_ms: 10}
store:
  engine: clickhouse
  clickhouse: {addrs: [%s], username: %s, password_file: %s, dial_timeout_ms: 1000, cluster: %q, shards: [%s]}
`, filepath.Join(dir, "data"), strings.Join(addrs, ", "), user, pw, cluster, shards)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// smtpEvents are n callbacks over SMTP from n addresses of 10.n.0.0/16,
// a second apart from start: events that ingest takes without a seized
// name.
func smtpEvents(start time.Time, net byte, n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{Time: start.Add(time.Duration(i) * time.Second), Protocol: event.ProtoSMTP, Transport: event.TransportTCP,
			SrcIP: netip.AddrFrom4([4]byte{10, net, byte(i >> 8), byte(i)}), SrcPort: 40000, DstPort: 25,
			SMTPHelo: "bot", SMTPRcptDomains: "a.example", SMTPRcptCount: 1}
	}
	return evs
}

// TestClickHouseDownAtStart: serve with its ClickHouse not running stops
// at once with an error that names the engine and its address, not after
// a hang.
func TestClickHouseDownAtStart(t *testing.T) {
	port, err := freeport.Distinct(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port[0])
	cfg := clickHouseConfig(t, addr, "takedown", "secret")
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = Serve(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	want := regexp.MustCompile(`^event store: (chstore: )?clickhouse at ` + regexp.QuoteMeta(addr) + ` is not reachable: `)
	if err == nil || !want.MatchString(err.Error()) {
		t.Fatalf("serve without its ClickHouse: %v", err)
	}
	if d := time.Since(t0); d > 15*time.Second {
		t.Errorf("the error took %s", d)
	}
}

// TestClickHouseGoneDuringLoad: while ClickHouse is away (killed),
// readyz says the store is unreachable, status says so and shows the
// backlog, ingest still takes events into the spool; once it is back,
// every event is stored exactly once and readyz is ready again.
func TestClickHouseGoneDuringLoad(t *testing.T) {
	cl, restart := startClickHouse(t, chtest.Options{})
	cfg := clickHouseConfig(t, cl.Addr(0), cl.User(), cl.Password())
	s := serveLogged(t, cfg, Hooks{})
	tok, err := ReadToken(cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(s.api, tok, "test")
	ctx := context.Background()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within a minute\n%s", what, s.logs)
			}
		}
	}
	stored := func(n int64) func() bool {
		return func() bool {
			st, err := c.Status(ctx)
			return err == nil && st.Store.Events == n && st.Pipeline.Backlog == 0
		}
	}
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	ingest := func(evs []event.Event) {
		t.Helper()
		for i := 0; i < len(evs); i += 100 {
			if res, err := c.Ingest(ctx, "sensor-1", evs[i:min(i+100, len(evs))]); err != nil || res.Accepted != min(100, len(evs)-i) {
				t.Fatalf("ingest: %+v %v", res, err)
			}
		}
	}
	ingest(smtpEvents(start, 1, 300))
	waitFor("300 events stored", stored(300))
	if code, b := readyz(t, s.api); code != 200 || b.Checks["store"] != "ok" {
		t.Fatalf("readyz with ClickHouse up: %d %+v", code, b)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Store.Engine != config.EngineClickHouse || st.Store.Address != cl.Addr(0)+"/takedown" {
		t.Fatalf("status names %q at %q (%v)", st.Store.Engine, st.Store.Address, err)
	}

	cl.Kill(0)
	var b readyBody
	waitFor("readyz says the store is unreachable", func() bool {
		var code int
		code, b = readyz(t, s.api)
		return code == http.StatusServiceUnavailable && strings.Contains(b.Checks["store"], "clickhouse at") &&
			strings.Contains(b.Checks["store"], "not reachable")
	})
	ingest(smtpEvents(start.Add(time.Minute), 2, 500))
	waitFor("status shows the backlog and the store's error", func() bool {
		st, err := c.Status(ctx)
		return err == nil && st.Pipeline.Backlog > 0 && st.Store.Error != ""
	})

	restart(0)
	waitFor("every event stored after the restart", stored(800))
	waitFor("ready again", func() bool { code, _ := readyz(t, s.api); return code == 200 })
	s.stop(t)
	seen := map[netip.Addr]int{}
	for _, e := range events(t, cfg) {
		seen[e.SrcIP]++
	}
	if len(seen) != 800 {
		t.Fatalf("%d distinct addresses stored, want 800", len(seen))
	}
	for a, n := range seen {
		if n != 1 {
			t.Errorf("%s stored %d times", a, n)
		}
	}
	// The evidence log (in the DuckDB file) lists exactly the events
	// ClickHouse holds, the batches retried while it was away included.
	logMatchesStore(t, cfg, 800)
}
