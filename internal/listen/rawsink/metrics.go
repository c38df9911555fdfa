package rawsink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the listener. No label carries a client address.
type metrics struct {
	conns      prometheus.Counter
	open       prometheus.Gauge
	datagrams  prometheus.Counter
	replies    prometheus.Counter
	refused    *prometheus.CounterVec
	limitSize  prometheus.Counter // TCP: MaxBytes read
	limitTime  prometheus.Counter // TCP: ReadTimeout
	limitBig   prometheus.Counter // UDP: datagram longer than MaxBytes
	bytes      [2]prometheus.Counter
	readErrors prometheus.Counter
	events     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
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
		conns: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "connections_total",
			Help: "TCP connections accepted within the connection limits.",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "connections_open",
			Help: "TCP connections open now.",
		}),
		datagrams: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "datagrams_total",
			Help: "UDP datagrams received.",
		}),
		replies: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "udp_replies_total",
			Help: "UDP datagrams answered with the static reply.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "refused_total",
			Help: "TCP connections refused by a connection limit, by limit (total, per_ip).",
		}, []string{"limit"}),
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
	m.refused.WithLabelValues("total")
	m.refused.WithLabelValues("per_ip")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.conns, m.open, m.datagrams, m.replies, m.refused, limits, bytes, m.readErrors, m.events,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering rawsink metrics: %w", err)
		}
	}
	return m, nil
}
