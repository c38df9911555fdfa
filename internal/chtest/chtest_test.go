package chtest

import (
	"strings"
	"testing"
)

// One node per binary: it answers as the cluster's user, and keeps a
// table across a kill and a restart.
func TestStartKillRestart(t *testing.T) {
	for name, bin := range Binaries(t) {
		t.Run("clickhouse-"+name, func(t *testing.T) {
			c := Start(t, Options{Binary: bin})
			t.Logf("clickhouse %s at %s", c.Version(), c.Addr(0))
			conn := c.Conn(t, 0)
			if err := conn.Exec(t.Context(), "CREATE TABLE t (n UInt64) ENGINE = MergeTree ORDER BY n"); err != nil {
				t.Fatal(err)
			}
			if err := conn.Exec(t.Context(), "INSERT INTO t SELECT number FROM system.numbers LIMIT 3"); err != nil {
				t.Fatal(err)
			}
			c.Kill(0)
			c.Restart(0)
			var n uint64
			if err := c.Conn(t, 0).QueryRow(t.Context(), "SELECT count() FROM t").Scan(&n); err != nil || n != 3 {
				t.Fatalf("count after restart: %d, %v", n, err)
			}
		})
	}
}

// A missing binary is a failure with the install hint, not a skip.
func TestMissingBinaryFails(t *testing.T) {
	t.Setenv("TAKEDOWN_CLICKHOUSE_SERVER", "/nonexistent/clickhouse-server")
	ft := &fakeT{TB: t}
	func() {
		defer func() { recover() }()
		Binary(ft)
	}()
	if !ft.failed || !contains(ft.msg, "apt-get install clickhouse-server") {
		t.Fatalf("failed %v, message %q", ft.failed, ft.msg)
	}
}

type fakeT struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatal(args ...any) {
	f.failed = true
	for _, a := range args {
		if e, ok := a.(error); ok {
			f.msg += e.Error()
		}
	}
	panic("fatal")
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
