package dnssink

import (
	"fmt"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the sinkhole. No label carries a client address or a name.
type metrics struct {
	queries   *prometheus.CounterVec
	queryFast [2][24]prometheus.Counter      // [udp, tcp][rcode], made at start
	rrlDrop   [rrlClasses]prometheus.Counter // by class, made at start
	rrlSlip   [rrlClasses]prometheus.Counter
	malformed prometheus.Counter
	refused   prometheus.Counter
	zones     prometheus.Gauge
	swaps     prometheus.Counter
	serial    prometheus.Gauge
	recorded  prometheus.Counter
	// signing
	signedZones prometheus.Gauge
	signatures  prometheus.Counter
	signErrors  prometheus.Counter
	// collectors are registered by the server's sink.Lifecycle.
	collectors []prometheus.Collector
}

func newMetrics() *metrics {
	const ns, sub = "takedown", "dnssink"
	rrlDrop := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "rrl_dropped_total",
		Help: "UDP responses dropped by response-rate limiting, by class (answer, nodata, nxdomain, error, malformed).",
	}, []string{"class"})
	rrlSlip := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "rrl_slipped_total",
		Help: "UDP responses sent truncated (TC) by response-rate limiting, by class (answer, nodata, nxdomain, error, malformed).",
	}, []string{"class"})
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "queries_total",
			Help: "DNS requests answered or dropped, by transport and response code.",
		}, []string{"transport", "rcode"}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "malformed_total",
			Help: "Requests that failed to parse or were not a single-question query.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "refused_total",
			Help: "Queries refused because the name is in no served zone.",
		}),
		zones: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "zones",
			Help: "Zones in the served set.",
		}),
		swaps: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "snapshot_swaps_total",
			Help: "Snapshots of the served set the sinkhole took (one a step).",
		}),
		serial: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "serial",
			Help: "SOA serial of the served snapshot.",
		}),
		recorded: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Events handed to the recorder.",
		}),
		signedZones: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "signed_zones",
			Help: "Zones whose DNSSEC signatures are ready (their case signs).",
		}),
		signatures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "signatures_total",
			Help: "RRSIGs made (one per RRset and signing key).",
		}),
		signErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sign_errors_total",
			Help: "Zones whose signing failed (logged).",
		}),
	}
	for c, name := range rrlClassNames {
		m.rrlDrop[c] = rrlDrop.WithLabelValues(name)
		m.rrlSlip[c] = rrlSlip.WithLabelValues(name)
	}
	for t, tr := range []string{"udp", "tcp"} {
		for rc := range m.queryFast[t] {
			if _, ok := dns.RcodeToString[rc]; !ok {
				continue
			}
			m.queryFast[t][rc] = m.queries.WithLabelValues(tr, rcodeString(rc))
		}
	}
	m.collectors = []prometheus.Collector{
		m.queries, rrlDrop, rrlSlip, m.malformed, m.refused,
		m.zones, m.swaps, m.serial, m.recorded, m.signedZones, m.signatures, m.signErrors,
	}
	return m
}

// query counts one request.
func (m *metrics) query(tcp bool, rcode int) {
	t := 0
	if tcp {
		t = 1
	}
	if rcode >= 0 && rcode < len(m.queryFast[t]) && m.queryFast[t][rcode] != nil {
		m.queryFast[t][rcode].Inc()
		return
	}
	m.queries.WithLabelValues([]string{"udp", "tcp"}[t], rcodeString(rcode)).Inc()
}

// rcodeString names an rcode as in events: "NOERROR", or "RCODE23".
func rcodeString(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// qtypeString names a qtype as in events: "A", or "TYPE65534".
func qtypeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}
