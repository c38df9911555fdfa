package dnssink

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// answerCase is one query and the expected answer, written as zone-file
// lines (SERIAL stands for the snapshot's serial).
type answerCase struct {
	name   string
	qname  string
	qtype  uint16
	rcode  int
	aa     bool
	answer string
	ns     string
	extra  string
	zone   string // expected event zone; "" means no event
}

var answerCases = []answerCase{
	{name: "apex A", qname: "example.com.", qtype: dns.TypeA, aa: true, zone: "example.com",
		answer: "example.com. 300 IN A 192.0.2.1"},
	{name: "apex AAAA", qname: "example.com.", qtype: dns.TypeAAAA, aa: true, zone: "example.com",
		answer: "example.com. 300 IN AAAA 2001:db8::1"},
	{name: "apex MX", qname: "example.com.", qtype: dns.TypeMX, aa: true, zone: "example.com",
		answer: "example.com. 300 IN MX 10 mx.example.com.",
		extra:  "mx.example.com. 300 IN A 192.0.2.1\nmx.example.com. 300 IN AAAA 2001:db8::1"},
	{name: "apex TXT", qname: "example.com.", qtype: dns.TypeTXT, aa: true, zone: "example.com",
		answer: `example.com. 300 IN TXT "sinkholed by order of E.D. Va. 1:10-cv-00156"`},
	{name: "apex SOA", qname: "example.com.", qtype: dns.TypeSOA, aa: true, zone: "example.com",
		answer: "example.com. 300 IN SOA ns1.sinkhole.example. abuse.sinkhole.example. SERIAL 3600 600 1209600 60"},
	{name: "apex NS with glue", qname: "example.com.", qtype: dns.TypeNS, aa: true, zone: "example.com",
		answer: "example.com. 300 IN NS ns1.sinkhole.example.\nexample.com. 300 IN NS ns2.example.com.",
		extra: "ns1.sinkhole.example. 300 IN A 192.0.2.53\nns1.sinkhole.example. 300 IN AAAA 2001:db8::53\n" +
			"ns2.example.com. 300 IN A 192.0.2.54"},
	{name: "apex NODATA", qname: "example.com.", qtype: dns.TypeSRV, aa: true, zone: "example.com",
		ns: "example.com. 60 IN SOA ns1.sinkhole.example. abuse.sinkhole.example. SERIAL 3600 600 1209600 60"},
	{name: "apex ANY", qname: "example.com.", qtype: dns.TypeANY, aa: true, zone: "example.com",
		answer: `example.com. 300 IN HINFO "RFC8482" ""`},
	{name: "wildcard A 0x20", qname: "wWw.ExAmple.COM.", qtype: dns.TypeA, aa: true, zone: "example.com",
		answer: "wWw.ExAmple.COM. 300 IN A 192.0.2.1"},
	{name: "wildcard AAAA", qname: "a.b.c.example.com.", qtype: dns.TypeAAAA, aa: true, zone: "example.com",
		answer: "a.b.c.example.com. 300 IN AAAA 2001:db8::1"},
	{name: "wildcard MX", qname: "mail.example.com.", qtype: dns.TypeMX, aa: true, zone: "example.com",
		answer: "mail.example.com. 300 IN MX 10 mx.example.com.",
		extra:  "mx.example.com. 300 IN A 192.0.2.1\nmx.example.com. 300 IN AAAA 2001:db8::1"},
	{name: "wildcard TXT", qname: "x.seized.test.", qtype: dns.TypeTXT, aa: true, zone: "seized.test",
		answer: `x.seized.test. 300 IN TXT "sinkholed by order of E.D. Va. 1:10-cv-00156"`},
	{name: "mx name", qname: "mx.example.com.", qtype: dns.TypeA, aa: true, zone: "example.com",
		answer: "mx.example.com. 300 IN A 192.0.2.1"},
	{name: "wildcard SOA is NODATA", qname: "www.example.com.", qtype: dns.TypeSOA, aa: true, zone: "example.com",
		ns: "example.com. 60 IN SOA ns1.sinkhole.example. abuse.sinkhole.example. SERIAL 3600 600 1209600 60"},
	{name: "wildcard NS is NODATA", qname: "www.seized.test.", qtype: dns.TypeNS, aa: true, zone: "seized.test",
		ns: "seized.test. 60 IN SOA ns1.sinkhole.example. abuse.sinkhole.example. SERIAL 3600 600 1209600 60"},
	{name: "wildcard ANY", qname: "bot.seized.test.", qtype: dns.TypeANY, aa: true, zone: "seized.test",
		answer: `bot.seized.test. 300 IN HINFO "RFC8482" ""`},
	{name: "no TXT is NODATA", qname: "notxt.test.", qtype: dns.TypeTXT, aa: true, zone: "notxt.test",
		ns: "notxt.test. 60 IN SOA ns1.sinkhole.example. abuse.sinkhole.example. SERIAL 3600 600 1209600 60"},
	{name: "in-zone NS host A", qname: "ns2.example.com.", qtype: dns.TypeA, aa: true, zone: "example.com",
		answer: "ns2.example.com. 300 IN A 192.0.2.54"},
	{name: "in-zone NS host AAAA is NODATA", qname: "ns2.example.com.", qtype: dns.TypeAAAA, aa: true, zone: "example.com",
		ns: "example.com. 60 IN SOA ns1.sinkhole.example. abuse.sinkhole.example. SERIAL 3600 600 1209600 60"},
	{name: "below in-zone NS host is NXDOMAIN", qname: "x.ns2.example.com.", qtype: dns.TypeA, aa: true,
		rcode: dns.RcodeNameError, zone: "example.com",
		ns: "example.com. 60 IN SOA ns1.sinkhole.example. abuse.sinkhole.example. SERIAL 3600 600 1209600 60"},
	{name: "deepest zone wins", qname: "Bot.Deep.example.com.", qtype: dns.TypeTXT, aa: true, zone: "deep.example.com",
		answer: `Bot.Deep.example.com. 300 IN TXT "other case"`},
	{name: "foreign name REFUSED", qname: "www.not-seized.example.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
	{name: "suffix is not a zone", qname: "notexample.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
	{name: "parent is not served", qname: "com.", qtype: dns.TypeNS, rcode: dns.RcodeRefused},
	{name: "escaped dot is not a label boundary", qname: `evil\.example.com.`, qtype: dns.TypeA, rcode: dns.RcodeRefused},
	{name: "AXFR without transfer handler", qname: "example.com.", qtype: dns.TypeAXFR, rcode: dns.RcodeRefused,
		zone: "example.com"},
}

func (c answerCase) check(t *testing.T, s *Server, r *dns.Msg) {
	t.Helper()
	serial := fmt.Sprint(s.Serial())
	lines := func(text string) []string {
		var out []string
		for l := range strings.SplitSeq(text, "\n") {
			if l != "" {
				out = append(out, normRR(strings.ReplaceAll(l, "SERIAL", serial)))
			}
		}
		return out
	}
	if r.Rcode != c.rcode {
		t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[c.rcode])
	}
	if r.Authoritative != c.aa {
		t.Errorf("aa = %v, want %v", r.Authoritative, c.aa)
	}
	if r.RecursionAvailable {
		t.Error("ra set")
	}
	if len(r.Question) != 1 || r.Question[0].Name != c.qname {
		t.Errorf("question = %v, want %s", r.Question, c.qname)
	}
	for _, sec := range []struct {
		name      string
		got, want []string
	}{
		{"answer", rrStrings(r.Answer), lines(c.answer)},
		{"authority", rrStrings(r.Ns), lines(c.ns)},
		{"additional", rrStrings(r.Extra), lines(c.extra)},
	} {
		if !slices.Equal(sec.got, sec.want) {
			t.Errorf("%s section:\n got %q\nwant %q", sec.name, sec.got, sec.want)
		}
	}
}

func TestAnswers(t *testing.T) {
	s, rec := startServer(t, testConfig())
	for _, netw := range []string{"udp", "tcp"} {
		for _, c := range answerCases {
			t.Run(netw+"/"+c.name, func(t *testing.T) {
				rec.reset()
				m := question(c.qname, c.qtype)
				m.RecursionDesired = true
				r := exchange(t, s, netw, m)
				c.check(t, s, r)
				if !r.RecursionDesired {
					t.Error("rd not copied")
				}
				evs := rec.all()
				if c.zone == "" {
					if len(evs) != 0 {
						t.Errorf("recorded %d events for an unserved name", len(evs))
					}
					return
				}
				if len(evs) != 1 {
					t.Fatalf("recorded %d events, want 1", len(evs))
				}
				e := evs[0]
				if e.Zone != c.zone || e.Domain != strings.TrimSuffix(strings.ToLower(c.qname), ".") ||
					e.DNSQType != dns.TypeToString[c.qtype] || e.DNSRcode != dns.RcodeToString[c.rcode] ||
					string(e.Transport) != netw {
					t.Errorf("event = %+v", e)
				}
			})
		}
	}
}

func TestEventFields(t *testing.T) {
	s, rec := startServer(t, testConfig())
	m := question("Bot42.Seized.Test.", dns.TypeA)
	m.SetEdns0(1232, true)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{
		Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24,
		Address: netip.MustParseAddr("198.51.100.0").AsSlice(),
	})
	r := exchange(t, s, "udp", m)
	if ropt := r.IsEdns0(); ropt == nil || !ropt.Do() {
		t.Errorf("response OPT %v lacks DO", ropt)
	} else {
		var scope = -1
		for _, o := range ropt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				scope = int(e.SourceScope)
			}
		}
		if scope != 0 {
			t.Errorf("ECS scope = %d, want echoed with 0", scope)
		}
	}
	evs := rec.all()
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	e := evs[0]
	want := map[string]any{
		"Domain": "bot42.seized.test", "Zone": "seized.test", "Case": "waledac", "Family": "waledac", "QType": "A",
		"Rcode": "NOERROR", "DO": true, "ECS": "198.51.100.0/24", "Sensor": "test-node",
		"Protocol": "dns", "Transport": "udp", "Src": "127.0.0.1", "Dst": s.UDPAddr(0).String(),
		"Bytes": int64(m.Len()),
	}
	got := map[string]any{
		"Domain": e.Domain, "Zone": e.Zone, "Case": e.Case, "Family": e.Family, "QType": e.DNSQType, "Rcode": e.DNSRcode,
		"DO": e.DNSDO, "ECS": e.DNSClientSubnet, "Sensor": e.Sensor, "Protocol": string(e.Protocol),
		"Transport": string(e.Transport), "Src": e.SrcIP.String(),
		"Dst": netip.AddrPortFrom(e.DstIP, e.DstPort).String(), "Bytes": e.Bytes,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if e.SrcPort == 0 || e.Time.IsZero() || e.Time.Location().String() != "UTC" {
		t.Errorf("src port %d, time %v", e.SrcPort, e.Time)
	}
	if err := e.Validate(); err != nil {
		t.Error(err)
	}
}

func TestTruncation(t *testing.T) {
	cfg := testConfig()
	sh := testSinkhole()
	sh.A = nil
	for i := range 100 {
		sh.A = append(sh.A, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}))
	}
	cfg.Served = servedSet(t, sh, testZones)
	s, _ := startServer(t, cfg)
	for _, c := range []struct {
		name    string
		edns    uint16 // 0: no OPT
		netw    string
		tc      bool
		maxSize int
	}{
		{"no EDNS UDP", 0, "udp", true, 512},
		{"EDNS 512", 512, "udp", true, 512},
		{"EDNS 1000", 1000, "udp", true, 1000},
		{"EDNS 4096 capped at 1232", 4096, "udp", true, 1232},
		{"TCP", 0, "tcp", false, 65535},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := question("www.example.com.", dns.TypeA)
			if c.edns > 0 {
				m.SetEdns0(c.edns, false)
			}
			r := exchange(t, s, c.netw, m)
			if r.Truncated != c.tc {
				t.Errorf("tc = %v, want %v", r.Truncated, c.tc)
			}
			r.Compress = true // Len of the wire form, as we sent it
			if n := r.Len(); n > c.maxSize {
				t.Errorf("response is %d bytes, more than %d", n, c.maxSize)
			}
			if !c.tc && len(r.Answer) != 100 {
				t.Errorf("%d answers, want 100", len(r.Answer))
			}
			if c.edns > 0 && r.IsEdns0() == nil {
				t.Error("OPT not echoed")
			}
		})
	}
	// A small answer fits in 512 and is not truncated.
	r := exchange(t, s, "udp", question("example.com.", dns.TypeTXT))
	if r.Truncated || len(r.Answer) != 1 {
		t.Errorf("small answer: tc %v, %d answers", r.Truncated, len(r.Answer))
	}
	// A real client falls back to TCP and gets everything.
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(question("www.example.com.", dns.TypeA), s.UDPAddr(0).String())
	if err != nil || !r.Truncated {
		t.Fatalf("udp: %v, tc %v", err, r != nil && r.Truncated)
	}
	c.Net = "tcp"
	r, _, err = c.Exchange(question("www.example.com.", dns.TypeA), s.TCPAddr(0).String())
	if err != nil || r.Truncated || len(r.Answer) != 100 {
		t.Fatalf("tcp retry: %v, %d answers", err, len(r.Answer))
	}
}

func TestCookies(t *testing.T) {
	s, _ := startServer(t, testConfig())
	const client = "0102030405060708"
	for _, cookie := range []string{client, client + "0100000065f0000011223344556677aa"} {
		m := question("www.example.com.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie})
		r := exchange(t, s, "udp", m)
		var got string
		for _, o := range r.IsEdns0().Option {
			if c, ok := o.(*dns.EDNS0_COOKIE); ok {
				got = c.Cookie
			}
		}
		if len(got) != 48 || !strings.HasPrefix(got, client) || got[16:18] != "01" {
			t.Errorf("cookie %q: response cookie %q, want client cookie + 16-byte RFC 9018 server cookie", cookie, got)
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Errorf("rcode %d, %d answers", r.Rcode, len(r.Answer))
		}
	}
	// A cookie of a bad length is FORMERR (RFC 7873 section 5.2.2).
	m := question("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102"})
	raw, _ := m.Pack()
	resp := s.handlePacket(nil, raw, &packetInfo{src: netip.MustParseAddrPort("192.0.2.9:53000"), tcp: true})
	r := new(dns.Msg)
	if err := r.Unpack(resp); err != nil || r.Rcode != dns.RcodeFormatError {
		t.Errorf("bad cookie: %v, rcode %d", err, r.Rcode)
	}
}

func TestBadVersion(t *testing.T) {
	s, _ := startServer(t, Config{})
	m := question("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	raw, _ := m.Pack()
	resp := s.handlePacket(nil, raw, &packetInfo{tcp: true})
	r := new(dns.Msg)
	if err := r.Unpack(resp); err != nil || r.Rcode != dns.RcodeBadVers {
		t.Errorf("edns version 1: %v, rcode %d", err, r.Rcode)
	}
}

func TestOtherClassRefused(t *testing.T) {
	s, _ := startServer(t, testConfig())
	m := question("version.bind.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	if r := exchange(t, s, "udp", m); r.Rcode != dns.RcodeRefused {
		t.Errorf("CH version.bind: rcode %d", r.Rcode)
	}
	m = question("www.example.com.", dns.TypeA)
	m.Question[0].Qclass = dns.ClassCHAOS
	if r := exchange(t, s, "udp", m); r.Rcode != dns.RcodeRefused {
		t.Errorf("CH in zone: rcode %d", r.Rcode)
	}
}

func TestNotImplemented(t *testing.T) {
	s, _ := startServer(t, Config{})
	m := question("example.com.", dns.TypeSOA)
	m.Opcode = dns.OpcodeUpdate
	raw, _ := m.Pack()
	r := new(dns.Msg)
	if err := r.Unpack(s.handlePacket(nil, raw, &packetInfo{tcp: true})); err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("update: %v, rcode %d", err, r.Rcode)
	}
}
