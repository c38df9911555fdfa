package servedsync

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// logEvery is how often an error of one kind is logged while it repeats;
// every occurrence is counted.
const logEvery = 10 * time.Minute

// throttle logs an error of a kind at most once per logEvery, with the
// number of occurrences left unlogged since.
type throttle struct {
	log *slog.Logger
	mu  sync.Mutex
	at  map[string]time.Time
	n   map[string]int
}

func newThrottle(log *slog.Logger) *throttle {
	return &throttle{log: log, at: map[string]time.Time{}, n: map[string]int{}}
}

func (t *throttle) warn(kind, msg string, args ...any) {
	t.mu.Lock()
	now := time.Now()
	if at, ok := t.at[kind]; ok && now.Sub(at) < logEvery {
		t.n[kind]++
		t.mu.Unlock()
		return
	}
	skipped := t.n[kind]
	t.at[kind], t.n[kind] = now, 0
	t.mu.Unlock()
	t.log.Warn(msg, append(args, "kind", kind, "unlogged", skipped)...)
}

func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("servedsync: registering metrics: %w", err)
		}
	}
	return nil
}

const namespace = "takedown"

func newCounter(sub, name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help})
}

func newGauge(sub, name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help})
}

type publisherMetrics struct {
	deltas, deltaBytes, fulls, rules, overflows prometheus.Counter
	errors                                      *prometheus.CounterVec
	serial, fullSeconds, fullBytes, queue       prometheus.Gauge
}

func newPublisherMetrics(reg prometheus.Registerer) (*publisherMetrics, error) {
	const sub = "served_publisher"
	counter := func(name, help string) prometheus.Counter { return newCounter(sub, name, help) }
	gauge := func(name, help string) prometheus.Gauge { return newGauge(sub, name, help) }
	m := &publisherMetrics{
		deltas:     counter("deltas_total", "Deltas of the served set published to the stream."),
		deltaBytes: counter("delta_bytes_total", "Bytes of the deltas published."),
		fulls:      counter("fulls_total", "Full forms of the served set put in the object store."),
		rules:      counter("rules_total", "Versions of the classification rules put in the object store."),
		overflows:  counter("queue_overflows_total", "Times the queue of steps overflowed (NATS away) and was replaced by a full form."),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: sub, Name: "errors_total",
			Help: "Failed operations, by kind (ensure, delta, full, rules, check); each is retried."}, []string{"kind"}),
		serial:      gauge("serial", "Serial of the last served set published (delta or full form)."),
		fullSeconds: gauge("full_seconds", "How long the last full form took to put."),
		fullBytes:   gauge("full_bytes", "Size of the last full form put."),
		queue:       gauge("queue", "Steps of the set waiting to be published."),
	}
	return m, register(reg, m.deltas, m.deltaBytes, m.fulls, m.rules, m.overflows, m.errors, m.serial, m.fullSeconds, m.fullBytes, m.queue)
}

type followerMetrics struct {
	deltas, fulls, rules, skipped prometheus.Counter
	errors                        *prometheus.CounterVec
	serial, applied, zones        prometheus.Gauge
}

func newFollowerMetrics(reg prometheus.Registerer, connected func() float64) (*followerMetrics, error) {
	const sub = "served_follower"
	counter := func(name, help string) prometheus.Counter { return newCounter(sub, name, help) }
	gauge := func(name, help string) prometheus.Gauge { return newGauge(sub, name, help) }
	m := &followerMetrics{
		deltas:  counter("deltas_total", "Deltas applied to the served set."),
		fulls:   counter("fulls_total", "Full forms of the served set loaded from the object store."),
		rules:   counter("rules_total", "Rules files written from the object store."),
		skipped: counter("skipped_total", "Deltas skipped as already applied."),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: sub, Name: "errors_total",
			Help: "Problems met, by kind (delta_decode, delta_apply, gap, full_fetch, full_decode, rules, meta, persist, nats)."}, []string{"kind"}),
		serial:  gauge("serial", "Serial of the served set the sinks answer from."),
		applied: gauge("applied_timestamp_seconds", "When the served set last changed (a delta or a full form applied, or loaded from disk)."),
		zones:   gauge("zones", "Zones of the served set."),
	}
	conn := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: sub, Name: "connected",
		Help: "1 while the connection to NATS is up."}, connected)
	return m, register(reg, m.deltas, m.fulls, m.rules, m.skipped, m.errors, m.serial, m.applied, m.zones, conn)
}
