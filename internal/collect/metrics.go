package collect

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	stored, duplicates, quarantined, failures, resets prometheus.Counter
	sensorStored                                      *prometheus.CounterVec
	rejected                                          *prometheus.CounterVec
	lastSeen                                          *prometheus.GaugeVec
	pending                                           prometheus.GaugeFunc
	appendSeconds                                     prometheus.Histogram
}

func newMetrics(c *Collector) metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "takedown_collect_" + name, Help: help})
	}
	m := metrics{
		stored:      counter("events_stored_total", "Events of the sensors stored."),
		duplicates:  counter("records_duplicate_total", "Records skipped because the store held them already (delivered again, or published again by a sensor)."),
		quarantined: counter("records_quarantined_total", "Records set aside in the quarantine (not events, not valid, or refused by the store)."),
		failures:    counter("store_failures_total", "Appends the store refused; they are retried."),
		resets:      counter("consumer_resets_total", "Times the consumer was made anew (a start, a lost delivery, an error of the stream)."),
		sensorStored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "takedown_collect_sensor_events_stored_total",
			Help: "Events stored, by configured sensor."}, []string{"sensor"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "takedown_collect_rejected_total",
			Help: "Messages, records and heartbeats refused, by kind; never stored."}, []string{"kind"}),
		lastSeen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "takedown_collect_sensor_last_seen_seconds",
			Help: "Unix time of the last valid heartbeat of each configured sensor."}, []string{"sensor"}),
		pending: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "takedown_collect_pending_messages",
			Help: "Messages the stream holds for the central, not yet delivered or not yet acknowledged (-1 until known)."},
			func() float64 { return float64(c.pending.Load()) }),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "takedown_collect_store_append_seconds",
			Help: "Time to append one batch to the store.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	for _, k := range rejectKinds {
		m.rejected.WithLabelValues(k)
	}
	for name := range c.sensors {
		m.sensorStored.WithLabelValues(name)
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) {
	r.MustRegister(m.stored, m.duplicates, m.quarantined, m.failures, m.resets, m.sensorStored, m.rejected,
		m.lastSeen, m.pending, m.appendSeconds)
}
