// Package rpz builds takedown's Response Policy Zone: the feed that ISP
// resolvers (BIND, Unbound, PowerDNS, Knot Resolver) subscribe to so that the
// seized names are blocked (NXDOMAIN) or redirected to the sinkhole in their
// own resolvers, before a bot's query ever leaves the ISP.
//
// Build turns a list of seized names into the zone content (SOA first); the
// transfer server (internal/xfr) journals it and serves it by AXFR/IXFR with
// NOTIFY. WriteZoneFile writes the same content as a master file.
package rpz

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Policy is what a resolver does with a seized name.
type Policy int

const (
	// NXDOMAIN makes the resolver answer "no such domain" (RPZ "CNAME .").
	NXDOMAIN Policy = iota
	// Redirect makes the resolver answer with the sinkhole addresses
	// (RPZ local data: A and AAAA records), so bots keep calling home to
	// the sinkhole and are counted.
	Redirect
)

// String returns "nxdomain" or "redirect".
func (p Policy) String() string {
	switch p {
	case NXDOMAIN:
		return "nxdomain"
	case Redirect:
		return "redirect"
	default:
		return fmt.Sprintf("policy(%d)", int(p))
	}
}

// ParsePolicy parses "nxdomain" or "redirect" (case-insensitive).
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "nxdomain":
		return NXDOMAIN, nil
	case "redirect":
		return Redirect, nil
	}
	return 0, fmt.Errorf("parsing rpz policy %q: want nxdomain or redirect", s)
}

// Entry is one seized domain and its policy. The policy applies to the
// name and every name below it. Names are host names in A-label form
// (IDNs as xn--…); anything else is refused.
type Entry struct {
	// Name is the seized domain, e.g. "waledac-cc.com" (trailing dot
	// optional, case-insensitive).
	Name   string
	Policy Policy
}

// Defaults of Config.
const (
	DefaultZone = "rpz.takedown.local."
	DefaultTTL  = 300
	DefaultNS   = "localhost."
)

// Config describes the policy zone. Zero values work for NXDOMAIN-only
// feeds; Redirect entries need A or AAAA.
type Config struct {
	// Zone is the name of the policy zone; default DefaultZone. Resolvers
	// refer to it in response-policy (BIND) or rpz: name (Unbound).
	Zone string
	// A and AAAA are the sinkhole addresses of Redirect entries.
	A, AAAA []netip.Addr
	// TTL of every record, and the TTL resolvers give rewritten answers;
	// default DefaultTTL.
	TTL uint32
	// NS is the name server of the zone's NS record; default "localhost."
	// (an RPZ is never delegated, the NS record only has to exist).
	NS string
	// Hostmaster is the SOA RNAME, as a domain name; default
	// "hostmaster.<Zone>".
	Hostmaster string
	// Refresh, Retry, Expire of the SOA in seconds; defaults 300, 60 and
	// 604800 (NOTIFY does the fast path; Expire is long so that a resolver
	// keeps blocking if the feed is unreachable for days).
	Refresh, Retry, Expire uint32
	// NegativeTTL is the SOA minimum; default 60.
	NegativeTTL uint32
}

func (c Config) withDefaults() Config {
	if c.Zone == "" {
		c.Zone = DefaultZone
	}
	c.Zone = dns.CanonicalName(c.Zone)
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.NS == "" {
		c.NS = DefaultNS
	}
	c.NS = dns.CanonicalName(c.NS)
	if c.Hostmaster == "" {
		c.Hostmaster = "hostmaster." + c.Zone
	}
	c.Hostmaster = dns.CanonicalName(c.Hostmaster)
	if c.Refresh == 0 {
		c.Refresh = 300
	}
	if c.Retry == 0 {
		c.Retry = 60
	}
	if c.Expire == 0 {
		c.Expire = 604800
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = 60
	}
	return c
}

// ZoneName returns the canonical (lower-case, fully qualified) name of the
// policy zone that cfg describes.
func (c Config) ZoneName() string { return c.withDefaults().Zone }

// Build returns the policy zone content for serial: the SOA first, then the
// NS record, then for every seized name two triggers, "name.<zone>" and
// "*.name.<zone>", with the records of its policy. Names are lower-cased,
// de-duplicated (NXDOMAIN wins over Redirect for the same name) and sorted,
// so the same entries always give the same zone. The records are new values
// that the caller owns.
func Build(cfg Config, serial uint32, entries []Entry) ([]dns.RR, error) {
	cfg = cfg.withDefaults()
	if _, ok := dns.IsDomainName(cfg.Zone); !ok {
		return nil, fmt.Errorf("building rpz: bad zone name %q", cfg.Zone)
	}
	for _, a := range cfg.A {
		if !a.Is4() {
			return nil, fmt.Errorf("building rpz %s: A address %s is not IPv4", cfg.Zone, a)
		}
	}
	for _, a := range cfg.AAAA {
		if !a.Is6() || a.Is4In6() {
			return nil, fmt.Errorf("building rpz %s: AAAA address %s is not IPv6", cfg.Zone, a)
		}
	}

	type item struct {
		name   string // canonical, no trailing dot
		policy Policy
	}
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(e.Name)), ".")
		if !hostname(n) || len(n)+1+len(cfg.Zone)+2 > 255 {
			return nil, fmt.Errorf("building rpz %s: bad domain %q", cfg.Zone, e.Name)
		}
		switch e.Policy {
		case NXDOMAIN:
		case Redirect:
			if len(cfg.A) == 0 && len(cfg.AAAA) == 0 {
				return nil, fmt.Errorf("building rpz %s: redirect for %q without sinkhole addresses", cfg.Zone, e.Name)
			}
		default:
			return nil, fmt.Errorf("building rpz %s: unknown policy %d for %q", cfg.Zone, int(e.Policy), e.Name)
		}
		items = append(items, item{n, e.Policy})
	}
	slices.SortFunc(items, func(a, b item) int {
		return cmp.Or(strings.Compare(a.name, b.name), cmp.Compare(a.policy, b.policy))
	})
	// After sorting, the first of equal names has the lowest policy:
	// NXDOMAIN (0) wins.
	items = slices.CompactFunc(items, func(a, b item) bool { return a.name == b.name })

	perName := 1
	if n := len(cfg.A) + len(cfg.AAAA); n > 1 {
		perName = n
	}
	rrs := make([]dns.RR, 0, 2+2*perName*len(items))
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: cfg.TTL}
	}
	rrs = append(rrs,
		&dns.SOA{Hdr: hdr(cfg.Zone, dns.TypeSOA), Ns: cfg.NS, Mbox: cfg.Hostmaster, Serial: serial,
			Refresh: cfg.Refresh, Retry: cfg.Retry, Expire: cfg.Expire, Minttl: cfg.NegativeTTL},
		&dns.NS{Hdr: hdr(cfg.Zone, dns.TypeNS), Ns: cfg.NS},
	)
	for _, it := range items {
		owner := it.name + "." + cfg.Zone
		for _, o := range [2]string{owner, "*." + owner} {
			switch it.policy {
			case NXDOMAIN:
				rrs = append(rrs, &dns.CNAME{Hdr: hdr(o, dns.TypeCNAME), Target: "."})
			case Redirect:
				for _, a := range cfg.A {
					rrs = append(rrs, &dns.A{Hdr: hdr(o, dns.TypeA), A: a.AsSlice()})
				}
				for _, a := range cfg.AAAA {
					rrs = append(rrs, &dns.AAAA{Hdr: hdr(o, dns.TypeAAAA), AAAA: a.AsSlice()})
				}
			}
		}
	}
	return rrs, nil
}

// hostname reports whether n (lower-case, no trailing dot) is a host name in
// A-label form: labels of 1 to 63 letters, digits, '-' or '_'.
func hostname(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(n); i++ {
		switch c := n[i]; {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			label++
			if label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}

// WriteZoneFile writes rrs as a master file (RFC 1035 section 5) with
// absolute names, one record per line, that named-checkzone and the
// zonefile: options of BIND, NSD, Knot and Unbound load. rrs must start
// with the SOA.
func WriteZoneFile(w io.Writer, rrs []dns.RR) error {
	if len(rrs) == 0 {
		return fmt.Errorf("writing rpz zone file: no records")
	}
	soa, ok := rrs[0].(*dns.SOA)
	if !ok {
		return fmt.Errorf("writing rpz zone file: first record is %s, want SOA", dns.TypeToString[rrs[0].Header().Rrtype])
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, "; response policy zone %s serial %d, %d records\n$ORIGIN %s\n",
		soa.Hdr.Name, soa.Serial, len(rrs), soa.Hdr.Name)
	for _, rr := range rrs {
		bw.WriteString(rr.String())
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing rpz zone file %s: %w", soa.Hdr.Name, err)
	}
	return nil
}
