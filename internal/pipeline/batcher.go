// Package pipeline carries events from the sinks (DNS, listeners) to the
// store without ever making a sink wait: Record puts an event on a bounded
// queue and returns; a writer goroutine appends batches, cut by size and by
// time, to the store.
//
// When the queue is full the event is dropped and counted. (A disk spool
// that takes the overflow instead is the pipeline's next step.)
package pipeline

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/event"
)

// Appender is where batches go: the event store.
type Appender interface {
	Append(ctx context.Context, batch []event.Event) error
}

// Config configures a Batcher.
type Config struct {
	// Store receives the batches.
	Store Appender
	// QueueSize bounds the events waiting; default 262,144.
	QueueSize int
	// BatchSize is the most events in one append; default 65,536. Under
	// load, batches this large let DuckDB write whole row groups.
	BatchSize int
	// FlushInterval is the longest an event waits for its batch; default
	// 200 ms.
	FlushInterval time.Duration
	// Logger and Registerer; nil discards / does not register.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Batcher is the bounded queue and the writer.
type Batcher struct {
	cfg   Config
	queue chan event.Event
	log   *slog.Logger
	done  chan struct{}
	once  sync.Once

	dropped  atomic.Uint64
	stored   atomic.Uint64
	failed   atomic.Uint64
	mDropped prometheus.Counter
	mStored  prometheus.Counter
	mFailed  prometheus.Counter
	mBatches prometheus.Histogram
}

// New returns a batcher; Run starts its writer.
func New(cfg Config) *Batcher {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1 << 18
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1 << 16
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 200 * time.Millisecond
	}
	b := &Batcher{cfg: cfg, queue: make(chan event.Event, cfg.QueueSize), log: cfg.Logger, done: make(chan struct{})}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.mDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "takedown_pipeline_events_dropped_total", Help: "Events dropped because the queue was full."})
	b.mStored = prometheus.NewCounter(prometheus.CounterOpts{Name: "takedown_pipeline_events_stored_total", Help: "Events appended to the store."})
	b.mFailed = prometheus.NewCounter(prometheus.CounterOpts{Name: "takedown_pipeline_events_failed_total", Help: "Events lost because the store refused their batch."})
	b.mBatches = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "takedown_pipeline_batch_events", Help: "Events per appended batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(b.mDropped, b.mStored, b.mFailed, b.mBatches)
	}
	return b
}

// Record queues e; it never blocks. It reports whether e was queued.
func (b *Batcher) Record(e *event.Event) bool {
	select {
	case b.queue <- *e:
		return true
	default:
		b.dropped.Add(1)
		b.mDropped.Inc()
		return false
	}
}

// Stats are the batcher's counters.
type Stats struct {
	Queued, Stored, Dropped, Failed uint64
}

// Stats returns the counters.
func (b *Batcher) Stats() Stats {
	return Stats{Queued: uint64(len(b.queue)), Stored: b.stored.Load(), Dropped: b.dropped.Load(), Failed: b.failed.Load()}
}

// Run writes batches until ctx is cancelled, then drains what is queued,
// for at most drain, and returns.
func (b *Batcher) Run(ctx context.Context, drain time.Duration) {
	defer close(b.done)
	batch := make([]event.Event, 0, b.cfg.BatchSize)
	tick := time.NewTicker(b.cfg.FlushInterval)
	defer tick.Stop()
	flush := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		if err := b.cfg.Store.Append(ctx, batch); err != nil {
			b.failed.Add(uint64(len(batch)))
			b.mFailed.Add(float64(len(batch)))
			b.log.Error("appending events", "events", len(batch), "err", err)
		} else {
			b.stored.Add(uint64(len(batch)))
			b.mStored.Add(float64(len(batch)))
			b.mBatches.Observe(float64(len(batch)))
		}
		clear(batch)
		batch = batch[:0]
	}
	for {
		select {
		case e := <-b.queue:
			batch = append(batch, e)
			if len(batch) >= b.cfg.BatchSize {
				flush(ctx)
			}
		case <-tick.C:
			flush(ctx)
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			for {
				select {
				case e := <-b.queue:
					batch = append(batch, e)
					if len(batch) >= b.cfg.BatchSize {
						flush(dctx)
					}
					continue
				default:
				}
				break
			}
			flush(dctx)
			return
		}
	}
}

// Done is closed when Run has returned.
func (b *Batcher) Done() <-chan struct{} { return b.done }
