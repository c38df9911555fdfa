package deliver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the deliverer. No label carries a subscriber or an address.
type metrics struct {
	attempts *prometheus.CounterVec
	outcomes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "takedown", "deliver"
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "attempts_total",
			Help: "SMTP attempts, by result: sent, transient, permanent, stuck (relay or configuration problem), ambiguous (no answer to the end of data).",
		}, []string{"result"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "deliveries_total",
			Help: "Deliver calls, by outcome: sent, pending, failed, unknown, no_data, or <status>_skipped for keys already in the log.",
		}, []string{"outcome"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.attempts, m.outcomes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) attempt(result string) { m.attempts.WithLabelValues(result).Inc() }
func (m *metrics) outcome(o string)      { m.outcomes.WithLabelValues(o).Inc() }
