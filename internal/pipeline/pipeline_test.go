package pipeline

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/testnet"
)

func TestMain(m *testing.M) {
	// TestStoreIsNotStarvedBySaturatedCPUs keeps every CPU busy.
	testnet.Turn()
	goleak.VerifyTestMain(m)
}

func ev(i int) *event.Event {
	return &event.Event{
		Time: time.Unix(1267106100+int64(i), 0).UTC(), Protocol: event.ProtoDNS, Transport: event.TransportUDP,
		SrcIP: netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), SrcPort: uint16(i), Domain: "x.example",
	}
}

// rig is a real spool and a real store in one test directory.
type rig struct {
	t     *testing.T
	dir   string
	sp    *spool.Spool
	st    *store.Store
	close func()
}

func newRig(t *testing.T, dir string, so spool.Config) *rig {
	t.Helper()
	so.Dir = filepath.Join(dir, "spool")
	sp, err := spool.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	db, err := dbfile.Open(t.Context(), filepath.Join(dir, "takedown.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), store.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dir: dir, sp: sp, st: st}
	r.close = func() {
		if err := sp.Close(); err != nil {
			t.Error(err)
		}
		st.Close()
		db.Close()
	}
	return r
}

func (r *rig) stored() int64 {
	s, err := r.st.Stats(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return s.Events
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// start runs p in the background; the returned func stops it and waits.
func start(t *testing.T, p *Pipeline, drain time.Duration) func() {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx, drain) }()
	return func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}

type counter struct{ n atomic.Int64 }

func (c *counter) Observe(*event.Event) { c.n.Add(1) }

type dgaClassifier struct{}

func (dgaClassifier) ClassifyEvent(e *event.Event) { e.Family = "dga-demo" }

type asnEnricher struct{}

func (asnEnricher) Enrich(e *event.Event) { e.ASN, e.CountryCode = 64500, "DE" }

func TestEventsReachTheStoreOnceAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, spool.Config{SegmentBytes: 16 << 10})
	obs := &counter{}
	p, err := New(Config{Spool: r.sp, Store: r.st, Classifier: dgaClassifier{}, Enricher: asnEnricher{}, Observer: obs, BatchSize: 300, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, p, 5*time.Second)
	for i := range 1000 {
		if !p.Record(ev(i)) {
			t.Fatal("record refused")
		}
	}
	waitFor(t, "1000 events stored", func() bool { return r.stored() == 1000 })
	stop()
	if obs.n.Load() != 1000 {
		t.Errorf("observer saw %d events", obs.n.Load())
	}
	segs := r.sp.Stats().Segments
	if segs > 2 {
		t.Errorf("%d segments left after everything was stored: not released", segs)
	}

	// Events recorded while no pipeline runs wait in the spool; a
	// restart (new spool, new store, new pipeline) stores them and only
	// them.
	p2, _ := New(Config{Spool: r.sp, Store: r.st})
	for i := 1000; i < 1500; i++ {
		p2.Record(ev(i))
	}
	r.close()
	r = newRig(t, dir, spool.Config{SegmentBytes: 16 << 10})
	defer r.close()
	p3, _ := New(Config{Spool: r.sp, Store: r.st, BatchSize: 300, FlushInterval: 20 * time.Millisecond})
	stop = start(t, p3, 5*time.Second)
	waitFor(t, "1500 events stored", func() bool { return r.stored() == 1500 })
	stop()
	all := scanAll(t, r.st)
	seen := map[uint16]bool{}
	var asn int
	for _, e := range all {
		if seen[e.SrcPort] {
			t.Fatalf("event %d stored twice", e.SrcPort)
		}
		seen[e.SrcPort] = true
		if e.ASN == 64500 {
			asn++
			if e.Family != "dga-demo" {
				t.Fatalf("event %d enriched but not classified", e.SrcPort)
			}
		}
	}
	if asn != 1000 {
		t.Errorf("%d events enriched, want the first 1000", asn)
	}
	if p3.Stats().Stored != 500 {
		t.Errorf("second run stored %d, want 500", p3.Stats().Stored)
	}
}

func scanAll(t *testing.T, st *store.Store) []event.Event {
	var out []event.Event
	if err := st.Scan(context.Background(), eventstore.ScanQuery{}, func(e *event.Event) error {
		out = append(out, *e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// stalling refuses every append while stalled.
type stalling struct {
	Store
	stalled atomic.Bool
	refused atomic.Int64
}

func (s *stalling) AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error {
	if s.stalled.Load() {
		s.refused.Add(1)
		return errors.New("disk full")
	}
	return s.Store.AppendMarked(ctx, batch, source, mark)
}

// TestStoreStall is the store stall: the store refuses every batch
// while the sinks keep recording at a steady rate. Memory stays bounded
// (the events go to the spool, not the heap), the spool grows, and once the
// store is back everything drains, nothing lost. The stall lasts 8 s;
// TAKEDOWN_STALL_S=30 gives the 30 s (and as long again to drain).
func TestStoreStall(t *testing.T) {
	stall := 8 * time.Second
	if v := os.Getenv("TAKEDOWN_STALL_S"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs <= 0 {
			t.Fatalf("TAKEDOWN_STALL_S=%q: want a whole number of seconds", v)
		}
		stall = time.Duration(secs) * time.Second
	}
	r := newRig(t, t.TempDir(), spool.Config{SegmentBytes: 8 << 20})
	defer r.close()
	st := &stalling{Store: r.st}
	st.stalled.Store(true)
	p, _ := New(Config{Spool: r.sp, Store: st, FlushInterval: 50 * time.Millisecond, RetryInterval: 100 * time.Millisecond})
	stop := start(t, p, 5*time.Second)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	var recorded atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(stall)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 500 events every 100 ms per goroutine: 20,000 a second.
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := 0; time.Now().Before(end); <-tick.C {
				for range 500 {
					if !p.Record(ev(g<<24 | i)) {
						t.Error("record dropped below the spool limit")
						return
					}
					i++
					recorded.Add(1)
				}
			}
		}()
	}
	for time.Now().Before(end) {
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	n := recorded.Load()
	spooled := r.sp.Stats().Bytes
	if got := r.stored(); got != 0 {
		t.Fatalf("%d events stored while stalled", got)
	}
	if spooled < n*20 {
		t.Fatalf("spool holds %d bytes for %d events", spooled, n)
	}
	growth := int64(peak) - int64(base)
	t.Logf("stalled %v: %d events recorded, spool %d MiB, heap growth at most %d MiB", stall, n, spooled>>20, growth>>20)
	// Held on the heap, the events would take at least their structs'
	// size each; a quarter of that is room for the spool's buffers and the
	// test's own.
	if held := n * int64(unsafe.Sizeof(event.Event{})); growth > held/4 {
		t.Fatalf("heap grew by %d MiB while the store stalled; the %d events' structs alone take %d MiB", growth>>20, n, held>>20)
	}
	st.stalled.Store(false)
	waitFor(t, "every event stored", func() bool { return r.stored() == n })
	stop()
	if s := p.Stats(); s.Dropped != 0 || s.StoreFailures == 0 || s.Stored != uint64(n) {
		t.Fatalf("stats %+v", s)
	}
}

// TestSpoolFullDrops: beyond the spool's limit events are dropped and
// counted, and Record does not block.
func TestSpoolFullDrops(t *testing.T) {
	r := newRig(t, t.TempDir(), spool.Config{MaxBytes: 256 << 10, SegmentBytes: 64 << 10})
	defer r.close()
	p, _ := New(Config{Spool: r.sp, Store: r.st}) // not running: nothing drains
	dropped := 0
	for i := range 20000 {
		if !p.Record(ev(i)) {
			dropped++
		}
	}
	if dropped == 0 || p.Stats().Dropped != uint64(dropped) {
		t.Fatalf("dropped %d, stats %+v", dropped, p.Stats())
	}
}

// TestInvalidRecordsSkipped: a record that does not decode, or an event
// the store would refuse, is skipped and counted; the events around it
// are stored.
func TestInvalidRecordsSkipped(t *testing.T) {
	r := newRig(t, t.TempDir(), spool.Config{})
	defer r.close()
	p, _ := New(Config{Spool: r.sp, Store: r.st, FlushInterval: 10 * time.Millisecond})
	p.Record(ev(1))
	if err := r.sp.Append([]byte{0xee, 1, 2}); err != nil {
		t.Fatal(err)
	}
	p.Record(&event.Event{Time: time.Now(), Protocol: "gopher", SrcIP: netip.MustParseAddr("127.0.0.1")})
	p.Record(ev(2))
	stop := start(t, p, time.Second)
	waitFor(t, "2 events stored", func() bool { return r.stored() == 2 })
	stop()
	if s := p.Stats(); s.Invalid != 2 {
		t.Fatalf("stats %+v: want 2 invalid", s)
	}
}

func TestConfigRequired(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no error without spool and store")
	}
}

// TestDefaultBatchSize: the default batch is one row group of the DuckDB
// engine, the cheapest it stores.
func TestDefaultBatchSize(t *testing.T) {
	if DefaultBatchSize != dbfile.RowGroupSize {
		t.Errorf("DefaultBatchSize %d, want dbfile.RowGroupSize %d", DefaultBatchSize, dbfile.RowGroupSize)
	}
}

func BenchmarkRecord(b *testing.B) {
	sp, err := spool.Open(spool.Config{Dir: b.TempDir(), MaxBytes: 8 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	p, _ := New(Config{Spool: sp, Store: nopStore{}})
	e := ev(7)
	e.Zone, e.Case, e.Family, e.DNSQType, e.DNSRcode, e.Sensor = "example", "waledac", "waledac", "A", "NOERROR", "ns1"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Record(e)
		}
	})
}

type nopStore struct{}

func (nopStore) AppendMarked(context.Context, []event.Event, string, []byte) error { return nil }
func (nopStore) Mark(context.Context, string) ([]byte, error)                      { return nil, nil }

// TestBusyHostDoesNotStopTheStore: a saturated machine defers the store
// only while the sinks record fast; a host busy with something else, and
// a trickle of events, are stored as usual.
func TestBusyHostDoesNotStopTheStore(t *testing.T) {
	r := newRig(t, t.TempDir(), spool.Config{})
	defer r.close()
	p, _ := New(Config{Spool: r.sp, Store: r.st, FlushInterval: 10 * time.Millisecond, Saturated: func() bool { return true }})
	stop := start(t, p, time.Second)
	defer stop()
	for i := range 100 {
		p.Record(ev(i))
	}
	waitFor(t, "100 events stored on a saturated host", func() bool { return r.stored() == 100 })
	// Now the sinks record fast, and keep at it until the writer next
	// looks (on a loaded machine its append of the first burst may take
	// a while): the writer defers.
	var m dto.Metric
	i := 100
	waitFor(t, "the writer to defer", func() bool {
		for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end) && i < 2_000_000; i++ {
			p.Record(ev(i))
		}
		p.m.deferred.Write(&m)
		return m.GetCounter().GetValue() > 0
	})
}

// gated holds every append until open is closed.
type gated struct {
	Store
	open chan struct{}
}

func (g *gated) AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.AppendMarked(ctx, batch, source, mark)
}

// TestReplayed: Replayed stays open while the backlog that a previous run
// left in the spool is not stored, and closes once it is.
func TestReplayed(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, spool.Config{})
	p, _ := New(Config{Spool: r.sp, Store: r.st}) // not running: the backlog stays
	for i := range 500 {
		p.Record(ev(i))
	}
	r.close()

	r = newRig(t, dir, spool.Config{})
	defer r.close()
	g := &gated{Store: r.st, open: make(chan struct{})}
	p, _ = New(Config{Spool: r.sp, Store: g, BatchSize: 100, FlushInterval: 10 * time.Millisecond})
	stop := start(t, p, time.Second)
	defer stop()
	select {
	case <-p.Replayed():
		t.Fatal("replayed before the store took any batch")
	case <-time.After(100 * time.Millisecond): // a few flush intervals
	}
	close(g.open)
	select {
	case <-p.Replayed():
	case <-time.After(10 * time.Second):
		t.Fatalf("not replayed; stats %+v", p.Stats())
	}
	if got := r.stored(); got != 500 {
		t.Fatalf("replayed with %d of 500 events stored", got)
	}
}

// TestReplayedEmpty: with nothing in the spool the pipeline is replayed
// after its first look.
func TestReplayedEmpty(t *testing.T) {
	r := newRig(t, t.TempDir(), spool.Config{})
	defer r.close()
	p, _ := New(Config{Spool: r.sp, Store: r.st, FlushInterval: 10 * time.Millisecond})
	stop := start(t, p, time.Second)
	defer stop()
	waitFor(t, "replayed", func() bool {
		select {
		case <-p.Replayed():
			return true
		default:
			return false
		}
	})
}

// TestDrainBatchInFlight: a batch that the writer is still collecting
// when ctx ends is stored within the drain, with everything after it.
func TestDrainBatchInFlight(t *testing.T) {
	r := newRig(t, t.TempDir(), spool.Config{})
	defer r.close()
	// A flush interval longer than the test: the batch is cut by the end
	// of ctx, not by time.
	p, _ := New(Config{Spool: r.sp, Store: r.st, FlushInterval: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx, 5*time.Second) }()
	for i := range 200 {
		p.Record(ev(i))
	}
	waitFor(t, "the events to reach the spool file", func() bool { return r.sp.Stats().Buffered == 0 })
	for i := 200; i < 300; i++ {
		p.Record(ev(i))
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Stored != 300 || s.Backlog != 0 || s.StoreFailures != 0 {
		t.Fatalf("after the drain: %+v", s)
	}
}

// TestRunAfterCancel: a serve stopped before its writer even started
// still stores, within the drain, what the sinks recorded.
func TestRunAfterCancel(t *testing.T) {
	r := newRig(t, t.TempDir(), spool.Config{})
	defer r.close()
	p, _ := New(Config{Spool: r.sp, Store: r.st, FlushInterval: 10 * time.Millisecond})
	for i := range 50 {
		p.Record(ev(i))
	}
	waitFor(t, "the events to reach the spool file", func() bool { return r.sp.Stats().Buffered == 0 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := r.stored(); n != 50 {
		t.Errorf("%d of 50 events stored", n)
	}
}

// TestWatchWidensAStarvedWriter: when the writer's loop has not turned
// for longer than stall, the watchdog widens the idle class; once the
// writer goes round again it narrows it.
func TestWatchWidensAStarvedWriter(t *testing.T) {
	sp, err := spool.Open(spool.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	p, err := New(Config{Spool: sp, Store: nopStore{}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var calls []bool
	widen := func(w bool) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, w)
		return nil
	}
	got := func() []bool {
		mu.Lock()
		defer mu.Unlock()
		return append([]bool(nil), calls...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// A writer that keeps turning is left alone.
	stopBeat := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		for {
			select {
			case <-stopBeat:
				return
			case <-time.After(5 * time.Millisecond):
				p.beat.Store(time.Now().UnixNano())
			}
		}
	}()
	p.beat.Store(time.Now().UnixNano())
	go func() {
		defer close(done)
		p.watch(ctx, 10*time.Millisecond, 50*time.Millisecond, widen)
	}()
	time.Sleep(200 * time.Millisecond)
	if c := got(); len(c) != 0 {
		t.Fatalf("widened while the writer turns: %v", c)
	}
	close(stopBeat) // the writer gets no CPU
	<-beating
	deadline := time.Now().Add(5 * time.Second)
	for len(got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c := got(); len(c) != 1 || !c[0] {
		t.Fatalf("a starved writer: widen calls %v, want [true]", c)
	}
	p.beat.Store(time.Now().UnixNano()) // the writer runs again
	for len(got()) == 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c := got(); len(c) != 2 || c[1] {
		t.Fatalf("the writer ran again: widen calls %v, want [true false]", c)
	}
	cancel()
	<-done
}
