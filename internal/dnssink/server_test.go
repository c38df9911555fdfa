package dnssink

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/takedown-project/takedown/internal/servedset"
)

func TestRRL(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	cfg := testConfig()
	cfg.Listen = nil
	cfg.RRL = RRLConfig{ResponsesPerSecond: 10, Slip: 2}
	cfg.Now = func() time.Time { return clock }
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s, rec := startServer(t, cfg)
	raw, _ := question("www.example.com.", dns.TypeA).Pack()

	count := func(src string, tcp bool, n int) (answered, truncated, dropped int) {
		pi := &packetInfo{src: netip.MustParseAddrPort(src), tcp: tcp}
		for range n {
			resp := s.handlePacket(nil, raw, pi)
			if resp == nil {
				dropped++
				continue
			}
			r := new(dns.Msg)
			if err := r.Unpack(resp); err != nil {
				t.Fatal(err)
			}
			switch {
			case r.Truncated && len(r.Answer) == 0:
				truncated++
			case len(r.Answer) == 1:
				answered++
			default:
				t.Fatalf("unexpected response %v", r)
			}
		}
		return
	}
	a, tr, d := count("192.0.2.10:1000", false, 40)
	if a != 10 || tr != 15 || d != 15 {
		t.Errorf("one prefix, 40 queries: answered %d, truncated %d, dropped %d; want 10, 15, 15", a, tr, d)
	}
	// The same /24 shares the bucket; another /24 has its own.
	if a, _, _ := count("192.0.2.99:1000", false, 5); a != 0 {
		t.Errorf("same /24 answered %d, want 0", a)
	}
	if a, _, _ := count("192.0.3.10:1000", false, 5); a != 5 {
		t.Errorf("other /24 answered %d, want 5", a)
	}
	// IPv6 is grouped by /56.
	if a, _, _ := count("[2001:db8:0:1::1]:1000", false, 12); a != 10 {
		t.Errorf("v6 answered %d, want 10", a)
	}
	if a, _, _ := count("[2001:db8:0:ff::2]:1000", false, 3); a != 0 {
		t.Errorf("same /56 answered %d, want 0", a)
	}
	// TCP is never limited.
	if a, _, _ := count("192.0.2.10:1000", true, 30); a != 30 {
		t.Errorf("tcp answered %d, want 30", a)
	}
	// Tokens come back with time: 10 per second.
	clock = clock.Add(500 * time.Millisecond)
	if a, _, _ := count("192.0.2.10:1000", false, 10); a != 5 {
		t.Errorf("after 0.5 s answered %d, want 5", a)
	}
	// Limited queries are still events.
	if n := len(rec.all()); n != 40+5+5+12+3+30+10 {
		t.Errorf("%d events", n)
	}
	if got := metricValue(t, s.m.rrlSlip[rrlAnswer]); got != 15+2+1+1+3 {
		t.Errorf("slipped metric %v", got)
	}
	if got := gathered(t, reg, "takedown_dnssink_rrl_dropped_total"); got != 15+3+1+2+2 {
		t.Errorf("rrl dropped metric from the registry: %v", got)
	}
}

func TestRRLTableBounded(t *testing.T) {
	r := newRateLimiter(RRLConfig{ResponsesPerSecond: 1, IPv4PrefixLen: 24, IPv6PrefixLen: 56}, 1000)
	if len(r.sets)*rrlWays != 1024 {
		t.Fatalf("table has %d entries, want 1024", len(r.sets)*rrlWays)
	}
	now := time.Unix(1_700_000_000, 0)
	// Far more prefixes than entries: memory stays, every new prefix is served.
	for i := range 60_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
		if got := r.check(a, rrlAnswer, dns.TypeA, []byte("example.com."), now); got != rrlAllow {
			t.Fatalf("prefix %d: %v", i, got)
		}
	}
}

func TestRRLOverUDP(t *testing.T) {
	cfg := testConfig()
	cfg.RRL = RRLConfig{ResponsesPerSecond: 5, Slip: 1}
	s, _ := startServer(t, cfg)
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.UDPAddr(0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 20
	for i := range n {
		m := question("www.example.com.", dns.TypeA)
		m.Id = uint16(i + 1)
		raw, _ := m.Pack()
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
	}
	answered, truncated := 0, 0
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for answered+truncated < n {
		k, err := c.Read(buf)
		if err != nil {
			break
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:k]); err != nil {
			t.Fatal(err)
		}
		if r.Truncated {
			truncated++
		} else {
			answered++
		}
	}
	// Slip 1: every limited response is a TC; within one second at most
	// about 5 (+ refill) full answers.
	if answered < 5 || answered > 8 || answered+truncated != n {
		t.Errorf("answered %d, truncated %d of %d", answered, truncated, n)
	}
}

// TestFollowsServedSet: a step of the served set reaches the answers, the
// serial and the metrics; a change of a case's TXT and of the sinkhole's
// addresses too.
func TestFollowsServedSet(t *testing.T) {
	cfg := testConfig()
	cfg.Served = servedSet(t, testSinkhole(), testZones)
	s, _ := startServer(t, cfg)
	if r := exchange(t, s, "udp", question("bot.new.test.", dns.TypeA)); r.Rcode != dns.RcodeRefused {
		t.Fatalf("before: rcode %d", r.Rcode)
	}
	s1 := s.Serial()
	if s1 == 0 || s1 != cfg.Served.Load().Serial() {
		t.Fatalf("serial %d, the served set's %d", s1, cfg.Served.Load().Serial())
	}
	step := func(d servedset.Delta) {
		t.Helper()
		d.From = cfg.Served.Load().Serial()
		d.To = d.From + 1
		if err := cfg.Served.Apply(&d); err != nil {
			t.Fatal(err)
		}
	}
	step(servedset.Delta{Cases: []servedset.Case{{Name: "c2", TXT: "second case"}}, Put: []servedset.Zone{{Name: "new.test", Case: "c2"}}})
	if s.Serial() != s1+1 {
		t.Errorf("serial %d, want %d", s.Serial(), s1+1)
	}
	if r := exchange(t, s, "udp", question("bot.new.test.", dns.TypeTXT)); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "second case") {
		t.Errorf("after the put: %v", r)
	}
	step(servedset.Delta{Cases: []servedset.Case{{Name: "c2", TXT: "second case, amended"}}})
	if r := exchange(t, s, "udp", question("bot.new.test.", dns.TypeTXT)); len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "amended") {
		t.Errorf("after the case changed: %v", r)
	}
	sh := testSinkhole()
	sh.A = []netip.Addr{netip.MustParseAddr("192.0.2.99")}
	step(servedset.Delta{Sinkhole: &sh})
	if r := exchange(t, s, "udp", question("bot.new.test.", dns.TypeA)); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.99" {
		t.Errorf("after the sinkhole's address changed: %v", r)
	}
	step(servedset.Delta{Remove: []string{"new.test"}})
	if r := exchange(t, s, "udp", question("bot.new.test.", dns.TypeA)); r.Rcode != dns.RcodeRefused {
		t.Errorf("released: rcode %d", r.Rcode)
	}
	if got := metricValue(t, s.m.zones); got != float64(len(testZones)) {
		t.Errorf("zones gauge %v", got)
	}
	if got := metricValue(t, s.m.serial); got != float64(s1+4) {
		t.Errorf("serial gauge %v, want %d", got, s1+4)
	}
	// After Shutdown the server follows the set no more.
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	step(servedset.Delta{})
	if s.Serial() != s1+4 {
		t.Error("a server shut down still follows the served set")
	}
}

func TestSwapUnderLoad(t *testing.T) {
	cfg := testConfig()
	cfg.Listen = nil
	s, _ := startServer(t, cfg)
	withNew := append(append([]testZone(nil), testZones...), testZone{Name: "flip.test", Case: "c"})
	raw, _ := question("www.example.com.", dns.TypeA).Pack()
	rawFlip, _ := question("www.flip.test.", dns.TypeA).Pack()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 4 {
		wg.Go(func() {
			pi := &packetInfo{src: netip.MustParseAddrPort("192.0.2.1:5300"), tcp: true}
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := new(dns.Msg)
				if err := r.Unpack(s.handlePacket(nil, raw, pi)); err != nil || len(r.Answer) != 1 {
					bad.Add(1)
				}
				r = new(dns.Msg)
				if err := r.Unpack(s.handlePacket(nil, rawFlip, pi)); err != nil ||
					(r.Rcode != dns.RcodeRefused && len(r.Answer) != 1) {
					bad.Add(1)
				}
			}
		})
	}
	set := s.cfg.Served
	for i := range 200 {
		if i%2 == 0 {
			setZones(t, set, nil, withNew)
		} else {
			setZones(t, set, nil, testZones)
		}
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d bad answers during swaps", bad.Load())
	}
}

func TestZoneRecords(t *testing.T) {
	sh := testSinkhole()
	sh.Hostmaster = ""
	s, _ := startServer(t, Config{Served: servedSet(t, sh, testZones)})
	if _, ok := s.ZoneRecords("not-seized.example"); ok {
		t.Error("unserved zone has records")
	}
	rrs, ok := s.ZoneRecords("Example.COM.")
	if !ok {
		t.Fatal("example.com not served")
	}
	soa, ok := rrs[0].(*dns.SOA)
	if !ok || soa.Serial != s.Serial() || soa.Hdr.Name != "example.com." {
		t.Fatalf("first record %v", rrs[0])
	}
	var got []string
	for _, rr := range rrs[1:] {
		got = append(got, normRR(rr.String()))
	}
	want := []string{
		"example.com. 300 IN NS ns1.sinkhole.example.",
		"example.com. 300 IN NS ns2.example.com.",
		"ns2.example.com. 300 IN A 192.0.2.54",
		"example.com. 300 IN A 192.0.2.1",
		"example.com. 300 IN AAAA 2001:db8::1",
		"example.com. 300 IN MX 10 mx.example.com.",
		`example.com. 300 IN TXT "sinkholed by order of E.D. Va. 1:10-cv-00156"`,
		"*.example.com. 300 IN A 192.0.2.1",
		"*.example.com. 300 IN AAAA 2001:db8::1",
		"*.example.com. 300 IN MX 10 mx.example.com.",
		`*.example.com. 300 IN TXT "sinkholed by order of E.D. Va. 1:10-cv-00156"`,
	}
	for i := range want {
		want[i] = normRR(want[i])
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The same records straight from the served set, with no sinkhole.
	fromSet, ok := NewZoneSource(s.cfg.Served).ZoneRecords("example.com")
	if !ok || len(fromSet) != len(rrs) {
		t.Fatalf("ZoneSource: %d records, %v", len(fromSet), ok)
	}
	for i := range rrs {
		if fromSet[i].String() != rrs[i].String() {
			t.Errorf("ZoneSource record %d: %s, want %s", i, fromSet[i], rrs[i])
		}
	}
}

func TestMalformed(t *testing.T) {
	cfg := testConfig()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s, rec := startServer(t, cfg)
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.UDPAddr(0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A header that promises a question that is cut off.
	bad := []byte{0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a'}
	if _, err := c.Write(bad); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil || r.Id != 0xbeef || r.Rcode != dns.RcodeFormatError || !r.Response || !r.RecursionDesired {
		t.Fatalf("response %v, %v", r, err)
	}
	// Shorter than a header: no answer, still an event.
	if _, err := c.Write([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two malformed events", func() bool { return len(rec.all()) == 2 })
	evs := rec.all()
	e := evs[0]
	if !e.Malformed || string(e.PayloadHead) != string(bad) || len(e.PayloadSHA256) != 64 ||
		e.Bytes != int64(len(bad)) || e.DNSRcode != "FORMERR" || e.SrcIP.String() != "127.0.0.1" {
		t.Errorf("event %+v", e)
	}
	if err := e.Validate(); err != nil {
		t.Error(err)
	}
	if e := evs[1]; !e.Malformed || e.Bytes != 3 || e.DNSRcode != "" {
		t.Errorf("short event %+v", e)
	}
	if got := metricValue(t, s.m.malformed); got != 2 {
		t.Errorf("malformed metric %v", got)
	}
	// Two questions: FORMERR, malformed.
	m := question("example.com.", dns.TypeA)
	m.Question = append(m.Question, m.Question[0])
	raw, _ := m.Pack()
	if resp := s.handlePacket(nil, raw, &packetInfo{tcp: true}); resp == nil || resp[3]&0x0f != dns.RcodeFormatError {
		t.Errorf("two questions: %x", resp)
	}
	// A response is never answered.
	m = question("example.com.", dns.TypeA)
	m.Response = true
	raw, _ = m.Pack()
	if resp := s.handlePacket(nil, raw, &packetInfo{tcp: true}); resp != nil {
		t.Errorf("answered a response")
	}
}

// TestTransferRefused: zone transfers have a port of their own (the
// transfer server); on the query port an AXFR of a served zone is refused,
// and recorded as the query it is.
func TestTransferRefused(t *testing.T) {
	s, rec := startServer(t, testConfig())
	m := new(dns.Msg)
	m.SetAxfr("example.com.")
	if r := exchange(t, s, "tcp", m); r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
		t.Errorf("AXFR on the query port: %v", r)
	}
	waitFor(t, "AXFR event", func() bool { return len(rec.all()) == 1 })
	if e := rec.all()[0]; e.DNSQType != "AXFR" || e.DNSRcode != "REFUSED" || e.Zone != "example.com" {
		t.Errorf("event %+v", e)
	}
}

func TestStartErrors(t *testing.T) {
	s, _ := startServer(t, testConfig())
	cfg := testConfig()
	cfg.Listen = []string{s.UDPAddr(0).String()}
	cfg.Served = s.cfg.Served
	s2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = s2.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), s.UDPAddr(0).String()) {
		t.Errorf("binding a taken port: %v", err)
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "no served set") {
		t.Errorf("no served set: %v", err)
	}
}

func TestTCPPipelining(t *testing.T) {
	s, _ := startServer(t, testConfig())
	c, err := dns.Dial("tcp", s.TCPAddr(0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		if err := c.WriteMsg(question("a.example.com.", dns.TypeA)); err != nil {
			t.Fatal(i, err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for i := range 3 {
		r, err := c.ReadMsg()
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("answer %d: %v", i, err)
		}
	}
}

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// gathered sums the samples of the metric family name in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestTCPConnLimit: MaxTCPConns bounds the TCP connections of every
// listening address together; one over it is closed at once and counted.
func TestTCPConnLimit(t *testing.T) {
	cfg := testConfig()
	cfg.Listen = []string{"127.0.0.1:0", "127.0.0.1:0"}
	cfg.MaxTCPConns = 1
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s, _ := startServer(t, cfg)
	c1, err := dns.Dial("tcp", s.TCPAddr(0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	waitFor(t, "the first connection", func() bool { return gathered(t, reg, "takedown_dnssink_connections_open") == 1 })
	c2, err := net.Dial("tcp", s.TCPAddr(1).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Error("a connection over the limit was served")
	}
	if n := gathered(t, reg, "takedown_dnssink_connections_refused_total"); n != 1 {
		t.Errorf("%v connections refused, want 1", n)
	}
	c1.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c1.WriteMsg(question("www.example.com.", dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	if r, err := c1.ReadMsg(); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Errorf("the connection within the limit: %v %v", r, err)
	}
}

// TestOwnAddresses: a sensor's own A and AAAA replace the served set's
// below every zone, on the fast path and the slow one, and through a
// change of the served set; the name servers stay the set's.
func TestOwnAddresses(t *testing.T) {
	cfg := testConfig()
	cfg.A = []netip.Addr{netip.MustParseAddr("198.51.100.7")}
	cfg.AAAA = []netip.Addr{netip.MustParseAddr("2001:db8::7")}
	cfg.Served = servedSet(t, testSinkhole(), testZones)
	s, _ := startServer(t, cfg)
	check := func(what string) {
		t.Helper()
		for _, tc := range []struct {
			qtype uint16
			want  string
		}{{dns.TypeA, "198.51.100.7"}, {dns.TypeAAAA, "2001:db8::7"}} {
			m := new(dns.Msg)
			m.SetQuestion("bot.example.com.", tc.qtype)
			for _, do := range []bool{false, true} { // EDNS takes the slow path
				if do {
					m.SetEdns0(1232, true)
				}
				r := exchange(t, s, "udp", m)
				if len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), tc.want) {
					t.Errorf("%s: %s (edns %v): %v, want %s", what, dns.TypeToString[tc.qtype], do, r.Answer, tc.want)
				}
			}
		}
		m := new(dns.Msg)
		m.SetQuestion("example.com.", dns.TypeNS)
		if r := exchange(t, s, "udp", m); len(r.Answer) != 2 {
			t.Errorf("%s: NS %v, want the served set's two", what, r.Answer)
		}
	}
	check("at start")
	sh := testSinkhole()
	sh.A = []netip.Addr{netip.MustParseAddr("192.0.2.99")}
	setZones(t, cfg.Served, &sh, testZones)
	check("after the served set's sinkhole changed")
}
