package enrich

import (
	"net/netip"
	"slices"
)

// prefixTable finds the most specific of a set of prefixes that contains an
// address: one map per family keyed by the masked prefix, probed from the
// longest length in use to the shortest.
type prefixTable[V any] struct {
	m    map[netip.Prefix]V
	lens [2][]int // lengths in use for IPv4 [0] and IPv6 [1], longest first
}

func newPrefixTable[V any]() *prefixTable[V] {
	return &prefixTable[V]{m: make(map[netip.Prefix]V)}
}

// add stores v under p unless p is there already; it reports whether it
// stored it.
func (t *prefixTable[V]) add(p netip.Prefix, v V) bool {
	p = p.Masked()
	if _, ok := t.m[p]; ok {
		return false
	}
	t.m[p] = v
	fam := familyOf(p.Addr())
	if !slices.Contains(t.lens[fam], p.Bits()) {
		t.lens[fam] = append(t.lens[fam], p.Bits())
		slices.Sort(t.lens[fam])
		slices.Reverse(t.lens[fam])
	}
	return true
}

// lookup returns the value of the longest prefix that contains a.
func (t *prefixTable[V]) lookup(a netip.Addr) (V, netip.Prefix, bool) {
	var zero V
	if t == nil || !a.IsValid() {
		return zero, netip.Prefix{}, false
	}
	for _, bits := range t.lens[familyOf(a)] {
		p, err := a.Prefix(bits)
		if err != nil {
			continue
		}
		if v, ok := t.m[p]; ok {
			return v, p, true
		}
	}
	return zero, netip.Prefix{}, false
}

func (t *prefixTable[V]) len() int {
	if t == nil {
		return 0
	}
	return len(t.m)
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// rangePrefixes splits the inclusive range [from, to] into the fewest
// prefixes that cover exactly it. Both ends must be of one family and from
// must not be after to.
func rangePrefixes(from, to netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for {
		// The largest prefix that starts at from and ends at or before to.
		bits := from.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(from, bits-1)
			if p.Masked().Addr() != from || lastAddr(p).Compare(to) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(from, bits)
		out = append(out, p)
		last := lastAddr(p)
		if last.Compare(to) >= 0 {
			return out
		}
		from = last.Next()
	}
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	b := p.Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 12
	}
	for i := p.Bits(); i < p.Addr().BitLen(); i++ {
		b[off+i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}
