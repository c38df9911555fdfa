package httpsink

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/promtest"
)

// modes runs a test with the plain-HTTP connections served by event loops
// (the default) and by goroutines only (Config.Loops -1), where idle
// connections go to the parker.
func modes(t *testing.T, test func(t *testing.T, loops int)) {
	t.Run("loops", func(t *testing.T) { test(t, 0) })
	t.Run("goroutines", func(t *testing.T) { test(t, -1) })
}

// held counts the plain-HTTP connections held without a goroutine: by the
// loops, or by the parker (the connections_parked gauge).
func held(ts *testServer) int {
	var m dto.Metric
	ts.m.parked.Write(&m)
	return int(m.GetGauge().GetValue())
}

// parkServer is a plain-HTTP server with a metrics registry, its
// connections served by loops or (loops -1) by goroutines.
func parkServer(t *testing.T, loops int, change func(*Config)) (*testServer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	ts := startServer(t, func(c *Config) {
		c.Loops = loops
		c.HTTPS = nil
		c.MaxConnsPerIP = -1
		c.Registerer = reg
		if change != nil {
			change(c)
		}
	})
	if ts.park == nil {
		t.Fatal("no parker")
	}
	if loops >= 0 && ts.loops == nil {
		t.Fatal("no event loops")
	}
	return ts, reg
}

// metric reads a gauge or counter (the first series with the labels).
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	return promtest.Value(t, reg, "takedown_httpsink_"+name, labels...)
}

// waitParked waits until n connections are held without a goroutine.
func waitParked(t *testing.T, ts *testServer, n int) {
	t.Helper()
	if !waitFor(10*time.Second, func() bool { return held(ts) == n }) {
		t.Fatalf("%d connections held without a goroutine, want %d", held(ts), n)
	}
}

// client is one keep-alive connection of a test.
type client struct {
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &client{c: c, br: bufio.NewReader(c)}
}

// ask sends a keep-alive GET of path and reads the answer.
func (c *client) ask(path string) error {
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.c, "GET %s HTTP/1.1\r\nHost: evil-c2.example\r\n\r\n", path); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		return fmt.Errorf("%s: %s (close %v)", path, resp.Status, resp.Close)
	}
	return nil
}

// closedByServer waits for the server to close c and returns when.
func (c *client) closedByServer(t *testing.T, within time.Duration) time.Time {
	t.Helper()
	c.c.SetReadDeadline(time.Now().Add(within))
	n, err := c.br.Read(make([]byte, 1))
	if n != 0 || err != io.EOF {
		t.Fatalf("connection not closed by the server: %d %v", n, err)
	}
	return time.Now()
}

func paths(evs []event.Event) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		m[e.HTTPPath]++
	}
	return m
}

// TestParkIdleConns holds 2,000 keep-alive connections after a request and
// 200 that never sent a byte: they cost no goroutine each, and each is
// served when it asks.
func TestParkIdleConns(t *testing.T) { modes(t, testIdleConns) }

func testIdleConns(t *testing.T, loops int) {
	raiseNoFile(t, 6000)
	const n, silent = 2000, 200
	ts, reg := parkServer(t, loops, func(c *Config) {
		c.ReadHeaderTimeout = 30 * time.Second
		c.IdleTimeout = 30 * time.Second
	})
	_, g0 := resources()
	conns := make([]*client, n+silent)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(conns); i += 16 {
				c, err := net.DialTimeout("tcp", ts.http, 10*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				conns[i] = &client{c: c, br: bufio.NewReader(c)}
				if i < n {
					if err := conns[i].ask(fmt.Sprintf("/first?i=%d", i)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.c.Close()
			}
		}
	}()
	if t.Failed() {
		return
	}
	waitParked(t, ts, n+silent)
	runtime.GC()
	// Workers waiting for the next connection are as many as were busy
	// at once, and end after workerIdle (100 ms): they are not held by the idle
	// connections.
	w := int(ts.work.idle.Load())
	g := runtime.NumGoroutine() - g0 - w
	t.Logf("%d idle connections, %d held: %d goroutines more than before, besides %d waiting workers", n+silent, held(ts), g, w)
	if g > 50 {
		t.Errorf("%d idle connections hold %d goroutines", n+silent, g)
	}
	if v := metric(t, reg, "connections_parked"); v != n+silent {
		t.Errorf("connections_parked %v, want %d", v, n+silent)
	}
	if v := metric(t, reg, "connections_open", "protocol", "http"); v != n+silent {
		t.Errorf("connections_open %v, want %d", v, n+silent)
	}
	ts.rec.waitN(t, n, nil)
	ts.rec.reset()

	// Every connection asks again (the silent ones for the first time)
	// and is answered.
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(conns); i += 16 {
				if err := conns[i].ask(fmt.Sprintf("/second?i=%d", i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	evs := ts.rec.waitN(t, n+silent, nil)
	got := paths(evs)
	for i := range conns {
		if p := fmt.Sprintf("/second?i=%d", i); got[p] != 1 {
			t.Fatalf("%s recorded %d times", p, got[p])
		}
	}
	for _, e := range evs {
		if e.Error != "" || e.Domain != "evil-c2.example" || e.Family != "waledac" {
			t.Fatalf("event: %+v", e)
		}
	}
	// And parks again.
	waitParked(t, ts, n+silent)
}

// TestParkTimeouts: parked connections end as waiting ones did, with the
// same events: a header timeout before the first request, a silent close
// after one, a connection timeout at the end of life.
func TestParkTimeouts(t *testing.T) { modes(t, testTimeouts) }

func testTimeouts(t *testing.T, loops int) {
	const rht, idle = 300 * time.Millisecond, 700 * time.Millisecond
	ts, reg := parkServer(t, loops, func(c *Config) {
		c.ReadHeaderTimeout = rht
		c.IdleTimeout = idle
		c.DeferAccept = -1 // the silent clients' timeouts run from the connect
	})

	t.Run("header", func(t *testing.T) {
		ts.rec.reset()
		start := time.Now()
		c := dial(t, ts.http)
		defer c.c.Close()
		waitParked(t, ts, 1)
		end := c.closedByServer(t, 5*time.Second)
		if d := end.Sub(start); d < rht || d > rht+time.Second {
			t.Errorf("closed after %v, want about %v", d, rht)
		}
		e := ts.rec.waitN(t, 1, nil)[0]
		if e.Error != "header timeout" || e.Malformed || e.Bytes != 0 || e.SrcIP.String() != "127.0.0.1" || e.Protocol != event.ProtoHTTP {
			t.Errorf("event: %+v", e)
		}
		if v := metric(t, reg, "limit_hits_total", "limit", "header_timeout"); v != 1 {
			t.Errorf("header_timeout limit hits %v", v)
		}
	})

	t.Run("idle", func(t *testing.T) {
		ts.rec.reset()
		c := dial(t, ts.http)
		defer c.c.Close()
		if err := c.ask("/once"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitParked(t, ts, 1)
		end := c.closedByServer(t, 5*time.Second)
		if d := end.Sub(start); d < idle-50*time.Millisecond || d > idle+time.Second {
			t.Errorf("closed after %v, want about %v", d, idle)
		}
		waitFor(5*time.Second, func() bool { return held(ts) == 0 && len(ts.rec.all()) >= 1 })
		time.Sleep(50 * time.Millisecond) // an extra event would come now
		if evs := ts.rec.all(); len(evs) != 1 || evs[0].HTTPPath != "/once" || evs[0].Error != "" {
			t.Errorf("events:\n%s", dump(evs))
		}
	})

	t.Run("end-of-life", func(t *testing.T) {
		const life = 600 * time.Millisecond
		ts, _ := parkServer(t, loops, func(c *Config) {
			c.ReadHeaderTimeout = 10 * time.Second
			c.IdleTimeout = 10 * time.Second
			c.ConnTimeout = life
			c.DeferAccept = -1 // the silent client's life runs from its connect
		})
		start := time.Now()
		silent := dial(t, ts.http)
		defer silent.c.Close()
		asked := dial(t, ts.http)
		defer asked.c.Close()
		if err := asked.ask("/once"); err != nil {
			t.Fatal(err)
		}
		waitParked(t, ts, 2)
		for _, c := range []*client{silent, asked} {
			end := c.closedByServer(t, 5*time.Second)
			if d := end.Sub(start); d < life-50*time.Millisecond || d > life+time.Second {
				t.Errorf("closed after %v, want about %v", d, life)
			}
		}
		evs := ts.rec.waitN(t, 2, nil)
		got := map[string]bool{}
		for _, e := range evs {
			got[e.HTTPPath+" "+e.Error] = true
		}
		if len(evs) != 2 || !got["/once "] || !got[" connection timeout"] {
			t.Errorf("events:\n%s", dump(evs))
		}
	})

	// A client that goes away while parked.
	t.Run("client-close", func(t *testing.T) {
		ts.rec.reset()
		c := dial(t, ts.http)
		waitParked(t, ts, 1)
		c.c.Close()
		e := ts.rec.waitN(t, 1, nil)[0]
		if e.Error != "connection closed before a request" {
			t.Errorf("event: %+v", e)
		}
		waitParked(t, ts, 0)
	})
}

// TestParkShutdown: Shutdown ends parked connections at once, records the
// ones that never asked, and leaves no goroutine or descriptor behind.
func TestParkShutdown(t *testing.T) { modes(t, testShutdown) }

func testShutdown(t *testing.T, loops int) {
	fds0, g0 := resources()
	rec := &memRecorder{}
	s := newServer(t, Config{HTTP: []string{"127.0.0.1:0"}, Recorder: rec, Loops: loops})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, rec: rec, http: s.Addrs()[0].String()}
	var conns []*client
	for i := range 40 {
		c := dial(t, ts.http)
		conns = append(conns, c)
		if i%2 == 0 {
			if err := c.ask("/before-shutdown"); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitParked(t, ts, 40)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	for _, c := range conns {
		c.closedByServer(t, time.Second)
		c.c.Close()
	}
	if evs := rec.all(); len(evs) != 40 || len(rec.waitN(t, 20, errorIs("server shutting down"))) != 20 {
		t.Errorf("events:\n%s", dump(evs))
	}
	if n := held(ts); n != 0 {
		t.Errorf("%d still held", n)
	}
	waitResources(t, fds0, g0)
}

// TestParkFDReuse: clients close parked connections while new ones take
// their descriptor numbers; every request is answered and recorded once,
// and an event of a closed connection is not taken for its successor.
func TestParkFDReuse(t *testing.T) {
	ts, _ := parkServer(t, -1, nil)
	const workers, rounds = 8, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				c, err := net.DialTimeout("tcp", ts.http, 10*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				cl := &client{c: c, br: bufio.NewReader(c)}
				err = cl.ask(fmt.Sprintf("/a?w=%d&r=%d", w, r))
				if err == nil && r%2 == 0 {
					// Parked (the odd rounds may not be yet), then
					// asked again.
					time.Sleep(parkAfter + time.Duration(w)*time.Millisecond)
					err = cl.ask(fmt.Sprintf("/b?w=%d&r=%d", w, r))
				}
				if err != nil {
					t.Error(err)
				}
				if r%3 == 0 {
					time.Sleep(2 * parkAfter)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	want := workers * (rounds + rounds/2)
	evs := ts.rec.waitN(t, want, nil)
	got := paths(evs)
	for w := range workers {
		for r := range rounds {
			if p := fmt.Sprintf("/a?w=%d&r=%d", w, r); got[p] != 1 {
				t.Errorf("%s recorded %d times", p, got[p])
			}
			if p := fmt.Sprintf("/b?w=%d&r=%d", w, r); r%2 == 0 && got[p] != 1 {
				t.Errorf("%s recorded %d times", p, got[p])
			}
		}
	}
	waitParked(t, ts, 0)
	if evs := ts.rec.all(); len(evs) != want {
		t.Errorf("%d events, want %d", len(evs), want)
	}

	// An event of a connection that is gone does not take the connection
	// that got its descriptor.
	ts.rec.reset()
	old := dial(t, ts.http)
	if err := old.ask("/old"); err != nil {
		t.Fatal(err)
	}
	waitParked(t, ts, 1)
	fd, gen := parkedFD(ts, 0)
	old.c.Close()
	waitParked(t, ts, 0)
	var keep []*client
	defer func() {
		for _, c := range keep {
			c.c.Close()
		}
	}()
	for i := 0; ; i++ {
		if i == 10 {
			t.Skip("no new connection got the old descriptor number")
		}
		c := dial(t, ts.http)
		keep = append(keep, c)
		if err := c.ask("/new"); err != nil {
			t.Fatal(err)
		}
		waitParked(t, ts, len(keep))
		if nfd, _ := parkedFD(ts, fd); nfd == fd {
			break
		}
	}
	ts.park.mu.Lock()
	stale := ts.park.take(fd, gen)
	ts.park.mu.Unlock()
	if stale != nil {
		stale.end(net.ErrClosed) // it is ours now: let Shutdown finish
		t.Fatal("a stale event took the new connection")
	}
	for _, c := range keep {
		if err := c.ask("/again"); err != nil {
			t.Fatal(err)
		}
	}
	ts.rec.waitN(t, len(keep), func(e *event.Event) bool { return e.HTTPPath == "/again" })
}

// parkedFD returns the descriptor and generation of the connection parked
// on fd, or of any parked connection if fd is 0.
func parkedFD(ts *testServer, fd int32) (int32, uint32) {
	p := ts.park
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range p.heap {
		if fd == 0 || h.fd == fd {
			return h.fd, h.gen
		}
	}
	return -1, 0
}

// TestParkTLSNotParked: HTTPS connections keep their goroutine.
func TestParkTLSNotParked(t *testing.T) { modes(t, testTLSNotParked) }

func testTLSNotParked(t *testing.T, loops int) {
	ts := startServer(t, func(c *Config) { c.Loops = loops })
	c := dial(t, ts.http)
	defer c.c.Close()
	if err := c.ask("/plain"); err != nil {
		t.Fatal(err)
	}
	waitParked(t, ts, 1)
	tc, err := tls.Dial("tcp", ts.https, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	fmt.Fprintf(tc, "GET /tls HTTP/1.1\r\nHost: evil-c2.example\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil || resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" {
		t.Fatal(resp, err)
	}
	time.Sleep(5 * parkAfter) // it would be parked by now
	if n := held(ts); n != 1 {
		t.Errorf("%d held, want 1 (the plain one)", n)
	}
}

// TestParkSlowHead: a head that arrives in pieces, slower than parkAfter,
// keeps the deadline of its request: on a new connection, on one woken
// from the parker before its first request, and on a keep-alive one.
func TestParkSlowHead(t *testing.T) { modes(t, testSlowHead) }

func testSlowHead(t *testing.T, loops int) {
	ts, _ := parkServer(t, loops, func(c *Config) { c.ReadHeaderTimeout = 2 * time.Second })
	split := func(c *client, path string) error {
		c.c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c.c, "GET %s HTTP/1.1\r\n", path)
		time.Sleep(10 * parkAfter)
		fmt.Fprintf(c.c, "Host: evil-c2.example\r\n")
		time.Sleep(10 * parkAfter)
		fmt.Fprintf(c.c, "\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		return nil
	}
	fresh := dial(t, ts.http)
	defer fresh.c.Close()
	if err := split(fresh, "/fresh"); err != nil {
		t.Fatal(err)
	}
	waitParked(t, ts, 1)
	if err := split(fresh, "/keep-alive"); err != nil {
		t.Fatal(err)
	}
	silent := dial(t, ts.http)
	defer silent.c.Close()
	waitParked(t, ts, 2)
	if err := split(silent, "/woken"); err != nil {
		t.Fatal(err)
	}
	evs := ts.rec.waitN(t, 3, nil)
	for _, e := range evs {
		if e.Error != "" {
			t.Errorf("event: %+v", e)
		}
	}
}

// TestDeferAccept checks what the listening sockets' TCP_DEFER_ACCEPT
// changes (Config.DeferAccept, 1 s by default): a request is served at once;
// a client that connects and closes is recorded at once; a silent client is
// accepted about a second after its connect, and its header timeout runs
// from there.
func TestDeferAccept(t *testing.T) { modes(t, testDeferAccept) }

func testDeferAccept(t *testing.T, loops int) {
	const rht = 300 * time.Millisecond
	ts, _ := parkServer(t, loops, func(c *Config) { c.ReadHeaderTimeout = rht })
	// atOnce runs f and checks that it took no deferral.
	atOnce := func(t *testing.T, what string, f func()) {
		start := time.Now()
		f()
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("%s after %v", what, d)
		}
	}

	t.Run("request", func(t *testing.T) {
		atOnce(t, "answered", func() { get(t, ts.http) })
	})

	t.Run("connect-close", func(t *testing.T) {
		ts.rec.reset()
		atOnce(t, "recorded", func() {
			c := dial(t, ts.http)
			c.c.Close()
			ts.rec.waitN(t, 1, errorIs("connection closed before a request"))
		})
	})

	t.Run("silent", func(t *testing.T) {
		ts.rec.reset()
		start := time.Now()
		c := dial(t, ts.http)
		defer c.c.Close()
		end := c.closedByServer(t, 10*time.Second)
		if d := end.Sub(start); d < time.Second+rht || d > 4*time.Second+rht {
			t.Errorf("closed after %v, want about %v (a second's deferral, then the header timeout)", d, time.Second+rht)
		}
		ts.rec.waitN(t, 1, errorIs("header timeout"))
	})
}

// TestLastResponseCarriesTheFIN checks that the response that ends a
// connection goes out in one segment with the FIN: the client receives the
// SYN-ACK, the ACK of its request and that segment, where a write and a
// close would send the FIN in a fourth.
func TestLastResponseCarriesTheFIN(t *testing.T) { modes(t, testLastResponseCarriesTheFIN) }

func testLastResponseCarriesTheFIN(t *testing.T, loops int) {
	ts, _ := parkServer(t, loops, nil)
	for range 5 {
		c := dial(t, ts.http)
		c.c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c.c, "GET /x HTTP/1.1\r\nHost: evil-c2.example\r\nConnection: close\r\n\r\n")
		b, err := io.ReadAll(c.c)
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200 ") {
			c.c.Close()
			t.Fatalf("got %q, %v; want a 200 and the close", b, err)
		}
		rc, _ := c.c.(*net.TCPConn).SyscallConn()
		var ti *unix.TCPInfo
		rc.Control(func(fd uintptr) { ti, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
		c.c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if ti.Segs_in > 3 || ti.Data_segs_in != 1 {
			t.Fatalf("the client received %d segments, %d with data; want at most 3, one with data (the response and the FIN)", ti.Segs_in, ti.Data_segs_in)
		}
	}
}
