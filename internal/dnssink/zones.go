package dnssink

import (
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/servedset"
)

// SOA timers of every zone. The sinkhole zones change only when the
// registry does, and NOTIFY tells secondaries about that; the timers are
// the fallback.
const (
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 1209600 // two weeks: secondaries keep answering through an outage
)

// view is what the query path reads through an atomic pointer: one
// snapshot of the served set and what the answers are made of, derived
// from it when it changed. It is immutable.
type view struct {
	set *servedset.Snapshot
	ans *answers
	// txts and txtWire are each case's TXT, by the case's index: split
	// into character-strings of ≤ 255 bytes, and packed as RDATA for the
	// fast path.
	txts    [][]string
	txtWire [][]byte
	// signs is, by the case's index, what the case's zones are signed
	// from, nil for a case that does not sign; signed holds the signed
	// zones (shared by every view of a server).
	signs  []*zoneKeys
	signed *signedZones
}

// newView derives the view of set; prev (nil at first) lends its answers
// when the sinkhole part of the set did not change, and what its signed
// cases are signed from when their keys and TXT did not either. own, if
// not nil, replaces the set's A and AAAA (Config.A, Config.AAAA). signed
// holds the signed zones.
func newView(set *servedset.Snapshot, prev *view, own *servedset.Sinkhole, signed *signedZones) (*view, error) {
	v := &view{set: set, signed: signed}
	sh := set.Sinkhole()
	if prev != nil && prev.ans.src == sh {
		v.ans = prev.ans
	} else {
		use := sh
		if own != nil && sh != nil {
			c := *sh
			c.A, c.AAAA = own.A, own.AAAA
			use = &c
		}
		a, err := newAnswers(use)
		if err != nil {
			return nil, err
		}
		a.src = sh
		v.ans = a
	}
	cases := set.Cases()
	v.txts = make([][]string, len(cases))
	v.txtWire = make([][]byte, len(cases))
	for i, c := range cases {
		if prev != nil && i < len(prev.txts) && prev.set.Case(uint32(i)).TXT == c.TXT {
			v.txts[i], v.txtWire[i] = prev.txts[i], prev.txtWire[i]
			continue
		}
		v.txts[i] = splitTXT(c.TXT)
		v.txtWire[i] = packTXT(v.txts[i])
	}
	for i := range cases {
		c := &cases[i]
		if len(c.Keys) == 0 {
			continue
		}
		if v.signs == nil {
			v.signs = make([]*zoneKeys, len(cases))
		}
		if prev != nil && i < len(prev.signs) && prev.signs[i] != nil && prev.signs[i].sameAs(c, v.ans, v.txtWire[i]) {
			v.signs[i] = prev.signs[i]
			continue
		}
		v.signs[i] = newZoneKeys(c, v.ans, v.txts[i], v.txtWire[i])
	}
	return v, nil
}

// nameServer is a name server of the served set, ready for answers.
type nameServer struct {
	name   string // lower case, no trailing dot
	fqdn   string
	v4, v6 []net.IP
}

// answers is what every zone answers, from the served set's Sinkhole:
// normalised, and packed for the fast path, once per change of it.
type answers struct {
	src    *servedset.Sinkhole
	ns     []nameServer
	a      []net.IP
	aaaa   []net.IP
	ttl    uint32
	negTTL uint32
	mbox   string // SOA RNAME; "" means hostmaster.<zone>
	// fast holds the pre-packed records of the fast path.
	fast fastRRs
}

// newAnswers prepares the answers of sh (checked by the served set).
func newAnswers(sh *servedset.Sinkhole) (*answers, error) {
	a := &answers{src: sh, ttl: sh.TTL, negTTL: sh.NegativeTTL}
	if a.ttl == 0 {
		a.ttl = DefaultTTL
	}
	if a.negTTL == 0 {
		a.negTTL = DefaultNegativeTTL
	}
	for _, n := range sh.NameServers {
		name := strings.ToLower(strings.TrimSuffix(n.Name, "."))
		if _, ok := dns.IsDomainName(name); !ok || name == "" {
			return nil, fmt.Errorf("name server %q is not a domain name", n.Name)
		}
		ns := nameServer{name: name, fqdn: name + "."}
		for _, ip := range n.Addrs {
			switch ip = ip.Unmap(); {
			case ip.Is4():
				ns.v4 = append(ns.v4, ip.AsSlice())
			case ip.Is6():
				ns.v6 = append(ns.v6, ip.AsSlice())
			default:
				return nil, fmt.Errorf("name server %q has an invalid address", n.Name)
			}
		}
		a.ns = append(a.ns, ns)
	}
	for _, ip := range sh.A {
		if !ip.Unmap().Is4() {
			return nil, fmt.Errorf("A address %q is not ipv4", ip)
		}
		a.a = append(a.a, ip.Unmap().AsSlice())
	}
	for _, ip := range sh.AAAA {
		if !ip.Is6() || ip.Is4In6() {
			return nil, fmt.Errorf("AAAA address %q is not ipv6", ip)
		}
		a.aaaa = append(a.aaaa, ip.AsSlice())
	}
	if h := strings.TrimSpace(sh.Hostmaster); h != "" {
		if local, domain, ok := strings.Cut(h, "@"); ok {
			h = strings.ReplaceAll(local, ".", "\\.") + "." + domain
		}
		h = dns.Fqdn(strings.ToLower(h))
		if _, ok := dns.IsDomainName(h); !ok {
			return nil, fmt.Errorf("hostmaster %q is not a domain name", sh.Hostmaster)
		}
		a.mbox = h
	}
	if len(a.ns) > 0 {
		a.packFast()
	}
	return a, nil
}

// splitTXT splits s into DNS character-strings of at most 255 bytes.
func splitTXT(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}
