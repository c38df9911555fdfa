package rawsink

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the listener beside the connection counts of its
// sink.Lifecycle. No label carries a client address.
type metrics struct {
	datagrams  prometheus.Counter
	replies    prometheus.Counter
	limitSize  prometheus.Counter // TCP: MaxBytes read
	limitTime  prometheus.Counter // TCP: ReadTimeout
	limitBig   prometheus.Counter // UDP: datagram longer than MaxBytes
	bytes      [2]prometheus.Counter
	readErrors prometheus.Counter
	events     prometheus.Counter
	collectors []prometheus.Collector
}

func newMetrics() *metrics {
	const ns, sub = "takedown", "rawsink"
	limits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "limit_hits_total",
		Help: "Limits hit: tcp_size (MaxBytes read, then closed), tcp_timeout (ReadTimeout), udp_size (datagram longer than MaxBytes).",
	}, []string{"limit"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "bytes_total",
		Help: "Payload bytes received, by transport (tcp: as far as read).",
	}, []string{"transport"})
	m := &metrics{
		datagrams: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "datagrams_total",
			Help: "UDP datagrams received.",
		}),
		replies: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "udp_replies_total",
			Help: "UDP datagrams answered with the static reply.",
		}),
		limitSize: limits.WithLabelValues("tcp_size"),
		limitTime: limits.WithLabelValues("tcp_timeout"),
		limitBig:  limits.WithLabelValues("udp_size"),
		bytes:     [2]prometheus.Counter{bytes.WithLabelValues("tcp"), bytes.WithLabelValues("udp")},
		readErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "udp_read_errors_total",
			Help: "Failed reads of a UDP socket.",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Events handed to the recorder.",
		}),
	}
	m.collectors = []prometheus.Collector{
		m.datagrams, m.replies, limits, bytes, m.readErrors, m.events,
	}
	return m
}
