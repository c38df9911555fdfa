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
// (the n seized-NNN.example zones) signed with key; it returns once they
// are. example.com holds a name server of the sinkhole and is not signed:
// the signed zone of case waledac is seized.test.
func signedRRLServer(t *testing.T, c *stepClock, n int, key dnssec.Key) *Server {
	t.Helper()
	cfg := testConfig()
	cfg.UDPWorkers = 1
	cfg.RRL = RRLConfig{ResponsesPerSecond: 20, Slip: 2}
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
// bytes received. For the record (the README's "Not bounded"), it logs
// what a flood rotating over 100 zones, each under its budget, gets back,
// signed and unsigned.
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
	for _, signed := range []bool{false, true} {
		var s *Server
		if signed {
			s = signedRRLServer(t, newStepClock(time.Millisecond), 101, key)
		} else {
			s, _ = rrlServer(t, newStepClock(time.Millisecond), 101, nil)
		}
		var kinds []reflectionKind
		for i := range 100 {
			kinds = append(kinds, reflectionKind{fmt.Sprintf("bot.seized-%03d.example.", i), dns.TypeTXT})
		}
		flood, _ := signedFlood(t, s, kinds)
		in, out := reflectionFlood(t, dialServer(t, s), flood)
		t.Logf("flood rotating over 100 zones, signed %v: after the first second %d bytes in, %d out (%.2f)",
			signed, in[1], out[1], float64(out[1])/float64(in[1]))
	}
}
