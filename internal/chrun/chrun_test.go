package chrun_test

import (
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/takedown-project/takedown/internal/chrun"
	"github.com/takedown-project/takedown/internal/chtest"

	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func run(t *testing.T, c *chtest.Cluster, i int, sql string) {
	t.Helper()
	conn, err := c.Open(i)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("node %d: %s: %v", i, sql, err)
	}
}

func count(t *testing.T, c *chtest.Cluster, i int, sql string) uint64 {
	t.Helper()
	conn, err := c.Open(i)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatalf("node %d: %s: %v", i, sql, err)
	}
	return n
}

// Two shards: a Distributed table over the cluster of <remote_servers>
// reads both, a killed node's data survives its restart on the same
// ports, and the user's password is kept only as its hash.
func TestTwoShards(t *testing.T) {
	begin := time.Now()
	c := chtest.Start(t, chtest.Options{Shards: 2})
	v := c.Version()
	t.Logf("clickhouse %s, 2 shards ready in %v", v, time.Since(begin).Round(time.Millisecond))
	for i := range 2 {
		run(t, c, i, "CREATE TABLE t_local (n UInt64) ENGINE = MergeTree ORDER BY n")
		run(t, c, i, "CREATE TABLE t AS t_local ENGINE = Distributed("+c.Name()+", default, t_local, n)")
	}
	run(t, c, 0, "INSERT INTO t_local SELECT number FROM system.numbers LIMIT 10")
	run(t, c, 1, "INSERT INTO t_local SELECT number FROM system.numbers LIMIT 5")
	for i := range 2 {
		if n := count(t, c, i, "SELECT count() FROM t"); n != 15 {
			t.Fatalf("node %d counts %d rows over the cluster, want 15", i, n)
		}
	}
	addr := c.Addr(1)
	c.Kill(1)
	if c.Running(1) {
		t.Fatal("killed node runs")
	}
	c.Restart(1)
	if c.Addr(1) != addr {
		t.Fatalf("restarted on %s, was %s", c.Addr(1), addr)
	}
	if n := count(t, c, 0, "SELECT count() FROM t"); n != 15 {
		t.Fatalf("%d rows after the restart, want 15", n)
	}
	users, err := os.ReadFile(filepath.Join(c.NodeDir(0), "users.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(users), c.Password()) || !strings.Contains(string(users), "password_sha256_hex") {
		t.Fatalf("users.xml keeps the password, or not its hash:\n%s", users)
	}
	c.Stop(0)
	if c.Running(0) {
		t.Fatal("stopped node runs")
	}
	if strings.Count(c.Logs(1), "--- chrun: starting n1") != 2 {
		t.Fatalf("node 1's log does not show two runs:\n%s", c.Logs(1))
	}
}

// A wrong password is refused: the account is the one users.xml names.
func TestWrongPassword(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{c.Addr(0)}, Auth: clickhouse.Auth{Username: c.User(), Password: "wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "assword") {
		t.Fatalf("a wrong password: %v", err)
	}
}

func TestMissingBinary(t *testing.T) {
	t.Setenv(chrun.EnvBinary, filepath.Join(t.TempDir(), "none"))
	_, err := chrun.Binary()
	if !errors.Is(err, chrun.ErrNoBinary) || !strings.Contains(err.Error(), "apt-get install clickhouse-server") {
		t.Fatalf("err = %v, want chrun.ErrNoBinary with the install hint", err)
	}
	_, err = chrun.Start(t.Context(), chrun.Config{Dir: t.TempDir()})
	if !errors.Is(err, chrun.ErrNoBinary) {
		t.Fatalf("Start: %v", err)
	}
}

func TestConfigNames(t *testing.T) {
	for _, name := range []string{"", "a b", "1x", "x<y"} {
		if _, err := chrun.Start(t.Context(), chrun.Config{Dir: t.TempDir(), Cluster: name, Binary: "/bin/true"}); name != "" && err == nil {
			t.Errorf("cluster %q accepted", name)
		}
	}
}
