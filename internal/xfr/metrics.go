package xfr

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	transfers       *prometheus.CounterVec
	refused         *prometheus.CounterVec
	notifies        *prometheus.CounterVec
	journalVersions *prometheus.GaugeVec
	journalRecords  *prometheus.GaugeVec
	zoneRecords     *prometheus.GaugeVec
	zoneSerial      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "takedown", Subsystem: "xfr", Name: "transfers_total",
			Help: "Zone transfer requests by type (axfr, ixfr) and result (full, incremental, uptodate, tcp, refused, notauth, notfound, formerr, error).",
		}, []string{"type", "result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "takedown", Subsystem: "xfr", Name: "refused_total",
			Help: "Requests refused (queries and transfers), by reason: acl, unsigned, tsig, not_served, axfr_udp.",
		}, []string{"reason"}),
		notifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "takedown", Subsystem: "xfr", Name: "notifies_total",
			Help: "NOTIFY messages by result: sent (acknowledged), retried, failed (given up).",
		}, []string{"result"}),
		journalVersions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "takedown", Subsystem: "xfr", Name: "journal_versions",
			Help: "Journal steps kept per journaled zone.",
		}, []string{"zone"}),
		journalRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "takedown", Subsystem: "xfr", Name: "journal_records",
			Help: "Records (deleted plus added) held in the journal per journaled zone.",
		}, []string{"zone"}),
		zoneRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "takedown", Subsystem: "xfr", Name: "zone_records",
			Help: "Records of the current version per journaled zone.",
		}, []string{"zone"}),
		zoneSerial: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "takedown", Subsystem: "xfr", Name: "zone_serial",
			Help: "SOA serial of the current version per journaled zone.",
		}, []string{"zone"}),
	}
	for _, r := range []string{"sent", "retried", "failed"} {
		m.notifies.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.transfers, m.refused, m.notifies, m.journalVersions, m.journalRecords, m.zoneRecords, m.zoneSerial} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) transfer(typ, result string) {
	m.transfers.WithLabelValues(typ, result).Inc()
}

func (m *metrics) zoneSet(name string, st *state) {
	n := 0
	for _, d := range st.journal {
		n += d.size()
	}
	m.journalVersions.WithLabelValues(name).Set(float64(len(st.journal)))
	m.journalRecords.WithLabelValues(name).Set(float64(n))
	m.zoneRecords.WithLabelValues(name).Set(float64(st.cur.content.Len()))
	m.zoneSerial.WithLabelValues(name).Set(float64(st.cur.soa.Serial))
}
