package chtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/takedown-project/takedown/internal/chrun"
)

// Binary returns the clickhouse-server to test with
// ($TAKEDOWN_CLICKHOUSE_SERVER, else the PATH, else /usr/sbin), failing
// the test with how to install it when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := chrun.Binary()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Binaries returns the binaries to run a test against: "default"
// (Binary) and, when $TAKEDOWN_CLICKHOUSE_SERVER_LATEST is set, "latest".
// (clickhouse-server 18.16 has no --version: a test that wants the
// version asks the started server, Cluster.Version.)
func Binaries(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{"default": Binary(t)}
	latest, err := chrun.LatestBinary()
	if err != nil {
		t.Fatal(err)
	}
	if latest != "" {
		out["latest"] = latest
	}
	return out
}

// Options say what Start starts.
type Options struct {
	// Shards is the number of nodes, one shard each (default 1).
	Shards int
	// Binary is the clickhouse-server to run; default Binary(t).
	Binary string
	// Dir is the cluster's directory; default t.TempDir(). A test that
	// mounts a file system under it (a full disk) gives its own.
	Dir string
}

// Cluster is a chrun.Cluster bound to a test: its methods that could fail
// end the test instead, and must be called from the test's goroutine. The
// chrun methods are still there as c.Cluster.Restart(ctx, i) and so on.
type Cluster struct {
	*chrun.Cluster
	t testing.TB
}

// Start starts real clickhouse-server processes on 127.0.0.1 in a
// temporary directory and returns once they answer (see chrun.Start).
// They are killed when the test ends, passed or failed; when it failed,
// the end of each node's logs is in the test's output.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Binary == "" {
		o.Binary = Binary(t)
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := chrun.Start(ctx, chrun.Config{Dir: o.Dir, Shards: o.Shards, Binary: o.Binary})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after TempDir, so it runs before the directory goes.
	t.Cleanup(func() {
		if err := c.KillAll(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			for i := range c.Shards() {
				t.Logf("clickhouse node %d (%s) logs:\n%s", i, c.Binary(), LastLines(c.Logs(i), 40))
			}
		}
	})
	return &Cluster{Cluster: c, t: t}
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) check(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

// Kill sends SIGKILL to node i and waits for it to exit.
func (c *Cluster) Kill(i int) { c.t.Helper(); c.check(c.Cluster.Kill(i)) }

// Stop shuts node i down (SIGTERM).
func (c *Cluster) Stop(i int) { c.t.Helper(); c.check(c.Cluster.Stop(i)) }

// Restart starts node i again on the same ports and data, and waits until
// it answers.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.check(c.Cluster.Restart(ctx, i))
}

// Version returns the servers' version ("18.16.1").
func (c *Cluster) Version() string {
	c.t.Helper()
	v, err := c.Cluster.Version(context.Background())
	c.check(err)
	return v
}

// Conn returns a connection to node i as the cluster's user, closed when
// the test ends.
func (c *Cluster) Conn(t testing.TB, i int) clickhouse.Conn {
	t.Helper()
	conn, err := c.Open(i)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
