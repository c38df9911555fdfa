package pipeline

import (
	"sync"
	"time"

	"github.com/takedown-project/takedown/internal/spool"
)

// lagClock measures the store's lag: how long the oldest record that is in
// the spool and not yet stored has been waiting. Events carry the time the
// sinkhole saw them, which says nothing of when they reached this spool (a
// sensor's backfill is weeks old), so the clock samples instead where the
// spool's written end was at which time, every sampleEvery; the oldest
// unstored record was written after the last sample at or before the
// stored position. The lag is known to within sampleEvery, and never
// under-reported.
type lagClock struct {
	mu      sync.Mutex
	samples []lagSample // oldest first
	stored  spool.Pos   // the position after the last stored record
}

type lagSample struct {
	t    time.Time
	head spool.Pos
}

// sampleEvery is how often the written end is sampled.
const sampleEvery = 250 * time.Millisecond

// maxSamples bounds the samples kept while the store is behind (7 hours
// at 4 a second); past it every other one is dropped, which only makes the
// lag coarser, never smaller.
const maxSamples = 100_000

// start begins at from, at time now: the records before from are stored,
// and what the spool holds after it waits since now.
func (c *lagClock) start(from spool.Pos, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stored = from
	c.samples = append(c.samples[:0], lagSample{t: now, head: from})
}

// sample records that the spool's written end was head at now.
func (c *lagClock) sample(head spool.Pos, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.samples); n > 0 && c.samples[n-1].head == head {
		return // nothing written since: the older sample stays the bound
	}
	if len(c.samples) >= maxSamples {
		k := 1
		for i := 1; i < len(c.samples); i += 2 {
			c.samples[k] = c.samples[i]
			k++
		}
		c.samples = c.samples[:k]
	}
	c.samples = append(c.samples, lagSample{t: now, head: head})
}

// storedUpTo records that every record before p is stored.
func (c *lagClock) storedUpTo(p spool.Pos) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stored = p
	// Keep the last sample at or before p: the bound of what follows.
	i := 0
	for i+1 < len(c.samples) && c.samples[i+1].head.Compare(p) <= 0 {
		i++
	}
	c.samples = c.samples[i:]
}

// lag returns how long the oldest unstored record has waited, at now.
func (c *lagClock) lag(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.samples) < 2 {
		return 0 // nothing written since the only sample, or none
	}
	// samples[0] is at or before stored (storedUpTo keeps it so), and
	// samples[1] after it: records written in between wait since
	// samples[0].
	if c.samples[1].head.Compare(c.stored) <= 0 {
		return 0
	}
	return max(0, now.Sub(c.samples[0].t))
}
