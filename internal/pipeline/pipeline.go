// Package pipeline carries events from the sinks (DNS, listeners) to the
// store, and never makes a sink wait or lose an event to a slow store.
//
// Record encodes an event in its binary form and appends it to the disk
// spool (internal/spool); that is all a sink pays. A writer goroutine reads
// the spool back in order, enriches each event, counts it in the live
// unique-host counters, cuts batches by size and by time, and appends each
// batch to the store together with the spool position after its last
// event, in one transaction. After a restart, or a kill -9, the writer
// resumes from the position the store holds, so every event that reached
// the spool is stored exactly once. Segments wholly stored are deleted.
//
// When the store is slower than the sinks — a burst, a backfill, a stalled
// disk — the spool grows, not memory. Only when the spool reaches its size
// limit, its filesystem its free-space reserve, or a write to it fails are
// events dropped, and counted (Stats.Dropped, with the spool's reasons).
//
// A record that the store can never take — it does not decode, fails
// event.Validate, or is refused by the store whenever it is sent alone
// while the store takes other writes — goes to the quarantine (package
// quarantine) with the reason, and the writer moves on: one bad event
// never holds up the ones behind it. A store that takes nothing at all (a
// full disk, a broken file) is retried with backoff, and reported by
// StoreError until it takes a batch again.
//
// The writer's work runs in Linux's idle CPU class: the sinks' answers
// come first. Once the oldest unstored record has waited longer than
// MaxLag, the writer runs in the normal class, beside the sinks, until the
// lag is down to a quarter of it (writer.go says why).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/idle"
	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/spool"
)

// Store is where batches go: the event store.
type Store interface {
	// AppendMarked stores batch and sets the mark of source to mark, both
	// or neither.
	AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error
	// Mark returns the last mark of source, nil when none.
	Mark(ctx context.Context, source string) ([]byte, error)
}

// Classifier names the family of events that the sinks did not classify
// themselves: DNS queries (the listeners classify each request inline,
// because the answer depends on the rule). It sees the DNS events that
// parsed, with the family of their zone's case in Family.
type Classifier interface {
	ClassifyEvent(e *event.Event)
}

// Enricher fills in what is known of an event's source address.
type Enricher interface {
	Enrich(e *event.Event)
}

// Observer sees every event on its way to the store (the live unique-host
// counters).
type Observer interface {
	Observe(e *event.Event)
}

// Quarantine keeps the records that the store can never take.
type Quarantine interface {
	// Add writes entries durably before it returns; an entry whose Source
	// it holds already is not added again.
	Add(entries ...quarantine.Entry) error
}

// eventError is what a store's error carries when it refuses a batch for
// one of its events (eventstore.EventError): that event, alone, is set aside.
type eventError interface {
	error
	EventIndex() int
}

// transientError is what a store's error carries when it comes from the
// engine's state (a full or failing disk, memory; eventstore.TransientError):
// no event is to blame, and none is set aside for it.
type transientError interface {
	error
	Transient() bool
}

func isTransient(err error) bool {
	var te transientError
	return errors.As(err, &te) && te.Transient()
}

// MarkSource is the name under which the pipeline keeps its spool position
// in the store.
const MarkSource = "pipeline-spool"

// DefaultBatchSize is Config.BatchSize when it is 0: 122,880 events, one
// row group of the embedded DuckDB engine, the batch it stores cheapest
// (dbfile.RowGroupSize, which a test holds it to; the pipeline does not
// import the engine's packages).
const DefaultBatchSize = 122_880

// Defaults of Config fields left zero.
const (
	DefaultFlushInterval = 500 * time.Millisecond
	DefaultMaxLag        = 10 * time.Second
)

// Config configures a Pipeline.
type Config struct {
	// Spool receives every event first; required. The pipeline does not
	// close it.
	Spool *spool.Spool
	// SpoolMaxBytes is the spool's size limit, for Saturated; default
	// spool.DefaultMaxBytes.
	SpoolMaxBytes int64
	// Store receives the batches; required.
	Store Store
	// Classifier, if set, sees each event first.
	Classifier Classifier
	// Enricher, if set, enriches each event before it is stored.
	Enricher Enricher
	// Observer, if set, sees each event after enrichment.
	Observer Observer
	// BatchSize is the most events in one append; default
	// DefaultBatchSize. serve passes pipeline.batch_size, which the config
	// computes for the engine and its memory limit.
	BatchSize int
	// FlushInterval is the longest an event waits for its batch, default
	// 500 ms, unless events come fast enough to fill a whole batch within
	// ten times that: then the batch waits to be whole (see run).
	FlushInterval time.Duration
	// Saturated, if set, tells whether the CPUs are saturated. While they
	// are, the sinks record more than 20,000 events a second and the spool
	// is less than half full, the writer waits (the events wait in the
	// spool): answering bots comes before storing.
	Saturated func() bool
	// RetryInterval is the first wait after the store refuses a batch; it
	// doubles up to 5 s. Default 1 s.
	RetryInterval time.Duration
	// Quarantine, if set, receives the records that the store can never
	// take; without it they are skipped, and only counted.
	Quarantine Quarantine
	// MaxLag is how long the oldest unstored record may wait before the
	// writer leaves the idle CPU class (see background); default 10 s. The
	// writer goes back once the lag is below a quarter of it.
	MaxLag time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger and Registerer; nil discards / does not register.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Pipeline is the spool writer side (Record) and the store writer (Run).
type Pipeline struct {
	cfg Config
	log *slog.Logger
	buf sync.Pool // *[]byte for encoding
	// fillWait is the longest a batch that fills fast waits to be whole:
	// ten FlushIntervals.
	fillWait time.Duration

	done     chan struct{}
	spoolMax int64
	// raised is set while the writer does its work in the normal CPU
	// class (background); the writer's goroutine only, and read by
	// Stats.
	raised atomic.Bool
	lag    lagClock
	// resumeNote explains a spool that did not match the store's mark.
	resumeNote atomic.Pointer[string]
	// storeErr is the store's last error while it refuses every write.
	storeErr atomic.Pointer[error]
	// recBytes counts the bytes of recorded records, for the backlog's
	// events from its bytes.
	recBytes atomic.Uint64

	replayed     chan struct{} // closed once the backlog at Run start is stored
	replayedOnce sync.Once

	lastRec  uint64 // recorded, at lastLook (the writer's goroutine only)
	lastLook time.Time
	// lastReadErr is when a spool read error was last logged.
	lastReadErr time.Time

	recorded, dropped, stored, invalid, failures, quarantined atomic.Uint64
	lastAppend                                                atomic.Int64 // ns
	beat                                                      atomic.Int64 // unix ns the writer last went round its loop

	m metrics
}

type metrics struct {
	recorded, dropped, stored, invalid, failures, quarantined prometheus.Counter
	batch, appendSeconds                                      prometheus.Histogram
	deferred, widened, filled, raisedTotal                    prometheus.Counter
}

// New checks cfg and returns a pipeline; Run starts its store writer.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Spool == nil || cfg.Store == nil {
		return nil, errors.New("pipeline: a spool and a store are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = DefaultMaxLag
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Pipeline{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), replayed: make(chan struct{}), spoolMax: cfg.SpoolMaxBytes,
		fillWait: 10 * cfg.FlushInterval}
	if p.spoolMax <= 0 {
		p.spoolMax = spool.DefaultMaxBytes
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.buf.New = func() any { b := make([]byte, 0, 512); return &b }
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "takedown_pipeline_" + name, Help: help})
	}
	p.m = metrics{
		recorded:    counter("events_recorded_total", "Events the sinks recorded into the spool."),
		dropped:     counter("events_dropped_total", "Events dropped because the spool was full."),
		stored:      counter("events_stored_total", "Events appended to the store."),
		invalid:     counter("events_invalid_total", "Records read back from the spool that could not be stored (undecodable, invalid, or refused by the store alone); quarantined, or skipped without a quarantine."),
		quarantined: counter("events_quarantined_total", "Records set aside in the quarantine (a subset of events_invalid_total)."),
		raisedTotal: counter("writer_raised_total", "Times the store writer left the idle CPU class because its lag passed the maximum."),
		failures:    counter("store_failures_total", "Batches the store refused; they are retried."),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "takedown_pipeline_batch_events",
			Help: "Events per appended batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "takedown_pipeline_store_append_seconds",
			Help: "Time to append one batch to the store.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		deferred: counter("store_deferred_total", "Times the store writer waited 100 ms because the CPUs were saturated."),
		widened:  counter("writer_widened_total", "Times the starved store writer (and the rest of the idle CPU class) was let onto every CPU."),
		filled:   counter("batches_filled_total", "Batches that filled fast enough to wait past the flush interval until they were whole."),
	}
	gauge := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "takedown_pipeline_" + name, Help: help},
			func() float64 { return f(p.Stats()) })
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(
			gauge("backlog_events", "Events in the spool and not yet stored, estimated from the bytes on disk after the stored position: the queue between the sinks and the store.",
				func(s Stats) float64 { return float64(s.Backlog) }),
			gauge("backlog_bytes", "Bytes of spool records after the stored position, on disk and buffered.",
				func(s Stats) float64 { return float64(s.BacklogBytes) }),
			gauge("lag_seconds", "How long the oldest record in the spool that is not yet stored has waited (0 when the store is caught up).",
				func(s Stats) float64 { return s.Lag.Seconds() }),
			gauge("writer_raised", "1 while the store writer runs in the normal CPU class because its lag passed the maximum.",
				func(s Stats) float64 { return b2f(s.WriterRaised) }),
			gauge("store_failing", "1 while the store refuses every write (the events wait in the spool).",
				func(s Stats) float64 { return b2f(s.StoreError != "") }),
		)
		cfg.Registerer.MustRegister(p.m.recorded, p.m.dropped, p.m.stored, p.m.invalid, p.m.failures, p.m.quarantined,
			p.m.batch, p.m.appendSeconds, p.m.deferred, p.m.widened, p.m.filled, p.m.raisedTotal)
	}
	return p, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Record appends e to the spool. It never waits for the store; it reports
// false when the event was dropped because the spool is full (or closed).
// It does not keep e.
func (p *Pipeline) Record(e *event.Event) bool {
	if p.append(e) {
		return true
	}
	p.dropped.Add(1)
	p.m.dropped.Inc()
	return false
}

// Offer is Record for a sender that keeps the event and sends it again
// later (a sensor, through the ingest endpoint): when the spool is full it
// reports false without counting a drop, since nothing is lost.
func (p *Pipeline) Offer(e *event.Event) bool { return p.append(e) }

func (p *Pipeline) append(e *event.Event) bool {
	bp := p.buf.Get().(*[]byte)
	b := event.AppendBinary((*bp)[:0], e)
	err := p.cfg.Spool.Append(b)
	*bp = b
	p.buf.Put(bp)
	if err != nil {
		return false
	}
	p.recorded.Add(1)
	p.recBytes.Add(uint64(len(b)))
	p.m.recorded.Inc()
	return true
}

// Stats are the pipeline's counters since it was made, and its state.
type Stats struct {
	Recorded, Stored, StoreFailures uint64
	// Dropped counts the events lost on their way to the disk: refused by
	// the spool (full, its filesystem below the reserve) or lost to a
	// failed write after it took them. Offer's refusals are not drops:
	// the sender keeps the events.
	Dropped uint64
	// Invalid counts the records that could not be stored: undecodable,
	// invalid, or refused by the store alone. Quarantined of them are in
	// the quarantine.
	Invalid, Quarantined uint64
	// BacklogBytes is what the spool holds after the stored position, on
	// disk and buffered; Backlog, the events in it, estimated from the
	// bytes with the mean size of the records recorded (exact when all
	// are alike).
	BacklogBytes int64
	Backlog      uint64
	// Lag is how long the oldest unstored record has waited.
	Lag time.Duration
	// WriterRaised is set while the writer runs in the normal CPU class.
	WriterRaised bool
	// StoreError is the store's last error while it refuses every write;
	// empty while it takes them.
	StoreError string
	// SpoolNote explains a spool that did not match the store's saved
	// position at the start (deleted, replaced, or put back from a copy).
	SpoolNote string
	// LastAppend is the duration of the last store append.
	LastAppend time.Duration
}

// meanRecord is the record size assumed for the backlog before any event
// was recorded (a DNS query is about 120 bytes, an HTTP request 300).
const meanRecord = 200

// Stats returns the counters.
func (p *Pipeline) Stats() Stats {
	sp := p.cfg.Spool.Stats()
	st := Stats{
		Recorded: p.recorded.Load(), Dropped: p.dropped.Load() + sp.DroppedWrite, Stored: p.stored.Load(),
		Invalid: p.invalid.Load(), Quarantined: p.quarantined.Load(), StoreFailures: p.failures.Load(),
		LastAppend: time.Duration(p.lastAppend.Load()), WriterRaised: p.raised.Load(),
		Lag: p.lag.lag(p.cfg.Now()),
	}
	p.lag.mu.Lock()
	stored := p.lag.stored
	p.lag.mu.Unlock()
	st.BacklogBytes = p.cfg.Spool.DiskBytesAfter(stored) + sp.Buffered
	mean := uint64(meanRecord)
	if st.Recorded > 0 {
		mean = p.recBytes.Load()/st.Recorded + 12 // the record header
	}
	st.Backlog = (uint64(st.BacklogBytes) + mean - 1) / mean // a record's bytes are never 0 events
	if e := p.storeErr.Load(); e != nil {
		st.StoreError = (*e).Error()
	}
	if n := p.resumeNote.Load(); n != nil {
		st.SpoolNote = *n
	}
	return st
}

// StoreError returns the store's last error while it refuses every write,
// nil while it takes them: for readiness.
func (p *Pipeline) StoreError() error {
	if e := p.storeErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Done is closed when Run has returned.
func (p *Pipeline) Done() <-chan struct{} { return p.done }

// Replayed is closed once Run has caught up with the spool for the first
// time: it has read everything on disk — the backlog that a previous run
// left, and what the sinks recorded since — and stored (or skipped) it.
// It stays open while the store refuses batches, and under a load that
// keeps every batch full; it is never closed if Run fails to start. A
// server is ready (GET /readyz) only once it is closed.
func (p *Pipeline) Replayed() <-chan struct{} { return p.replayed }

// Run moves events from the spool into the store until ctx is cancelled.
// Then it keeps going for at most drain, until it has stored everything
// the spool held when ctx ended; what is still in the spool after that is
// stored by the next Run, after a restart. Run returns an error only when
// it cannot start (the store's mark cannot be read or is damaged).
func (p *Pipeline) Run(ctx context.Context, drain time.Duration) error {
	defer close(p.done)
	// The writer's work runs in the idle CPU class where the system has
	// one: the sinks' answers come first, and the spool absorbs the
	// difference, up to MaxLag (background).
	p.beat.Store(time.Now().UnixNano())
	wctx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		p.watch(wctx, time.Second, max(2*time.Second, 3*p.cfg.FlushInterval), idle.Widen)
	}()
	bg := newBackground()
	started := make(chan struct{})
	monitored := make(chan struct{})
	go func() {
		defer close(monitored)
		<-started
		p.monitor(wctx, bg)
	}()
	err := p.run(ctx, drain, bg, started)
	bg.close()
	stopWatch()
	<-watched
	<-monitored
	return err
}

// monitor feeds the lag clock with the spool's written end and decides
// where the writer works (raise), until ctx ends.
func (p *Pipeline) monitor(ctx context.Context, bg *background) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.lag.sample(p.cfg.Spool.WrittenHead(), p.cfg.Now())
		was := p.raised.Load()
		if now := p.raise(); now != was {
			if err := bg.setRaised(now); err != nil && !warned {
				warned = true
				p.log.Warn("the store writer's thread cannot leave the idle CPU class (it needs CAP_SYS_NICE or RLIMIT_NICE 20); "+
					"its next batches run in the normal class instead", "err", err)
			}
		}
	}
}

// fillsSoon tells whether a batch that got n events in elapsed would, at
// that rate, hold size within fillWait of its start.
func fillsSoon(n, size int, elapsed, fillWait time.Duration) bool {
	return n > 0 && elapsed > 0 && float64(size)*float64(elapsed)/float64(n) <= float64(fillWait)
}

// watch widens the idle class onto every CPU (package idle) while the
// writer is starved: it has not gone round its loop for stall, although
// the loop turns at least every FlushInterval when it gets the CPU (a long
// append also widens it, which only lets the append use more CPUs). The idle class keeps to one CPU of two, and a
// machine that keeps that CPU busy with other work would otherwise leave
// the writer no CPU at all until the spool is half full. It narrows the
// class again as soon as the writer runs, so that a writer that can run
// there stays off the sinks' CPUs.
func (p *Pipeline) watch(ctx context.Context, every, stall time.Duration, widen func(bool) error) {
	t := time.NewTicker(every)
	defer t.Stop()
	wide := false
	defer func() {
		if wide {
			widen(false) //nolint:errcheck // best effort, as below
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		starved := time.Since(time.Unix(0, p.beat.Load())) > stall
		switch {
		case starved && !wide:
			if widen(true) == nil {
				wide = true
				p.m.widened.Inc()
				p.log.Debug("the writer is starved on its CPU; the idle class may use every CPU")
			}
		case !starved && wide:
			if widen(false) == nil {
				wide = false
			}
		}
	}
}

// writer is the state of Run's loop.
type writer struct {
	p   *Pipeline
	r   *spool.Reader
	bg  *background
	dec event.Decoder
	// raw holds the records of the batch as read from the spool, recs
	// where each is in raw and where it ends in the spool.
	raw  []byte
	recs []rawRecord
	// buf holds the batch's events; batch is the part of it still to
	// store, and ends[i] the spool position after batch[i].
	buf      []event.Event
	batch    []event.Event
	ends     []spool.Pos
	endsBase []spool.Pos // the array of ends
	// held are the quarantine entries of the records read with the batch
	// that cannot be stored; they are written before the mark passes them.
	held []quarantine.Entry
	// stored is the position after the last stored record (the store's
	// mark), end the position after the last record read.
	stored, end spool.Pos

	ctx         context.Context
	stopping    bool
	drainCtx    context.Context // after ctx ends: the drain deadline
	cancelDrain context.CancelFunc
	drain       time.Duration
}

// rawRecord is a record of the batch: raw[off:off+n], ending at end.
type rawRecord struct {
	off, n int
	end    spool.Pos
}

// do runs f on the writer's idle thread, or on this goroutine while the
// writer is raised (background).
//
// Only the CPU's work goes there: decoding, classifying, enriching and
// counting the batch, and the store's append. Reading the spool, releasing
// its segments and the writer's bookkeeping stay on the writer's own
// goroutine, because they take locks that the sinks (the spool's) and the
// monitor (the lag clock's) need: a thread of the idle class that the
// kernel keeps off the CPU while it holds one of them would hold up every
// sink's Append behind it, and the monitor that would raise it.
func (w *writer) do(f func()) { w.bg.do(w.p.raised.Load(), f) }

func (p *Pipeline) run(ctx context.Context, drain time.Duration, bg *background, started chan struct{}) error {
	defer func() {
		select {
		case <-started:
		default:
			close(started)
		}
	}()
	// The mark is read even when ctx has already ended (a serve stopped
	// right after it started): the drain below still has to store what
	// the sinks recorded.
	raw, err := p.cfg.Store.Mark(context.WithoutCancel(ctx), MarkSource)
	if err != nil {
		return err
	}
	from, note, err := resumeFrom(p.cfg.Spool, raw)
	if err != nil {
		return err
	}
	if note != "" {
		p.log.Error("the spool does not match the store's saved position: " + note)
		p.resumeNote.Store(&note)
	}
	r, err := p.cfg.Spool.NewReader(from)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	defer r.Close()
	p.lag.start(from, p.cfg.Now())
	close(started)

	// The batch starts small, for the trickle of a quiet sinkhole, and
	// grows once, to BatchSize, when a batch outgrows it (fill): each
	// larger array that append would make on the way is fresh memory whose
	// first touch is a page fault (growing to the default 122,880 events
	// by append touched 260 MB, and cost the first 20 s of a 30,000
	// requests/s load 0.6 µs a request).
	w := &writer{p: p, r: r, bg: bg, ctx: ctx, drain: drain, stored: from, end: from,
		buf: make([]event.Event, 0, min(p.cfg.BatchSize, batchStart)), cancelDrain: func() {}}
	defer func() { w.cancelDrain() }()
	for {
		p.beat.Store(time.Now().UnixNano())
		if !w.stopping && !p.raised.Load() && p.yield(ctx) {
			continue
		}
		if w.step() {
			return nil
		}
	}
}

// stop starts the drain: what the sinks recorded until now is written to
// the spool files, and the writer stores it for at most drain.
func (w *writer) stop() {
	w.stopping = true
	if err := w.p.cfg.Spool.Flush(); err != nil {
		w.p.log.Warn("flushing the spool", "err", err)
	}
	w.drainCtx, w.cancelDrain = context.WithTimeout(context.WithoutCancel(w.ctx), w.drain)
}

// fill reads records into the batch until it holds BatchSize records or
// bctx ends, and returns why it stopped. It copies them; process makes
// them events.
func (w *writer) fill(bctx context.Context) error {
	for len(w.recs) < w.p.cfg.BatchSize {
		rec, pos, err := w.r.Next(bctx)
		if err != nil {
			return err
		}
		w.end = pos
		w.recs = append(w.recs, rawRecord{off: len(w.raw), n: len(rec), end: pos})
		w.raw = append(w.raw, rec...)
	}
	return nil
}

// process turns the batch's records into events: decoded, checked,
// classified, enriched and counted. A record that is not a valid event is
// held for the quarantine. It runs on the idle thread (do).
func (w *writer) process() {
	p := w.p
	// The batch starts small, for the trickle of a quiet sinkhole, and
	// grows once, to BatchSize, when a batch outgrows it: each larger
	// array that append would make on the way is fresh memory whose first
	// touch is a page fault (growing to 122,880 events by append touched
	// 260 MB, and cost the first 20 s of a 30,000 requests/s load 0.6 µs a
	// request).
	if cap(w.buf) < len(w.recs) {
		w.buf = make([]event.Event, 0, p.cfg.BatchSize)
	}
	for _, r := range w.recs {
		rec := w.raw[r.off : r.off+r.n]
		w.buf = append(w.buf, event.Event{})
		e := &w.buf[len(w.buf)-1]
		kind, reason := "", ""
		if err := w.dec.Decode(rec, e); err != nil {
			kind, reason = quarantine.KindUndecodable, err.Error()
		} else if err := e.Validate(); err != nil {
			kind, reason = quarantine.KindInvalid, err.Error()
		}
		if kind != "" {
			w.buf = w.buf[:len(w.buf)-1]
			p.invalid.Add(1)
			p.m.invalid.Inc()
			if p.cfg.Quarantine != nil {
				w.held = append(w.held, quarantine.NewEntry(kind, reason, w.source(r.end), rec, p.cfg.Now()))
			}
			continue
		}
		w.ends = append(w.ends, r.end)
		if p.cfg.Classifier != nil && e.Protocol == event.ProtoDNS && !e.Malformed {
			p.cfg.Classifier.ClassifyEvent(e)
		}
		if p.cfg.Enricher != nil {
			p.cfg.Enricher.Enrich(e)
		}
		if p.cfg.Observer != nil {
			p.cfg.Observer.Observe(e)
		}
	}
}

// source names the spool record that ends at pos, for the quarantine.
func (w *writer) source(pos spool.Pos) string {
	return "spool " + w.p.cfg.Spool.ID().String() + " " + pos.String()
}

// step reads and stores one batch. It reports whether Run is done.
func (w *writer) step() bool {
	p, ctx := w.p, w.ctx
	// One batch: up to BatchSize events, or what the spool holds when
	// FlushInterval has passed (Next still returns what is on disk once
	// its context has ended). While draining, a short pause in the
	// records means the spool is empty: the sinks have stopped.
	parent, wait := ctx, p.cfg.FlushInterval
	if w.stopping {
		parent, wait = w.drainCtx, 50*time.Millisecond
	}
	began := time.Now()
	bctx, cancel := context.WithTimeout(parent, wait)
	// A step starts with nothing left of the last batch: store returns
	// false only when Run ends.
	w.raw, w.recs = w.raw[:0], w.recs[:0]
	w.buf, w.ends, w.held = w.buf[:0], w.endsBase[:0], w.held[:0]
	readErr := w.fill(bctx)
	cancel()
	// Events that come fast enough to make a whole batch within fillWait
	// of its start wait for it: a whole batch is a whole row group, which
	// DuckDB writes compressed at the commit, while a smaller one goes
	// through its WAL and is compressed again at the next checkpoint
	// (batches of 15,360, what 500 ms of a 30,000 requests/s load brings,
	// cost 1.5 times the CPU per event of whole ones in
	// BenchmarkAppendHTTPRequests). It goes on a FlushInterval at a time,
	// and is stored as it is once one of them brings no event.
	if !w.stopping && ctx.Err() == nil && errors.Is(readErr, context.DeadlineExceeded) &&
		fillsSoon(len(w.recs), p.cfg.BatchSize, time.Since(began), p.fillWait) {
		p.m.filled.Inc()
		deadline := began.Add(p.fillWait)
		for n := -1; len(w.recs) > n && len(w.recs) < p.cfg.BatchSize && ctx.Err() == nil && time.Now().Before(deadline); {
			n = len(w.recs)
			p.beat.Store(time.Now().UnixNano())
			until := time.Now().Add(wait)
			if until.After(deadline) {
				until = deadline
			}
			bctx, cancel = context.WithDeadline(ctx, until)
			readErr = w.fill(bctx)
			cancel()
			if readErr != nil && !errors.Is(readErr, context.DeadlineExceeded) {
				break
			}
		}
	}
	if len(w.recs) > 0 {
		w.do(w.process)
	}
	w.batch, w.endsBase = w.buf, w.ends
	if readErr != nil && !errors.Is(readErr, context.DeadlineExceeded) && !errors.Is(readErr, context.Canceled) {
		if errors.Is(readErr, spool.ErrClosed) {
			return true
		}
		// A spool that cannot be read (a disk error): say so, at most
		// once a minute, and try again in a second rather than spin.
		if time.Since(p.lastReadErr) > time.Minute {
			p.log.Error("reading the spool", "err", readErr)
			p.lastReadErr = time.Now()
		}
		select {
		case <-parent.Done():
		case <-time.After(time.Second):
		}
	}
	// A batch read while ctx ended is stored within the drain, not with
	// the ended ctx.
	justStopped := !w.stopping && ctx.Err() != nil
	if justStopped {
		w.stop()
	}
	moved := w.end != w.stored
	if moved {
		sctx := ctx
		if w.stopping {
			sctx = w.drainCtx
		}
		if !w.store(sctx) {
			if w.stopping {
				return true // the drain deadline passed while the store refused
			}
			// ctx ended during the append: store the batch within the
			// drain.
			w.stop()
			justStopped = true
			if !w.store(w.drainCtx) {
				return true
			}
		}
	}
	// A read that timed out found nothing more on disk (Next returns what
	// is on disk even after its context ends), and the batch before it is
	// stored: the spool is replayed.
	if errors.Is(readErr, context.DeadlineExceeded) {
		p.replayedOnce.Do(func() { close(p.replayed) })
	}
	return w.stopping && !justStopped && (!moved || w.drainCtx.Err() != nil) // drained, or out of time: the rest waits in the spool
}

// batchStart is the capacity of the pipeline's first batch: what a second
// of a quiet sinkhole brings.
const batchStart = 4096

// deferAbove is the recording rate, in events a second, from which a
// saturated machine is taken to be busy answering bots.
const deferAbove = 20_000

// raise decides whether the writer does its work in the normal CPU class:
// from the moment the oldest unstored record has waited MaxLag, or the
// spool is more than half full, until the lag is below a quarter of MaxLag
// and the spool below a quarter full. It reports the decision. Only the
// monitor calls it.
func (p *Pipeline) raise() bool {
	lag := p.lag.lag(p.cfg.Now())
	bytes := p.cfg.Spool.Stats().Bytes
	was := p.raised.Load()
	switch {
	case !was && (lag > p.cfg.MaxLag || bytes > p.spoolMax/2):
		p.raised.Store(true)
		p.m.raisedTotal.Inc()
		p.log.Warn("the store is behind: the store writer runs at the normal CPU priority until it has caught up",
			"lag", lag.Round(time.Millisecond), "max_lag", p.cfg.MaxLag, "spool_bytes", bytes, "spool_max_bytes", p.spoolMax)
	case was && lag < p.cfg.MaxLag/4 && bytes < p.spoolMax/4:
		p.raised.Store(false)
		p.log.Info("the store has caught up: the store writer is back in the idle CPU class", "lag", lag.Round(time.Millisecond))
	}
	return p.raised.Load()
}

// yield waits a little when the CPUs are saturated while the sinks record
// at a high rate, and the spool has room to spare; it reports whether it
// waited. The writer does not yield while raised.
func (p *Pipeline) yield(ctx context.Context) bool {
	// The sinks' own rate, since the last look: a host kept busy by
	// something else must not stop the store.
	now, rec := time.Now(), p.recorded.Load()
	rate := float64(rec-p.lastRec) / now.Sub(p.lastLook).Seconds()
	p.lastRec, p.lastLook = rec, now
	if p.cfg.Saturated == nil || rate < deferAbove || !p.cfg.Saturated() {
		return false
	}
	p.m.deferred.Inc()
	select {
	case <-ctx.Done():
	case <-time.After(100 * time.Millisecond):
	}
	return true
}

// store stores w.batch, sets the held records aside, and moves the mark to
// w.end, retrying with backoff while the store refuses. Events that the
// store refuses alone are set aside too (storeAlone). It reports false if
// ctx ended first; what is left to store stays in w.
func (w *writer) store(ctx context.Context) bool {
	p := w.p
	wait := p.cfg.RetryInterval
	for fails := 0; ; {
		err := w.setHeldAside()
		if err == nil {
			err = w.commit(ctx, len(w.batch), w.end)
			if err == nil {
				return true
			}
			if ctx.Err() != nil {
				return false // cancelled, not refused
			}
			var ee eventError
			if errors.As(err, &ee) && ee.EventIndex() >= 0 && ee.EventIndex() < len(w.batch) {
				// The store named the event it cannot take: set it
				// aside, and send the rest again at once.
				w.refuse(ee.EventIndex(), err)
				continue
			}
			fails++
			if fails >= 3 && len(w.batch) > 0 && !isTransient(err) {
				// Refused three times with no event named: find out
				// whether the store takes nothing (down) or not these
				// events (one of them it can never take).
				if done, err2 := w.storeAlone(ctx); done {
					return true
				} else if err2 != nil {
					err = err2
				}
				if ctx.Err() != nil {
					return false
				}
			}
		}
		p.failures.Add(1)
		p.m.failures.Inc()
		p.storeErr.Store(&err)
		p.log.Error("store refused a batch; the events stay in the spool and the batch is retried",
			"events", len(w.batch), "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// commit appends the first n events of w.batch with the mark at to, and on
// success drops them from w.batch and moves w.stored.
func (w *writer) commit(ctx context.Context, n int, to spool.Pos) error {
	p := w.p
	mark := appendMark(nil, p.cfg.Spool.ID(), to)
	start := time.Now()
	var err error
	w.do(func() { err = p.cfg.Store.AppendMarked(ctx, w.batch[:n], MarkSource, mark) })
	if err != nil {
		return err
	}
	took := time.Since(start)
	p.storeErr.Store(nil)
	p.lastAppend.Store(int64(took))
	p.m.appendSeconds.Observe(took.Seconds())
	p.stored.Add(uint64(n))
	p.m.stored.Add(float64(n))
	if n > 0 {
		p.m.batch.Observe(float64(n))
	}
	w.batch, w.ends = w.batch[n:], w.ends[n:]
	w.stored = to
	p.lag.storedUpTo(to)
	if err := p.cfg.Spool.Release(to); err != nil {
		p.log.Warn("releasing stored spool segments", "err", err)
	}
	return nil
}

// setHeldAside writes the held quarantine entries; the mark may pass
// their records only once they are written.
func (w *writer) setHeldAside() error {
	if len(w.held) == 0 {
		return nil
	}
	if err := w.p.cfg.Quarantine.Add(w.held...); err != nil {
		return fmt.Errorf("pipeline: setting records aside: %w", err)
	}
	w.p.quarantined.Add(uint64(len(w.held)))
	w.p.m.quarantined.Add(float64(len(w.held)))
	w.held = w.held[:0]
	return nil
}

// refuse takes w.batch[i] out of the batch and holds it for the
// quarantine, as refused by the store with err.
func (w *writer) refuse(i int, err error) {
	p := w.p
	p.invalid.Add(1)
	p.m.invalid.Inc()
	p.log.Warn("the store refused an event; it is set aside", "err", err)
	if p.cfg.Quarantine != nil {
		rec := event.AppendBinary(nil, &w.batch[i])
		w.held = append(w.held, quarantine.NewEntry(quarantine.KindRefused, err.Error(), w.source(w.ends[i]), rec, p.cfg.Now()))
	}
	// The events before it keep their place; the mark passes it with the
	// events after it.
	w.batch = append(w.batch[:i], w.batch[i+1:]...)
	w.ends = append(w.ends[:i], w.ends[i+1:]...)
}

// storeAlone stores w.batch in halves, and halves of those, down to single
// events, to find the events that the store refuses while it takes the
// rest: each is set aside. An event refused alone is set aside only when
// the store then takes a write of its mark alone, and its error does not
// come from the engine's state (a full disk takes a mark and not a row);
// otherwise the store is taken to be down, and storeAlone returns that
// error, with w holding what is left. It reports whether the whole batch
// is stored and the mark at w.end.
func (w *writer) storeAlone(ctx context.Context) (bool, error) {
	if err := w.commit(ctx, 0, w.stored); err != nil {
		return false, err // not even the mark: the store is down
	}
	n := len(w.batch) / 2
	for len(w.batch) > 0 {
		n = max(1, min(n, len(w.batch)))
		err := w.commit(ctx, n, w.ends[n-1])
		switch {
		case err == nil:
			n = len(w.batch) // the rest, whole
			continue
		case ctx.Err() != nil:
			return false, err
		}
		var ee eventError
		if errors.As(err, &ee) && ee.EventIndex() >= 0 && ee.EventIndex() < n {
			w.refuse(ee.EventIndex(), err)
			continue
		}
		if isTransient(err) {
			return false, err // the engine's state, not an event: the store is down
		}
		if n > 1 {
			n /= 2
			continue
		}
		if perr := w.commit(ctx, 0, w.stored); perr != nil {
			return false, perr // not even the mark: the store is down
		}
		w.refuse(0, err)
		if err := w.setHeldAside(); err != nil {
			return false, err
		}
	}
	if err := w.setHeldAside(); err != nil {
		return false, err
	}
	return w.commit(ctx, 0, w.end) == nil, nil
}
