// Package scope says which infected hosts belong to whom. A subscriber to
// takedown's reports — an ISP's abuse desk, a national CERT — sees the
// hosts of its networks (AS numbers), its address blocks (CIDRs, IPv4 and
// IPv6) and its countries, and never any other. Scopes may overlap: a
// national CERT's country covers an ISP's AS.
//
// An Index matches one host against many scopes at once, in time that does
// not grow with their number: a map lookup per AS and country, and one per
// prefix length in use for the address.
package scope

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Scope is the networks, address blocks and countries one subscriber
// covers. The zero Scope covers nothing.
type Scope struct {
	ASNs      []uint32       `json:"asns,omitempty"`
	Prefixes  []netip.Prefix `json:"cidrs,omitempty"`
	Countries []string       `json:"countries,omitempty"` // ISO 3166-1 alpha-2, upper case
}

// Parse reads a scope from its written form: AS numbers ("AS64512" or
// "64512"), CIDRs ("192.0.2.0/24", "2001:db8::/32"; a bare address is its
// /32 or /128) and country codes ("DE", "de"). Every bad item is named in
// the error; nothing is returned then.
func Parse(asns, cidrs, countries []string) (Scope, error) {
	var s Scope
	var errs []error
	for _, a := range asns {
		n, err := ParseASN(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.ASNs = append(s.ASNs, n)
	}
	for _, c := range cidrs {
		p, err := ParsePrefix(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Prefixes = append(s.Prefixes, p)
	}
	for _, c := range countries {
		cc, err := ParseCountry(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Countries = append(s.Countries, cc)
	}
	if len(errs) > 0 {
		return Scope{}, errors.Join(errs...)
	}
	return s.normal(), nil
}

// ParseASN reads "AS64512", "as64512" or "64512". AS 0 and the reserved
// AS 4294967295 are refused.
func ParseASN(s string) (uint32, error) {
	t := strings.TrimSpace(s)
	if len(t) > 2 && strings.EqualFold(t[:2], "AS") {
		t = t[2:]
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil || n == 0 || n == 1<<32-1 {
		return 0, fmt.Errorf("ASN %q is not an AS number from 1 to 4294967294", s)
	}
	return uint32(n), nil
}

// ParsePrefix reads a CIDR, or a bare address as its host prefix. Host
// bits set below the prefix length are refused (192.0.2.1/24 is a typo
// more often than not).
func ParsePrefix(s string) (netip.Prefix, error) {
	t := strings.TrimSpace(s)
	if !strings.Contains(t, "/") {
		a, err := netip.ParseAddr(t)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("CIDR %q is not an IPv4 or IPv6 prefix such as 192.0.2.0/24", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(t)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("CIDR %q is not an IPv4 or IPv6 prefix such as 192.0.2.0/24", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("CIDR %q: write IPv4-mapped blocks as IPv4", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("CIDR %q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// ParseCountry reads an ISO 3166-1 alpha-2 code in either case. The
// user-assigned codes (AA, QM–QZ, XA–XZ, ZZ) are refused except XK
// (Kosovo), which geolocation databases use.
func ParseCountry(s string) (string, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if len(t) != 2 || t[0] < 'A' || t[0] > 'Z' || t[1] < 'A' || t[1] > 'Z' || !assigned(t) {
		return "", fmt.Errorf("country %q is not an ISO 3166-1 alpha-2 code such as DE", s)
	}
	return t, nil
}

func assigned(cc string) bool {
	switch {
	case cc == "XK":
		return true
	case cc == "AA", cc == "ZZ", cc[0] == 'X', cc[0] == 'Q' && cc[1] >= 'M':
		return false
	}
	return true
}

// normal sorts and de-duplicates the lists.
func (s Scope) normal() Scope {
	slices.Sort(s.ASNs)
	s.ASNs = slices.Compact(s.ASNs)
	slices.SortFunc(s.Prefixes, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	s.Prefixes = slices.Compact(s.Prefixes)
	slices.Sort(s.Countries)
	s.Countries = slices.Compact(s.Countries)
	return s
}

// Empty reports whether s covers nothing.
func (s Scope) Empty() bool {
	return len(s.ASNs) == 0 && len(s.Prefixes) == 0 && len(s.Countries) == 0
}

// Contains reports whether a host at ip, announced by asn, geolocated in
// country, is in s.
func (s Scope) Contains(ip netip.Addr, asn uint32, country string) bool {
	if asn != 0 && slices.Contains(s.ASNs, asn) {
		return true
	}
	if country != "" && slices.Contains(s.Countries, country) {
		return true
	}
	ip = ip.Unmap()
	for _, p := range s.Prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// String is the written form: "AS64512 AS64513 192.0.2.0/24 DE".
func (s Scope) String() string {
	var parts []string
	for _, a := range s.ASNs {
		parts = append(parts, "AS"+strconv.FormatUint(uint64(a), 10))
	}
	for _, p := range s.Prefixes {
		parts = append(parts, p.String())
	}
	parts = append(parts, s.Countries...)
	return strings.Join(parts, " ")
}

// Index matches hosts against many scopes, numbered by their place in the
// slice given to NewIndex.
type Index struct {
	byASN     map[uint32][]int32
	byCountry map[string][]int32
	byPrefix  map[netip.Prefix][]int32
	bits4     []int // prefix lengths in use, longest first
	bits6     []int
}

// NewIndex indexes scopes.
func NewIndex(scopes []Scope) *Index {
	x := &Index{byASN: map[uint32][]int32{}, byCountry: map[string][]int32{}, byPrefix: map[netip.Prefix][]int32{}}
	seen4, seen6 := map[int]bool{}, map[int]bool{}
	for i, s := range scopes {
		for _, a := range s.ASNs {
			x.byASN[a] = append(x.byASN[a], int32(i))
		}
		for _, c := range s.Countries {
			x.byCountry[c] = append(x.byCountry[c], int32(i))
		}
		for _, p := range s.Prefixes {
			p = p.Masked()
			x.byPrefix[p] = append(x.byPrefix[p], int32(i))
			if p.Addr().Is4() {
				seen4[p.Bits()] = true
			} else {
				seen6[p.Bits()] = true
			}
		}
	}
	for b := range seen4 {
		x.bits4 = append(x.bits4, b)
	}
	for b := range seen6 {
		x.bits6 = append(x.bits6, b)
	}
	slices.Sort(x.bits4)
	slices.Reverse(x.bits4)
	slices.Sort(x.bits6)
	slices.Reverse(x.bits6)
	return x
}

// Match appends to dst the numbers of the scopes that contain the host,
// each once, in increasing order, and returns the result.
func (x *Index) Match(dst []int32, ip netip.Addr, asn uint32, country string) []int32 {
	start := len(dst)
	if asn != 0 {
		dst = append(dst, x.byASN[asn]...)
	}
	if country != "" {
		dst = append(dst, x.byCountry[country]...)
	}
	ip = ip.Unmap()
	bits := x.bits6
	if ip.Is4() {
		bits = x.bits4
	}
	for _, b := range bits {
		p, err := ip.Prefix(b)
		if err == nil {
			dst = append(dst, x.byPrefix[p]...)
		}
	}
	m := dst[start:]
	if len(m) > 1 {
		slices.Sort(m)
		m = slices.Compact(m)
	}
	return dst[:start+len(m)]
}
