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
	// Name is the seized domain, e.g. "waledac-cc.example" (trailing dot
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

// check refuses a zone name or sinkhole addresses that cannot make a zone;
// c has its defaults.
func (c Config) check() error {
	if _, ok := dns.IsDomainName(c.Zone); !ok {
		return fmt.Errorf("building rpz: bad zone name %q", c.Zone)
	}
	for _, a := range c.A {
		if !a.Is4() {
			return fmt.Errorf("building rpz %s: A address %s is not IPv4", c.Zone, a)
		}
	}
	for _, a := range c.AAAA {
		if !a.Is6() || a.Is4In6() {
			return fmt.Errorf("building rpz %s: AAAA address %s is not IPv6", c.Zone, a)
		}
	}
	return nil
}

// checkPolicy refuses a policy the zone cannot give.
func (c Config) checkPolicy(p Policy) error {
	switch p {
	case NXDOMAIN:
	case Redirect:
		if len(c.A) == 0 && len(c.AAAA) == 0 {
			return fmt.Errorf("redirect without sinkhole addresses")
		}
	default:
		return fmt.Errorf("unknown policy %d", int(p))
	}
	return nil
}

func (c Config) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: c.TTL}
}

// appendApex appends the zone's SOA of serial and its NS record.
func (c Config) appendApex(rrs []dns.RR, serial uint32) []dns.RR {
	return append(rrs,
		&dns.SOA{Hdr: c.hdr(c.Zone, dns.TypeSOA), Ns: c.NS, Mbox: c.Hostmaster, Serial: serial,
			Refresh: c.Refresh, Retry: c.Retry, Expire: c.Expire, Minttl: c.NegativeTTL},
		&dns.NS{Hdr: c.hdr(c.Zone, dns.TypeNS), Ns: c.NS},
	)
}

// fits reports whether the triggers of name (canonical, no trailing dot)
// make names of at most 255 bytes.
func (c Config) fits(name string) bool {
	return len(name)+1+len(c.Zone)+2 <= 255
}

// perEntry is the number of records of one name with policy p.
func (c Config) perEntry(p Policy) int {
	if p == Redirect {
		return 2 * (len(c.A) + len(c.AAAA))
	}
	return 2
}

// appendEntry appends the two triggers of name (canonical, no trailing
// dot), "name.<zone>" and "*.name.<zone>", with the records of policy p;
// nothing for a name whose triggers would be too long.
func (c Config) appendEntry(rrs []dns.RR, name string, p Policy) []dns.RR {
	if !c.fits(name) {
		return rrs
	}
	owner := name + "." + c.Zone
	for _, o := range [2]string{owner, "*." + owner} {
		switch p {
		case NXDOMAIN:
			rrs = append(rrs, &dns.CNAME{Hdr: c.hdr(o, dns.TypeCNAME), Target: "."})
		case Redirect:
			for _, a := range c.A {
				rrs = append(rrs, &dns.A{Hdr: c.hdr(o, dns.TypeA), A: a.AsSlice()})
			}
			for _, a := range c.AAAA {
				rrs = append(rrs, &dns.AAAA{Hdr: c.hdr(o, dns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
	}
	return rrs
}

// Build returns the policy zone content for serial: the SOA first, then the
// NS record, then for every seized name two triggers, "name.<zone>" and
// "*.name.<zone>", with the records of its policy. Names are lower-cased,
// de-duplicated (NXDOMAIN wins over Redirect for the same name) and sorted,
// so the same entries always give the same zone. The records are new values
// that the caller owns.
func Build(cfg Config, serial uint32, entries []Entry) ([]dns.RR, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	type item struct {
		name   string // canonical, no trailing dot
		policy Policy
	}
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		n, ok := hostNameOf(e.Name)
		if !ok || !cfg.fits(n) {
			return nil, fmt.Errorf("building rpz %s: bad domain %q", cfg.Zone, e.Name)
		}
		if err := cfg.checkPolicy(e.Policy); err != nil {
			return nil, fmt.Errorf("building rpz %s: %s for %q", cfg.Zone, err, e.Name)
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
	rrs = cfg.appendApex(rrs, serial)
	for _, it := range items {
		rrs = cfg.appendEntry(rrs, it.name, it.policy)
	}
	return rrs, nil
}

// hostNameOf returns name canonical (trimmed, lower case, no trailing dot)
// if it is a host name in A-label form.
func hostNameOf(name string) (string, bool) {
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	return n, hostname(n)
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
