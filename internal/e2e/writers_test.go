package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/app/apptest"
	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/natstest"
	"github.com/takedown-project/takedown/internal/sim"
)

// TestSeveralWriters runs two writers into one ClickHouse store, as its
// users run them: a central (named c1, sensor s1) and a collector (named
// c2, sensor s2), each a takedown process, on a three-node NATS cluster
// (every nats-server the machine has: one sensor a writer, so that 2.9's
// one filter subject a consumer does) and a clickhouse-server, while the
// simulated botnet calls both sensors. Under that load
//
//   - the collector is killed with SIGKILL between the INSERTs of a batch
//     and its mark, the one moment that leaves a batch stored and not
//     acknowledged (the test hook TAKEDOWN_TEST_HOLD_AFTER_INSERT holds it
//     there), and restarted without the hook: the stream delivers the
//     batch again;
//   - the central is killed with SIGKILL at a random moment and
//     restarted.
//
// At the end every event a sensor answered is stored exactly once:
// ClickHouse holds, per sensor, the simulator's count of events, and no
// event hash twice.
func TestSeveralWriters(t *testing.T) {
	for version, bin := range natstest.Binaries(t) {
		t.Run("nats-"+version, func(t *testing.T) { testSeveralWriters(t, bin) })
	}
}

func testSeveralWriters(t *testing.T, natsBin string) {
	dir := t.TempDir()
	ids := []string{"s1", "s2"}
	nc := natstest.Start(t, natstest.Options{Nodes: 3, TLS: true, Sensors: ids, Binary: natsBin})
	ch := chtest.Start(t, chtest.Options{})
	pw := filepath.Join(dir, "clickhouse.password")
	if err := os.WriteFile(pw, []byte(ch.Password()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	world, err := demoworld.New()
	if err != nil {
		t.Fatal(err)
	}
	worldFile := filepath.Join(dir, demoworld.FileName)
	if err := world.WriteFile(worldFile); err != nil {
		t.Fatal(err)
	}
	f := &fleet{nats: nc, ids: ids, world: worldFile}
	store := fmt.Sprintf("store: {engine: clickhouse, clickhouse: {addrs: [%q], username: %s, password_file: %s}}\n", ch.Addr(0), ch.User(), pw)
	central := f.newProc(t, dir, "central", config.RoleCentral, "127.0.0.1", "{flush_ms: 100}", "central: {name: c1, sensors: [s1]}\n"+store)
	collector := f.newProc(t, dir, "collector", config.RoleCollector, "127.0.0.1", "{flush_ms: 100}", "central: {name: c2, sensors: [s2]}\n"+store)
	f.central, f.cfg = central, central.cfg
	for i, id := range ids {
		f.sensors = append(f.sensors, f.newProc(t, dir, id, config.RoleSensor, fmt.Sprintf("127.0.0.%d", i+2), "{flush_ms: 100, spool_flush_ms: -1}", ""))
	}
	all := append([]*proc{central, collector}, f.sensors...)
	t.Cleanup(func() {
		for _, p := range all {
			p.signal(t, syscall.SIGKILL)
		}
		if t.Failed() {
			for _, p := range all {
				t.Logf("%s log:\n%s", p.name, tail(p.log))
			}
		}
	})

	waledac, dga := fleetNames(time.Now().UTC())
	apptest.Seize(t, central.cfg, "wal", sim.Waledac, waledac)
	apptest.Seize(t, central.cfg, "dga", sim.Conficker, dga)

	central.start(t)
	token, err := app.ReadToken(central.cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	f.client = api.NewClient(central.cfg.API.Listen, token, "e2e")
	// The collector holds its first batch of events between insert and
	// mark; it is ready (NATS, the store, the served set) before.
	hold := filepath.Join(dir, "held")
	collector.env = []string{"TAKEDOWN_TEST_HOLD_AFTER_INSERT=" + hold}
	collector.start(t)
	for _, s := range f.sensors {
		s.start(t)
	}
	// The sensors have the served set: asked through their status, not
	// by DNS, so that no event comes before the simulator's (the
	// collector holds the first it stores).
	for _, sp := range f.sensors {
		tok, err := app.ReadToken(sp.cfg.API.TokenFile)
		if err != nil {
			t.Fatal(err)
		}
		sc := api.NewClient(sp.cfg.API.Listen, tok, "e2e")
		waitUntil(t, sp.name+" to have the served set", 30*time.Second, func() bool {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			st, err := sc.Status(sctx)
			return err == nil && st.Uplink != nil && st.Uplink.ServedZones >= len(waledac)
		})
	}
	conn := ch.Conn(t, 0)
	ctx := context.Background()
	stored := func() (perSensor map[string]uint64, rows, hashes uint64) {
		perSensor = map[string]uint64{}
		r, err := conn.Query(ctx, "SELECT sensor, count(), uniqExact(ev_hash) FROM takedown.events GROUP BY sensor")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for r.Next() {
			var (
				sensor string
				n, u   uint64
			)
			if err := r.Scan(&sensor, &n, &u); err != nil {
				t.Fatal(err)
			}
			perSensor[sensor] = n
			rows += n
			hashes += u
		}
		return perSensor, rows, hashes
	}

	base, baseRows, _ := stored()
	if baseRows != 0 {
		t.Fatalf("events stored before the simulator's: %v", base)
	}
	s := f.newSim(t, 30*time.Second, 21)
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- s.Run(ctx) }()

	// The collector, between insert and mark.
	waitUntil(t, "the collector to hold a batch after its insert", 30*time.Second, func() bool {
		_, err := os.Stat(hold)
		return err == nil
	})
	held, _ := os.ReadFile(hold)
	before, _, _ := stored()
	if before["s2"] == 0 {
		t.Fatalf("the collector holds a batch (%s) but ClickHouse has no event of s2: the hook is not after the insert", strings.TrimSpace(string(held)))
	}
	collector.signal(t, syscall.SIGKILL)
	t.Logf("%v: killed the collector holding a batch (%s) after its insert, before its mark; ClickHouse has %d events of s2",
		time.Since(began).Round(time.Millisecond), strings.TrimSpace(string(held)), before["s2"])
	collector.env = nil
	collector.start(t)

	// The central, at a random moment.
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	killAt := time.Duration(5+r.IntN(15)) * time.Second
	time.Sleep(time.Until(began.Add(killAt)))
	central.signal(t, syscall.SIGKILL)
	t.Logf("%v: killed the central", time.Since(began).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	central.start(t)

	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tr := s.Truth()
	want := map[string]int64{"s1": tr.Sensors[0].Events, "s2": tr.Sensors[1].Events}
	// Every answered event is stored once: wait for both writers to catch
	// up, then for nothing more to come.
	deadline := time.Now().Add(2 * time.Minute)
	var last uint64
	stable := time.Now()
	for {
		per, rows, _ := stored()
		if rows != last {
			last, stable = rows, time.Now()
		}
		if int64(per["s1"]) >= want["s1"] && int64(per["s2"]) >= want["s2"] && time.Since(stable) > 2*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored %v; the sensors answered %v", per, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	per, rows, hashes := stored()
	for _, id := range ids {
		// A callback the simulator saw fail may still have been recorded.
		if got := int64(per[id]); got < want[id] || got > want[id]+tr.Errors {
			t.Errorf("sensor %s: stored %d events, it answered %d (%d callbacks failed)", id, got, want[id], tr.Errors)
		}
	}
	if rows != hashes {
		t.Errorf("%d events stored, %d distinct: %d stored twice", rows, hashes, rows-hashes)
	}
	b, err := os.ReadFile(collector.log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "half-stored batch skipped") {
		t.Error("the restarted collector did not complete the half-stored batch (no \"half-stored batch skipped\" in its log)")
	}
	// The collector's status names its role and its sensor.
	ctoken, err := app.ReadToken(collector.cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := api.NewClient(collector.cfg.API.Listen, ctoken, "e2e").Status(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Role != config.RoleCollector || len(st.Sensors) != 1 || st.Sensors[0].ID != "s2" || st.Store.Engine != config.EngineClickHouse {
		t.Errorf("collector status: role %q, sensors %+v, store %+v", st.Role, st.Sensors, st.Store)
	}
	t.Logf("two writers: %d callbacks (%d events: s1 %d, s2 %d), %d failed; stored %d, each once",
		tr.Callbacks, tr.Events, want["s1"], want["s2"], tr.Errors, rows)
}

// waitUntil waits, for d at most, until cond holds, asking every 100 ms.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
