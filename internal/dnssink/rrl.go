package dnssink

import (
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync"
	"time"
)

// rrlAction is the rate limiter's verdict on one UDP response.
type rrlAction uint8

const (
	rrlAllow rrlAction = iota // send the response
	rrlSlip                   // send it truncated and empty, so that a real client retries over TCP
	rrlDrop                   // send nothing
)

// rrlWays is the associativity of the rate limiter's table.
const rrlWays = 4

// rateLimiter limits UDP responses per client prefix with a token bucket
// per prefix, kept as a GCRA "theoretical arrival time": one int64.
//
// Memory is fixed: a table of sets of rrlWays entries, indexed by a keyed
// hash of the prefix (the key is random per start, so that nobody can aim
// collisions at a victim's entry). A new prefix takes a free way or the way
// idle longest; its bucket starts full. No cleanup goroutine is needed.
type rateLimiter struct {
	interval int64 // nanoseconds per response
	window   int64 // burst: one second's worth of responses
	slip     uint32
	v4bits   int
	v6bits   int
	seed     maphash.Seed
	mask     uint64
	sets     []rrlSet
}

type rrlKey struct {
	hi, lo uint64
	v6     bool
}

type rrlEntry struct {
	key   rrlKey
	tat   int64 // theoretical arrival time, unix nanoseconds; 0 = free
	slips uint32
}

type rrlSet struct {
	mu sync.Mutex
	e  [rrlWays]rrlEntry
}

// newRateLimiter returns nil (no limit) when cfg.ResponsesPerSecond is 0.
func newRateLimiter(cfg RRLConfig, tableSize int) *rateLimiter {
	if cfg.ResponsesPerSecond <= 0 {
		return nil
	}
	nsets := max(1, tableSize/rrlWays)
	nsets = 1 << bits.Len(uint(nsets-1)) // power of two
	return &rateLimiter{
		interval: int64(time.Second) / int64(cfg.ResponsesPerSecond),
		window:   int64(time.Second),
		slip:     uint32(cfg.Slip),
		v4bits:   cfg.IPv4PrefixLen,
		v6bits:   cfg.IPv6PrefixLen,
		seed:     maphash.MakeSeed(),
		mask:     uint64(nsets - 1),
		sets:     make([]rrlSet, nsets),
	}
}

func (r *rateLimiter) key(a netip.Addr) rrlKey {
	a = a.Unmap()
	if a.Is4() {
		p, _ := a.Prefix(r.v4bits)
		b := p.Addr().As4()
		return rrlKey{lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	p, _ := a.Prefix(r.v6bits)
	b := p.Addr().As16()
	var k rrlKey
	for i := 0; i < 8; i++ {
		k.hi = k.hi<<8 | uint64(b[i])
		k.lo = k.lo<<8 | uint64(b[8+i])
	}
	k.v6 = true
	return k
}

// check decides on one response to a; a nil limiter allows everything.
func (r *rateLimiter) check(a netip.Addr, now time.Time) rrlAction {
	if r == nil {
		return rrlAllow
	}
	k := r.key(a)
	t := now.UnixNano()
	set := &r.sets[maphash.Comparable(r.seed, k)&r.mask]
	set.mu.Lock()
	var e *rrlEntry
	for i := range set.e {
		if set.e[i].tat != 0 && set.e[i].key == k {
			e = &set.e[i]
			break
		}
	}
	if e == nil {
		e = &set.e[0]
		for i := 1; i < rrlWays; i++ {
			if set.e[i].tat < e.tat {
				e = &set.e[i]
			}
		}
		*e = rrlEntry{key: k, tat: t}
	}
	tat := max(e.tat, t) + r.interval
	if tat-t > r.window {
		e.slips++
		n := e.slips
		set.mu.Unlock()
		if r.slip > 0 && n%r.slip == 0 {
			return rrlSlip
		}
		return rrlDrop
	}
	e.tat = tat
	set.mu.Unlock()
	return rrlAllow
}
