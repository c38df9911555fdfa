package xfr

import (
	"net/netip"
	"sync"
	"time"
)

// A refusal is why a request was refused: code labels the metric, text
// goes into the log line.
type refusal struct{ code, text string }

var (
	refuseACL       = refusal{"acl", "source not in allow list"}
	refuseUnsigned  = refusal{"unsigned", "tsig required"}
	refuseBadTSIG   = refusal{"tsig", "tsig"} // logged with the verification error
	refuseNotServed = refusal{"not_served", "zone not served"}
	refuseAXFRUDP   = refusal{"axfr_udp", "axfr over udp"}
)

// Bounds of the refusal log.
const (
	// refusalLogEvery: a source's refusals for one reason are logged once
	// in this long, the next line telling how many went unlogged.
	refusalLogEvery = 10 * time.Minute
	// refusalLogRate and refusalLogBurst bound the lines a second over
	// all sources, so that spoofed sources cannot flood the log.
	refusalLogRate  = 5
	refusalLogBurst = 20
	// refusalLogSources bounds the sources remembered.
	refusalLogSources = 4096
)

// refusalLog decides which refusals are logged: the first of a source,
// reason and kind of request (query, AXFR, IXFR), then one every refusalLogEvery, and no more than refusalLogRate
// lines a second in all (burst refusalLogBurst). Every refusal is counted
// in the metrics whether logged or not.
type refusalLog struct {
	mu       sync.Mutex
	now      func() time.Time
	seen     map[refusalKey]*refusalSeen
	tokens   float64
	last     time.Time
	unlogged int // refusals of sources not yet logged, left out by the rate
}

type refusalKey struct {
	src  netip.Addr
	code string
	typ  string // axfr, ixfr; "" for a query
}

type refusalSeen struct {
	at    time.Time // last logged
	quiet int       // refused since, not logged
}

func newRefusalLog() *refusalLog {
	return &refusalLog{now: time.Now, seen: map[refusalKey]*refusalSeen{}}
}

// allow reports whether to log this refusal of a request of src (a
// transfer of type typ, or a query when typ is "") for why; if so, also
// how many such refusals were not logged since its last line (quiet) and
// how many first refusals of other sources the overall rate left out
// (unlogged).
func (l *refusalLog) allow(src netip.Addr, typ string, why refusal) (ok bool, quiet, unlogged int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := refusalKey{src, why.code, typ}
	e := l.seen[k]
	if e != nil && now.Sub(e.at) < refusalLogEvery {
		e.quiet++
		return false, 0, 0
	}
	l.tokens = min(refusalLogBurst, l.tokens+now.Sub(l.last).Seconds()*refusalLogRate)
	l.last = now
	if l.tokens < 1 {
		if e != nil {
			e.quiet++
		} else {
			l.unlogged++
		}
		return false, 0, 0
	}
	l.tokens--
	if e == nil {
		if len(l.seen) >= refusalLogSources {
			for k, v := range l.seen {
				if now.Sub(v.at) >= refusalLogEvery {
					delete(l.seen, k)
				}
			}
			if len(l.seen) >= refusalLogSources {
				clear(l.seen) // a flood of sources: start over
			}
		}
		e = &refusalSeen{}
		l.seen[k] = e
	}
	quiet, unlogged = e.quiet, l.unlogged
	e.at, e.quiet, l.unlogged = now, 0, 0
	return true, quiet, unlogged
}
