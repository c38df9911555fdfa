package dnssink

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssec"
)

// FuzzHandlePacket feeds raw bytes to the packet handler: it must not
// panic, and every response must parse.
func FuzzHandlePacket(f *testing.F) {
	for _, c := range answerCases {
		for _, edns := range []bool{false, true} {
			m := question(c.qname, c.qtype)
			if edns {
				m.SetEdns0(1232, true)
				o := m.IsEdns0()
				o.Option = append(o.Option,
					&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
					&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{198, 51, 100, 0}})
			}
			raw, err := m.Pack()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw, edns)
		}
	}
	// RFC 6891 section 6.1.1: two OPT records, an OPT owned by another
	// name than the root, an OPT in the answer or authority section.
	badOPT := func(mod func(m *dns.Msg)) {
		m := question("www.example.com.", dns.TypeTXT)
		m.SetEdns0(4096, false)
		mod(m)
		raw, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, false)
	}
	opt := func(owner string) *dns.OPT {
		return &dns.OPT{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeOPT, Class: 4096}}
	}
	badOPT(func(m *dns.Msg) { m.Extra = append(m.Extra, opt(".")) })
	badOPT(func(m *dns.Msg) { m.Extra[0].Header().Name = "example.com." })
	badOPT(func(m *dns.Msg) { m.Answer = append(m.Answer, opt(".")) })
	badOPT(func(m *dns.Msg) { m.Ns = append(m.Ns, opt(".")) })
	f.Add([]byte{1, 2, 3}, false)
	f.Add([]byte{0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a'}, false)

	cfg := testConfig()
	cfg.Listen = nil
	cfg.RRL = RRLConfig{ResponsesPerSecond: 1000, Slip: 2}
	cfg.Recorder = discard{}
	cfg.Served = servedSet(f, testSinkhole(), testZones)
	s, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte, tcp bool) {
		pi := &packetInfo{src: netip.MustParseAddrPort("192.0.2.7:4242"), tcp: tcp}
		resp := s.handlePacket(nil, raw, pi)
		if resp == nil {
			return
		}
		m := new(dns.Msg)
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("response %x to %x does not parse: %v", resp, raw, err)
		}
		if !m.Response {
			t.Fatalf("response without QR")
		}
		if !tcp && len(resp) > s.maxUDP {
			t.Fatalf("udp response of %d bytes", len(resp))
		}
		if m.Rcode == dns.RcodeFormatError && len(resp) > len(raw) {
			t.Fatalf("FORMERR of %d bytes to a query of %d", len(resp), len(raw))
		}
	})
}

// FuzzSignedAnswers feeds raw bytes to a sinkhole whose zones are signed,
// twice: through the fast path and through the general path alone, which
// is its reference. Both must answer alike (over TCP, where no rate limit
// makes them differ), every response must parse, and none over UDP may be
// larger than allowed.
func FuzzSignedAnswers(f *testing.F) {
	for _, name := range []string{"seized.test.", "www.Seized.test.", "x.bot.co.test.", "!.seized.test.", "plain.test.",
		`\000.seized.test.`, `\*x.seized.test.`, "*.seized.test.", "a.*.seized.test.", `a\.b.seized.test.`} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeMX, dns.TypeSRV, dns.TypeDS, dns.TypeDNSKEY, dns.TypeANY} {
			for _, size := range []uint16{0, 512, 1232} {
				m := question(name, qt)
				if size > 0 {
					m.SetEdns0(size, true)
				}
				raw, err := m.Pack()
				if err != nil {
					f.Fatal(err)
				}
				f.Add(raw, size == 512)
			}
		}
	}
	cfg := testConfig()
	cfg.Listen = nil
	cfg.RRL = RRLConfig{ResponsesPerSecond: 1000, Slip: 2}
	cfg.Recorder = discard{}
	cfg.Served = signedSet(f, testSinkhole(), signZones, map[string][]dnssec.Key{"waledac": {testKey(f, dns.ECDSAP256SHA256)}})
	fast, _ := startServer(f, cfg)
	slow, _ := startServer(f, cfg)
	waitSigned(f, fast, 3)
	slow.view.Store(fast.view.Load())
	slow.cookieSecret = fast.cookieSecret
	slow.noFast = true
	f.Fuzz(func(t *testing.T, raw []byte, tcp bool) {
		pi := &packetInfo{src: netip.MustParseAddrPort("192.0.2.7:4242"), tcp: tcp}
		resp := fast.handlePacket(nil, raw, pi)
		if tcp {
			want := slow.handlePacket(nil, raw, pi)
			if (resp == nil) != (want == nil) {
				t.Fatalf("fast path answered %v, general path %v", resp != nil, want != nil)
			}
			if resp != nil && len(raw) >= 12 {
				compareAnswers(t, fmt.Sprintf("%x", raw), resp, want)
			}
		}
		if resp == nil {
			return
		}
		m := new(dns.Msg)
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("response %x to %x does not parse: %v", resp, raw, err)
		}
		if !tcp && len(resp) > fast.maxUDP {
			t.Fatalf("udp response of %d bytes", len(resp))
		}
	})
}
