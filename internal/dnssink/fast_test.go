package dnssink

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssec"
	"github.com/takedown-project/takedown/internal/servedset"
)

// TestFastPathMatchesGeneralPath sends the same packets through the fast
// path and the general path and wants the same messages and the same
// events: the general path, built on dns.Msg, is the reference.
func TestFastPathMatchesGeneralPath(t *testing.T) {
	configs := map[string]func(*servedset.Sinkhole){
		"default":       func(*servedset.Sinkhole) {},
		"no hostmaster": func(c *servedset.Sinkhole) { c.Hostmaster = "" },
		"no addresses":  func(c *servedset.Sinkhole) { c.A, c.AAAA = nil, nil },
		"two A": func(c *servedset.Sinkhole) {
			c.A = append(c.A, netip.MustParseAddr("192.0.2.2"))
		},
		// The case waledac signs: seized.test is signed (example.com
		// holds a name server and is not).
		"signed": func(*servedset.Sinkhole) {},
		// Two keys of two algorithms sign (a rollover by double
		// signature), and no AAAA: fewer RRsets, two RRSIGs each.
		"signed twice": func(c *servedset.Sinkhole) { c.AAAA = nil },
	}
	names := []string{
		"example.com.", "EXAMPLE.com.", "a.b.ExAmPlE.cOm.", "x-1_y.example.com.", "deep.example.com.",
		"q.DEEP.example.com.", "seized.test.", "www.Seized.Test.", "notxt.test.", "a.notxt.test.",
		"x-1.seized.test.", "foreign.org.", "com.", "ns1.sinkhole.example.", "ns2.example.com.", "a.ns2.example.com.",
		strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + ".example.com.",
	}
	qtypes := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeHINFO, dns.TypeCAA, dns.TypeHTTPS, 65000,
		dns.TypeDS, dns.TypeDNSKEY, dns.TypeNSEC}
	rng := rand.New(rand.NewPCG(1, 2))
	for cname, mod := range configs {
		cfg := testConfig()
		cfg.Listen = nil
		sh := testSinkhole()
		mod(&sh)
		cfg.Served = servedSet(t, sh, testZones)
		signed := strings.HasPrefix(cname, "signed")
		switch cname {
		case "signed":
			cfg.Served = signedSet(t, sh, testZones, map[string][]dnssec.Key{"waledac": {testKey(t, dns.ECDSAP256SHA256)}})
		case "signed twice":
			cfg.Served = signedSet(t, sh, testZones, map[string][]dnssec.Key{"waledac": {testKey(t, dns.ECDSAP256SHA256), testKey(t, dns.ED25519)}})
		}
		fixed := time.Date(2010, 2, 24, 12, 0, 0, 0, time.UTC)
		cfg.Now = func() time.Time { return fixed }
		fast, frec := startServer(t, cfg)
		slow, srec := startServer(t, cfg)
		slow.noFast = true
		if signed {
			// One set of signatures for both (ECDSA signatures differ
			// each time).
			waitSigned(t, fast, 1)
			slow.view.Store(fast.view.Load())
		}
		handled := 0
		for _, name := range names {
			for _, qt := range qtypes {
				for _, edns := range []int{0, 512, 1232, 4096} {
					m := new(dns.Msg)
					m.SetQuestion(name, qt)
					m.Id = uint16(rng.Uint32())
					m.RecursionDesired = rng.IntN(2) == 0
					m.CheckingDisabled = rng.IntN(2) == 0
					if edns > 0 {
						m.SetEdns0(uint16(edns), rng.IntN(2) == 0)
					}
					raw, err := m.Pack()
					if err != nil {
						t.Fatal(err)
					}
					for _, tcp := range []bool{false, true} {
						pi := &packetInfo{src: netip.MustParseAddrPort("198.51.100.9:4000"), dst: netip.MustParseAddrPort("192.0.2.53:53"), tcp: tcp}
						frec.reset()
						srec.reset()
						var fq fastQuery
						if fast.parseFast(raw, &fq) {
							handled++
						}
						got := fast.handlePacket(nil, raw, pi)
						want := slow.handlePacket(nil, raw, pi)
						what := fmt.Sprintf("%s: %s %s edns=%d tcp=%v", cname, name, dns.TypeToString[qt], edns, tcp)
						compareAnswers(t, what, got, want)
						fe, se := frec.all(), srec.all()
						if len(fe) != len(se) {
							t.Errorf("%s: %d events on the fast path, %d on the general", what, len(fe), len(se))
						} else if len(fe) == 1 && !reflect.DeepEqual(*fe[0], *se[0]) {
							t.Errorf("%s: events differ:\nfast %+v\nslow %+v", what, *fe[0], *se[0])
						}
					}
				}
			}
		}
		if handled == 0 {
			t.Fatalf("%s: the fast path took no packet", cname)
		}
	}
}

func compareAnswers(t *testing.T, what string, got, want []byte) {
	t.Helper()
	var g, w dns.Msg
	if err := w.Unpack(want); err != nil {
		t.Fatalf("%s: general path answer does not parse: %v", what, err)
	}
	if err := g.Unpack(got); err != nil {
		t.Fatalf("%s: fast path answer does not parse: %v\n%x", what, err, got)
	}
	if g.String() != w.String() {
		t.Errorf("%s:\nfast:\n%s\ngeneral:\n%s", what, g.String(), w.String())
	}
}

// TestFastPathDeclines lists what the fast path leaves to the general one.
func TestFastPathDeclines(t *testing.T) {
	cfg := testConfig()
	cfg.Listen = nil
	s, _ := startServer(t, cfg)
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withCookie := question("example.com.", dns.TypeA)
	withCookie.SetEdns0(1232, false)
	withCookie.IsEdns0().Option = append(withCookie.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	any := question("example.com.", dns.TypeANY)
	escaped := question(`a\.b.example.com.`, dns.TypeA)
	chaos := question("example.com.", dns.TypeA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	notify := question("example.com.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	two := question("example.com.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	mx := question("example.com.", dns.TypeMX)
	glue := question("ns2.example.com.", dns.TypeA)
	root := question(".", dns.TypeA)
	for name, raw := range map[string][]byte{
		"cookie": pack(withCookie), "ANY": pack(any), "escaped dot": pack(escaped), "CHAOS": pack(chaos),
		"NOTIFY": pack(notify), "two questions": pack(two), "MX": pack(mx), "root": pack(root),
		"trailing byte": append(pack(question("example.com.", dns.TypeA)), 0),
	} {
		var fq fastQuery
		ok := s.parseFast(raw, &fq)
		if ok {
			_, ok = s.fastAnswer(nil, raw, &packetInfo{tcp: true}, s.now())
		}
		if ok {
			t.Errorf("%s: taken by the fast path", name)
		}
	}
	if _, ok := s.fastAnswer(nil, pack(glue), &packetInfo{tcp: true}, s.now()); ok {
		t.Error("in-zone name server: taken by the fast path")
	}
}

// TestFastPathRRL checks that the fast path applies the rate limit: drop
// and slip (TC with empty sections).
func TestFastPathRRL(t *testing.T) {
	cfg := testConfig()
	cfg.Listen = nil
	cfg.RRL = RRLConfig{ResponsesPerSecond: 1, Slip: 2}
	s, rec := startServer(t, cfg)
	m := question("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	raw, _ := m.Pack()
	pi := &packetInfo{src: netip.MustParseAddrPort("198.51.100.9:4000")}
	var answered, slipped, dropped int
	for range 20 {
		b, ok := s.fastAnswer(nil, raw, pi, s.now())
		if !ok {
			t.Fatal("fast path declined a plain query")
		}
		if b == nil {
			dropped++
			continue
		}
		var r dns.Msg
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		if r.Truncated {
			slipped++
			if len(r.Answer) != 0 || len(r.Ns) != 0 || r.IsEdns0() == nil {
				t.Fatalf("slipped answer has records or lost its OPT:\n%s", r.String())
			}
			continue
		}
		answered++
	}
	if answered == 0 || slipped == 0 || dropped == 0 {
		t.Fatalf("answered %d, slipped %d, dropped %d: want some of each", answered, slipped, dropped)
	}
	if n := len(rec.all()); n != 20 {
		t.Fatalf("%d events for 20 queries", n)
	}
}
