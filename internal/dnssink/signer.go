package dnssink

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/takedown-project/takedown/internal/servedset"
)

// signer keeps the signed zones of a server up to date, in a goroutine of
// its own: the query path only reads what it made. It signs a zone when
// the zone is put in a signing case, when its case's keys or TXT or the
// answers of every zone change, and when half the validity of its
// signatures has passed; it forgets zones that are no longer served or
// signed. A step of the served set costs it the zones the step names; a
// change of keys or answers, and the periodic check, a pass over the zones,
// signed by half the Ps (at least one).
type signer struct {
	s     *Server
	zones *signedZones
	every time.Duration // how often to look for signatures to refresh

	mu     sync.Mutex
	deltas []*servedset.Delta
	full   bool // a pass over every zone is due
	last   *view

	wake, stop, done chan struct{}
	start, halt      sync.Once
	running          atomic.Bool
}

// maxDeltas bounds the steps queued while the signer is busy; beyond it a
// pass over every zone replaces them. urgentQueue bounds the zones asked
// for before their turn (more are dropped: asked again, they come back).
const (
	maxDeltas   = 1024
	urgentQueue = 4096
)

func newSigner(s *Server, zones *signedZones, every time.Duration) *signer {
	return &signer{
		s: s, zones: zones, every: every,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// note queues a step of the served set (nil: the set was replaced) and
// wakes the signer. It does not block: it runs where the set changes.
func (g *signer) note(d *servedset.Delta, v *view) {
	if v.signs == nil && !g.running.Load() {
		return // nothing signs, nor ever did: no goroutine
	}
	g.mu.Lock()
	if d == nil || len(g.deltas) >= maxDeltas {
		g.full, g.deltas = true, nil
	} else if !g.full {
		g.deltas = append(g.deltas, d)
	}
	g.mu.Unlock()
	g.start.Do(func() {
		g.mu.Lock()
		g.full = true
		g.mu.Unlock()
		g.running.Store(true)
		go g.loop()
	})
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// shutdown stops the signer and waits for it.
func (g *signer) shutdown() {
	g.halt.Do(func() {
		close(g.stop)
		started := true
		g.start.Do(func() { started = false })
		if started {
			<-g.done
		}
	})
}

func (g *signer) loop() {
	defer close(g.done)
	t := time.NewTicker(g.every)
	defer t.Stop()
	for {
		g.run()
	wait:
		for {
			select {
			case <-g.stop:
				return
			case apex := <-g.zones.urgent:
				g.signUrgent(apex)
			case <-g.wake:
				break wait
			case <-t.C:
				g.mu.Lock()
				g.full = true
				g.mu.Unlock()
				break wait
			}
		}
	}
}

// kick makes the signer pass over every zone now, as its timer does.
func (g *signer) kick() {
	g.mu.Lock()
	g.full = true
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// stopped reports whether shutdown began; on the way it signs the zones
// that queries asked for before their turn.
func (g *signer) stopped() bool {
	for {
		select {
		case <-g.stop:
			return true
		case apex := <-g.zones.urgent:
			g.signUrgent(apex)
		default:
			return false
		}
	}
}

// signUrgent signs a zone a query asked for, in the current view.
func (g *signer) signUrgent(apex string) {
	if g.check(g.s.view.Load(), apex, g.s.now()) > 0 {
		g.s.m.signedZones.Set(float64(g.zones.n.Load()))
	}
}

// run brings the signed zones up to the current view.
func (g *signer) run() {
	v := g.s.view.Load()
	g.mu.Lock()
	deltas, full, last := g.deltas, g.full, g.last
	g.deltas, g.full = nil, false
	g.mu.Unlock()
	if last == nil || last.ans != v.ans || !sameSigns(last.signs, v.signs) {
		full = true
	}
	start := time.Now()
	signed := 0
	if full {
		signed = g.pass(v)
	} else {
		for _, d := range deltas {
			for _, name := range d.Remove {
				g.zones.del(lowerName(name))
			}
			for _, z := range d.Put {
				if g.stopped() {
					return
				}
				signed += g.check(v, lowerName(z.Name), g.s.now())
			}
		}
	}
	g.mu.Lock()
	g.last = v
	g.mu.Unlock()
	g.s.m.signedZones.Set(float64(g.zones.n.Load()))
	if signed > 0 {
		g.s.log.Info("zones signed", "zones", signed, "signed_zones", g.zones.n.Load(), "serial", v.set.Serial(), "took", time.Since(start))
	}
}

func sameSigns(a, b []*zoneKeys) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// pass checks every zone of v and forgets the signed zones v no longer
// serves; it returns the number of zones it signed.
func (g *signer) pass(v *view) int {
	var signed atomic.Int64
	if v.signs != nil {
		// Half the Ps sign (at least one): the rest answer queries.
		now := g.s.now()
		work := make(chan string, 64)
		var wg sync.WaitGroup
		for range max(1, runtime.GOMAXPROCS(0)/2) {
			wg.Go(func() {
				for apex := range work {
					select {
					case <-g.stop:
					default:
						signed.Add(int64(g.check(v, apex, now)))
					}
				}
			})
		}
		for apex := range v.set.All() {
			if g.stopped() {
				break
			}
			work <- apex
		}
		close(work)
		wg.Wait()
		if g.stopped() {
			return int(signed.Load())
		}
	}
	for _, apex := range g.zones.apexes() {
		if m, ok := v.set.Lookup([]byte(apex)); !ok || m.Start != 0 || int(m.Case) >= len(v.signs) || v.signs[m.Case] == nil {
			g.zones.del(apex)
		}
	}
	return int(signed.Load())
}

// check signs zone apex (lower case) if it needs it, forgets it if it is
// not to be signed, and returns 1 if it signed it.
func (g *signer) check(v *view, apex string, now time.Time) int {
	m, ok := v.set.Lookup([]byte(apex))
	if !ok || m.Start != 0 {
		g.zones.del(apex)
		return 0
	}
	var zk *zoneKeys
	if int(m.Case) < len(v.signs) {
		zk = v.signs[m.Case]
	}
	if zk == nil || zk.ans.holdsNS(m.Apex) {
		g.zones.del(m.Apex)
		return 0
	}
	prev := g.zones.get(m.Apex)
	if prev != nil && prev.zk == zk && !prev.refreshDue(now) {
		return 0
	}
	sz, err := zk.sign(m.Apex, nextSerial(prev, v.set.Serial()), now)
	if err != nil {
		g.s.m.signErrors.Inc()
		g.s.log.Error("signing zone", "zone", m.Apex, "err", err)
		return 0
	}
	g.zones.put(m.Apex, sz) // the snapshot's string: no copy of the name
	g.s.m.signatures.Add(float64(len(sz.sigs) / sigLen))
	return 1
}
