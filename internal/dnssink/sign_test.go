package dnssink

import (
	"context"
	"crypto"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssec"
	"github.com/takedown-project/takedown/internal/servedset"
	"github.com/takedown-project/takedown/internal/xfr"
)

// testKeys caches a key per algorithm: making one is cheap, but the tests
// compare answers of servers that must sign alike.
var (
	testKeysMu sync.Mutex
	testKeys   = map[uint8]dnssec.Key{}
)

// testKey returns an active CSK of algorithm alg (13 or 15).
func testKey(t testing.TB, alg uint8) dnssec.Key {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k, ok := testKeys[alg]; ok {
		return k
	}
	k := newTestKey(t, alg)
	testKeys[alg] = k
	return k
}

// newTestKey makes a new active CSK of algorithm alg.
func newTestKey(t testing.TB, alg uint8) dnssec.Key {
	t.Helper()
	bits := 256
	dk := &dns.DNSKEY{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET}, Flags: dnssec.FlagsCSK, Protocol: 3, Algorithm: alg}
	priv, err := dk.Generate(bits)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2010, 2, 20, 0, 0, 0, 0, time.UTC)
	return dnssec.Key{
		Algorithm: alg, Flags: dnssec.FlagsCSK, PublicKey: dk.PublicKey, Signer: priv.(crypto.Signer),
		State: dnssec.StateActive, Created: created, Activated: created,
	}
}

// signedSet returns a served set of zones whose cases named in keys sign
// with those keys.
func signedSet(t testing.TB, sh servedset.Sinkhole, zones []testZone, keys map[string][]dnssec.Key) *servedset.Set {
	t.Helper()
	set := servedset.NewSet()
	d := &servedset.Delta{From: 0, To: 1267000000, Sinkhole: &sh}
	seen := map[string]bool{}
	for _, z := range zones {
		if !seen[z.Case] {
			seen[z.Case] = true
			d.Cases = append(d.Cases, servedset.Case{Name: z.Case, Family: z.Family, TXT: z.TXT, Keys: keys[z.Case]})
		}
		d.Put = append(d.Put, servedset.Zone{Name: z.Name, Case: z.Case})
	}
	if err := set.Apply(d); err != nil {
		t.Fatal(err)
	}
	return set
}

// signedTestServer starts a server (no sockets) on the test zones, the
// case waledac signing with key, and waits until its zones are signed.
func signedTestServer(t testing.TB, key dnssec.Key, now func() time.Time) (*Server, *servedset.Set) {
	t.Helper()
	cfg := testConfig()
	cfg.Listen = nil
	cfg.Now = now
	cfg.Served = signedSet(t, testSinkhole(), signZones, map[string][]dnssec.Key{"waledac": {key}})
	s, _ := startServer(t, cfg)
	waitSigned(t, s, 3)
	return s, cfg.Served
}

// signZones are the zones of the signing tests: the waledac case signs,
// "other" does not; ns2.example.com is in no zone of theirs.
var signZones = []testZone{
	{Name: "seized.test", Case: "waledac", Family: "waledac", TXT: "sinkholed by order of E.D. Va. 1:10-cv-00156"},
	{Name: "bot.co.test", Case: "waledac"},
	{Name: "Third.TEST", Case: "waledac"},
	{Name: "plain.test", Case: "other", TXT: "other case"},
}

func waitSigned(t testing.TB, s *Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.sign.zones.n.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d zones signed, want %d", s.sign.zones.n.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// doQuery asks the packet handler (general path if slow) with DO.
func doQuery(t *testing.T, s *Server, name string, qtype uint16, do bool) *dns.Msg {
	t.Helper()
	m := question(name, qtype)
	m.SetEdns0(4096, do)
	raw, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	pi := &packetInfo{src: netip.MustParseAddrPort("198.51.100.9:4000"), tcp: true}
	b := s.handlePacket(nil, raw, pi)
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		t.Fatalf("%s %s: answer does not parse: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

// verifySection checks that every RRset of rrs (but RRSIGs) has an RRSIG
// made by key that verifies, and that no RRSIG is left over.
func verifySection(t *testing.T, what string, rrs []dns.RR, key *dns.DNSKEY, now time.Time) {
	t.Helper()
	sets := map[string][]dns.RR{}
	var sigs []*dns.RRSIG
	for _, rr := range rrs {
		if sig, ok := rr.(*dns.RRSIG); ok {
			sigs = append(sigs, sig)
			continue
		}
		k := strings.ToLower(rr.Header().Name) + "/" + dns.TypeToString[rr.Header().Rrtype]
		sets[k] = append(sets[k], rr)
	}
	for k, set := range sets {
		ok := false
		for _, sig := range sigs {
			if strings.EqualFold(sig.Hdr.Name, set[0].Header().Name) && sig.TypeCovered == set[0].Header().Rrtype {
				if err := sig.Verify(key, set); err != nil {
					t.Errorf("%s: RRSIG of %s does not verify: %v", what, k, err)
				}
				if !sig.ValidityPeriod(now) {
					t.Errorf("%s: RRSIG of %s not valid at %s", what, k, now)
				}
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: %s has no RRSIG", what, k)
		}
	}
	if len(sets) == 0 && len(sigs) > 0 {
		t.Errorf("%s: RRSIGs without records", what)
	}
}

// nsecOwners lists the owner names of the NSEC records of rrs, lower case.
func nsecOwners(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if n, ok := rr.(*dns.NSEC); ok {
			out = append(out, strings.ToLower(n.Hdr.Name)+"→"+n.NextDomain)
		}
	}
	return out
}

func TestSignedAnswers(t *testing.T) {
	for _, alg := range []uint8{dns.ECDSAP256SHA256, dns.ED25519} {
		t.Run(dns.AlgorithmToString[alg], func(t *testing.T) {
			key := testKey(t, alg)
			s, _ := signedTestServer(t, key, nil)
			dk := key.DNSKEY("seized.test", DefaultTTL)
			now := time.Now()
			for _, c := range []struct {
				name   string
				qtype  uint16
				answer int      // records in the answer, RRSIGs included
				nsec   []string // NSEC owner→next in the authority section
			}{
				{"seized.test.", dns.TypeA, 2, nil},
				{"SeiZed.test.", dns.TypeAAAA, 2, nil},
				{"seized.test.", dns.TypeMX, 2, nil},
				{"seized.test.", dns.TypeTXT, 2, nil},
				{"seized.test.", dns.TypeSOA, 2, nil},
				{"seized.test.", dns.TypeNS, 3, nil},
				{"seized.test.", dns.TypeDNSKEY, 2, nil},
				{"seized.test.", dns.TypeNSEC, 2, nil},
				{"seized.test.", dns.TypeANY, 2, nil},
				{"www.seized.test.", dns.TypeA, 2, []string{"*.seized.test.→seized.test."}},
				{"a.b.c.Seized.Test.", dns.TypeTXT, 2, []string{"*.seized.test.→seized.test."}},
				{"*.seized.test.", dns.TypeA, 2, nil},
				{`!bang.seized.test.`, dns.TypeA, 2, []string{"seized.test.→*.seized.test."}},
				{`\000.seized.test.`, dns.TypeMX, 2, []string{"seized.test.→*.seized.test."}},
				{"seized.test.", dns.TypeSRV, 0, []string{"seized.test.→*.seized.test."}},
				{"seized.test.", dns.TypeDS, 0, []string{"seized.test.→*.seized.test."}},
				{"www.seized.test.", dns.TypeSRV, 0, []string{"*.seized.test.→seized.test."}},
				{"www.seized.test.", dns.TypeDNSKEY, 0, []string{"*.seized.test.→seized.test."}},
				{"!.seized.test.", dns.TypeSRV, 0, []string{"seized.test.→*.seized.test.", "*.seized.test.→seized.test."}},
				{"x.bot.co.test.", dns.TypeAAAA, 2, []string{"*.bot.co.test.→bot.co.test."}},
			} {
				what := fmt.Sprintf("%s %s", c.name, dns.TypeToString[c.qtype])
				for _, fast := range []bool{true, false} {
					s.noFast = !fast
					r := doQuery(t, s, c.name, c.qtype, true)
					if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
						t.Fatalf("%s: rcode %s, aa %v", what, dns.RcodeToString[r.Rcode], r.Authoritative)
					}
					if len(r.Answer) != c.answer {
						t.Errorf("%s: %d answer records, want %d:\n%s", what, len(r.Answer), c.answer, r)
					}
					apex := "seized.test."
					if strings.HasSuffix(strings.ToLower(c.name), "bot.co.test.") {
						apex = "bot.co.test."
					}
					dk.Hdr.Name = apex
					verifySection(t, what+" answer", r.Answer, dk, now)
					verifySection(t, what+" authority", r.Ns, dk, now)
					if got := nsecOwners(r.Ns); !slices.Equal(got, c.nsec) {
						t.Errorf("%s: NSEC %q, want %q", what, got, c.nsec)
					}
				}
			}
			s.noFast = false
			// The fast path takes the DO queries of bots (the general
			// path above is its reference, TestFastPathMatchesGeneralPath
			// compares the two).
			for _, name := range []string{"seized.test.", "Bot-7.Seized.test.", "a.b.bot.co.test."} {
				for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeSRV, dns.TypeDS} {
					m := question(name, qt)
					m.SetEdns0(1232, true)
					raw, _ := m.Pack()
					if _, ok := s.fastAnswer(nil, raw, &packetInfo{tcp: true}, s.now()); !ok {
						t.Errorf("%s %s with DO: not taken by the fast path", name, dns.TypeToString[qt])
					}
				}
			}
			// Without DO: no signatures, the DNSKEY all the same.
			r := doQuery(t, s, "seized.test.", dns.TypeA, false)
			if len(r.Answer) != 1 {
				t.Errorf("A without DO: %d records:\n%s", len(r.Answer), r)
			}
			r = doQuery(t, s, "seized.test.", dns.TypeDNSKEY, false)
			if len(r.Answer) != 1 || r.Answer[0].(*dns.DNSKEY).PublicKey != key.PublicKey {
				t.Errorf("DNSKEY without DO:\n%s", r)
			}
			// A case that does not sign: unsigned with DO.
			r = doQuery(t, s, "www.plain.test.", dns.TypeA, true)
			if len(r.Answer) != 1 || len(r.Ns) != 0 {
				t.Errorf("unsigned case with DO:\n%s", r)
			}
		})
	}
}

// TestSignedZoneTransferVerifies transfers signed zones (AXFR over TCP
// from the transfer server, internal/xfr) from a sinkhole's ZoneRecords
// and from a ZoneSource, and checks each with dnssec-verify (BIND's zone
// checker).
func TestSignedZoneTransferVerifies(t *testing.T) {
	bin, err := exec.LookPath("dnssec-verify")
	if err != nil {
		t.Fatal("dnssec-verify (bind9-utils) is not installed")
	}
	key := testKey(t, dns.ECDSAP256SHA256)
	s, set := signedTestServer(t, key, nil)
	for _, src := range []struct {
		name   string
		source xfr.Source
		zones  []string
	}{
		{"server", s, []string{"seized.test.", "Bot.Co.Test."}},
		{"zone source", NewZoneSource(set), []string{"seized.test.", "third.test."}},
	} {
		xs, err := xfr.New(xfr.Config{Listen: []string{"127.0.0.1:0"}, AllowUnsigned: xfr.DefaultAllowFrom(), Fallback: src.source})
		if err != nil {
			t.Fatal(err)
		}
		if err := xs.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = xs.Shutdown(context.Background()) })
		var tcp string
		for _, a := range xs.Addrs() {
			if a.Network() == "tcp" {
				tcp = a.String()
			}
		}
		for _, zone := range src.zones {
			m := new(dns.Msg)
			m.SetAxfr(zone)
			env, err := (&dns.Transfer{}).In(m, tcp)
			if err != nil {
				t.Fatal(err)
			}
			var sb strings.Builder
			n := 0
			for e := range env {
				if e.Error != nil {
					t.Fatalf("AXFR of %s from the %s: %v", zone, src.name, e.Error)
				}
				for _, rr := range e.RR {
					sb.WriteString(rr.String() + "\n")
					n++
				}
			}
			if n < 20 {
				t.Fatalf("AXFR of %s from the %s: %d records:\n%s", zone, src.name, n, sb.String())
			}
			file := filepath.Join(t.TempDir(), "zone")
			if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			// -z: a combined signing key signs everything, so that the KSK
			// flag (SEP) says nothing about which key signs what.
			out, err := exec.Command(bin, "-z", "-o", lowerName(zone), file).CombinedOutput()
			if err != nil {
				t.Fatalf("dnssec-verify %s from the %s: %v\n%s\n%s", zone, src.name, err, out, sb.String())
			}
			if !strings.Contains(string(out), "Zone fully signed") {
				t.Fatalf("dnssec-verify %s from the %s:\n%s", zone, src.name, out)
			}
		}
	}
	if rrs, _ := s.ZoneRecords("plain.test"); slices.ContainsFunc(rrs, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeRRSIG }) {
		t.Error("a zone of a case without keys is signed")
	}
}

// TestSignerFollows follows a signed zone through the steps of its served
// set and of time: a zone put and one removed, a key published beside the
// active one (a rollover's first step), half the validity passed, the
// case's keys gone. After each, the DO answers verify with what the
// DNSKEY query gives.
func TestSignerFollows(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	key := testKey(t, dns.ECDSAP256SHA256)
	s, set := signedTestServer(t, key, now)
	check := func(step string, keys int) *signedZone {
		t.Helper()
		r := doQuery(t, s, "seized.test.", dns.TypeDNSKEY, true)
		var dks []*dns.DNSKEY
		for _, rr := range r.Answer {
			if k, ok := rr.(*dns.DNSKEY); ok {
				dks = append(dks, k)
			}
		}
		if len(dks) != keys {
			t.Fatalf("%s: %d DNSKEY, want %d:\n%s", step, len(dks), keys, r)
		}
		for _, q := range []struct {
			name  string
			qtype uint16
		}{{"seized.test.", dns.TypeSOA}, {"bot.seized.test.", dns.TypeA}, {"bot.seized.test.", dns.TypeSRV}} {
			r := doQuery(t, s, q.name, q.qtype, true)
			for _, dk := range dks {
				if dk.Algorithm == key.Algorithm && dk.PublicKey == key.PublicKey {
					verifySection(t, step+": "+q.name, append(r.Answer, r.Ns...), dk, now())
				}
			}
		}
		return s.sign.zones.get("seized.test")
	}
	apply := func(d *servedset.Delta) {
		t.Helper()
		d.From, d.To = set.Load().Serial(), set.Load().Serial()+1
		if err := set.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	first := check("start", 1)

	apply(&servedset.Delta{Put: []servedset.Zone{{Name: "New.test", Case: "waledac"}}, Remove: []string{"third.test"}})
	waitFor(t, "new.test signed, third.test forgotten", func() bool {
		return s.sign.zones.get("new.test") != nil && s.sign.zones.get("third.test") == nil
	})
	if got := s.sign.zones.get("seized.test"); got != first {
		t.Error("a step that did not touch seized.test signed it again")
	}

	next := newTestKey(t, dns.ECDSAP256SHA256)
	next.State = dnssec.StatePublished
	apply(&servedset.Delta{Cases: []servedset.Case{{Name: "waledac", Family: "waledac", TXT: signZones[0].TXT, Keys: []dnssec.Key{key, next}}}})
	waitFor(t, "the zones signed again with the new DNSKEY RRset", func() bool {
		return s.sign.zones.get("seized.test").zk != first.zk
	})
	rolled := check("key published", 2)
	if !servedset.SerialLess(first.serial, rolled.serial) {
		t.Errorf("serial %d after the DNSKEY change, was %d", rolled.serial, first.serial)
	}

	mu.Lock()
	clock = clock.Add(sigValidity/2 + time.Minute)
	mu.Unlock()
	s.sign.kick()
	waitFor(t, "signatures refreshed", func() bool {
		return s.sign.zones.get("seized.test").inception != rolled.inception
	})
	refreshed := check("half the validity passed", 2)
	if !servedset.SerialLess(rolled.serial, refreshed.serial) {
		t.Errorf("serial %d after a refresh, was %d", refreshed.serial, rolled.serial)
	}
	if r := doQuery(t, s, "seized.test.", dns.TypeSOA, false); r.Answer[0].(*dns.SOA).Serial != refreshed.serial {
		t.Errorf("SOA without DO has serial %d, the signed zone %d", r.Answer[0].(*dns.SOA).Serial, refreshed.serial)
	}

	apply(&servedset.Delta{Cases: []servedset.Case{{Name: "waledac", Family: "waledac", TXT: signZones[0].TXT}}})
	waitSigned(t, s, 0)
	if r := doQuery(t, s, "bot.seized.test.", dns.TypeA, true); len(r.Answer) != 1 || len(r.Ns) != 0 {
		t.Errorf("signing off, DO answer:\n%s", r)
	}
}

// TestSignedSizeAndRRL keeps the size rules and the rate limit for signed
// answers, which are larger: with two signing keys (a rollover by double
// signature) a signed answer does not fit 512 bytes and goes out with TC,
// fits 1232 whole, and TCP is never truncated; a flood of DO queries for
// made-up names below one zone is limited as one response (keyed by the
// zone), slipped answers carrying no records, on both paths.
func TestSignedSizeAndRRL(t *testing.T) {
	second := newTestKey(t, dns.ED25519)
	cfg := testConfig()
	cfg.Listen = nil
	cfg.RRL = RRLConfig{ResponsesPerSecond: 5, Slip: 2}
	cfg.Served = signedSet(t, testSinkhole(), signZones, map[string][]dnssec.Key{"waledac": {testKey(t, dns.ECDSAP256SHA256), second}})
	fixed := time.Now()
	cfg.Now = func() time.Time { return fixed }
	s, _ := startServer(t, cfg)
	waitSigned(t, s, 3)
	ask := func(name string, qtype uint16, size uint16, pi *packetInfo) (*dns.Msg, int) {
		t.Helper()
		m := question(name, qtype)
		m.SetEdns0(size, true)
		raw, _ := m.Pack()
		b := s.handlePacket(nil, raw, pi)
		if b == nil {
			return nil, 0
		}
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		return r, len(b)
	}
	for i, q := range []struct {
		name  string
		qtype uint16
	}{{"bot.seized.test.", dns.TypeTXT}, {"bot.seized.test.", dns.TypeA}, {"bot.seized.test.", dns.TypeSRV}} {
		for _, fast := range []bool{true, false} {
			s.noFast = !fast
			// A client prefix of its own per query: no limit here.
			udp := &packetInfo{src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, byte(i), byte(len(q.name))}), 53)}
			r, n := ask(q.name, q.qtype, 512, udp)
			if !r.Truncated || n > 512 {
				t.Errorf("%s %s with DO in 512 bytes: TC %v, %d bytes", q.name, dns.TypeToString[q.qtype], r.Truncated, n)
			}
			udp.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 1, byte(i), byte(len(q.name))}), 53)
			r, n = ask(q.name, q.qtype, 1232, udp)
			if r.Truncated || n > 1232 || len(r.Answer)+len(r.Ns) < 3 {
				t.Errorf("%s %s with DO in 1232 bytes: TC %v, %d bytes:\n%s", q.name, dns.TypeToString[q.qtype], r.Truncated, n, r)
			}
			r, _ = ask(q.name, q.qtype, 512, &packetInfo{tcp: true})
			if r.Truncated {
				t.Errorf("%s %s over TCP: truncated", q.name, dns.TypeToString[q.qtype])
			}
		}
	}
	for _, fast := range []bool{true, false} {
		s.noFast = !fast
		pi := &packetInfo{src: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), 4000)}
		if !fast {
			pi.src = netip.AddrPortFrom(netip.MustParseAddr("198.51.101.7"), 4000)
		}
		var full, slipped, dropped int
		for i := range 40 {
			r, _ := ask(fmt.Sprintf("made-up-%d.seized.test.", i), dns.TypeA, 1232, pi)
			switch {
			case r == nil:
				dropped++
			case r.Truncated:
				slipped++
				if len(r.Answer)+len(r.Ns) != 0 {
					t.Errorf("slipped answer with records:\n%s", r)
				}
			default:
				full++
			}
		}
		if full > 6 || slipped == 0 || dropped == 0 {
			t.Errorf("fast path %v: 40 DO queries below one zone: %d answered, %d slipped, %d dropped; want at most a second's budget answered", fast, full, slipped, dropped)
		}
	}
}

// TestSignerSignsAskedZonesFirst starts a sinkhole on many zones of a
// signing case: zones asked for while the first pass is under way are
// signed before their turn.
func TestSignerSignsAskedZonesFirst(t *testing.T) {
	const n = 2000
	zones := make([]testZone, n)
	for i := range zones {
		zones[i] = testZone{Name: fmt.Sprintf("z%04d.test", i), Case: "waledac", TXT: "sinkholed"}
	}
	cfg := testConfig()
	cfg.Listen = nil
	cfg.Served = signedSet(t, testSinkhole(), zones, map[string][]dnssec.Key{"waledac": {testKey(t, dns.ED25519)}})
	s, _ := startServer(t, cfg)
	asked := []string{"z0007.test", "z0500.test", "z1000.test", "z1500.test", "z1999.test"}
	for _, z := range asked {
		doQuery(t, s, "bot."+z+".", dns.TypeA, true)
	}
	waitFor(t, "the zones asked for signed", func() bool {
		for _, z := range asked {
			if s.sign.zones.get(z) == nil {
				return false
			}
		}
		return true
	})
	if got := s.sign.zones.n.Load(); got >= n/2 {
		t.Errorf("%d of %d zones signed by the time the 5 asked for were: not signed first", got, n)
	}
	r := doQuery(t, s, "bot.z1999.test.", dns.TypeA, true)
	key := testKey(t, dns.ED25519)
	verifySection(t, "bot.z1999.test A", r.Answer, key.DNSKEY("z1999.test", DefaultTTL), time.Now())
}

// TestZoneSourceSignsAgain follows a zone of the transfer server's source
// (which signs when asked, having no signer of its own): the same signed
// zone while nothing changes, signed again with a later serial when its
// case publishes another key and when half the validity has passed, and
// unsigned once the case has no keys.
func TestZoneSourceSignsAgain(t *testing.T) {
	key := testKey(t, dns.ECDSAP256SHA256)
	set := signedSet(t, testSinkhole(), signZones, map[string][]dnssec.Key{"waledac": {key}})
	src := NewZoneSource(set)
	clock := time.Now()
	src.now = func() time.Time { return clock }
	soa := func(step string, dnskeys int) *dns.SOA {
		t.Helper()
		rrs, ok := src.ZoneRecords("seized.test.")
		if !ok {
			t.Fatalf("%s: not served", step)
		}
		n, sigs := 0, 0
		for _, rr := range rrs {
			switch rr.Header().Rrtype {
			case dns.TypeDNSKEY:
				n++
			case dns.TypeRRSIG:
				sigs++
			}
		}
		if n != dnskeys || (dnskeys > 0) != (sigs > 0) {
			t.Fatalf("%s: %d DNSKEY and %d RRSIG, want %d DNSKEY", step, n, sigs, dnskeys)
		}
		return rrs[0].(*dns.SOA)
	}
	apply := func(c servedset.Case) {
		t.Helper()
		cur := set.Load()
		if err := set.Apply(&servedset.Delta{From: cur.Serial(), To: cur.Serial() + 1, Cases: []servedset.Case{c}}); err != nil {
			t.Fatal(err)
		}
	}
	first := soa("start", 1)
	if again := soa("asked again", 1); again.Serial != first.Serial {
		t.Errorf("serial %d asked again, was %d", again.Serial, first.Serial)
	}
	next := newTestKey(t, dns.ED25519)
	next.State = dnssec.StatePublished
	apply(servedset.Case{Name: "waledac", Family: "waledac", TXT: signZones[0].TXT, Keys: []dnssec.Key{key, next}})
	rolled := soa("key published", 2)
	if !servedset.SerialLess(first.Serial, rolled.Serial) {
		t.Errorf("serial %d after a key was published, was %d", rolled.Serial, first.Serial)
	}
	clock = clock.Add(sigValidity/2 + time.Minute)
	if refreshed := soa("half the validity passed", 2); !servedset.SerialLess(rolled.Serial, refreshed.Serial) {
		t.Errorf("serial %d after a refresh, was %d", refreshed.Serial, rolled.Serial)
	}
	apply(servedset.Case{Name: "waledac", Family: "waledac", TXT: signZones[0].TXT})
	soa("signing off", 0)
	if n := src.signed.n.Load(); n != 0 {
		t.Errorf("%d zones kept signed after signing was turned off", n)
	}
}
