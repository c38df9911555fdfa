package uplink_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/freeport"
	"github.com/takedown-project/takedown/internal/spool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// natsServer is an embedded JetStream server on a loopback port that
// survives its restarts, with its store in a directory of the test.
type natsServer struct {
	t     testing.TB
	opts  server.Options
	s     *server.Server
	url   string
	store string
}

func startNATS(t testing.TB, tweak func(*server.Options)) *natsServer {
	t.Helper()
	port, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	ns := &natsServer{t: t, store: t.TempDir(), url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	ns.opts = server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: ns.store, NoLog: true, NoSigs: true}
	if tweak != nil {
		tweak(&ns.opts)
	}
	ns.start()
	t.Cleanup(ns.stop)
	return ns
}

func (ns *natsServer) start() {
	ns.t.Helper()
	opts := ns.opts
	s, err := server.NewServer(&opts)
	if err != nil {
		ns.t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		ns.t.Fatal("nats-server did not start")
	}
	ns.s = s
}

func (ns *natsServer) stop() {
	if ns.s != nil {
		ns.s.Shutdown()
		ns.s.WaitForShutdown()
		ns.s = nil
	}
}

// connect connects as user, the way a sensor does.
func (ns *natsServer) connect(t testing.TB, user string) *nats.Conn {
	t.Helper()
	nc, err := bus.Connect(bus.Config{Servers: []string{ns.url}, User: user})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// js is a JetStream context of the central's.
func (ns *natsServer) js(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(ns.connect(t, bus.CentralUser))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// createStream creates the events stream as the central does.
func createStream(t testing.TB, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: bus.EventsStream, Subjects: []string{bus.EventsSubjects},
		Duplicates: 2 * time.Minute, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// delivered is what the stream holds: its messages, decoded.
type delivered struct {
	msgs    int
	ids     []string // the events' domains, in stream order
	ends    []spool.Pos
	spools  []spool.ID
	msgIDs  []string
	batches []*bus.Batch
}

func readStream(t testing.TB, js jetstream.JetStream) delivered {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var d delivered
	var dec event.Decoder
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if m.Subject != "takedown.events.s1" {
			t.Errorf("message %d on %s", seq, m.Subject)
		}
		b, err := bus.DecodeBatch(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != b.MsgID() {
			t.Errorf("message %d: id %q, want %q", seq, got, b.MsgID())
		}
		d.msgs++
		d.msgIDs = append(d.msgIDs, b.MsgID())
		d.batches = append(d.batches, b)
		for _, r := range b.Records {
			var e event.Event
			if err := dec.Decode(r.Data, &e); err != nil {
				t.Fatalf("message %d: record %v: %v", seq, r.End, err)
			}
			d.ids = append(d.ids, e.Domain)
			d.ends = append(d.ends, r.End)
			d.spools = append(d.spools, b.Spool)
		}
	}
	return d
}

// checkOnceInOrder checks that the stream holds the events named
// prefix0 … prefix<n-1>, each once, in order, at growing positions.
func (d delivered) checkOnceInOrder(t testing.TB, prefix string, n int) {
	t.Helper()
	var got []string
	for _, id := range d.ids {
		if strings.HasPrefix(id, prefix) {
			got = append(got, id)
		}
	}
	if len(got) != n {
		t.Errorf("%d events %s* in the stream, want %d", len(got), prefix, n)
	}
	for i := range min(n, len(got)) {
		if want := testDomain(prefix, i); got[i] != want {
			t.Fatalf("event %d is %s, want %s (lost, duplicated or out of order)", i, got[i], want)
		}
	}
	for i := 1; i < len(d.ends); i++ {
		if d.spools[i] == d.spools[i-1] && d.ends[i].Compare(d.ends[i-1]) <= 0 {
			t.Fatalf("record %d at %v after %v: republished or out of order", i, d.ends[i], d.ends[i-1])
		}
	}
}

func testDomain(prefix string, i int) string { return fmt.Sprintf("%s%d.example", prefix, i) }

// testEvent is an HTTP callback of about 200 bytes in binary form.
func testEvent(prefix string, i int) *event.Event {
	return &event.Event{
		Time: time.Unix(1_700_000_000, int64(i)).UTC(), Sensor: "s1", Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
		SrcIP: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), SrcPort: uint16(40000 + i%20000),
		DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 80, Domain: testDomain(prefix, i), Zone: "example",
		Case: "case-1", Family: "waledac", HTTPMethod: "POST", HTTPPath: "/gate.php?id=0123456789abcdef",
		HTTPUserAgent: "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1)", Bytes: 412,
	}
}

func openSpool(t testing.TB, dir string, cfg spool.Config) *spool.Spool {
	t.Helper()
	cfg.Dir = dir
	sp, err := spool.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// segments lists the numbers of the spool's segment files.
func segments(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
