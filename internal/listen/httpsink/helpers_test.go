package httpsink

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/listen/certs"
)

// memRecorder keeps copies of the events it gets.
type memRecorder struct {
	mu     sync.Mutex
	events []event.Event
}

func (r *memRecorder) Record(e *event.Event) {
	c := *e
	c.PayloadHead = append([]byte(nil), e.PayloadHead...)
	if len(c.PayloadHead) == 0 {
		c.PayloadHead = nil
	}
	r.mu.Lock()
	r.events = append(r.events, c)
	r.mu.Unlock()
}

func (r *memRecorder) all() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

func (r *memRecorder) reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// waitEvents polls until match accepts an event list, or fails the test.
func (r *memRecorder) wait(t testing.TB, what string, match func([]event.Event) bool) []event.Event {
	t.Helper()
	var evs []event.Event
	ok := waitFor(10*time.Second, func() bool {
		evs = r.all()
		return match(evs)
	})
	if !ok {
		t.Fatalf("timed out waiting for %s; have %d events:\n%s", what, len(evs), dump(evs))
	}
	return evs
}

// waitN waits for n events that pick accepts and returns them.
func (r *memRecorder) waitN(t testing.TB, n int, pick func(*event.Event) bool) []event.Event {
	t.Helper()
	var got []event.Event
	r.wait(t, fmt.Sprintf("%d events", n), func(evs []event.Event) bool {
		got = got[:0]
		for i := range evs {
			if pick == nil || pick(&evs[i]) {
				got = append(got, evs[i])
			}
		}
		return len(got) >= n
	})
	return got
}

func dump(evs []event.Event) string {
	var b strings.Builder
	for i := range evs {
		if i == 20 {
			fmt.Fprintf(&b, "…\n")
			break
		}
		fmt.Fprintf(&b, "%+v\n", evs[i])
	}
	return b.String()
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
}

// fakeZones attributes every name under a listed zone.
type fakeZones map[string][2]string // zone → case, family

func (z fakeZones) Zone(host string) (string, string, string, bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for h := host; h != ""; {
		if v, ok := z[h]; ok {
			return h, v[0], v[1], true
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			break
		}
		h = h[i+1:]
	}
	return "", "", "", false
}

type testServer struct {
	*Server
	rec   *memRecorder
	http  string // host:port
	https string
	dir   string // CA directory
}

// startServer starts a server on 127.0.0.1:0 for HTTP and HTTPS with the
// given changes to the config, and shuts it down at the end of the test.
func startServer(t testing.TB, change func(*Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.Open(certs.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	cfg := Config{
		HTTP:     []string{"127.0.0.1:0"},
		HTTPS:    []string{"127.0.0.1:0"},
		Sensor:   "test-sensor",
		Certs:    ca,
		Recorder: rec,
		Zones:    fakeZones{"evil-c2.example": {"case-1", "waledac"}},
	}
	if change != nil {
		change(&cfg)
	}
	s := newServer(t, cfg)
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
	ts := &testServer{Server: s, rec: rec, dir: dir}
	if a := s.Addrs(); len(cfg.HTTP) > 0 {
		ts.http = a[0].String()
	}
	if a := s.Addrs(); len(cfg.HTTPS) > 0 {
		ts.https = a[len(cfg.HTTP)].String()
	}
	return ts
}

// newServer returns New(cfg) with the tests' tuning: workers that wait
// 100 ms for the next connection (not 5 s), so that the goroutine count
// soon returns to its baseline.
func newServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.workerIdle = 100 * time.Millisecond
	return s
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// holder returns a classify.Holder on a temporary rules file and a function
// that rewrites it.
func holder(t testing.TB, rules string) (*classify.Holder, func(string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write := func(s string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(rules)
	h, err := classify.New(classify.Config{Path: path, PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return h, write
}

// bigAnswers returns rules that answer requests for paths starting with
// path with body (family testfam).
func bigAnswers(t testing.TB, path, body string) *classify.Holder {
	t.Helper()
	h, _ := holder(t, `
rules:
  - name: big
    family: testfam
    match:
      protocol: [http]
      path: '^`+path+`'
    response:
      status: 200
      content_type: text/plain
      body: "`+body+`"
`)
	return h
}

// resources counts open file descriptors and goroutines.
func resources() (fds, goroutines int) {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents), runtime.NumGoroutine()
}

// waitResources waits until the counts are back near a baseline.
func waitResources(t testing.TB, fds0, g0 int) {
	t.Helper()
	var fds, g int
	if !waitFor(20*time.Second, func() bool {
		fds, g = resources()
		return fds <= fds0+2 && g <= g0+2
	}) {
		t.Fatalf("resources did not return to baseline: fds %d (was %d), goroutines %d (was %d)", fds, fds0, g, g0)
	}
}

// dialSmallReadBuffer connects with a 4 kB receive buffer, set before the
// connection: shrunk after it, below the window already offered, the
// client's kernel drops what no longer fits, and the sender backs off for
// seconds between retransmissions (the stalls seen in CI).
func dialSmallReadBuffer(t testing.TB, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, Control: sockopts(sockOpt{syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096})}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
