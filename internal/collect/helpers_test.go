package collect_test

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/collect"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/store"
)

// rig is an embedded NATS server with JetStream, a real DuckDB store and a
// quarantine, in one test directory.
type rig struct {
	t   testing.TB
	dir string
	srv *server.Server
	opt *server.Options
	nc  *nats.Conn
	js  jetstream.JetStream
	db  *sql.DB
	st  *store.Store
	q   *quarantine.Quarantine
	reg *prometheus.Registry
}

func newRig(t testing.TB) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{t: t, dir: dir, reg: prometheus.NewRegistry(), opt: &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "nats"),
		NoLog: true, NoSigs: true,
	}}
	r.startServer()
	t.Cleanup(r.stopServer)
	r.opt.Port = r.srv.Addr().(*net.TCPAddr).Port // the same at a restart
	var err error
	if r.nc, err = nats.Connect(r.srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.nc.Close)
	if r.js, err = jetstream.New(r.nc); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if r.db, err = dbfile.Open(ctx, filepath.Join(dir, "takedown.duckdb")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.db.Close() })
	if r.st, err = store.Open(ctx, store.Config{DB: r.db}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.st.Close() })
	if r.q, err = quarantine.Open(filepath.Join(dir, "quarantine")); err != nil {
		t.Fatal(err)
	}
	if err := collect.EnsureStream(ctx, r.js, 1, 0, 0); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) startServer() {
	r.t.Helper()
	srv, err := server.NewServer(r.opt)
	if err != nil {
		r.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		r.t.Fatal("nats-server did not start")
	}
	r.srv = srv
}

func (r *rig) stopServer() {
	r.srv.Shutdown()
	r.srv.WaitForShutdown()
}

// servedZones is the central's served set of the tests: bad.example.
type servedZones struct{}

func (servedZones) Zone(host string) (string, string, string, bool) {
	if host == "bad.example" || strings.HasSuffix(host, ".bad.example") {
		return "bad.example", "case-17", "waledac", true
	}
	return "", "", "", false
}

// tagger classifies DNS events by setting their tag.
type tagger struct{}

func (tagger) ClassifyEvent(e *event.Event) { e.Tag = "classified-" + e.Family }

// asEnricher sets the AS of every event.
type asEnricher struct{}

func (asEnricher) Enrich(e *event.Event) { e.ASN, e.ASName = 64500, "TEST-AS" }

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) Observe(*event.Event) { c.mu.Lock(); c.n++; c.mu.Unlock() }

// config is the collector's config of the tests, on rig r, with a new
// registry in r.reg.
func (r *rig) config(sensors ...string) collect.Config {
	r.reg = prometheus.NewRegistry()
	return collect.Config{
		JS: r.js, Sensors: sensors, Store: r.st, Zones: servedZones{}, Classifier: tagger{},
		Enricher: asEnricher{}, Observer: &counter{}, Quarantine: r.q,
		FlushInterval: 50 * time.Millisecond, RetryInterval: 10 * time.Millisecond,
		Registerer: r.reg,
	}
}

func (r *rig) collector(cfg collect.Config) *collect.Collector {
	r.t.Helper()
	c, err := collect.New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	c.SetPendingEvery(100 * time.Millisecond)
	return c
}

// start runs c until the returned func is called; that func returns Run's
// error.
func start(t testing.TB, c *collect.Collector) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				t.Error("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// sensor plays a sensor's spool: each record gets the position after it.
type sensor struct {
	id    string
	spool spool.ID
	pos   spool.Pos
	n     int
}

func newSensor(id string, seed byte) *sensor {
	return &sensor{id: id, spool: spool.ID{seed, 0xaa, byte(len(id))}, pos: spool.Pos{Segment: 1, Offset: 16}}
}

// record encodes e as the sensor's next spool record.
func (s *sensor) record(e *event.Event) bus.Record {
	data := event.AppendBinary(nil, e)
	return s.raw(data)
}

// raw makes data the sensor's next spool record, whatever it holds.
func (s *sensor) raw(data []byte) bus.Record {
	s.pos.Offset += int64(len(data)) + 8
	if s.pos.Offset > 4096 { // a new segment now and then
		s.pos = spool.Pos{Segment: s.pos.Segment + 1, Offset: 16 + int64(len(data)) + 8}
	}
	s.n++
	return bus.Record{End: s.pos, Data: data}
}

// event returns the sensor's i-th event: DNS queries and HTTPS requests of
// the served zone, with every field set.
func (s *sensor) event(i int) *event.Event {
	e := &event.Event{
		Time:            time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Millisecond + time.Duration(s.spool[0])*time.Hour),
		Sensor:          s.id,
		Protocol:        event.ProtoHTTPS,
		Transport:       event.TransportTCP,
		SrcIP:           netip.AddrFrom4([4]byte{198, 51, s.spool[0], byte(i)}),
		SrcPort:         uint16(40000 + i),
		DstIP:           netip.MustParseAddr("2001:db8:53::1"),
		DstPort:         443,
		Domain:          "c2.bad.example",
		Zone:            "bad.example",
		Case:            "case-17",
		Family:          "waledac",
		Tag:             "v2",
		BotID:           "bot-" + s.id,
		HTTPMethod:      "POST",
		HTTPPath:        "/index.php?a=1",
		HTTPUserAgent:   "Mozilla/4.0 (compatible; MSIE 7.0)",
		HTTPReferer:     "http://c2.bad.example/",
		HTTPForwardedBy: "203.0.113.9",
		HTTPContentType: "application/x-www-form-urlencoded",
		TLSVersion:      "1.3",
		TLSCipher:       "TLS_AES_128_GCM_SHA256",
		TLSFingerprint:  "t13d1516h2_8daaf6152771_02713d6af862",
		TLSALPN:         "h2,http/1.1",
		Bytes:           int64(1000 + i),
		PayloadSHA256:   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		PayloadHead:     []byte{0, 1, 2, 0xff, 'a', byte(i)},
		CountryCode:     "NL",
		City:            "Amsterdam",
		Latitude:        52.374,
		Longitude:       4.8897,
		Error:           "body too large",
	}
	if i%2 == 1 {
		e.Protocol, e.Transport, e.DstPort = event.ProtoDNS, event.TransportUDP, 53
		e.DNSQType, e.DNSRcode, e.DNSDO, e.DNSClientSubnet = "A", "NOERROR", true, "198.51.100.0/24"
		e.HTTPMethod, e.HTTPPath, e.HTTPUserAgent, e.HTTPReferer, e.HTTPForwardedBy, e.HTTPContentType = "", "", "", "", "", ""
		e.TLSVersion, e.TLSCipher, e.TLSFingerprint, e.TLSALPN, e.Error = "", "", "", "", ""
		e.Tag = ""
	}
	return e
}

// stored is how the store keeps e after the collector: DNS events
// classified, every event enriched.
func stored(e *event.Event) event.Event {
	out := *e
	if out.Protocol == event.ProtoDNS && !out.Malformed {
		tagger{}.ClassifyEvent(&out)
	}
	asEnricher{}.Enrich(&out)
	return out
}

// publish publishes records of s as one batch, with its message id.
func (r *rig) publish(s *sensor, recs ...bus.Record) {
	r.t.Helper()
	b := &bus.Batch{Sensor: s.id, Spool: s.spool, Records: recs}
	r.publishRaw(bus.EventsSubject(s.id), b.AppendBinary(nil), b.MsgID())
}

// publishRaw publishes data on subject to the stream.
func (r *rig) publishRaw(subject string, data []byte, id string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var opts []jetstream.PublishOpt
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	if _, err := r.js.Publish(ctx, subject, data, opts...); err != nil {
		r.t.Fatal(err)
	}
}

// events returns every stored event, in time then source order.
func (r *rig) events() []event.Event {
	r.t.Helper()
	var out []event.Event
	err := r.st.Scan(context.Background(), eventstore.ScanQuery{}, func(e *event.Event) error {
		c := *e
		c.PayloadHead = slices.Clone(e.PayloadHead)
		out = append(out, c)
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	sortEvents(out)
	return out
}

// checkStored fails the test unless the store holds exactly the events of
// want, each once, in any order.
func (r *rig) checkStored(want []event.Event) {
	r.t.Helper()
	got := r.events()
	want = slices.Clone(want)
	sortEvents(want)
	if len(got) != len(want) {
		r.t.Fatalf("%d events stored, want %d, once each", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			r.t.Fatalf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func sortEvents(evs []event.Event) {
	slices.SortFunc(evs, func(a, b event.Event) int {
		return cmp.Or(a.Time.Compare(b.Time), a.SrcIP.Compare(b.SrcIP), cmp.Compare(a.SrcPort, b.SrcPort))
	})
}

func (r *rig) count() int64 {
	r.t.Helper()
	s, err := r.st.Stats(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return s.Events
}

// streamMsgs returns the messages the stream holds.
func (r *rig) streamMsgs() uint64 {
	r.t.Helper()
	s, err := r.js.Stream(context.Background(), bus.EventsStream)
	if err != nil {
		r.t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// waitFor polls cond until it holds, or fails the test after a minute.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// garbage is bytes that are no event record.
func garbage(n int) []byte {
	b := make([]byte, 0, n)
	for i := 0; len(b) < n; i++ {
		b = binary.BigEndian.AppendUint32(b, uint32(i)*2654435761)
	}
	return b[:n]
}
