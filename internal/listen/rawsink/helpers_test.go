package rawsink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/promtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memRecorder keeps copies of the events in memory.
type memRecorder struct {
	mu     sync.Mutex
	events []event.Event
}

func (r *memRecorder) Record(e *event.Event) {
	c := *e // the server reuses e
	c.PayloadHead = append([]byte(nil), e.PayloadHead...)
	r.mu.Lock()
	r.events = append(r.events, c)
	r.mu.Unlock()
}

func (r *memRecorder) all() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

func (r *memRecorder) wait(t testing.TB, n int) []event.Event {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d events", n), func() bool { return len(r.all()) >= n })
	return r.all()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const testRules = `
rules:
  - name: beacon
    family: beaconbot
    tag: udp-beacon
    match:
      protocol: [tcp, udp]
      body_prefix_hex: "42454143" # BEAC
`

func testClassifier(t testing.TB) Classifier {
	t.Helper()
	rs, err := classify.Parse("test.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

type testServer struct {
	*Server
	rec      *memRecorder
	reg      *prometheus.Registry
	tcp, udp []string
}

// start starts a server with cfg on n TCP and n UDP ports of 127.0.0.1
// and stops it at the end of the test.
func start(t testing.TB, cfg Config, n int) *testServer {
	t.Helper()
	rec := &memRecorder{}
	reg := prometheus.NewRegistry()
	for range n {
		cfg.TCP = append(cfg.TCP, "127.0.0.1:0")
		cfg.UDP = append(cfg.UDP, "127.0.0.1:0")
	}
	if cfg.Recorder == nil {
		cfg.Recorder = rec
	}
	cfg.Registerer = reg
	if cfg.Sensor == "" {
		cfg.Sensor = "test-node"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	ts := &testServer{Server: s, rec: rec, reg: reg}
	for _, a := range s.Addrs() {
		if a.Network() == "tcp" {
			ts.tcp = append(ts.tcp, a.String())
		} else {
			ts.udp = append(ts.udp, a.String())
		}
	}
	return ts
}

// counter reads a metric of the server's registry.
func (ts *testServer) counter(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	return promtest.Value(t, ts.reg, "takedown_rawsink_"+name, labels...)
}

func port(addr string) uint16 {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return uint16(n)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fdCount(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// settle waits until the goroutine and descriptor counts are back at most
// at the baseline.
func settle(t testing.TB, goroutines, fds int) {
	t.Helper()
	waitFor(t, "goroutines and descriptors back to baseline", func() bool {
		return runtime.NumGoroutine() <= goroutines && fdCount(t) <= fds
	})
}
