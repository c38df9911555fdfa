package sink

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/promtest"
)

// refusal is what Config.Refused was given.
type refusal struct {
	kind     int
	src, dst netip.AddrPort
	reason   string
}

type refusals struct {
	mu  sync.Mutex
	got []refusal
}

func (r *refusals) add(kind int, _ net.Conn, src, dst netip.AddrPort, reason string) {
	r.mu.Lock()
	r.got = append(r.got, refusal{kind, src, dst, reason})
	r.mu.Unlock()
}

func (r *refusals) all() []refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]refusal(nil), r.got...)
}

func newTest(t *testing.T, cfg Config) (*Lifecycle, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Name, cfg.Registerer = "testsink", reg
	if cfg.Protocols == nil {
		cfg.Protocols = []string{"a", "b"}
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, reg
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// echo serves a connection by echoing it until the client or Shutdown
// closes it.
func echo(c net.Conn) {
	defer c.Close()
	io.Copy(c, c) //nolint:errcheck // ends at the close
}

// TestStartBindsAllOrNothing: an address that cannot be bound fails Start
// with its protocol and address named, and leaves nothing bound.
func TestStartBindsAllOrNothing(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	l, _ := newTest(t, Config{})
	var bound []net.Addr
	var lc net.ListenConfig
	bind := func(b *Binder) error {
		lns, err := b.ListenAll(context.Background(), 0, []string{"127.0.0.1:0", "127.0.0.1:0"}, lc.Listen)
		if err != nil {
			return err
		}
		for _, ln := range lns {
			bound = append(bound, ln.Addr())
		}
		_, err = b.ListenPacket(context.Background(), "beacon", taken.LocalAddr().String(), lc.ListenPacket)
		return err
	}
	err = l.Start(bind, func() { t.Error("serve ran after a bind error") })
	if err == nil || !strings.HasPrefix(err.Error(), "testsink: beacon listener on \""+taken.LocalAddr().String()+"\": ") {
		t.Fatalf("Start: %v", err)
	}
	if len(l.Addrs()) != 0 {
		t.Errorf("addresses after a failed start: %v", l.Addrs())
	}
	for _, a := range bound {
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			t.Errorf("%s still bound after a failed start: %v", a, err)
			continue
		}
		ln.Close()
	}
	// Nothing started: Start may be tried again.
	taken.Close()
	bound = nil
	served := false
	if err := l.Start(bind, func() { served = true }); err != nil || !served {
		t.Fatalf("second Start: %v (served %v)", err, served)
	}
	if a := l.Addrs(); len(a) != 3 || a[0].String() != bound[0].String() || a[2].Network() != "udp" {
		t.Errorf("Addrs %v, want the two TCP then the UDP address", a)
	}
	if err := l.Start(bind, func() {}); err == nil || err.Error() != "testsink: already started" {
		t.Errorf("Start twice: %v", err)
	}
	if err := l.Shutdown(context.Background(), Stop{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Shutdown(context.Background(), Stop{}); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestServeWithinLimits: connections over a limit are refused, counted
// and handed to Refused; the others are served, counted and kept.
func TestServeWithinLimits(t *testing.T) {
	rs := &refusals{}
	l, reg := newTest(t, Config{Limits: Limits{Max: 3, MaxPerIP: 2}, Refused: rs.add})
	var lns []*Listener
	var lc net.ListenConfig
	if err := l.Start(func(b *Binder) (err error) {
		lns, err = b.ListenAll(context.Background(), 1, []string{"127.0.0.1:0"}, lc.Listen)
		return err
	}, func() { l.Serve(1, lns[0], echo) }); err != nil {
		t.Fatal(err)
	}
	defer l.Shutdown(context.Background(), Stop{})
	addr := lns[0].Addr().String()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	served := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := []byte("ping")
		if _, err := c.Write(buf); err != nil {
			return false
		}
		_, err := io.ReadFull(c, buf)
		return err == nil && string(buf) == "ping"
	}
	refused := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err != nil
	}
	value := func(name string, labels ...string) float64 {
		return promtest.Value(t, reg, "takedown_testsink_"+name, labels...)
	}
	a1, a2 := dial("127.0.0.2"), dial("127.0.0.2")
	if !served(a1) || !served(a2) {
		t.Fatal("connections within the limits not served")
	}
	if a3 := dial("127.0.0.2"); !refused(a3) {
		t.Fatal("third connection from one address not refused")
	}
	if b1 := dial("127.0.0.3"); !served(b1) {
		t.Fatal("connection from another address not served")
	}
	if b2 := dial("127.0.0.3"); !refused(b2) {
		t.Fatal("connection over the total not refused")
	}
	waitFor(t, "two refusals", func() bool { return len(rs.all()) == 2 })
	got := rs.all()
	if got[0].kind != 1 || got[0].reason != ReasonPerIP || got[0].src.Addr() != netip.MustParseAddr("127.0.0.2") ||
		got[0].dst.String() != addr || got[1].reason != ReasonTotal {
		t.Errorf("refusals %+v", got)
	}
	if value("connections_total", "protocol", "b") != 3 || value("connections_open", "protocol", "b") != 3 ||
		value("connections_refused_total", "protocol", "b", "limit", "per_ip") != 1 ||
		value("connections_refused_total", "protocol", "b", "limit", "total") != 1 {
		t.Errorf("metrics: total %v, open %v, refused per ip %v, total %v", value("connections_total", "protocol", "b"),
			value("connections_open", "protocol", "b"), value("connections_refused_total", "protocol", "b", "limit", "per_ip"),
			value("connections_refused_total", "protocol", "b", "limit", "total"))
	}
	if n := l.Conns(func(net.Conn) {}); n != 3 {
		t.Errorf("%d connections kept, want 3", n)
	}
	// A closed connection gives its place and its count back.
	a1.Close()
	waitFor(t, "the place back", func() bool { return value("connections_open", "protocol", "b") == 2 })
	if a4 := dial("127.0.0.2"); !served(a4) {
		t.Error("a freed place was not given again")
	}
}

// TestSharedLimits: with SharedLimits the listeners count together.
func TestSharedLimits(t *testing.T) {
	rs := &refusals{}
	l, _ := newTest(t, Config{Limits: Limits{Max: 1}, SharedLimits: true, Refused: rs.add})
	var lns []*Listener
	var lc net.ListenConfig
	if err := l.Start(func(b *Binder) (err error) {
		lns, err = b.ListenAll(context.Background(), 0, []string{"127.0.0.1:0", "127.0.0.1:0"}, lc.Listen)
		return err
	}, func() {
		for _, ln := range lns {
			l.Serve(0, ln, echo)
		}
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Shutdown(context.Background(), Stop{})
	c1, err := net.Dial("tcp", lns[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	waitFor(t, "the first connection", func() bool { return l.Conns(func(net.Conn) {}) == 1 })
	c2, err := net.Dial("tcp", lns[1].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	waitFor(t, "the refusal", func() bool { return len(rs.all()) == 1 })
	if r := rs.all()[0]; r.reason != ReasonTotal || r.dst.String() != lns[1].Addr().String() {
		t.Errorf("refusal %+v", r)
	}
}

// TestShutdown: Shutdown closes the sockets, wakes the connections until
// none is open or the deadline, then forces them, and waits for every
// goroutine (goleak checks that none is left).
func TestShutdown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wakes   bool // the connections end when woken
		wantErr error
	}{
		{"woken", true, nil},
		{"forced", false, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newTest(t, Config{})
			var lns []*Listener
			var pc net.PacketConn
			var lc net.ListenConfig
			if err := l.Start(func(b *Binder) (err error) {
				if lns, err = b.ListenAll(context.Background(), 0, []string{"127.0.0.1:0"}, lc.Listen); err != nil {
					return err
				}
				pc, err = b.ListenPacket(context.Background(), "beacon", "127.0.0.1:0", lc.ListenPacket)
				return err
			}, func() {
				l.Serve(0, lns[0], echo)
				l.Go(func() {
					buf := make([]byte, 64)
					for {
						if _, _, err := pc.ReadFrom(buf); errors.Is(err, net.ErrClosed) {
							return
						}
					}
				})
			}); err != nil {
				t.Fatal(err)
			}
			var conns []net.Conn
			for range 3 {
				c, err := net.Dial("tcp", lns[0].Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conns = append(conns, c)
			}
			waitFor(t, "three connections", func() bool { return l.Conns(func(net.Conn) {}) == 3 })
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			var steps []string
			var forced bool
			err := l.Shutdown(ctx, Stop{
				Halt: func(context.Context) {
					steps = append(steps, "halt")
					if l.Go(func() {}) || l.Track(conns[0]) {
						t.Error("Go or Track accepted during Shutdown")
					}
				},
				Wake: func(force bool) int {
					if len(steps) == 1 {
						steps = append(steps, "wake")
					}
					forced = forced || force
					return l.Conns(func(c net.Conn) {
						if force || tc.wakes {
							c.Close()
						}
					})
				},
				Drained: func() error { steps = append(steps, "drained"); return nil },
			})
			if !errors.Is(err, tc.wantErr) || forced != !tc.wakes {
				t.Errorf("Shutdown: %v (forced %v)", err, forced)
			}
			if strings.Join(steps, ",") != "halt,wake,drained" {
				t.Errorf("steps %v", steps)
			}
			if _, err := net.Dial("tcp", lns[0].Addr().String()); err == nil {
				t.Error("still accepting after Shutdown")
			}
			if err := l.Start(func(*Binder) error { return nil }, func() {}); err == nil {
				t.Error("Start after Shutdown")
			}
		})
	}
}

func TestAddrPort(t *testing.T) {
	for _, tc := range []struct {
		a    net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 80}, "192.0.2.1:80"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 53}, "[2001:db8::1]:53"},
		{&net.IPAddr{IP: net.ParseIP("192.0.2.1")}, "invalid AddrPort"},
		{nil, "invalid AddrPort"},
	} {
		if got := AddrPort(tc.a).String(); got != tc.want {
			t.Errorf("AddrPort(%v) = %s, want %s", tc.a, got, tc.want)
		}
	}
}

func TestLimit(t *testing.T) {
	for _, tc := range []struct{ v, def, want int }{{0, 64, 64}, {-1, 64, 0}, {5, 64, 5}} {
		if got := Limit(tc.v, tc.def); got != tc.want {
			t.Errorf("Limit(%d, %d) = %d, want %d", tc.v, tc.def, got, tc.want)
		}
	}
}
