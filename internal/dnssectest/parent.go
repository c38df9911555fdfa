// Package dnssectest gives tests a DNSSEC chain of trust they control: a
// parent zone the test signs itself (Parent, served by miekg/dns on
// loopback) that delegates child zones to a sinkhole with a chosen DS set
// (none, a stale one, ours), and a real validating resolver (Unbound,
// StartUnbound) whose only trust anchor is that parent's key.
//
// What a test can then see is what the world's validating resolvers do:
// a child with no DS at the parent resolves insecure (no AD bit), a child
// whose DS matches none of the sinkhole's keys is bogus (SERVFAIL), and a
// child whose DS is the sinkhole's key resolves with the AD bit when the
// sinkhole signs.
//
// The parent answers like an authoritative server of a TLD: referrals for
// the children (NS, and DS or the NSEC that proves there is none),
// authoritative DS answers, NXDOMAIN and NODATA with NSEC. Every RRset is
// signed when it is sent (ECDSA P-256 is fast enough for a test), with one
// combined key (flags 257). Children are one label below the parent zone.
package dnssectest

import (
	"crypto"
	"crypto/ecdsa"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/testnet"
)

// TTL is the TTL of every record the parent serves: short, so a resolver
// asks again soon after a test changes a DS set.
const TTL = 1

// Parent is a signed parent zone served on 127.0.0.1 over UDP and TCP.
type Parent struct {
	// Zone is the parent zone, e.g. "parent.test.".
	Zone string
	// Addr is the server's 127.0.0.1:port.
	Addr string

	key    *dns.DNSKEY
	signer crypto.Signer

	mu       sync.Mutex
	children map[string]*child // fqdn, lower-case
}

type child struct {
	name     string // fqdn, lower-case
	sinkhole string // host:port of the child's servers
	ns       []string
	ds       []*dns.DS
}

// StartParent signs zone (e.g. "parent.test.") with a fresh key and serves
// it on a free loopback port until the test ends.
func StartParent(t testing.TB, zone string) *Parent {
	t.Helper()
	zone = dns.CanonicalName(zone)
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		t.Fatalf("dnssectest: parent zone %q is not a domain name", zone)
	}
	key := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: TTL},
		Flags:     dns.ZONE | dns.SEP,
		Protocol:  3,
		Algorithm: dns.ECDSAP256SHA256,
	}
	priv, err := key.Generate(256)
	if err != nil {
		t.Fatalf("dnssectest: generating the parent's key: %v", err)
	}
	p := &Parent{Zone: zone, key: key, signer: priv.(*ecdsa.PrivateKey), children: map[string]*child{}}
	p.Addr = Serve(t, dns.HandlerFunc(p.serveDNS))
	return p
}

// DNSKEY is the parent's key: the resolver's trust anchor.
func (p *Parent) DNSKEY() *dns.DNSKEY { return dns.Copy(p.key).(*dns.DNSKEY) }

// Delegate delegates child (one label below the zone) to the name servers
// ns (names; nil means "ns1.sinkhole.test.") at sinkhole (host:port, where
// StartUnbound sends the child's queries), with the DS set ds (none: an
// unsigned delegation). Delegating a child again replaces it.
func (p *Parent) Delegate(t testing.TB, name, sinkhole string, ns []string, ds ...*dns.DS) {
	t.Helper()
	name = dns.CanonicalName(name)
	if !dns.IsSubDomain(p.Zone, name) || dns.CountLabel(name) != dns.CountLabel(p.Zone)+1 {
		t.Fatalf("dnssectest: %s is not one label below %s", name, p.Zone)
	}
	if _, _, err := net.SplitHostPort(sinkhole); err != nil {
		t.Fatalf("dnssectest: sinkhole address %q of %s: %v", sinkhole, name, err)
	}
	if len(ns) == 0 {
		ns = []string{"ns1.sinkhole.test."}
	}
	c := &child{name: name, sinkhole: sinkhole}
	for _, n := range ns {
		c.ns = append(c.ns, dns.CanonicalName(n))
	}
	c.ds = copyDS(name, ds)
	p.mu.Lock()
	p.children[name] = c
	p.mu.Unlock()
}

// SetDS replaces the DS set of a delegated child (none: remove it), as a
// registry does when asked.
func (p *Parent) SetDS(t testing.TB, name string, ds ...*dns.DS) {
	t.Helper()
	name = dns.CanonicalName(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.children[name]
	if !ok {
		t.Fatalf("dnssectest: %s is not delegated by %s", name, p.Zone)
	}
	c.ds = copyDS(name, ds)
}

// copyDS copies a DS set, with the owner and TTL the parent serves.
func copyDS(owner string, ds []*dns.DS) []*dns.DS {
	out := make([]*dns.DS, len(ds))
	for i, d := range ds {
		out[i] = dns.Copy(d).(*dns.DS)
		out[i].Hdr = dns.RR_Header{Name: owner, Rrtype: dns.TypeDS, Class: dns.ClassINET, Ttl: TTL}
	}
	return out
}

// StaleDS returns a DS record for name of a key nobody holds: what the
// registry still publishes for a domain whose registrant signed it.
func StaleDS(t testing.TB, name string) *dns.DS {
	t.Helper()
	k := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: dns.CanonicalName(name), Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags:     dns.ZONE | dns.SEP,
		Protocol:  3,
		Algorithm: dns.ECDSAP256SHA256,
	}
	if _, err := k.Generate(256); err != nil {
		t.Fatalf("dnssectest: generating a key: %v", err)
	}
	return k.ToDS(dns.SHA256)
}

// delegations returns the children and their sinkhole addresses.
func (p *Parent) delegations() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.children))
	for n, c := range p.children {
		out[n] = c.sinkhole
	}
	return out
}

func (p *Parent) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	do := false
	if opt := req.IsEdns0(); opt != nil {
		do = opt.Do()
		m.SetEdns0(1232, do)
	}
	q := req.Question[0]
	qname := dns.CanonicalName(q.Name)
	if !dns.IsSubDomain(p.Zone, qname) {
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	}
	p.mu.Lock()
	p.answer(m, qname, q.Qtype, do)
	p.mu.Unlock()
	_ = w.WriteMsg(m) // a truncated UDP answer gets TC (WriteMsg truncates to the buffer size)
}

// answer fills m; p.mu is held.
func (p *Parent) answer(m *dns.Msg, qname string, qtype uint16, do bool) {
	sign := func(rrs ...dns.RR) []dns.RR {
		if !do || len(rrs) == 0 {
			return rrs
		}
		return append(rrs, p.sign(rrs))
	}
	soa := sign(p.soa())
	// At or below a delegation.
	for _, c := range p.children {
		if !dns.IsSubDomain(c.name, qname) {
			continue
		}
		if qname == c.name && qtype == dns.TypeDS {
			m.Authoritative = true
			if len(c.ds) > 0 {
				m.Answer = sign(dsRRs(c.ds)...)
				return
			}
			m.Ns = append(soa, sign(p.nsec(c.name))...)
			return
		}
		// A referral: not authoritative, the DS set (or the NSEC proving
		// there is none) signed, the NS set not.
		for _, n := range c.ns {
			m.Ns = append(m.Ns, &dns.NS{Hdr: dns.RR_Header{Name: c.name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: TTL}, Ns: n})
		}
		if do {
			if len(c.ds) > 0 {
				m.Ns = append(m.Ns, sign(dsRRs(c.ds)...)...)
			} else {
				m.Ns = append(m.Ns, sign(p.nsec(c.name))...)
			}
		}
		return
	}
	m.Authoritative = true
	if qname == p.Zone {
		var rrs []dns.RR
		switch qtype {
		case dns.TypeSOA:
			rrs = []dns.RR{p.soa()}
		case dns.TypeNS:
			rrs = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: p.Zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: TTL}, Ns: "ns.invalid."}}
		case dns.TypeDNSKEY:
			rrs = []dns.RR{p.DNSKEY()}
		case dns.TypeNSEC:
			rrs = []dns.RR{p.nsec(p.Zone)}
		}
		if len(rrs) > 0 {
			m.Answer = sign(rrs...)
			return
		}
		m.Ns = append(soa, sign(p.nsec(p.Zone))...)
		return
	}
	// Nothing else exists: NXDOMAIN, with the NSEC covering the name
	// (the zone's own NSEC also covers the wildcard *.zone, which sorts
	// before every child).
	m.Rcode = dns.RcodeNameError
	m.Ns = soa
	if !do {
		return
	}
	cover := p.nsecCovering(qname)
	m.Ns = append(m.Ns, sign(cover)...)
	if cover.Hdr.Name != p.Zone {
		m.Ns = append(m.Ns, sign(p.nsec(p.Zone))...)
	}
}

func dsRRs(ds []*dns.DS) []dns.RR {
	out := make([]dns.RR, len(ds))
	for i, d := range ds {
		out[i] = d
	}
	return out
}

func (p *Parent) soa() *dns.SOA {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: p.Zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: TTL},
		Ns:  "ns.invalid.", Mbox: "hostmaster.invalid.", Serial: 1,
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: TTL,
	}
}

// names returns the zone's names in canonical order: the apex, then the
// children (one label each below it, so ordered by their first label).
func (p *Parent) names() []string {
	kids := make([]string, 0, len(p.children))
	for n := range p.children {
		kids = append(kids, n)
	}
	slices.SortFunc(kids, func(a, b string) int { return strings.Compare(firstLabel(a), firstLabel(b)) })
	return append([]string{p.Zone}, kids...)
}

func firstLabel(name string) string {
	l := dns.SplitDomainName(name)
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

// nsec returns the NSEC record owned by name (the apex or a child).
func (p *Parent) nsec(name string) *dns.NSEC {
	names := p.names()
	i := slices.Index(names, name)
	next := names[(i+1)%len(names)]
	types := []uint16{dns.TypeNS, dns.TypeRRSIG, dns.TypeNSEC}
	if name == p.Zone {
		types = []uint16{dns.TypeNS, dns.TypeSOA, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeDNSKEY}
	} else if len(p.children[name].ds) > 0 {
		types = []uint16{dns.TypeNS, dns.TypeDS, dns.TypeRRSIG, dns.TypeNSEC}
	}
	return &dns.NSEC{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: TTL}, NextDomain: next, TypeBitMap: types}
}

// nsecCovering returns the NSEC whose span holds qname, a name below the
// zone that does not exist: the one of the last name sorting before it.
// Names below a non-existent name sort with their ancestor one label
// below the zone.
func (p *Parent) nsecCovering(qname string) *dns.NSEC {
	labels := dns.SplitDomainName(qname)
	first := labels[len(labels)-dns.CountLabel(p.Zone)-1]
	names := p.names()
	owner := p.Zone
	for _, n := range names[1:] {
		if firstLabel(n) < first {
			owner = n
		}
	}
	return p.nsec(owner)
}

// sign signs one RRset with the parent's key, valid from an hour ago
// (clock skew) for a day.
func (p *Parent) sign(rrs []dns.RR) *dns.RRSIG {
	now := time.Now()
	sig := &dns.RRSIG{
		Hdr:        dns.RR_Header{Name: rrs[0].Header().Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: rrs[0].Header().Ttl},
		Algorithm:  p.key.Algorithm,
		SignerName: p.Zone,
		KeyTag:     p.key.KeyTag(),
		Inception:  uint32(now.Add(-time.Hour).Unix()),
		Expiration: uint32(now.Add(24 * time.Hour).Unix()),
	}
	if err := sig.Sign(p.signer, rrs); err != nil {
		panic(fmt.Sprintf("dnssectest: signing %s %s: %v", rrs[0].Header().Name, dns.TypeToString[rrs[0].Header().Rrtype], err))
	}
	return sig
}

// Serve serves h on a free 127.0.0.1 port, UDP and TCP, until the test
// ends, and returns the address.
func Serve(t testing.TB, h dns.Handler) string {
	t.Helper()
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 { // the port may be taken between the check and the bind
		addr := fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t))
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			continue
		}
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("dnssectest: no UDP+TCP port: %v", err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		served := make(chan error, 1)
		go func() { served <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-served:
			t.Fatalf("dnssectest: serving: %v", err)
		}
		t.Cleanup(func() {
			_ = srv.Shutdown()
			<-served
		})
	}
	return pc.LocalAddr().String()
}
