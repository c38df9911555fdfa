package scope

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	s, err := Parse([]string{"AS64512", "64513", "as64512"}, []string{"192.0.2.0/24", "2001:db8::/32", "198.51.100.7"}, []string{"de", "XK"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "AS64512 AS64513 192.0.2.0/24 198.51.100.7/32 2001:db8::/32 DE XK" {
		t.Errorf("parsed %q", got)
	}
	_, err = Parse([]string{"AS0", "ASX", "4294967296"}, []string{"192.0.2.1/24", "300.1.2.3/8", "::ffff:1.2.3.0/120"}, []string{"ZZ", "DEU", "Q1"})
	for _, want := range []string{`ASN "AS0"`, `ASN "ASX"`, `ASN "4294967296"`, `"192.0.2.1/24" has host bits set; did you mean 192.0.2.0/24`,
		`CIDR "300.1.2.3/8"`, `"::ffff:1.2.3.0/120": write IPv4-mapped`, `country "ZZ"`, `country "DEU"`, `country "Q1"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

// TestIndexMatchesContains: the index answers as every scope's Contains
// would, for random scopes and random hosts.
func TestIndexMatchesContains(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	countries := []string{"DE", "FR", "US", "BR", "IN"}
	addr := func() netip.Addr {
		if r.IntN(4) == 0 {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			b[4] = byte(r.IntN(4))
			b[15] = byte(r.IntN(256))
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(8)), byte(r.IntN(256))})
	}
	var scopes []Scope
	for range 300 {
		var s Scope
		for range r.IntN(3) {
			s.ASNs = append(s.ASNs, uint32(1+r.IntN(50)))
		}
		for range r.IntN(3) {
			a := addr()
			bits := 8 + r.IntN(25)
			if a.Is6() {
				bits = 32 + r.IntN(97)
			}
			p, _ := a.Prefix(bits)
			s.Prefixes = append(s.Prefixes, p)
		}
		if r.IntN(5) == 0 {
			s.Countries = append(s.Countries, countries[r.IntN(len(countries))])
		}
		scopes = append(scopes, s.normal())
	}
	x := NewIndex(scopes)
	var got []int32
	for range 20_000 {
		ip, asn, cc := addr(), uint32(r.IntN(60)), countries[r.IntN(len(countries))]
		if r.IntN(3) == 0 {
			ip = netip.AddrFrom16(ip.As16()) // v4-mapped: the same host
		}
		got = x.Match(got[:0], ip, asn, cc)
		var want []int32
		for i, s := range scopes {
			if s.Contains(ip, asn, cc) {
				want = append(want, int32(i))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s AS%d %s: index %v, scopes %v", ip, asn, cc, got, want)
		}
	}
}

func BenchmarkIndexMatch(b *testing.B) {
	var scopes []Scope
	for i := range 10_000 {
		s := Scope{ASNs: []uint32{uint32(1 + i%30_000)}}
		if i%10 == 0 {
			s.Prefixes = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)}
		}
		if i%100 == 0 {
			s.Countries = []string{"DE"}
		}
		scopes = append(scopes, s)
	}
	x := NewIndex(scopes)
	var dst []int32
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		dst = x.Match(dst[:0], netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint32(i%30_000), "FR")
	}
}
