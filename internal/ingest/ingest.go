// Package ingest records what remote sensors observed (POST /v1/ingest) as if
// the local sinks had seen it: each event stamped with the sensor's id,
// attributed to the seized zone its name falls under (the served set),
// classified by the same rules (a sensor's own family is not trusted), and
// handed to the pipeline, which enriches, counts and stores it.
//
// The answer means durable: what was accepted is written to the spool's file
// and fsynced before Ingest returns, so that a sensor may delete what it
// sent once it has the answer, whatever happens to this process after. When
// that fails nothing is taken as accepted and the sensor sends it all again.
// A sensor's backlog never crowds out the live sinks: past a share of the
// spool the answer is busy (503) and the sensor waits.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/spool"
)

// Pipeline takes the events (pipeline.Pipeline.Offer): false when the spool
// cannot take more now, nothing lost since the sender keeps the event.
type Pipeline interface {
	Offer(e *event.Event) bool
}

// Spool is what makes the answer durable: Sync writes and fsyncs what was
// appended; Stats counts what failed writes lost.
type Spool interface {
	Sync() error
	Stats() spool.Stats
}

// Zones attributes a name to its seized zone and case (servedset.Set).
type Zones interface {
	Zone(host string) (zone, caseName, family string, ok bool)
}

// Classifier names an event's family from what it keeps, e.Family being its
// case's family on the way in (classify.Holder).
type Classifier interface {
	ClassifyEvent(e *event.Event)
}

// Config configures an Ingester.
type Config struct {
	Pipeline   Pipeline   // required
	Spool      Spool      // required
	Zones      Zones      // required
	Classifier Classifier // required
	// Busy, if set, reports that the spool has less room left than the
	// sinks must keep (SpoolBusy): sensors then wait.
	Busy func() bool
	// Registerer receives takedown_ingest_events_total; nil: none.
	Registerer prometheus.Registerer
}

// Ingester records sensors' events.
type Ingester struct {
	cfg Config
	// received counts events per sensor and outcome.
	received *prometheus.CounterVec
}

// New returns an Ingester.
func New(cfg Config) *Ingester {
	in := &Ingester{
		cfg: cfg,
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "takedown_ingest_events_total",
			Help: "Events received from sensors on /v1/ingest, by sensor and outcome (recorded, skipped, busy).",
		}, []string{"sensor", "outcome"}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(in.received)
	}
	return in
}

// Ingest implements api.IngestFunc. DNS queries for names the sinkhole
// does not serve are skipped, as the sinkhole skips them; every other event
// is recorded. It stops (busy) when the spool is past the share kept for
// the live sinks, or refuses an event.
func (in *Ingester) Ingest(ctx context.Context, sensor string, events []event.Event) (res api.IngestResult, err error) {
	lostBefore := in.cfg.Spool.Stats().DroppedWrite
	defer func() {
		if res.Accepted == 0 {
			return
		}
		if serr := in.cfg.Spool.Sync(); serr != nil || in.cfg.Spool.Stats().DroppedWrite > lostBefore {
			if serr == nil {
				serr = errors.New("a write of the spool failed")
			}
			in.received.WithLabelValues(sensor, "busy").Add(float64(len(events)))
			res, err = api.IngestResult{}, fmt.Errorf("%w: the events could not be made durable, send them again: %v", api.ErrBusy, serr)
			return
		}
		in.received.WithLabelValues(sensor, "recorded").Add(float64(res.Accepted - res.Skipped))
		in.received.WithLabelValues(sensor, "skipped").Add(float64(res.Skipped))
	}()
	for i := range events {
		if i%1024 == 0 {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			if in.cfg.Busy != nil && in.cfg.Busy() {
				in.received.WithLabelValues(sensor, "busy").Add(float64(len(events) - i))
				return res, api.ErrBusy
			}
		}
		e := &events[i]
		e.Sensor = sensor
		e.Domain = strings.TrimSuffix(strings.ToLower(e.Domain), ".")
		var caseFamily string
		e.Zone, e.Case = "", ""
		if e.Domain != "" {
			if zone, kase, fam, ok := in.cfg.Zones.Zone(e.Domain); ok {
				e.Zone, e.Case, caseFamily = zone, kase, fam
			}
		}
		if e.Protocol == event.ProtoDNS {
			if e.Zone == "" && !e.Malformed {
				res.Accepted++
				res.Skipped++
				continue
			}
			// The pipeline classifies DNS events, from the case's family.
			e.Family, e.Tag, e.BotID = caseFamily, "", ""
		} else {
			e.Family = caseFamily
			in.cfg.Classifier.ClassifyEvent(e)
		}
		if !in.cfg.Pipeline.Offer(e) {
			in.received.WithLabelValues(sensor, "busy").Add(float64(len(events) - i))
			return res, api.ErrBusy
		}
		res.Accepted++
	}
	return res, nil
}

// SpoolBusy is true while the spool holds more than half its limit, or more
// than a quarter of its memory buffer waits for the disk: the rest is the
// live sinks'.
func SpoolBusy(sp *spool.Spool, maxBytes int64) func() bool {
	return func() bool {
		st := sp.Stats()
		return st.Bytes > maxBytes/2 || st.Buffered > spool.DefaultMaxBufferBytes/4
	}
}
