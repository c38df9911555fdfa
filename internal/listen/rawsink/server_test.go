package rawsink

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"

	"github.com/takedown-project/takedown/internal/testnet"
)

// run runs a client with a deadline and returns its stdout.
func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	return runClient(t, false, stdin, name, args...)
}

// runClient is run; with reset, the client may fail because the sinkhole
// closed the connection while it was still sending (TCP RST).
func runClient(t *testing.T, reset bool, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil || err != nil && !(reset && strings.Contains(stderr.String(), "reset by peer")) {
		t.Fatalf("%s %v: %v %s", name, args, err, stderr.String())
	}
	return out
}

func payload(prefix string, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	copy(b, prefix)
	return b
}

func checkEvent(t *testing.T, e event.Event, proto event.Protocol, dst string, sent []byte, n int, family, errText string) {
	t.Helper()
	want := event.Event{
		Sensor: "test-node", Protocol: proto, Transport: event.Transport(proto),
		SrcIP: netip.MustParseAddr("127.0.0.1"), DstIP: netip.MustParseAddr("127.0.0.1"), DstPort: port(dst),
		Family: family, Bytes: int64(n), PayloadSHA256: sum(sent[:n]), PayloadHead: sent[:min(n, DefaultHeadBytes)], Error: errText,
	}
	if e.SrcPort == 0 || e.Time.IsZero() || time.Since(e.Time) > time.Minute {
		t.Errorf("source port %d, time %v", e.SrcPort, e.Time)
	}
	if e.Sensor != want.Sensor || e.Protocol != want.Protocol || e.Transport != want.Transport ||
		e.SrcIP != want.SrcIP || e.DstIP != want.DstIP || e.DstPort != want.DstPort ||
		e.Family != want.Family || e.Bytes != want.Bytes || e.PayloadSHA256 != want.PayloadSHA256 ||
		!bytes.Equal(e.PayloadHead, want.PayloadHead) || e.Error != want.Error || e.Malformed || e.Domain != "" {
		t.Errorf("event\n got %+v\nwant %+v", e, want)
	}
	if err := e.Validate(); err != nil {
		t.Error(err)
	}
}

func TestSocatTCP(t *testing.T) {
	testnet.Need(t, "socat")
	ts := start(t, Config{Classifier: testClassifier(t)}, 1)
	sent := payload("BEACON", 1000)
	if out := run(t, sent, "socat", "-t", "5", "-", "TCP:"+ts.tcp[0]); len(out) != 0 {
		t.Errorf("the sinkhole sent %q", out)
	}
	e := ts.rec.wait(t, 1)[0]
	checkEvent(t, e, event.ProtoTCP, ts.tcp[0], sent, len(sent), "beaconbot", "")
	if e.Tag != "udp-beacon" {
		t.Errorf("tag %q", e.Tag)
	}
}

func TestSocatUDP(t *testing.T) {
	testnet.Need(t, "socat")
	ts := start(t, Config{}, 1)
	sent := payload("hello", 300)
	if out := run(t, sent, "socat", "-t", "0.2", "-", "UDP:"+ts.udp[0]); len(out) != 0 {
		t.Errorf("the sinkhole answered %q", out)
	}
	e := ts.rec.wait(t, 1)[0]
	checkEvent(t, e, event.ProtoUDP, ts.udp[0], sent, len(sent), "unknown", "")
	if ts.counter(t, "udp_replies_total") != 0 {
		t.Error("replied without a configured reply")
	}
}

func TestNcTCP(t *testing.T) {
	testnet.Need(t, "nc")
	ts := start(t, Config{}, 1)
	sent := []byte("GET / HTTP/1.0\r\n\r\n")
	host, p, _ := net.SplitHostPort(ts.tcp[0])
	if out := run(t, sent, "nc", "-N", "-w", "5", host, p); len(out) != 0 {
		t.Errorf("the sinkhole sent %q", out)
	}
	checkEvent(t, ts.rec.wait(t, 1)[0], event.ProtoTCP, ts.tcp[0], sent, len(sent), "unknown", "")
}

func TestUDPReplyNeverLarger(t *testing.T) {
	testnet.Need(t, "socat")
	reply := []byte("PONG-0123456789") // 15 bytes
	ts := start(t, Config{UDPReply: reply}, 1)
	if out := run(t, []byte("ping-012345678901"), "socat", "-t", "2", "-", "UDP:"+ts.udp[0]); !bytes.Equal(out, reply) {
		t.Errorf("reply %q, want %q", out, reply)
	}
	c, err := net.Dial("udp", ts.udp[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range []int{1, 5, 14, 15, 16, 1000} {
		if _, err := c.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	ts.rec.wait(t, 7)
	// Every reply is no larger than its request: 14 and shorter got none.
	waitFor(t, "replies", func() bool { return ts.counter(t, "udp_replies_total") == 4 })
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 100)
	for range 3 {
		n, err := c.Read(buf)
		if err != nil || n != len(reply) {
			t.Fatalf("reply of %d bytes: %v", n, err)
		}
	}
}

func TestGarbageOnEveryPort(t *testing.T) {
	testnet.Need(t, "socat")
	ts := start(t, Config{}, 3)
	goroutines, fds := runtime.NumGoroutine(), fdCount(t)
	want := map[uint16][]byte{}
	for i := range 3 {
		tcp := payload("", 10_000)
		udp := payload("", 2000)
		want[port(ts.tcp[i])] = tcp
		want[port(ts.udp[i])] = udp
		if out := runClient(t, true, tcp, "socat", "-t", "5", "-", "TCP:"+ts.tcp[i]); len(out) != 0 {
			t.Errorf("tcp answer %q", out)
		}
		if out := run(t, udp, "socat", "-t", "0.1", "-", "UDP:"+ts.udp[i]); len(out) != 0 {
			t.Errorf("udp answer %q", out)
		}
	}
	evs := ts.rec.wait(t, 6)
	for _, e := range evs {
		sent := want[e.DstPort]
		switch e.Protocol {
		case event.ProtoTCP:
			for i := range ts.tcp {
				if port(ts.tcp[i]) == e.DstPort {
					checkEvent(t, e, event.ProtoTCP, ts.tcp[i], sent, DefaultMaxBytes, "unknown", "size limit")
				}
			}
		case event.ProtoUDP:
			for i := range ts.udp {
				if port(ts.udp[i]) == e.DstPort {
					checkEvent(t, e, event.ProtoUDP, ts.udp[i], sent, len(sent), "unknown", "")
				}
			}
		}
	}
	if ts.counter(t, "limit_hits_total", "limit", "tcp_size") != 3 {
		t.Error("size limit hits not counted")
	}
	settle(t, goroutines, fds)
}

func TestTCPBannerAndTimeout(t *testing.T) {
	banner := []byte("SSH-2.0-OpenSSH_8.9\r\n")
	ts := start(t, Config{Banner: banner, ReadTimeout: 200 * time.Millisecond}, 1)
	c, err := net.Dial("tcp", ts.tcp[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("abc"))
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, banner) {
		t.Errorf("got %q %v, want the banner and EOF", got, err)
	}
	checkEvent(t, ts.rec.wait(t, 1)[0], event.ProtoTCP, ts.tcp[0], []byte("abc"), 3, "unknown", "read timeout")
	if ts.counter(t, "limit_hits_total", "limit", "tcp_timeout") != 1 {
		t.Error("timeout not counted")
	}
}

func TestConnLimit(t *testing.T) {
	ts := start(t, Config{MaxConnsPerIP: 1}, 1)
	c1, err := net.Dial("tcp", ts.tcp[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	waitFor(t, "first connection", func() bool { return ts.counter(t, "connections_open", "protocol", "tcp") == 1 })
	c2, err := net.Dial("tcp", ts.tcp[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	e := ts.rec.wait(t, 1)[0]
	if e.Error != "refused: too many connections from this address" || e.DstPort != port(ts.tcp[0]) ||
		ts.counter(t, "connections_refused_total", "protocol", "tcp", "limit", "per_ip") != 1 {
		t.Errorf("refused event %+v", e)
	}
}

func TestShutdownRecordsInFlight(t *testing.T) {
	rec := &memRecorder{}
	s, err := New(Config{TCP: []string{"127.0.0.1:0"}, UDP: []string{"127.0.0.1:0"}, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("partial"))
	waitFor(t, "the bytes to arrive", func() bool { return s.life.Conns(func(net.Conn) {}) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	evs := rec.all()
	if len(evs) != 1 || evs[0].Error != "shutdown" || evs[0].Bytes != 7 {
		t.Errorf("events %+v", evs)
	}
}

func TestBindError(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, err := New(Config{TCP: []string{"127.0.0.1:0"}, UDP: []string{pc.LocalAddr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), pc.LocalAddr().String()) {
		t.Fatalf("bind error %v does not name the address", err)
	}
	s.Shutdown(context.Background())
}

type countRecorder struct {
	n    atomic.Int64
	seen atomic.Bool
}

func (r *countRecorder) Record(e *event.Event) {
	r.n.Add(1)
	if string(e.PayloadHead) == "END" {
		r.seen.Store(true)
	}
}

// TestUDPFlood sends datagrams as fast as it can: memory must not grow
// with them.
func TestUDPFlood(t *testing.T) {
	rec := &countRecorder{}
	ts := start(t, Config{Recorder: rec}, 1)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c, err := net.Dial("udp", ts.udp[0])
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			p := payload("", 1200)
			for range 10_000 {
				c.Write(p) //nolint:errcheck // drops are fine
			}
		})
	}
	wg.Wait()
	c, err := net.Dial("udp", ts.udp[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "the end marker", func() bool {
		c.Write([]byte("END"))
		return rec.seen.Load()
	})
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("%d of 40000 datagrams recorded; heap in use %d → %d bytes", rec.n.Load(), before, ms.HeapInuse)
	if ms.HeapInuse > before+8<<20 {
		t.Errorf("heap grew from %d to %d bytes", before, ms.HeapInuse)
	}
}
