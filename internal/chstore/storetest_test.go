package chstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/store/storetest"
)

// databases numbers the databases of a test run: each test of the suite
// gets a fresh one on the package's shared servers, which start once.
var databases atomic.Int64

// freshConfig returns the configuration of a new database on base's
// servers.
func freshConfig(base chstore.Config) chstore.Config {
	base.Database = fmt.Sprintf("t%d_%d", time.Now().UnixNano()%1e9, databases.Add(1))
	return base
}

// openEngine opens the engine and rollup of a fresh database, closed
// with t.Cleanup.
func openEngine(t *testing.T, base chstore.Config, now func() time.Time) (*chstore.Store, *chstore.Rollup) {
	t.Helper()
	s, err := chstore.Open(t.Context(), freshConfig(base))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r, err := chstore.OpenRollup(t.Context(), chstore.RollupConfig{Store: s, Days: 5, Lag: time.Microsecond, Busy: -1, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

// servers starts the servers of a layout, "node" or "shards" (two), for
// the whole of a test, and returns their configuration without a
// database. bin is the clickhouse-server, "" for chtest's default.
func servers(t *testing.T, layout string, bin ...string) chstore.Config {
	t.Helper()
	n := 1
	if layout == "shards" {
		n = 2
	}
	o := chtest.Options{Shards: n}
	if len(bin) > 0 {
		o.Binary = bin[0]
	}
	c := chtest.Start(t, o)
	cfg := chstore.Config{Addrs: c.Addrs(), Username: c.User(), Password: c.Password()}
	if n > 1 {
		cfg.Cluster, cfg.Shards = c.Name(), c.Addrs()
	}
	return cfg
}

// TestConformance runs the conformance suite on one node and on a
// cluster of two shards, of every binary of chtest.Binaries; each test of
// the suite on a fresh database of the same servers.
func TestConformance(t *testing.T) {
	for v, bin := range chtest.Binaries(t) {
		for _, layout := range []string{"node", "shards"} {
			t.Run("clickhouse-"+v+"/"+layout, func(t *testing.T) {
				base := servers(t, layout, bin)
				storetest.Run(t, func(t *testing.T, now func() time.Time) (storetest.Engine, eventstore.Rollup) {
					return openEngine(t, base, now)
				})
			})
		}
	}
}
