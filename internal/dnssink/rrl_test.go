package dnssink

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// stepClock is a server clock that moves by step at every reading: the
// server reads it once a packet, so step is the simulated time between two
// packets (0: time stands still, every packet arrives at once).
type stepClock struct {
	ns   atomic.Int64
	step int64
}

func newStepClock(step time.Duration) *stepClock {
	c := &stepClock{step: int64(step)}
	c.ns.Store(time.Unix(1_700_000_000, 0).UnixNano())
	return c
}

func (c *stepClock) now() time.Time { return time.Unix(0, c.ns.Add(c.step)) }

// seizedZones returns n zones named seized-NNN.example.
func seizedZones(n int) []testZone {
	zones := make([]testZone, n)
	for i := range zones {
		zones[i] = testZone{Name: fmt.Sprintf("seized-%03d.example", i), Case: "farm", TXT: "sinkholed by order of the court"}
	}
	return zones
}

// udpClient is a raw UDP socket to the server that counts what it sends
// and what comes back, by message ID.
type udpClient struct {
	t    *testing.T
	c    *net.UDPConn
	mu   sync.Mutex
	in   map[uint16]*dns.Msg // responses by ID
	size map[uint16]int      // their sizes
	sent int                 // bytes sent
	recv int                 // bytes received
	done chan struct{}
}

func dialServer(t *testing.T, s *Server) *udpClient {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.UDPAddr(0)))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(1 << 20)
	u := &udpClient{t: t, c: c, in: map[uint16]*dns.Msg{}, size: map[uint16]int{}, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		buf := make([]byte, 65535)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if err := m.Unpack(buf[:n]); err != nil {
				continue // counted in bytes only
			}
			u.mu.Lock()
			u.recv += n
			u.in[m.Id] = m
			u.size[m.Id] = n
			u.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-u.done })
	return u
}

// send sends a packed message.
func (u *udpClient) send(raw []byte) {
	u.t.Helper()
	if _, err := u.c.Write(raw); err != nil {
		u.t.Fatal(err)
	}
	u.mu.Lock()
	u.sent += len(raw)
	u.mu.Unlock()
}

// query sends m with the ID id.
func (u *udpClient) query(m *dns.Msg, id uint16) int {
	u.t.Helper()
	m.Id = id
	raw, err := m.Pack()
	if err != nil {
		u.t.Fatal(err)
	}
	u.send(raw)
	return len(raw)
}

// ask sends m with the ID id and waits for its response.
func (u *udpClient) ask(m *dns.Msg, id uint16) *dns.Msg {
	u.t.Helper()
	u.query(m, id)
	return u.wait(id)
}

// wait waits until the response with id has come back and returns it.
func (u *udpClient) wait(id uint16) *dns.Msg {
	u.t.Helper()
	var m *dns.Msg
	waitFor(u.t, fmt.Sprintf("the response to query %d", id), func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		m = u.in[id]
		return m != nil
	})
	return m
}

// counts returns the bytes sent and received and the responses so far.
func (u *udpClient) counts() (sent, recv int, in map[uint16]*dns.Msg) {
	u.mu.Lock()
	defer u.mu.Unlock()
	in = make(map[uint16]*dns.Msg, len(u.in))
	for k, v := range u.in {
		in[k] = v
	}
	return u.sent, u.recv, in
}

// rrlServer starts a server with the default limits (20/s, slip 2), one
// UDP worker (packets are handled in the order they arrive), the clock c,
// the test zones and n seized zones.
func rrlServer(t *testing.T, c *stepClock, n int, tweak func(*Config)) (*Server, *memRecorder) {
	t.Helper()
	cfg := testConfig()
	cfg.UDPWorkers = 1
	cfg.RRL = RRLConfig{ResponsesPerSecond: 20, Slip: 2}
	cfg.Now = c.now
	if tweak != nil {
		tweak(&cfg)
	}
	cfg.Served = servedSet(t, testSinkhole(), append(append([]testZone(nil), testZones...), seizedZones(n)...))
	return startServer(t, cfg)
}

// TestRRLResolverFarmManyNames: a resolver farm in one /24 asks for 277
// different seized names at once (the clock stands still). Every one is a
// response of its own and gets a full answer, on the fast path (A), the
// general path (MX), from dig (which sends a cookie: general path) and
// from kdig (fast path).
func TestRRLResolverFarmManyNames(t *testing.T) {
	const n = 277
	s, rec := rrlServer(t, newStepClock(0), n, nil)
	u := dialServer(t, s)
	for k, qtype := range []uint16{dns.TypeA, dns.TypeMX} {
		// In flights of 50, which the server's socket buffer holds.
		base := uint16(k * 1000)
		answered := 0
		for from := 0; from < n; from += 50 {
			to := min(from+50, n)
			for i := from; i < to; i++ {
				u.query(question(fmt.Sprintf("www.seized-%03d.example.", i), qtype), base+uint16(i))
			}
			for i := from; i < to; i++ {
				r := u.wait(base + uint16(i))
				if !r.Truncated && len(r.Answer) > 0 && r.Rcode == dns.RcodeSuccess {
					answered++
				}
			}
		}
		if answered != n {
			t.Errorf("%s: %d of %d different names answered", dns.TypeToString[qtype], answered, n)
		}
	}
	port := s.UDPAddr(0).Port()
	for _, tc := range []struct {
		tool, qtype string
		args        []string
	}{
		{"dig", "TXT", []string{"+tries=1", "+time=2", "+ignore"}},
		{"kdig", "AAAA", []string{"+retry=0", "+timeout=2", "+ignore"}},
	} {
		args := append([]string{"@127.0.0.1", "-p", fmt.Sprint(port), "+norecurse", "+noall", "+answer"}, tc.args...)
		for i := range n {
			args = append(args, fmt.Sprintf("host%d.seized-%03d.example", i, i), tc.qtype)
		}
		out := runTool(t, tc.tool, args...)
		if got := countRRs(t, out, tc.qtype); got != n {
			t.Errorf("%s: %d of %d names answered:\n%s", tc.tool, got, n, out)
		}
	}
	if got := len(rec.all()); got != 4*n {
		t.Errorf("%d events, want %d", got, 4*n)
	}
}

// runTool runs dig or kdig and returns what it printed.
func runTool(t *testing.T, tool string, args ...string) string {
	t.Helper()
	path := requireTool(t, tool)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
	return string(out)
}

// countRRs counts the records of type qtype among the lines of out.
func countRRs(t *testing.T, out, qtype string) int {
	t.Helper()
	n := 0
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		rr, err := dns.NewRR(line)
		if err == nil && rr != nil && dns.TypeToString[rr.Header().Rrtype] == qtype {
			n++
		}
	}
	return n
}

// TestRRLRepeatedName: one answer asked again and again is limited: 20 full
// answers, then every 2nd limited one slips out as an empty TC answer and
// the others are dropped. The wildcard answers every name of a zone with
// the same data and is counted by the zone: another name of the zone is
// limited with it, while another type and another zone have budgets of
// their own. A client that gets TC retries over TCP and gets its answer.
func TestRRLRepeatedName(t *testing.T) {
	s, _ := rrlServer(t, newStepClock(0), 0, nil)
	u := dialServer(t, s)
	for _, noFast := range []bool{false, true} {
		t.Run(fmt.Sprintf("noFast=%v", noFast), func(t *testing.T) {
			m := func(name string, qtype uint16) *dns.Msg {
				m := question(name, qtype)
				if noFast {
					m.SetEdns0(1232, false)
					m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
				}
				return m
			}
			zone, other := "example.com.", "seized.test."
			if noFast {
				zone, other = "notxt.test.", "deep.example.com."
			}
			base := uint16(0)
			if noFast {
				base = 10_000
			}
			const n = 60
			for i := range n {
				u.query(m("www."+zone, dns.TypeA), base+uint16(i))
			}
			// The last limited query slips (60-20 = 40 limited, slip 2):
			// once it is back, every earlier one has been handled.
			u.wait(base + n - 1)
			_, _, in := u.counts()
			var answered, slipped, dropped int
			for i := range n {
				r := in[base+uint16(i)]
				switch {
				case r == nil:
					dropped++
				case r.Truncated:
					slipped++
					if len(r.Answer)+len(r.Ns) != 0 {
						t.Errorf("slipped answer with records:\n%v", r)
					}
				case len(r.Answer) == 1:
					answered++
				}
			}
			if answered != 20 || slipped != 20 || dropped != 20 {
				t.Errorf("one name 60 times: answered %d, slipped %d, dropped %d; want 20 each", answered, slipped, dropped)
			}
			// Another name under the same zone: same wildcard, same
			// bucket (the 41st limited response is dropped, the 42nd
			// slips).
			u.query(m("other."+zone, dns.TypeA), base+100)
			if r := u.ask(m("other."+zone, dns.TypeA), base+101); !r.Truncated {
				t.Errorf("another name of the zone was answered in full: %v", r)
			}
			if _, _, in := u.counts(); in[base+100] != nil {
				t.Errorf("the 41st limited response was not dropped: %v", in[base+100])
			}
			// Another type, another zone: budgets of their own.
			if r := u.ask(m("www."+zone, dns.TypeAAAA), base+102); r.Truncated || len(r.Answer) != 1 {
				t.Errorf("AAAA of the same name was limited: %v", r)
			}
			if r := u.ask(m("www."+other, dns.TypeA), base+103); r.Truncated || len(r.Answer) != 1 {
				t.Errorf("another zone was limited: %v", r)
			}
		})
	}
	// dig, told TC, retries over TCP, which is never limited. 42 limited
	// responses so far for example.com's A: the 43rd is dropped, the 44th,
	// dig's, slips.
	u.query(question("www.example.com.", dns.TypeA), 20_000)
	out := runTool(t, "dig", "@127.0.0.1", "-p", fmt.Sprint(s.UDPAddr(0).Port()), "+norecurse", "+nocookie",
		"+tries=1", "+time=2", "www.example.com", "A")
	if !strings.Contains(out, "Truncated, retrying in TCP mode") || countRRs(t, out, "A") != 1 {
		t.Errorf("dig did not get its answer over TCP after TC:\n%s", out)
	}
}

// TestRRLReflectionBound: a one-source flood of ANY and TXT queries (the
// largest answers relative to the query, with EDNS0 buffers of 4096 and
// with and without cookies, on both paths) at 1,000 queries a second of
// server time. After the first second, the bytes sent back are at most
// twice the bytes received. Every 100 queries a sentinel question of its
// own zone (well below its limit) tells that the server has handled the
// ones before it.
func TestRRLReflectionBound(t *testing.T) {
	s, _ := rrlServer(t, newStepClock(time.Millisecond), 101, nil)
	u := dialServer(t, s)
	flood := make([][]byte, 4)
	for i := range flood {
		qtype := dns.TypeTXT
		if i >= 2 {
			qtype = dns.TypeANY
		}
		m := question("example.com.", qtype)
		m.SetEdns0(4096, false)
		if i%2 == 1 {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}
		raw, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		flood[i] = raw
	}
	in, out := reflectionFlood(t, u, flood)
	ratio := float64(out[1]) / float64(in[1])
	t.Logf("flood: warm-up %d bytes in, %d out (%.2f); after it %d in, %d out (%.2f)",
		in[0], out[0], float64(out[0])/float64(in[0]), in[1], out[1], ratio)
	if ratio > 2 {
		t.Errorf("amplification after warm-up %.2f, want ≤ 2", ratio)
	}
}

// reflectionFlood sends 100 batches of 100 queries from one source (10 s
// of server time at 1,000 queries a second), cycling through flood (packed
// queries whose IDs it overwrites), each batch followed by a sentinel
// question of its own seized zone that must not be limited. It returns the
// bytes sent and received in the first second (the warm-up, while the
// buckets still hold a burst) and after it.
func reflectionFlood(t *testing.T, u *udpClient, flood [][]byte) (in, out [2]int) {
	t.Helper()
	const batches, per, warm = 100, 100, 10
	for b := range batches {
		phase := 0
		if b >= warm {
			phase = 1
		}
		for i := range per {
			raw := flood[i%len(flood)]
			raw[0], raw[1] = byte(b), byte(i) // IDs below 0xff00
			u.send(raw)
			in[phase] += len(raw)
		}
		id := uint16(0xff00 + b)
		if r := u.ask(question(fmt.Sprintf("sentinel.seized-%03d.example.", b), dns.TypeA), id); r.Truncated {
			t.Fatalf("sentinel %d limited", b)
		}
		u.mu.Lock()
		for i := range per {
			out[phase] += u.size[uint16(b)<<8|uint16(i)]
		}
		u.mu.Unlock()
	}
	return in, out
}

// TestRRLMalformedFlood: about 40 junk packets a second with a resolver's
// source address (on loopback: the same address, another port) and 10 real
// queries a second from the resolver. The answers to the junk (FORMERR,
// NOTIMP) have a budget of their own and are limited in it; every real
// query gets its full answer.
func TestRRLMalformedFlood(t *testing.T) {
	s, _ := rrlServer(t, newStepClock(20*time.Millisecond), 5, nil)
	u := dialServer(t, s)
	junk := dialServer(t, s)
	cut := []byte{0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a'} // question cut off
	notify := question("example.com.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	twoQ := question("example.com.", dns.TypeA)
	twoQ.Question = append(twoQ.Question, twoQ.Question[0])
	var junks [][]byte
	junks = append(junks, cut)
	for _, m := range []*dns.Msg{notify, twoQ, twoOPT(t, "example.com.", dns.TypeTXT)} {
		raw, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		junks = append(junks, raw)
	}
	const rounds = 100 // 5 packets of 20 ms each: 10 s of server time
	for i := range rounds {
		for _, raw := range junks {
			junk.send(raw)
		}
		name := fmt.Sprintf("bot%d.seized-%03d.example.", i, i%5)
		r := u.ask(question(name, dns.TypeA), uint16(i))
		if r.Truncated || len(r.Answer) != 1 || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("round %d: the resolver's query was not answered in full:\n%v", i, r)
		}
	}
	if got := metricValue(t, s.m.rrlDrop[rrlMalformed]); got == 0 {
		t.Error("40 junk packets a second were not limited")
	}
	if got := metricValue(t, s.m.rrlDrop[rrlAnswer]) + metricValue(t, s.m.rrlSlip[rrlAnswer]); got != 0 {
		t.Errorf("%v answers limited", got)
	}
	out := runTool(t, "dig", "@127.0.0.1", "-p", fmt.Sprint(s.UDPAddr(0).Port()), "+norecurse", "+tries=1", "+time=2", "+ignore",
		"last.seized-000.example", "A")
	if countRRs(t, out, "A") != 1 || strings.Contains(out, " tc") {
		t.Errorf("dig after the junk:\n%s", out)
	}
}

// twoOPT returns a query with two OPT records.
func twoOPT(t *testing.T, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := question(name, qtype)
	m.SetEdns0(4096, false)
	m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 4096}})
	return m
}

// TestRRLExempt: a prefix of Exempt is never limited; others are.
func TestRRLExempt(t *testing.T) {
	s, _ := rrlServer(t, newStepClock(0), 0, func(c *Config) {
		c.RRL.Exempt = []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"),
			netip.MustParsePrefix("192.0.2.0/25"),
			netip.MustParsePrefix("2001:db8:1::/48"),
		}
	})
	raw, _ := question("www.example.com.", dns.TypeTXT).Pack()
	junk := []byte{0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7}
	for _, tc := range []struct {
		src    string
		exempt bool
	}{
		{"192.0.2.7:53000", true},
		{"[::ffff:192.0.2.8]:53000", true},
		{"[2001:db8:1:ff::9]:53000", true},
		{"192.0.2.200:53000", false}, // the other half of the /24
		{"[2001:db8:2::9]:53000", false},
	} {
		pi := &packetInfo{src: netip.MustParseAddrPort(tc.src)}
		full, formerr := 0, 0
		for range 200 {
			if b := s.handlePacket(nil, raw, pi); b != nil && b[2]&0x02 == 0 {
				full++
			}
			if b := s.handlePacket(nil, junk, pi); b != nil && b[2]&0x02 == 0 {
				formerr++
			}
		}
		if tc.exempt && (full != 200 || formerr != 200) || !tc.exempt && (full != 20 || formerr != 20) {
			t.Errorf("%s (exempt %v): %d full answers, %d FORMERR of 200 each", tc.src, tc.exempt, full, formerr)
		}
	}
	// dig from 127.0.0.1, 100 times the same question.
	args := []string{"@127.0.0.1", "-p", fmt.Sprint(s.UDPAddr(0).Port()), "+norecurse", "+noall", "+answer", "+tries=1", "+time=2", "+ignore"}
	for range 100 {
		args = append(args, "www.example.com", "A")
	}
	if out := runTool(t, "dig", args...); countRRs(t, out, "A") != 100 {
		t.Errorf("exempt dig: %d of 100 answered:\n%s", countRRs(t, out, "A"), out)
	}
}

// TestBadOPT: RFC 6891 section 6.1.1. A query with two OPT records, an OPT
// whose owner is not the root, or an OPT outside the additional section
// gets FORMERR, never larger than the query, over UDP (fast and general
// path alike: the fast path leaves these to the general one) and TCP.
func TestBadOPT(t *testing.T) {
	s, rec := startServer(t, testConfig())
	nonRoot := question("www.example.com.", dns.TypeTXT)
	nonRoot.Extra = append(nonRoot.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeOPT, Class: 4096}})
	inAnswer := question("www.example.com.", dns.TypeTXT)
	inAnswer.Answer = append(inAnswer.Answer, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 4096}})
	withCookie := twoOPT(t, "www.example.com.", dns.TypeTXT)
	withCookie.Extra[0].(*dns.OPT).Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}
	cases := map[string]*dns.Msg{
		"two OPT":            twoOPT(t, "www.example.com.", dns.TypeTXT),
		"two OPT, cookie":    withCookie,
		"two OPT, ANY":       twoOPT(t, "example.com.", dns.TypeANY),
		"non-root OPT owner": nonRoot,
		"OPT in answer":      inAnswer,
	}
	u := dialServer(t, s)
	id := uint16(0)
	for name, m := range cases {
		id++
		m.Id = id
		raw, err := m.Pack()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		u.send(raw)
		r := u.wait(id)
		u.mu.Lock()
		size := u.size[id]
		u.mu.Unlock()
		tcp := s.handlePacket(nil, raw, &packetInfo{src: netip.MustParseAddrPort("192.0.2.9:5353"), tcp: true})
		for tr, got := range map[string]struct {
			m    *dns.Msg
			size int
		}{"udp": {r, size}, "tcp": {unpack(t, tcp), len(tcp)}} {
			if got.m.Rcode != dns.RcodeFormatError || len(got.m.Answer)+len(got.m.Ns)+len(got.m.Extra) != 0 || got.size > len(raw) {
				t.Errorf("%s over %s: %d bytes for a query of %d:\n%v", name, tr, got.size, len(raw), got.m)
			}
		}
	}
	waitFor(t, "the malformed events", func() bool { return len(rec.all()) == 2*len(cases) })
	for _, e := range rec.all() {
		if !e.Malformed || e.DNSRcode != "FORMERR" {
			t.Errorf("event %+v", e)
		}
	}
}

func unpack(t *testing.T, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("%x: %v", b, err)
	}
	return m
}
