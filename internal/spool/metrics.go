package spool

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of a spool. The counters live in the Spool (atomics updated
// under its lock anyway) and are read at scrape time, so the hot path
// pays nothing for them.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	fsync      prometheus.Histogram
}

func newMetrics(s *Spool, reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "takedown", "spool"
	opts := func(name, help string, labels prometheus.Labels) prometheus.Opts {
		return prometheus.Opts{Namespace: ns, Subsystem: sub, Name: name, Help: help, ConstLabels: labels}
	}
	counter := func(name, help string, labels prometheus.Labels, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts(opts(name, help, labels)), func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func(st Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts(name, help, nil)), func() float64 { return f(s.Stats()) })
	}
	const dropHelp = "Records dropped on their way to the disk, by reason: full (MaxBytes), backlog (MaxBufferBytes), reserve (free space below MinFreeBytes), write_error."
	m := &metrics{
		reg: reg,
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "fsync_duration_seconds",
			Help:    "Time taken by fsync of a segment.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 100 µs .. 6.5 s
		}),
	}
	m.collectors = []prometheus.Collector{
		m.fsync,
		gauge("bytes", "Bytes in segment files plus the buffer.", func(st Stats) float64 { return float64(st.Bytes) }),
		gauge("max_bytes", "The size limit (MaxBytes): records that would grow bytes past it are dropped.", func(Stats) float64 { return float64(s.opt.MaxBytes) }),
		gauge("buffered_bytes", "Bytes buffered in memory, not yet written.", func(st Stats) float64 { return float64(st.Buffered) }),
		gauge("segments", "Segment files.", func(st Stats) float64 { return float64(st.Segments) }),
		counter("records_appended_total", "Records accepted by Append.", nil, s.appended.Load),
		counter("records_dropped_total", dropHelp, prometheus.Labels{"reason": "full"}, s.droppedFull.Load),
		counter("records_dropped_total", dropHelp, prometheus.Labels{"reason": "backlog"}, s.droppedBuffer.Load),
		counter("records_dropped_total", dropHelp, prometheus.Labels{"reason": "write_error"}, s.droppedWrite.Load),
		counter("records_dropped_total", dropHelp, prometheus.Labels{"reason": "reserve"}, s.droppedReserve.Load),
		gauge("low_space", "1 while the spool's filesystem is below its free-space reserve and new records are dropped.", func(st Stats) float64 {
			if st.LowSpace {
				return 1
			}
			return 0
		}),
		counter("damaged_total", "Damaged stretches of segments skipped (each lost one or more records).", nil, s.damaged.Load),
		counter("damaged_bytes_total", "Bytes in damaged stretches skipped.", nil, s.damagedBytes.Load),
	}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, d := range m.collectors[:i] {
				reg.Unregister(d)
			}
			return nil, fmt.Errorf("registering spool metrics: %w", err)
		}
	}
	return m, nil
}

// unregister removes the metrics, so that the directory can be opened
// again with the same registry.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
