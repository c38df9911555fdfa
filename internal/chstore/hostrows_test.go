package chstore

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

// FuzzPrefixBounds: an address is in a block exactly when its 16 bytes
// (IPv4 mapped, as src_ip6 holds them) are within the bounds that
// DailyHosts' filter compares with.
func FuzzPrefixBounds(f *testing.F) {
	for _, s := range []struct {
		prefix, addr string
	}{
		{"10.0.0.0/30", "10.0.0.3"}, {"10.0.0.2/32", "10.0.0.2"}, {"2001:db8::/126", "2001:db8::4"},
		{"0.0.0.0/0", "255.255.255.255"}, {"::/0", "10.0.0.1"}, {"::ffff:0:0/96", "1.2.3.4"}, {"2001:db8::/32", "2001:db9::"},
	} {
		p, a := netip.MustParsePrefix(s.prefix), netip.MustParseAddr(s.addr)
		b := a.As16()
		f.Add(p.Addr().AsSlice(), p.Bits(), b[:], a.Is4())
	}
	f.Fuzz(func(t *testing.T, praw []byte, bits int, araw []byte, a4 bool) {
		pa, ok := netip.AddrFromSlice(praw)
		if !ok {
			return
		}
		p, err := pa.Prefix(bits)
		if err != nil {
			return
		}
		a, ok := netip.AddrFromSlice(araw)
		if !ok {
			return
		}
		if a4 && a.Is4In6() {
			a = a.Unmap()
		}
		lo, hi, v6 := prefixBounds(p)
		l, _ := hex.DecodeString(lo)
		h, _ := hex.DecodeString(hi)
		a16 := a.As16()
		in := bytes.Compare(a16[:], l) >= 0 && bytes.Compare(a16[:], h) <= 0
		if v6 && a.Unmap().Is4() {
			in = false // the filter also asks for an IPv6 host
		}
		// As stored, an IPv4-mapped source is the IPv4 host; a block of
		// one family holds no host of the other (as in the DuckDB
		// engine).
		want := p.Contains(a.Unmap())
		if in != want {
			t.Errorf("%s and %s: in bounds %s..%s = %v, contained %v", p, a, lo, hi, in, want)
		}
	})
}
