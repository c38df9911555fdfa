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
// limit are events dropped, and counted.
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

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/idle"
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
// themselves (DNS queries: the listeners classify each request inline,
// because the answer depends on the rule).
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

// MarkSource is the name under which the pipeline keeps its spool position
// in the store.
const MarkSource = "pipeline-spool"

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
	// dbfile.RowGroupSize, the cheapest for DuckDB to store.
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
	raised   bool // the writer left the idle class (yield)

	replayed     chan struct{} // closed once the backlog at Run start is stored
	replayedOnce sync.Once

	lastRec  uint64 // recorded, at lastLook (the writer's goroutine only)
	lastLook time.Time
	// lastReadErr is when a spool read error was last logged.
	lastReadErr time.Time

	recorded, dropped, stored, invalid, failures atomic.Uint64
	lastAppend                                   atomic.Int64 // ns
	beat                                         atomic.Int64 // unix ns the writer last went round its loop

	m metrics
}

type metrics struct {
	recorded, dropped, stored, invalid, failures prometheus.Counter
	batch, appendSeconds                         prometheus.Histogram
	lag                                          prometheus.Gauge
	deferred, widened, filled                    prometheus.Counter
}

// New checks cfg and returns a pipeline; Run starts its store writer.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Spool == nil || cfg.Store == nil {
		return nil, errors.New("pipeline: a spool and a store are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = dbfile.RowGroupSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 500 * time.Millisecond
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
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
		recorded: counter("events_recorded_total", "Events the sinks recorded into the spool."),
		dropped:  counter("events_dropped_total", "Events dropped because the spool was full."),
		stored:   counter("events_stored_total", "Events appended to the store."),
		invalid:  counter("events_invalid_total", "Events read back from the spool that could not be stored (undecodable or invalid); skipped."),
		failures: counter("store_failures_total", "Batches the store refused; they are retried."),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "takedown_pipeline_batch_events",
			Help: "Events per appended batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "takedown_pipeline_store_append_seconds",
			Help: "Time to append one batch to the store.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "takedown_pipeline_lag_seconds",
			Help: "Age of the newest event in the last stored batch, when it was stored."}),
		deferred: counter("store_deferred_total", "Times the store writer waited 100 ms because the CPUs were saturated."),
		widened:  counter("writer_widened_total", "Times the starved store writer (and the rest of the idle CPU class) was let onto every CPU."),
		filled:   counter("batches_filled_total", "Batches that filled fast enough to wait past the flush interval until they were whole."),
	}
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "takedown_pipeline_backlog_events",
		Help: "Events recorded into the spool and not yet stored (or skipped): the queue between the sinks and the store."},
		func() float64 { return float64(p.Stats().Backlog) })
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(backlog)
		cfg.Registerer.MustRegister(p.m.recorded, p.m.dropped, p.m.stored, p.m.invalid, p.m.failures,
			p.m.batch, p.m.appendSeconds, p.m.lag, p.m.deferred, p.m.widened, p.m.filled)
	}
	return p, nil
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
	p.m.recorded.Inc()
	return true
}

// Stats are the pipeline's counters since it was made.
type Stats struct {
	Recorded, Dropped, Stored, Invalid, StoreFailures uint64
	// Backlog is the events recorded and not yet stored or skipped: what
	// waits in the spool.
	Backlog uint64
	// LastAppend is the duration of the last store append.
	LastAppend time.Duration
}

// Stats returns the counters.
func (p *Pipeline) Stats() Stats {
	st := Stats{
		Recorded: p.recorded.Load(), Dropped: p.dropped.Load(), Stored: p.stored.Load(),
		Invalid: p.invalid.Load(), StoreFailures: p.failures.Load(),
		LastAppend: time.Duration(p.lastAppend.Load()),
	}
	st.Backlog = st.Recorded - min(st.Recorded, st.Stored+st.Invalid)
	return st
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
	// The writer runs in the idle CPU class where the system has one:
	// the sinks' answers come first, and the spool absorbs the
	// difference.
	var err error
	p.beat.Store(time.Now().UnixNano())
	wctx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		p.watch(wctx, time.Second, max(2*time.Second, 3*p.cfg.FlushInterval), idle.Widen)
	}()
	idle.Run(func() { err = p.run(ctx, drain) })
	stopWatch()
	<-watched
	return err
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

func (p *Pipeline) run(ctx context.Context, drain time.Duration) error {
	// The mark is read even when ctx has already ended (a serve stopped
	// right after it started): the drain below still has to store what
	// the sinks recorded.
	raw, err := p.cfg.Store.Mark(context.WithoutCancel(ctx), MarkSource)
	if err != nil {
		return err
	}
	var from spool.Pos
	if raw != nil {
		if err := from.UnmarshalBinary(raw); err != nil {
			return fmt.Errorf("pipeline: the store's spool mark: %w", err)
		}
	}
	r, err := p.cfg.Spool.NewReader(from)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	defer r.Close()

	// The batch starts small, for the trickle of a quiet sinkhole, and
	// grows once, to BatchSize, when a batch outgrows it (fill): each
	// larger array that append would make on the way is fresh memory whose
	// first touch is a page fault (growing to the default 122,880 events
	// by append touched 260 MB, and cost the first 20 s of a 30,000
	// requests/s load 0.6 µs a request).
	batch := make([]event.Event, 0, min(p.cfg.BatchSize, batchStart))
	var dec event.Decoder
	end := from
	stopping := false
	var drainCtx context.Context // after ctx ends: the drain deadline
	cancelDrain := context.CancelFunc(func() {})
	defer func() { cancelDrain() }()
	// stop starts the drain: what the sinks recorded until now is written
	// to the spool files, and the writer stores it for at most drain.
	stop := func() {
		stopping = true
		if err := p.cfg.Spool.Flush(); err != nil {
			p.log.Warn("flushing the spool", "err", err)
		}
		drainCtx, cancelDrain = context.WithTimeout(context.WithoutCancel(ctx), drain)
	}
	// fill reads records into batch until it holds BatchSize events or
	// bctx ends, and returns why it stopped.
	fill := func(bctx context.Context) error {
		for len(batch) < p.cfg.BatchSize {
			rec, pos, err := r.Next(bctx)
			if err != nil {
				return err
			}
			end = pos
			if len(batch) == cap(batch) && cap(batch) < p.cfg.BatchSize {
				batch = append(make([]event.Event, 0, p.cfg.BatchSize), batch...)
			}
			batch = append(batch, event.Event{})
			e := &batch[len(batch)-1]
			if err := dec.Decode(rec, e); err != nil || e.Validate() != nil {
				batch = batch[:len(batch)-1]
				p.invalid.Add(1)
				p.m.invalid.Inc()
				continue
			}
			if p.cfg.Classifier != nil {
				p.cfg.Classifier.ClassifyEvent(e)
			}
			if p.cfg.Enricher != nil {
				p.cfg.Enricher.Enrich(e)
			}
			if p.cfg.Observer != nil {
				p.cfg.Observer.Observe(e)
			}
		}
		return nil
	}
	for {
		p.beat.Store(time.Now().UnixNano())
		if !stopping && p.yield(ctx) {
			continue
		}
		// One batch: up to BatchSize events, or what the spool holds when
		// FlushInterval has passed (Next still returns what is on disk
		// once its context has ended). While draining, a short pause in
		// the records means the spool is empty: the sinks have stopped.
		parent, wait := ctx, p.cfg.FlushInterval
		if stopping {
			parent, wait = drainCtx, 50*time.Millisecond
		}
		began := time.Now()
		bctx, cancel := context.WithTimeout(parent, wait)
		batch = batch[:0]
		readErr := fill(bctx)
		cancel()
		// Events that come fast enough to make a whole batch within
		// fillWait of its start wait for it: a whole batch is a whole row
		// group, which DuckDB writes compressed at the commit, while a
		// smaller one goes through its WAL and is compressed again at the
		// next checkpoint (batches of 15,360, what 500 ms of a 30,000
		// requests/s load brings, cost 1.5 times the CPU per event of whole
		// ones in BenchmarkAppendHTTPRequests).
		// It goes on a FlushInterval at a time, and is stored as it is
		// once one of them brings no event.
		if !stopping && ctx.Err() == nil && errors.Is(readErr, context.DeadlineExceeded) &&
			fillsSoon(len(batch), p.cfg.BatchSize, time.Since(began), p.fillWait) {
			p.m.filled.Inc()
			deadline := began.Add(p.fillWait)
			for n := -1; len(batch) > n && len(batch) < p.cfg.BatchSize && ctx.Err() == nil && time.Now().Before(deadline); {
				n = len(batch)
				p.beat.Store(time.Now().UnixNano())
				until := time.Now().Add(wait)
				if until.After(deadline) {
					until = deadline
				}
				bctx, cancel = context.WithDeadline(ctx, until)
				readErr = fill(bctx)
				cancel()
				if readErr != nil && !errors.Is(readErr, context.DeadlineExceeded) {
					break
				}
			}
		}
		if readErr != nil && !errors.Is(readErr, context.DeadlineExceeded) && !errors.Is(readErr, context.Canceled) {
			if errors.Is(readErr, spool.ErrClosed) {
				return nil
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
		// A batch read while ctx ended is stored within the drain, not
		// with the ended ctx.
		justStopped := !stopping && ctx.Err() != nil
		if justStopped {
			stop()
		}
		moved := end != from
		if moved {
			sctx := ctx
			if stopping {
				sctx = drainCtx
			}
			if !p.store(sctx, batch, end) {
				if stopping {
					return nil // the drain deadline passed while the store refused
				}
				// ctx ended during the append: store the batch within
				// the drain.
				stop()
				justStopped = true
				if !p.store(drainCtx, batch, end) {
					return nil
				}
			}
			from = end
			if err := p.cfg.Spool.Release(end); err != nil {
				p.log.Warn("releasing stored spool segments", "err", err)
			}
		}
		// A read that timed out found nothing more on disk (Next returns
		// what is on disk even after its context ends), and the batch
		// before it is stored: the spool is replayed.
		if errors.Is(readErr, context.DeadlineExceeded) {
			p.replayedOnce.Do(func() { close(p.replayed) })
		}
		if stopping && !justStopped && (!moved || drainCtx.Err() != nil) {
			return nil // drained, or out of time: the rest waits in the spool
		}
	}
}

// batchStart is the capacity of the pipeline's first batch: what a second
// of a quiet sinkhole brings.
const batchStart = 4096

// deferAbove is the recording rate, in events a second, from which a
// saturated machine is taken to be busy answering bots.
const deferAbove = 20_000

// yield waits a little when the CPUs are saturated while the sinks record
// at a high rate, and the spool has room to spare; it reports whether it
// waited.
func (p *Pipeline) yield(ctx context.Context) bool {
	// The sinks' own rate, since the last look: a host kept busy by
	// something else must not stop the store.
	now, rec := time.Now(), p.recorded.Load()
	rate := float64(rec-p.lastRec) / now.Sub(p.lastLook).Seconds()
	p.lastRec, p.lastLook = rec, now
	// A backlog past half the spool cannot wait for CPU time the sinks
	// leave: the writer leaves the idle class until it is down to a
	// quarter again (where the system allows it).
	st := p.cfg.Spool.Stats()
	switch {
	case !p.raised && st.Bytes > p.spoolMax/2:
		if err := idle.Raise(); err == nil {
			p.raised = true
			p.log.Warn("the spool is more than half full: the store writer runs at the normal CPU priority until it is down to a quarter",
				"spool_bytes", st.Bytes, "max_bytes", p.spoolMax)
		}
	case p.raised && st.Bytes < p.spoolMax/4:
		if idle.Lower() == nil {
			p.raised = false
		}
	}
	if p.cfg.Saturated == nil || rate < deferAbove || !p.cfg.Saturated() {
		return false
	}
	if st.Bytes > p.spoolMax/2 {
		return false
	}
	p.m.deferred.Inc()
	select {
	case <-ctx.Done():
	case <-time.After(100 * time.Millisecond):
	}
	return true
}

// store appends batch with the spool position end, retrying with backoff
// while the store refuses it. It reports false if ctx ended first.
func (p *Pipeline) store(ctx context.Context, batch []event.Event, end spool.Pos) bool {
	mark, _ := end.MarshalBinary()
	wait := p.cfg.RetryInterval
	for {
		start := time.Now()
		err := p.cfg.Store.AppendMarked(ctx, batch, MarkSource, mark)
		took := time.Since(start)
		if err != nil && ctx.Err() != nil {
			return false // cancelled, not refused
		}
		if err == nil {
			p.lastAppend.Store(int64(took))
			p.m.appendSeconds.Observe(took.Seconds())
			p.stored.Add(uint64(len(batch)))
			p.m.stored.Add(float64(len(batch)))
			if len(batch) > 0 {
				p.m.batch.Observe(float64(len(batch)))
				p.m.lag.Set(time.Since(batch[len(batch)-1].Time).Seconds())
			}
			return true
		}
		p.failures.Add(1)
		p.m.failures.Inc()
		p.log.Error("store refused a batch; the events stay in the spool and the batch is retried",
			"events", len(batch), "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}
