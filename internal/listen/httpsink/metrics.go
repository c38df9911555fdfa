package httpsink

import (
	"github.com/prometheus/client_golang/prometheus"
)

// proto indexes the two listener kinds in metrics and events.
type proto uint8

const (
	protoHTTP proto = iota
	protoHTTPS
)

var protoNames = [...]string{"http", "https"}

// Limits hit, as label values of limit_hits_total.
const (
	limitHeaderTimeout = "header_timeout"
	limitHeaderSize    = "header_size"
	limitBodySize      = "body_size"
	limitBodyTimeout   = "body_timeout"
)

// metrics of the listener beside the connection counts of its
// sink.Lifecycle. No label carries a client address, host, path or agent.
type metrics struct {
	requests      [2][6]prometheus.Counter // [proto][status class 1xx..5xx, other]
	malformed     [2]prometheus.Counter
	handshakeFail *prometheus.CounterVec
	parked        prometheus.Gauge
	lingering     prometheus.GaugeFunc
	limits        *prometheus.CounterVec
	h2errors      prometheus.Counter
	events        prometheus.Counter
	handoffs      prometheus.Counter
	collectors    []prometheus.Collector
}

func newMetrics(minted, lingering func() float64) *metrics {
	const ns, sub = "takedown", "httpsink"
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "requests_total",
		Help: "Requests answered, by protocol (http, https) and status class.",
	}, []string{"protocol", "code"})
	malformed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "malformed_total",
		Help: "Requests that failed to parse, by protocol.",
	}, []string{"protocol"})
	m := &metrics{
		handshakeFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "tls_handshake_failures_total",
			Help: "TLS handshakes that failed, by reason (timeout, not_tls, closed, tls).",
		}, []string{"reason"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "limit_hits_total",
			Help: "Requests cut short by a limit: header_timeout, header_size, body_size, body_timeout.",
		}, []string{"limit"}),
		h2errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "http2_errors_total",
			Help: "HTTP/2 protocol errors seen by the HTTP/2 server.",
		}),
		parked: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "connections_parked",
			Help: "Plain-HTTP connections held without a goroutine: by the event loops, or parked while idle (counted in connections_open too).",
		}),
		lingering: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "connections_lingering",
			Help: "Connections whose request was refused (400, 413, 431), read and discarded for up to 2 s before the close so that the client gets the answer (counted in connections_open too).",
		}, lingering),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Events handed to the recorder.",
		}),
		handoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "loop_handoffs_total",
			Help: "Plain-HTTP connections an event loop handed to a goroutine: a request that came in pieces, a chunked body, an answer that did not go out at once.",
		}),
	}
	for p, pn := range protoNames {
		for c := range m.requests[p] {
			m.requests[p][c] = requests.WithLabelValues(pn, classNames[c])
		}
		m.malformed[p] = malformed.WithLabelValues(pn)
	}
	m.collectors = []prometheus.Collector{requests, malformed, m.parked, m.lingering, m.handshakeFail, m.limits, m.h2errors, m.events, m.handoffs}
	if minted != nil {
		m.collectors = append(m.collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "certificates_minted_total",
			Help: "Leaf certificates minted for TLS server names.",
		}, minted))
	}
	return m
}

var classNames = [6]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

func (m *metrics) request(p proto, status int) {
	c := status/100 - 1
	if c < 0 || c > 4 {
		c = 5
	}
	m.requests[p][c].Inc()
}
