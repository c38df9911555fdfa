package chstore

import (
	"context"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chtest"
)

// config returns the Config of the database db on c: one node, or the
// cluster of its shards.
func config(c *chtest.Cluster, db string) Config {
	cfg := Config{
		Addrs:    c.Addrs(),
		Database: db,
		Username: c.User(),
		Password: c.Password(),
	}
	if c.Shards() > 1 {
		cfg.Cluster = c.Name()
		cfg.Shards = c.Addrs()
	}
	return cfg
}

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// queryUint runs a query of one number on node i of c.
func queryUint(t *testing.T, c *chtest.Cluster, i int, sql string, args ...any) uint64 {
	t.Helper()
	conn := c.Conn(t, i)
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT toUInt64(("+sql+"))", args...).Scan(&n); err != nil {
		t.Fatalf("node %d: %s: %v", i, sql, err)
	}
	return n
}
