package chstore

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/freeport"
)

// A server that is down at Open, or that takes the connection and never
// answers, is an error that names the address and says it is not
// reachable, within about the dial timeout.
func TestOpenServerDown(t *testing.T) {
	port, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for name, addr := range map[string]string{
		"refused": fmt.Sprintf("127.0.0.1:%d", port),
		"mute":    mute.Addr().String(),
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Open(t.Context(), Config{Addrs: []string{addr}, DialTimeout: time.Second})
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "not reachable") {
				t.Fatalf("err = %v, want one naming %s as not reachable", err, addr)
			}
			if took > 5*time.Second {
				t.Fatalf("took %v to fail with a 1 s dial timeout", took)
			}
			t.Logf("%v after %v", err, took.Round(time.Millisecond))
		})
	}
}

// A schema newer than this build knows is refused, naming both versions,
// on one node and on any shard of a cluster.
func TestNewerSchemaRefused(t *testing.T) {
	for name, bin := range chtest.Binaries(t) {
		for _, shards := range []int{1, 2} {
			t.Run(fmt.Sprintf("clickhouse-%s/shards=%d", name, shards), func(t *testing.T) {
				c := chtest.Start(t, chtest.Options{Shards: shards, Binary: bin})
				s := open(t, config(c, "takedown"))
				s.Close()
				last := shards - 1
				conn := c.Conn(t, last)
				b, err := conn.PrepareBatch(t.Context(), "INSERT INTO takedown.schema_migrations (component, version, name, applied)")
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Append(Component, uint32(5), "from the future", time.Now().UTC().Truncate(time.Second)); err != nil {
					t.Fatal(err)
				}
				if err := b.Send(); err != nil {
					t.Fatal(err)
				}
				_, err = Open(t.Context(), config(c, "takedown"))
				want := fmt.Sprintf("clickhouse database takedown has events schema version 5; this takedown knows up to %d: upgrade takedown", len(migrations))
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), c.Addr(last)) {
					t.Fatalf("err = %v, want %q naming %s", err, want, c.Addr(last))
				}
			})
		}
	}
}

// The server killed between a batch's inserts and its mark: the append
// fails with a TransientError; after the restart the same Store takes the
// batch again, regrouped, and stores each event once. A server that is
// down fails appends with a TransientError and stores nothing; the Store
// works again once it is back.
func TestServerKilledDuringAppend(t *testing.T) {
	for name, bin := range chtest.Binaries(t) {
		for _, shards := range []int{1, 2} {
			t.Run(fmt.Sprintf("clickhouse-%s/shards=%d", name, shards), func(t *testing.T) {
				c := chtest.Start(t, chtest.Options{Shards: shards, Binary: bin})
				cfg := config(c, "takedown")
				cfg.DialTimeout = time.Second
				s := open(t, cfg)
				evs := testEvents(600, time.Date(2024, 5, 1, 23, 30, 0, 0, time.UTC), 5*time.Second)
				if err := s.AppendMarked(t.Context(), evs[:100], "spool", []byte("m100")); err != nil {
					t.Fatal(err)
				}
				victim := shards - 1 // on a cluster, a shard the writer does not talk to first
				s.SetAfterInsert(func() { c.Kill(victim) })
				err := s.AppendMarked(t.Context(), evs[100:400], "spool", []byte("m400"))
				s.SetAfterInsert(nil)
				var te *eventstore.TransientError
				if !errors.As(err, &te) {
					t.Fatalf("append while the server died: %v, want a TransientError", err)
				}
				t.Logf("killed: %v", err)
				// readyz: Ping names the server that is down.
				if err := s.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), c.Addr(victim)) || !strings.Contains(err.Error(), "not reachable") {
					t.Fatalf("ping with %s down: %v", c.Addr(victim), err)
				}
				// Down: refused, nothing stored.
				err = s.AppendMarked(t.Context(), evs[100:200], "spool", []byte("m200"))
				if !errors.As(err, &te) {
					t.Fatalf("append while the server is down: %v, want a TransientError", err)
				}
				c.Restart(victim)
				// The pipeline retries from its stored position, grouped
				// otherwise.
				for _, r := range [][2]int{{100, 150}, {150, 500}, {500, 600}} {
					err := retry(t, func() error {
						return s.AppendMarked(t.Context(), evs[r[0]:r[1]], "spool", []byte(fmt.Sprintf("m%d", r[1])))
					})
					if err != nil {
						t.Fatal(err)
					}
				}
				if n, d := counts(t, c, "takedown"); n != 600 || d != 600 {
					t.Fatalf("%d events stored, %d distinct; want 600", n, d)
				}
			})
		}
	}
}

// retry calls fn until it succeeds, for 20 s at most: the driver's pool
// may hand out a connection that died with the server once.
func retry(t *testing.T, fn func() error) error {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := fn()
		var te *eventstore.TransientError
		if err == nil || !errors.As(err, &te) || time.Now().After(deadline) {
			return err
		}
		t.Logf("retrying: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
}

// A full disk on the server's side: appends fail with a TransientError
// and leave no half-stored batch behind them once retried; when room is
// made, the same Store takes them. The data directory is a 64 MB tmpfs
// (the test runs as root to mount it).
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounting a tmpfs as the server's data directory needs root; run this test as root")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "n0", "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", data).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v: %s", data, err, out)
	}
	// Registered before chtest.Start's cleanup, so it runs after the
	// server is killed.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", data, err, out)
		}
	})
	c := chtest.Start(t, chtest.Options{Dir: dir})
	s := open(t, config(c, "takedown"))
	conn := c.Conn(t, 0)
	// Fill the disk with a table of incompressible bytes.
	if err := conn.Exec(t.Context(), "CREATE TABLE takedown.filler (s String) ENGINE = MergeTree ORDER BY tuple()"); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		err := conn.Exec(t.Context(), "INSERT INTO takedown.filler SELECT arrayStringConcat(arrayMap(x -> toString(rand64(x)), range(60))) FROM system.numbers LIMIT 10000")
		if err != nil {
			if !strings.Contains(err.Error(), "space") {
				t.Fatalf("filling the disk: %v", err)
			}
			t.Logf("disk full after %d MB: %v", i*10, firstLine(err))
			break
		}
	}
	evs := testEvents(20000, time.Date(2024, 5, 1, 20, 0, 0, 0, time.UTC), time.Second)
	for i := range evs {
		evs[i].PayloadHead = []byte(strings.Repeat(fmt.Sprint(i), 50))
	}
	var failed bool
	for k := range 20 {
		err := s.AppendMarked(t.Context(), evs[k*1000:(k+1)*1000], "spool", []byte(fmt.Sprintf("m%d", (k+1)*1000)))
		if err != nil {
			var te *eventstore.TransientError
			if !errors.As(err, &te) {
				t.Fatalf("append on a full disk: %v, want a TransientError", err)
			}
			t.Logf("append %d on a full disk: %v", k, firstLine(err))
			failed = true
			// Make room, and take the batch again from the mark.
			if err := conn.Exec(t.Context(), "DROP TABLE takedown.filler"); err != nil {
				t.Fatal(err)
			}
			m, err := s.Mark(t.Context(), "spool")
			if err != nil {
				t.Fatal(err)
			}
			from := 0
			fmt.Sscanf(string(m), "m%d", &from)
			if err := s.AppendMarked(t.Context(), evs[from:20000], "spool", []byte("m20000")); err != nil {
				t.Fatalf("append after room was made: %v", err)
			}
			break
		}
	}
	if !failed {
		t.Fatal("the disk never filled")
	}
	if n, d := counts(t, c, "takedown"); n != 20000 || d != 20000 {
		t.Fatalf("%d events stored, %d distinct; want 20000", n, d)
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// A wrong password is refused at Open, naming the server.
func TestOpenWrongPassword(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	cfg := config(c, "takedown")
	cfg.Password = "wrong"
	_, err := Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "clickhouse at "+c.Addr(0)+" refused the connection") {
		t.Fatalf("err = %v", err)
	}
}
