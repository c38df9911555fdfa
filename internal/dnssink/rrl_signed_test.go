package dnssink

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssec"
)

// signedRRLServer is rrlServer with the zones of cases waledac and farm
// (the n seized-NNN.example zones) signed with key, and a budget of 100
// signed answers a second per prefix (five times the 20 per response, the
// ratio of the configuration's default); it returns once they are signed. example.com holds a name server of the sinkhole and is not signed:
// the signed zone of case waledac is seized.test.
func signedRRLServer(t *testing.T, c *stepClock, n int, key dnssec.Key) *Server {
	t.Helper()
	cfg := testConfig()
	cfg.UDPWorkers = 1
	cfg.RRL = RRLConfig{ResponsesPerSecond: 20, SignedPerSecond: 100, Slip: 2}
	cfg.Now = c.now
	zones := append(append([]testZone(nil), testZones...), seizedZones(n)...)
	cfg.Served = signedSet(t, testSinkhole(), zones, map[string][]dnssec.Key{"waledac": {key}, "farm": {key}})
	s, _ := startServer(t, cfg)
	waitSigned(t, s, int64(1+n))
	return s
}

// reflectionKind is one query of a reflection flood.
type reflectionKind struct {
	name  string
	qtype uint16
}

// signedFlood packs each kind with DO and a 4096-byte buffer, with and
// without a client cookie (the fast and the general path), and returns the
// packed queries and, for the log, each kind's answer size over its query
// size when nothing limits it (asked as over TCP).
func signedFlood(t *testing.T, s *Server, kinds []reflectionKind) (flood [][]byte, single string) {
	t.Helper()
	for _, k := range kinds {
		for _, cookie := range []bool{false, true} {
			m := question(k.name, k.qtype)
			m.SetEdns0(4096, true)
			if cookie {
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
			}
			raw, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			flood = append(flood, raw)
			if cookie {
				continue
			}
			pi := &packetInfo{src: netip.MustParseAddrPort("198.51.100.9:4000"), tcp: true}
			b := s.handlePacket(nil, append([]byte(nil), raw...), pi)
			r := new(dns.Msg)
			if err := r.Unpack(b); err != nil || len(r.Answer)+len(r.Ns) == 0 {
				t.Fatalf("%s %s: no answer (%v):\n%v", k.name, dns.TypeToString[k.qtype], err, r)
			}
			single += fmt.Sprintf("\n  %-24s %-6s %3d B in %4d B out %5.2f", k.name, dns.TypeToString[k.qtype], len(raw), len(b), float64(len(b))/float64(len(raw)))
		}
	}
	return flood, single
}

// TestRRLReflectionBoundSigned: TestRRLReflectionBound's one-source flood
// with the DO bit to signed zones (ECDSA P-256), whose answers carry
// RRSIGs (and NSEC proofs below the apex) and are up to ten times the
// query: DNSKEY, ANY, TXT and MX at the apex and below it, NODATA below it.
// After the first second the bytes sent back are still at most twice the
// bytes received. So are they for a flood rotating over 100 signed zones,
// each under its own budget: the budget of signed answers per prefix
// bounds it. The same flood without signatures is logged (the README's
// "Not bounded": unsigned answers have no budget over all zones).
func TestRRLReflectionBoundSigned(t *testing.T) {
	key := testKey(t, dns.ECDSAP256SHA256)
	s := signedRRLServer(t, newStepClock(time.Millisecond), 101, key)
	flood, single := signedFlood(t, s, []reflectionKind{
		{"seized.test.", dns.TypeDNSKEY},
		{"seized.test.", dns.TypeANY},
		{"seized.test.", dns.TypeTXT},
		{"seized.test.", dns.TypeMX},
		{"bot.seized.test.", dns.TypeTXT},
		{"bot.seized.test.", dns.TypeMX},
		{"bot.seized.test.", dns.TypeSRV},
	})
	t.Logf("one answer, RRL aside:%s", single)
	in, out := reflectionFlood(t, dialServer(t, s), flood)
	ratio := float64(out[1]) / float64(in[1])
	t.Logf("signed flood: warm-up %d bytes in, %d out (%.2f); after it %d in, %d out (%.2f)",
		in[0], out[0], float64(out[0])/float64(in[0]), in[1], out[1], ratio)
	if ratio > 2 {
		t.Errorf("amplification with signatures after warm-up %.2f, want ≤ 2", ratio)
	}

	// Rotating over the seized zones: wildcard TXT below each, with DO.
	// The signed server is the one above: by the end of the first second
	// of this flood its budgets hold what a fresh server's would.
	signedServer := s
	for _, signed := range []bool{false, true} {
		s := signedServer
		if !signed {
			s, _ = rrlServer(t, newStepClock(time.Millisecond), 101, nil)
		}
		var kinds []reflectionKind
		for i := range 100 {
			kinds = append(kinds, reflectionKind{fmt.Sprintf("bot.seized-%03d.example.", i), dns.TypeTXT})
		}
		flood, _ := signedFlood(t, s, kinds)
		in, out := reflectionFlood(t, dialServer(t, s), flood)
		ratio := float64(out[1]) / float64(in[1])
		t.Logf("flood rotating over 100 zones, signed %v: after the first second %d bytes in, %d out (%.2f)",
			signed, in[1], out[1], ratio)
		if signed && ratio > 2 {
			t.Errorf("flood rotating over 100 signed zones: amplification after warm-up %.2f, want ≤ 2", ratio)
		}
	}
}

// TestRRLSignedBudget: one client prefix asks, with DO, for a wildcard TXT
// in each of 30 signed zones in turn while the clock stands still, on the
// fast path and (another server, same zones and signatures) on the general
// path. Each zone's own budget (20) is never reached; the prefix's budget
// of 10 signed answers is: 10 full answers, then every second answer an
// empty TC, the others dropped, the same on both paths, and every query is
// an event. Unsigned answers (no DO) to the same client, a client of
// another prefix and an exempt one are not limited by it. The check adds
// no allocation to the fast path.
func TestRRLSignedBudget(t *testing.T) {
	const zones, budget = 30, 10
	key := testKey(t, dns.ECDSAP256SHA256)
	newServer := func(signedPerSecond int) (*Server, *memRecorder) {
		cfg := testConfig()
		cfg.Listen = nil
		cfg.RRL = RRLConfig{ResponsesPerSecond: 20, SignedPerSecond: signedPerSecond, Slip: 2,
			Exempt: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}
		fixed := time.Unix(1_700_000_000, 0)
		cfg.Now = func() time.Time { return fixed }
		cfg.Served = signedSet(t, testSinkhole(), seizedZones(zones), map[string][]dnssec.Key{"farm": {key}})
		return startServer(t, cfg)
	}
	fast, frec := newServer(budget)
	slow, srec := newServer(budget)
	slow.noFast = true
	waitSigned(t, fast, zones)
	waitSigned(t, slow, zones)
	slow.view.Store(fast.view.Load())

	packed := func(i int, do bool) []byte {
		m := question(fmt.Sprintf("bot.seized-%03d.example.", i%zones), dns.TypeTXT)
		m.Id = uint16(i)
		m.SetEdns0(4096, do)
		raw, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	// verdict sends raw from src and tells what came back: "answer",
	// "slip" or "drop".
	verdict := func(s *Server, raw []byte, src string) string {
		t.Helper()
		pi := &packetInfo{src: netip.MustParseAddrPort(src), dst: netip.MustParseAddrPort("192.0.2.53:53")}
		b := s.handlePacket(nil, append([]byte(nil), raw...), pi)
		if b == nil {
			return "drop"
		}
		var r dns.Msg
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Truncated && len(r.Answer)+len(r.Ns) == 0 && r.IsEdns0() != nil:
			return "slip"
		case !r.Truncated && len(r.Answer) > 0 && r.Rcode == dns.RcodeSuccess:
			return "answer"
		}
		t.Fatalf("neither a full answer nor a slip:\n%v", &r)
		return ""
	}

	const n = 3 * zones
	for i := range n {
		raw := packed(i, true)
		var fq fastQuery
		if !fast.parseFast(raw, &fq) {
			t.Fatal("the fast path declines a signed wildcard TXT")
		}
		want := "answer"
		if i >= budget {
			want = map[bool]string{true: "slip", false: "drop"}[(i-budget+1)%2 == 0]
		}
		for _, s := range []*Server{fast, slow} {
			if got := verdict(s, raw, "198.51.100.9:4000"); got != want {
				t.Fatalf("query %d (fast path %v): %s, want %s", i, !s.noFast, got, want)
			}
		}
	}
	for _, s := range []*Server{fast, slow} {
		for i := range zones {
			if got := verdict(s, packed(i, false), "198.51.100.77:4000"); got != "answer" {
				t.Fatalf("unsigned answer %d to the limited prefix: %s", i, got)
			}
			if got := verdict(s, packed(i, true), "192.0.2.9:4000"); got != "answer" && i < budget {
				t.Fatalf("signed answer %d to another prefix: %s", i, got)
			}
			if got := verdict(s, packed(i, true), "203.0.113.5:4000"); got != "answer" {
				t.Fatalf("signed answer %d to an exempt prefix: %s", i, got)
			}
		}
	}
	for name, rec := range map[string]*memRecorder{"fast": frec, "general": srec} {
		if got := len(rec.all()); got != n+3*zones {
			t.Errorf("%s path: %d events, want one per query: %d", name, got, n+3*zones)
		}
	}

	// Allocations on the fast path, with the budget and without.
	raw := packed(0, true)
	pi := &packetInfo{src: netip.MustParseAddrPort("198.51.100.9:4000")}
	out := make([]byte, 0, 4096)
	off, _ := newServer(0)
	waitSigned(t, off, zones)
	allocs := func(s *Server) float64 {
		return testing.AllocsPerRun(200, func() {
			if _, ok := s.fastAnswer(out, raw, pi, s.now()); !ok {
				t.Fatal("fast path declined")
			}
		})
	}
	if on, off := allocs(fast), allocs(off); on != off {
		t.Errorf("fast path: %.1f allocations with the signed budget, %.1f without", on, off)
	}
}
