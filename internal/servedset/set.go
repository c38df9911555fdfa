package servedset

import (
	"sync"
	"sync/atomic"
)

// Set holds the current snapshot of the served set: readers take it with
// Load (an atomic pointer: no lock, no wait), the one side that owns the set
// moves it forward with Apply or Replace, and consumers that derive
// something from it (the DNS sinkhole's packed answers, the RPZ feed) hear
// of each step through Subscribe. The zero value is not usable: make it
// with NewSet.
type Set struct {
	cur  atomic.Pointer[Snapshot]
	mu   sync.Mutex // serialises changes and the calls to subscribers
	subs map[int]func(Update)
	next int
}

// Update is one step of a Set, as its subscribers hear of it.
type Update struct {
	// Old and New are the snapshots before and after.
	Old, New *Snapshot
	// Delta is the step from Old to New; nil when New replaced Old whole
	// (Replace), which subscribers take as a new start.
	Delta *Delta
}

// NewSet returns a set that holds Empty.
func NewSet() *Set {
	s := &Set{subs: map[int]func(Update){}}
	s.cur.Store(Empty())
	return s
}

// Load returns the current snapshot.
func (s *Set) Load() *Snapshot { return s.cur.Load() }

// Zone is Load().Zone: the zone, case and family of a host name, for the
// listeners and the ingest endpoint.
func (s *Set) Zone(name string) (zone, caseName, family string, ok bool) {
	return s.cur.Load().Zone(name)
}

// Apply moves the set one step: d must follow the current snapshot (see
// Snapshot.Apply). The new snapshot is visible to Load before the
// subscribers are called, in the order they subscribed, in this goroutine.
func (s *Set) Apply(d *Delta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	n, err := old.Apply(d)
	if err != nil {
		return err
	}
	s.publish(Update{Old: old, New: n, Delta: d})
	return nil
}

// Replace makes n the current snapshot whatever came before: a full load at
// start, or a full form received after the deltas were lost.
func (s *Set) Replace(n *Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publish(Update{Old: s.cur.Load(), New: n})
}

func (s *Set) publish(u Update) {
	s.cur.Store(u.New)
	for i := range s.next {
		if fn, ok := s.subs[i]; ok {
			fn(u)
		}
	}
}

// Subscribe calls fn with every later step of the set, until cancel is
// called. fn runs in the goroutine that changes the set, with the set's
// lock held: it must not change the set itself, and what it takes long to
// do delays the next change.
func (s *Set) Subscribe(fn func(Update)) (cancel func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.next
	s.next++
	s.subs[id] = fn
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}
