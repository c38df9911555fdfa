package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/spool"
)

// ingester records the events that sensors send to POST /v1/ingest as if
// its own sinks had seen them: stamped with the sensor id, attributed to
// the seized zone their name falls under, classified by the same rules,
// and recorded in the pipeline (which enriches, counts and stores them).
type ingester struct {
	pipe *pipeline.Pipeline
	// sp is synced before the answer: a sensor deletes what it sent once
	// it has the answer.
	sp    *spool.Spool
	zones zoneSource // the served set
	rules *classify.Holder
	// busy reports that the spool has less room left than the sinks must
	// keep: sensors then wait (503), the live sinks never drop for them.
	busy func() bool
	// received counts events per sensor and outcome.
	received *prometheus.CounterVec
}

func newIngester(pipe *pipeline.Pipeline, sp *spool.Spool, zones zoneSource, rules *classify.Holder, busy func() bool, reg prometheus.Registerer) *ingester {
	in := &ingester{
		pipe: pipe, sp: sp, zones: zones, rules: rules, busy: busy,
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "takedown_ingest_events_total",
			Help: "Events received from sensors on /v1/ingest, by sensor and outcome (recorded, skipped, busy).",
		}, []string{"sensor", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(in.received)
	}
	return in
}

// ingest implements api.IngestFunc. DNS queries for names the sinkhole
// does not serve are skipped, as the sinkhole skips them; every other
// event is recorded. It stops (busy) when the spool is past the share
// kept for the live sinks, or refuses an event. What it accepted is
// written to the spool's file and fsynced before it returns: the answer
// means stored, or stored after a crash. When that fails, nothing is
// taken as accepted (the sensor sends it all again).
func (in *ingester) ingest(ctx context.Context, sensor string, events []event.Event) (res api.IngestResult, err error) {
	lostBefore := in.sp.Stats().DroppedWrite
	defer func() {
		if res.Accepted == 0 {
			return
		}
		if serr := in.sp.Sync(); serr != nil || in.sp.Stats().DroppedWrite > lostBefore {
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
			if in.busy != nil && in.busy() {
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
			if zone, kase, fam, ok := in.zones.Zone(e.Domain); ok {
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
			in.rules.ClassifyEvent(e)
		}
		if !in.pipe.Offer(e) {
			in.received.WithLabelValues(sensor, "busy").Add(float64(len(events) - i))
			return res, api.ErrBusy
		}
		res.Accepted++
	}
	return res, nil
}

// ingestBusy is true while the spool holds more than half its limit, or
// more than a quarter of its memory buffer waits for the disk: the rest
// is the live sinks'.
func ingestBusy(sp *spool.Spool, maxBytes int64) func() bool {
	return func() bool {
		st := sp.Stats()
		return st.Bytes > maxBytes/2 || st.Buffered > spool.DefaultMaxBufferBytes/4
	}
}
