package enrich

import (
	"net/netip"
	"sync/atomic"
)

// cache remembers the Result of recent addresses. It is a two-way
// set-associative array of atomic pointers: a lookup reads at most two
// slots and takes no lock, an insert replaces one of the two with a fresh
// entry. Its size is fixed when it is made, so memory stays bounded; an
// address that loses its slot is simply looked up again.
//
// Each snapshot of the sources has its own cache, so a reload never serves
// an answer of the data it replaced.
type cache struct {
	slots []atomic.Pointer[cacheEntry]
	mask  uint64
}

type cacheEntry struct {
	addr netip.Addr
	res  Result
}

// newCache returns a cache of at least size entries (rounded up to a
// power of two), or nil when size is not positive.
func newCache(size int) *cache {
	if size <= 0 {
		return nil
	}
	n := 2
	for n < size {
		n <<= 1
	}
	return &cache{slots: make([]atomic.Pointer[cacheEntry], n), mask: uint64(n - 1)}
}

// hashAddr mixes the 128 bits of a into 64 (the finaliser of SplitMix64).
func hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	x := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	y := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
		uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	h := x ^ (y * 0x9e3779b97f4a7c15)
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// get returns the cached Result of a.
func (c *cache) get(a netip.Addr) (Result, bool) {
	i := hashAddr(a) & c.mask
	if e := c.slots[i].Load(); e != nil && e.addr == a {
		return e.res, true
	}
	if e := c.slots[i^1].Load(); e != nil && e.addr == a {
		return e.res, true
	}
	return Result{}, false
}

// put stores r for a: in an empty slot of the pair if there is one, else
// over the entry that a's hash picks.
func (c *cache) put(a netip.Addr, r Result) {
	h := hashAddr(a)
	i := h & c.mask
	if c.slots[i].Load() != nil && (c.slots[i^1].Load() == nil || h>>63 == 1) {
		i ^= 1
	}
	c.slots[i].Store(&cacheEntry{addr: a, res: r})
}

// len counts the filled slots; for tests and the entries gauge.
func (c *cache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.slots {
		if c.slots[i].Load() != nil {
			n++
		}
	}
	return n
}
