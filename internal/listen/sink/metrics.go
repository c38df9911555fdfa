package sink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the connection counts every sink has, by kind of listener
// (the protocol label). No label carries a client address.
type metrics struct {
	conns   []prometheus.Counter
	open    []prometheus.Gauge
	refused [][2]prometheus.Counter // [kind][total, per_ip]
}

// newMetrics makes the connection metrics of the sink subsystem and
// registers them, and the sink's own, with reg (if not nil).
func newMetrics(reg prometheus.Registerer, subsystem string, protocols []string, own []prometheus.Collector) (*metrics, error) {
	const ns = "takedown"
	conns := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: subsystem, Name: "connections_total",
		Help: "Connections accepted within the connection limits, by protocol.",
	}, []string{"protocol"})
	open := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: subsystem, Name: "connections_open",
		Help: "Connections open now, by protocol.",
	}, []string{"protocol"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: subsystem, Name: "connections_refused_total",
		Help: "Connections refused by a connection limit, by protocol and limit (total, per_ip).",
	}, []string{"protocol", "limit"})
	m := &metrics{}
	for _, p := range protocols {
		m.conns = append(m.conns, conns.WithLabelValues(p))
		m.open = append(m.open, open.WithLabelValues(p))
		m.refused = append(m.refused, [2]prometheus.Counter{
			refused.WithLabelValues(p, "total"), refused.WithLabelValues(p, "per_ip"),
		})
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range append([]prometheus.Collector{conns, open, refused}, own...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}
