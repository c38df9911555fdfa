package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/spool"
)

// readiness answers GET /readyz, without authentication, for load
// balancers and service managers: 200 once every listener is bound, the
// store answers and takes batches, the spool can write and its filesystem
// is above the free-space reserve, and the pipeline has replayed the spool
// that the previous run left; 503 before, while any of these fails, and
// from the start of the shutdown on. The body names each check and what is
// not ready:
//
//	{"ready":false,"not_ready":["spool"],"checks":{"listeners":"ok","store":"ok","spool":"replaying: 5000 events stored since the start"}}
//
// GET /healthz (the API's) is the liveness check: 200 while the process
// serves HTTP at all.
type readiness struct {
	// store is the event store; nil on a sensor.
	store interface{ Ping(context.Context) error }
	pipe  *pipeline.Pipeline
	sp    *spool.Spool
	// evid is the evidence log; nil when it is off.
	evid *evidenceLog
	// listening is set once every listener is bound, and cleared when the
	// shutdown starts.
	listening atomic.Bool
	stopping  atomic.Bool
}

// readyBody is the JSON of GET /readyz.
type readyBody struct {
	Ready    bool              `json:"ready"`
	NotReady []string          `json:"not_ready"`
	Checks   map[string]string `json:"checks"`
}

func newReadyBody() *readyBody {
	return &readyBody{NotReady: []string{}, Checks: map[string]string{}}
}

// set records the check name: ok when problem is "", else not ready with
// problem.
func (b *readyBody) set(name, problem string) {
	if problem == "" {
		b.Checks[name] = "ok"
		return
	}
	b.Checks[name] = problem
	b.NotReady = append(b.NotReady, name)
}

// write answers with b: 200 when nothing is not ready, else 503.
func (b *readyBody) write(w http.ResponseWriter) {
	b.Ready = len(b.NotReady) == 0
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !b.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(b) //nolint:errcheck // the client went away
}

func (rd *readiness) check(ctx context.Context) *readyBody {
	b := newReadyBody()
	set := b.set
	switch {
	case rd.stopping.Load():
		set("listeners", "shutting down")
	case !rd.listening.Load():
		set("listeners", "not bound yet")
	default:
		set("listeners", "")
	}
	// A sensor has no store: its events wait in the spool for the stream.
	if rd.store != nil {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		switch err := rd.store.Ping(ctx); {
		case err != nil:
			set("store", err.Error())
		case rd.pipe.StoreError() != nil:
			set("store", "cannot commit: "+rd.pipe.StoreError().Error())
		default:
			set("store", "")
		}
	}
	ss := rd.sp.Stats()
	switch err := rd.sp.WriteError(); {
	case err != nil:
		set("spool", "cannot write, new events are lost: "+err.Error())
	case ss.LowSpace:
		set("spool", "its filesystem is below the free-space reserve (pipeline.disk_reserve_mb): new events are dropped")
	case rd.pipe == nil:
		set("spool", "")
	default:
		select {
		case <-rd.pipe.Replayed():
			set("spool", "")
		default:
			set("spool", fmt.Sprintf("replaying: %d events stored since the start", rd.pipe.Stats().Stored))
		}
	}
	if rd.evid != nil {
		set("evidence", rd.evid.overdue(time.Now()))
	}
	b.Ready = len(b.NotReady) == 0
	return b
}

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rd.check(r.Context()).write(w)
}
