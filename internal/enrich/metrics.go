package enrich

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of an Enricher. None carries an address or a path as a label.
type metrics struct {
	hits, misses prometheus.Counter
	lookupErrors prometheus.Counter
	reloads      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, e *Enricher) (metrics, error) {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "takedown", Subsystem: "enrich", Name: "cache_lookups_total",
		Help: "Address lookups by whether the cache answered them (result=hit) or the databases did (result=miss).",
	}, []string{"result"})
	m := metrics{
		hits:   lookups.WithLabelValues("hit"),
		misses: lookups.WithLabelValues("miss"),
		lookupErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "takedown", Subsystem: "enrich", Name: "lookup_errors_total",
			Help: "Database lookups that failed on corrupt data; the lookup went on with the other databases.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "takedown", Subsystem: "enrich", Name: "loads_total",
			Help: "Loads of configured files, at start and on change, by result (ok, error).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "takedown", Subsystem: "enrich", Name: "cache_entries",
		Help: "Addresses in the lookup cache.",
	}, func() float64 {
		if s := e.snap.Load(); s != nil {
			return float64(s.cache.len())
		}
		return 0
	})
	failing := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "takedown", Subsystem: "enrich", Name: "sources_failing",
		Help: "Configured files whose last load failed (see takedown status for which).",
	}, func() float64 {
		n := 0
		for _, si := range e.Sources() {
			if si.Err != nil {
				n++
			}
		}
		return float64(n)
	})
	var errs []error
	for _, c := range []prometheus.Collector{lookups, m.lookupErrors, m.reloads, entries, failing} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return m, fmt.Errorf("enrich: registering metrics: %w", err)
	}
	return m, nil
}
