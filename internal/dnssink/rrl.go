package dnssink

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// rrlAction is the rate limiter's verdict on one UDP response.
type rrlAction uint8

const (
	rrlAllow rrlAction = iota // send the response
	rrlSlip                   // send it truncated and empty, so that a real client retries over TCP
	rrlDrop                   // send nothing
)

// rrlClass is the kind of a response, as the rate limiter counts it. Each
// class has buckets of its own, so that one kind of response never uses up
// the budget of another: a flood of junk cannot silence the answers to a
// resolver's real queries.
type rrlClass uint8

const (
	// rrlAnswer: a positive answer, keyed by the owner of the data and the
	// qtype. The owner is the zone apex for the apex and for every name the
	// wildcard answers (BIND counts wildcard answers as its parent's), the
	// name itself for an in-zone name server.
	rrlAnswer rrlClass = iota
	// rrlNoData: NOERROR without an answer, keyed by the zone (any qtype).
	rrlNoData
	// rrlNXDomain: NXDOMAIN, keyed by the zone, so that a flood of random
	// names is limited together.
	rrlNXDomain
	// rrlError: REFUSED, BADVERS and other errors to well-formed queries,
	// keyed by the client prefix alone.
	rrlError
	// rrlMalformed: FORMERR and NOTIMP, the answers to malformed input,
	// keyed by the client prefix alone.
	rrlMalformed
	// rrlSigned: every signed answer (DO, signed zone) to a client
	// prefix, keyed by the prefix alone, at SignedPerSecond. It is a
	// second budget a signed answer must pass after its own (see limit),
	// not a class classOf gives.
	rrlSigned

	rrlClasses
)

// rrlClassNames label the rate limiter's metrics.
var rrlClassNames = [rrlClasses]string{"answer", "nodata", "nxdomain", "error", "malformed", "signed"}

// classOf tells the class of a response by its rcode and whether it has
// answers.
func classOf(rcode int, answers bool) rrlClass {
	switch rcode {
	case dns.RcodeSuccess:
		if answers {
			return rrlAnswer
		}
		return rrlNoData
	case dns.RcodeNameError:
		return rrlNXDomain
	case dns.RcodeFormatError, dns.RcodeNotImplemented:
		return rrlMalformed
	}
	return rrlError
}

// rrlWays is the associativity of the rate limiter's table.
const rrlWays = 4

// rateLimiter limits UDP responses per client prefix and response — class,
// owner name, qtype — with a token bucket per key, kept as a GCRA
// "theoretical arrival time": one int64.
//
// Memory is fixed: a table of sets of rrlWays entries. An entry is known by
// a 64-bit keyed hash of its key (the seed is random per start, so that
// nobody can aim collisions at a victim's entry), which also picks its set.
// A new key takes a free way or the way with the earliest arrival time;
// its bucket starts full. An entry whose arrival time has passed holds no
// more than a new one would, so replacing it loses nothing; one that is
// limiting has an arrival time in the future and is replaced last. No
// cleanup goroutine is needed.
type rateLimiter struct {
	interval [rrlClasses]int64 // nanoseconds per response, by class
	window   int64             // burst: one second's worth of responses
	slip     uint32
	v4bits   int
	v6bits   int
	seed     maphash.Seed
	mask     uint64
	sets     []rrlSet
	exempt   exemptSet
}

type rrlEntry struct {
	key   uint64
	tat   int64 // theoretical arrival time, unix nanoseconds; 0 = free
	slips uint32
}

type rrlSet struct {
	mu sync.Mutex
	e  [rrlWays]rrlEntry
}

// newRateLimiter returns nil (no limit) when cfg.ResponsesPerSecond and
// cfg.SignedPerSecond are 0. cfg has its defaults filled in.
func newRateLimiter(cfg RRLConfig, tableSize int) *rateLimiter {
	if cfg.ResponsesPerSecond <= 0 && cfg.SignedPerSecond <= 0 {
		return nil
	}
	nsets := max(1, tableSize/rrlWays)
	nsets = 1 << bits.Len(uint(nsets-1)) // power of two
	r := &rateLimiter{
		window: int64(time.Second),
		slip:   uint32(cfg.Slip),
		v4bits: cfg.IPv4PrefixLen,
		v6bits: cfg.IPv6PrefixLen,
		seed:   maphash.MakeSeed(),
		mask:   uint64(nsets - 1),
		sets:   make([]rrlSet, nsets),
		exempt: newExemptSet(cfg.Exempt),
	}
	errs := cfg.ErrorsPerSecond
	if errs <= 0 {
		errs = cfg.ResponsesPerSecond
	}
	for c := range r.interval {
		rate := cfg.ResponsesPerSecond
		switch rrlClass(c) {
		case rrlError, rrlMalformed:
			rate = errs
		case rrlSigned:
			rate = cfg.SignedPerSecond
		}
		if rate > 0 {
			r.interval[c] = int64(time.Second) / int64(rate)
		} // 0: the class is not limited
	}
	return r
}

// key hashes what the bucket of a response is known by: the client prefix,
// the class and, for answers, NODATA and NXDOMAIN, the owner name (lower
// case) and for answers the qtype. It does not allocate.
func (r *rateLimiter) key(a netip.Addr, class rrlClass, qtype uint16, name []byte) uint64 {
	var b [28]byte
	if a.Is4() {
		p, _ := a.Prefix(r.v4bits)
		v := p.Addr().As4()
		copy(b[:4], v[:])
	} else {
		p, _ := a.Prefix(r.v6bits)
		v := p.Addr().As16()
		copy(b[:16], v[:])
		b[16] = 1
	}
	b[17] = byte(class)
	switch class {
	case rrlAnswer:
		binary.LittleEndian.PutUint16(b[18:], qtype)
		fallthrough
	case rrlNoData, rrlNXDomain:
		binary.LittleEndian.PutUint64(b[20:], maphash.Bytes(r.seed, name))
	}
	return maphash.Bytes(r.seed, b[:])
}

// limit decides on one response of class to a, as check; a signed answer
// (signed is true) that its own budget allows must then pass the client
// prefix's budget over all signed answers. It returns the class whose
// budget decided, for the metrics.
func (r *rateLimiter) limit(a netip.Addr, class rrlClass, qtype uint16, name []byte, signed bool, now time.Time) (rrlClass, rrlAction) {
	act := r.check(a, class, qtype, name, now)
	if act != rrlAllow || !signed {
		return class, act
	}
	return rrlSigned, r.check(a, rrlSigned, 0, nil, now)
}

// check decides on one response of class to a; qtype and name
// (the owner, lower case) as classOf's documentation says. A nil limiter
// allows everything, and so does an exempt client and a class without a
// rate.
func (r *rateLimiter) check(a netip.Addr, class rrlClass, qtype uint16, name []byte, now time.Time) rrlAction {
	if r == nil || r.interval[class] == 0 {
		return rrlAllow
	}
	a = a.Unmap()
	if r.exempt.contains(a) {
		return rrlAllow
	}
	k := r.key(a, class, qtype, name)
	t := now.UnixNano()
	set := &r.sets[k&r.mask]
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
	tat := max(e.tat, t) + r.interval[class]
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

// exemptSet holds the prefixes that are never limited (subscribed
// resolvers), as a set of masked addresses per prefix length: a lookup
// costs one map access per distinct length in the list, not one comparison
// per prefix.
type exemptSet struct {
	v4bits, v6bits []int
	v4             map[uint64]struct{}    // bits<<32 | masked address
	v6             map[[3]uint64]struct{} // masked address, bits
}

func newExemptSet(ps []netip.Prefix) exemptSet {
	x := exemptSet{v4: map[uint64]struct{}{}, v6: map[[3]uint64]struct{}{}}
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		a, l := p.Addr(), p.Bits()
		if a.Is4In6() && l >= 96 {
			a, l = a.Unmap(), l-96
		}
		if a.Is4() {
			x.v4[exempt4(a, l)] = struct{}{}
			x.v4bits = append(x.v4bits, l)
		} else {
			x.v6[exempt6(a, l)] = struct{}{}
			x.v6bits = append(x.v6bits, l)
		}
	}
	for _, l := range []*[]int{&x.v4bits, &x.v6bits} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return x
}

func exempt4(a netip.Addr, bits int) uint64 {
	p, _ := a.Prefix(bits)
	b := p.Addr().As4()
	return uint64(bits)<<32 | uint64(binary.BigEndian.Uint32(b[:]))
}

func exempt6(a netip.Addr, bits int) [3]uint64 {
	p, _ := a.Prefix(bits)
	b := p.Addr().As16()
	return [3]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), uint64(bits)}
}

// contains reports whether a (unmapped) is in one of the prefixes.
func (x *exemptSet) contains(a netip.Addr) bool {
	if a.Is4() {
		for _, l := range x.v4bits {
			if _, ok := x.v4[exempt4(a, l)]; ok {
				return true
			}
		}
		return false
	}
	for _, l := range x.v6bits {
		if _, ok := x.v6[exempt6(a, l)]; ok {
			return true
		}
	}
	return false
}
