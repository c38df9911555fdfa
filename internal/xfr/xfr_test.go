package xfr

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
)

func TestSerialLess(t *testing.T) {
	for _, tc := range []struct {
		a, b uint32
		want bool
	}{
		{1, 2, true},
		{2, 1, false},
		{1, 1, false},
		{0xFFFFFFFF, 0, true},
		{0xFFFFFFF0, 5, true},
		{5, 0xFFFFFFF0, false},
		{0, 0x7FFFFFFF, true},
		{0, 0x80000000, false}, // undefined in RFC 1982; never "after"
		{0x80000000, 0, false},
	} {
		if got := serialLess(tc.a, tc.b); got != tc.want {
			t.Errorf("serialLess(%#x, %#x) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSetZoneSerial(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if err := s.SetZone(testZone, rpzZone(0xFFFFFFFF, 3)); err != nil {
		t.Fatal(err)
	}
	// Same serial, same content: no-op.
	if err := s.SetZone(testZone, rpzZone(0xFFFFFFFF, 3)); err != nil {
		t.Errorf("unchanged zone: %v", err)
	}
	// Same serial, changed content: error, and the zone is left as it was.
	if err := s.SetZone(testZone, rpzZone(0xFFFFFFFF, 4)); err == nil {
		t.Error("changed content with the same serial accepted")
	}
	// Wrap-around: 0xFFFFFFFF -> 1 is an increase.
	if err := s.SetZone(testZone, rpzZone(1, 4)); err != nil {
		t.Fatalf("serial wrap: %v", err)
	}
	// Going back is refused.
	if err := s.SetZone(testZone, rpzZone(0xFFFFFFFE, 4)); err == nil {
		t.Error("serial going back accepted")
	}
	// A jump of 2^31 is not an increase.
	if err := s.SetZone(testZone, rpzZone(0x80000001, 5)); err == nil {
		t.Error("serial jump of 2^31 accepted")
	}
	st := s.zone(testZone).st.Load()
	if len(st.journal) != 1 || st.journal[0].fromSOA.Serial != 0xFFFFFFFF || len(st.journal[0].add) != 2 || len(st.journal[0].del) != 0 {
		t.Fatalf("journal after wrap: %+v", st.journal)
	}
	p := st.plan(0xFFFFFFFF)
	if p.full || p.upToDate || len(p.add) != 2 {
		t.Errorf("plan from before the wrap: %+v", p)
	}
	if p := st.plan(2); !p.upToDate {
		t.Errorf("client ahead: %+v, want up to date", p)
	}

	for _, bad := range [][]dns.RR{
		nil,
		zoneText(t, "rpz.test. 300 IN NS localhost."),
		zoneText(t, soaLine("other.test.", 5)),
		zoneText(t, soaLine(testZone, 5), "a.other.test. 300 IN A 192.0.2.1"),
		zoneText(t, soaLine(testZone, 5), soaLine(testZone, 5)),
	} {
		if err := s.SetZone(testZone, bad); err == nil {
			t.Errorf("SetZone(%v) accepted", bad)
		}
	}
	// The failed calls left the index consistent: a later diff is exact.
	if err := s.SetZone(testZone, rpzZone(2, 3)); err != nil {
		t.Fatal(err)
	}
	last := s.zone(testZone).st.Load().journal
	if d := last[len(last)-1]; len(d.del) != 2 || len(d.add) != 0 {
		t.Errorf("diff after failed updates: -%d +%d, want -2 +0", len(d.del), len(d.add))
	}
}

func TestSetZoneDuplicates(t *testing.T) {
	s, _ := New(Config{})
	defer s.Shutdown(context.Background())
	rrs := zoneText(t, soaLine(testZone, 1), "a.rpz.test. 300 IN CNAME .", "a.rpz.test. 300 IN CNAME .", "b.rpz.test. 300 IN CNAME .")
	if err := s.SetZone(testZone, rrs); err != nil {
		t.Fatal(err)
	}
	if got := s.zone(testZone).st.Load().cur.content.Len(); got != 3 {
		t.Errorf("zone has %d records, want 3 after removing the duplicate", got)
	}
}

// TestIXFR walks a zone through versions and checks every IXFR answer over
// TCP with TSIG: single steps, condensed steps, unknown serial, up to date.
func TestIXFR(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, addr := startServer(t, Config{Registerer: reg})
	versions := map[uint32][]dns.RR{
		1: rpzZone(1, 50),
		2: rpzZone(2, 50, "new1.example"),
		3: rpzZone(3, 49, "new1.example", "new2.example"), // d49 deleted
		4: rpzZone(4, 49, "new2.example"),                 // new1 deleted again
		5: rpzZone(5, 50, "new2.example", "new1.example"), // d49 and new1 back
		6: append(rpzZone(6, 50, "new2.example", "new1.example"), mustRR(t, "x.rpz.test. 300 IN A 192.0.2.1")),
	}
	for serial := uint32(1); serial <= 6; serial++ {
		if err := s.SetZone(testZone, versions[serial]); err != nil {
			t.Fatal(err)
		}
	}
	for from := uint32(1); from <= 5; from++ {
		msgs, err := transferIn(t, addr, testZone, true, from, testKey, testSecret)
		if err != nil {
			t.Fatalf("ixfr from %d: %v", from, err)
		}
		resp := flatten(msgs)
		if _, ok := resp[1].(*dns.SOA); !ok {
			t.Fatalf("ixfr from %d: full transfer, want incremental", from)
		}
		// One condensed step: SOA new, SOA old, ..., SOA new, ..., SOA new.
		nSOA := 0
		for _, rr := range resp {
			if rr.Header().Rrtype == dns.TypeSOA {
				nSOA++
			}
		}
		if nSOA != 4 {
			t.Errorf("ixfr from %d: %d SOAs, want 4 (one condensed step)", from, nSOA)
		}
		got := applyIXFR(t, versions[from], resp)
		if !sameZone(got, versions[6]) {
			t.Errorf("ixfr from %d does not give version 6:\n%v", from, resp)
		}
	}
	// From 1 to 6, new1 was added, deleted and added again; d49 deleted
	// and added back: the condensed answer holds only x and new2.
	msgs, _ := transferIn(t, addr, testZone, true, 1, testKey, testSecret)
	if got := len(flatten(msgs)); got != 4+1+2+2 {
		t.Errorf("ixfr 1->6 has %d records, want 9: %v", got, flatten(msgs))
	}

	// Unknown serial: full zone, AXFR style.
	msgs, err := transferIn(t, addr, testZone, true, 0, testKey, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	resp := flatten(msgs)
	if _, ok := resp[1].(*dns.SOA); ok || !sameZone(resp[:len(resp)-1], versions[6]) {
		t.Errorf("ixfr from unknown serial: not the full zone")
	}

	// Up to date: the SOA alone.
	msgs, err = transferIn(t, addr, testZone, true, 6, testKey, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if resp := flatten(msgs); len(resp) != 1 || resp[0].(*dns.SOA).Serial != 6 {
		t.Errorf("ixfr up to date: %v", resp)
	}

	// AXFR.
	msgs, err = transferIn(t, addr, testZone, false, 0, testKey, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	resp = flatten(msgs)
	if !sameZone(resp[:len(resp)-1], versions[6]) || resp[len(resp)-1].Header().Rrtype != dns.TypeSOA {
		t.Errorf("axfr: not the zone")
	}

	// The server counts a transfer once its last message is out: the
	// client can have read it a moment before.
	for deadline := time.Now().Add(5 * time.Second); value(s.met.transfers.WithLabelValues("ixfr", "incremental")) != 6 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := value(s.met.transfers.WithLabelValues("ixfr", "incremental")); got != 6 {
		t.Errorf("incremental transfers metric = %v, want 6", got)
	}
	if got := value(s.met.zoneSerial.WithLabelValues(testZone)); got != 6 {
		t.Errorf("serial metric = %v", got)
	}
}

func TestJournalBound(t *testing.T) {
	s, _ := New(Config{JournalMax: 3})
	defer s.Shutdown(context.Background())
	for serial := uint32(1); serial <= 10; serial++ {
		if err := s.SetZone(testZone, rpzZone(serial, 20+int(serial))); err != nil {
			t.Fatal(err)
		}
	}
	st := s.zone(testZone).st.Load()
	if len(st.journal) != 3 || st.journal[0].fromSOA.Serial != 7 {
		t.Fatalf("journal keeps %d steps from %d, want 3 from 7", len(st.journal), st.journal[0].fromSOA.Serial)
	}
	if p := st.plan(6); !p.full {
		t.Errorf("serial cut from the journal: %+v, want full", p)
	}
	// Big changes: the journal never holds more records than the zone.
	for serial := uint32(11); serial <= 13; serial++ {
		if err := s.SetZone(testZone, rpzZone(serial, 5*int(serial%2))); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.zone(testZone).st.Load(); len(st.journal) != 1 {
		t.Errorf("journal keeps %d steps, want 1", len(st.journal))
	}
}

func TestAccess(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, addr := startServer(t, Config{Registerer: reg})
	if err := s.SetZone(testZone, rpzZone(1, 3)); err != nil {
		t.Fatal(err)
	}
	axfr := func() *dns.Msg { m := new(dns.Msg); m.SetAxfr(testZone); return m }
	soa := func() *dns.Msg { m := new(dns.Msg); m.SetQuestion(testZone, dns.TypeSOA); return m }

	t.Run("unsigned", func(t *testing.T) {
		for _, m := range []*dns.Msg{axfr(), soa()} {
			r, err := exchange(t, "tcp", addr, m, "", "")
			if err != nil || r.Rcode != dns.RcodeRefused {
				t.Errorf("%v: %v %v, want REFUSED", m.Question[0], r, err)
			}
		}
	})
	t.Run("signed", func(t *testing.T) {
		r, err := exchange(t, "udp", addr, soa(), testKey, testSecret)
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.Authoritative {
			t.Fatalf("signed SOA: %v %v", r, err)
		}
		if r.IsTsig() == nil {
			t.Error("answer to a signed query is not signed")
		}
		if _, err := transferIn(t, addr, testZone, false, 0, testKey, testSecret); err != nil {
			t.Errorf("signed axfr: %v", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		r, _ := exchange(t, "tcp", addr, axfr(), testKey, "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==")
		if r == nil || r.Rcode != dns.RcodeNotAuth {
			t.Fatalf("wrong secret: %v, want NOTAUTH", r)
		}
		if tsig := r.IsTsig(); tsig == nil || tsig.Error != dns.RcodeBadSig {
			t.Errorf("wrong secret: tsig %v, want BADSIG", tsig)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		r, _ := exchange(t, "tcp", addr, axfr(), "other-key.", testSecret)
		if r == nil || r.Rcode != dns.RcodeNotAuth {
			t.Fatalf("unknown key: %v, want NOTAUTH", r)
		}
		if tsig := r.IsTsig(); tsig == nil || tsig.Error != dns.RcodeBadKey {
			t.Errorf("unknown key: tsig %v, want BADKEY", tsig)
		}
	})
	t.Run("axfr over udp", func(t *testing.T) {
		r, err := exchange(t, "udp", addr, axfr(), testKey, testSecret)
		if err != nil || r.Rcode != dns.RcodeRefused {
			t.Errorf("axfr over udp: %v %v, want REFUSED", r, err)
		}
	})
	t.Run("ixfr over udp", func(t *testing.T) {
		for _, serial := range []uint32{1, 0} {
			m := new(dns.Msg)
			m.SetIxfr(testZone, serial, "localhost.", "hostmaster.rpz.test.")
			r, err := exchange(t, "udp", addr, m, testKey, testSecret)
			if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Serial != 1 {
				t.Errorf("ixfr over udp from %d: %v %v, want the SOA alone", serial, r, err)
			}
		}
	})
	t.Run("foreign zone", func(t *testing.T) {
		m := new(dns.Msg)
		m.SetQuestion("example.com.", dns.TypeSOA)
		r, err := exchange(t, "udp", addr, m, testKey, testSecret)
		if err != nil || r.Rcode != dns.RcodeRefused {
			t.Errorf("foreign SOA: %v %v", r, err)
		}
		r, err = exchange(t, "tcp", addr, func() *dns.Msg { m := new(dns.Msg); m.SetAxfr("example.com."); return m }(), testKey, testSecret)
		if r == nil || r.Rcode != dns.RcodeNotAuth {
			t.Errorf("foreign AXFR: %v %v, want NOTAUTH", r, err)
		}
	})
	if got := value(s.met.transfers.WithLabelValues("axfr", "refused")); got != 2 {
		t.Errorf("refused axfr metric = %v, want 2", got)
	}
	if got := value(s.met.transfers.WithLabelValues("axfr", "notauth")); got != 2 {
		t.Errorf("notauth axfr metric = %v, want 2", got)
	}
}

func TestACL(t *testing.T) {
	s, addr := startServer(t, Config{
		AllowFrom:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		AllowUnsigned: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	s.SetZone(testZone, rpzZone(1, 3))
	if _, err := transferIn(t, addr, testZone, false, 0, testKey, testSecret); err == nil {
		t.Error("transfer from outside AllowFrom succeeded")
	}

	s2, addr2 := startServer(t, Config{AllowUnsigned: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	s2.SetZone(testZone, rpzZone(1, 3))
	msgs, err := transferIn(t, addr2, testZone, false, 0, "", "")
	if err != nil || len(flatten(msgs)) != 2+6+1 {
		t.Errorf("unsigned transfer from AllowUnsigned: %d records, %v", len(flatten(msgs)), err)
	}
}

type fakeSource map[string][]dns.RR

func (f fakeSource) ZoneRecords(name string) ([]dns.RR, bool) {
	rrs, ok := f[name]
	return rrs, ok
}

func TestFallback(t *testing.T) {
	zone := zoneText(t, soaLine("seized.test.", 7),
		"seized.test. 300 IN NS ns1.sinkhole.test.",
		"seized.test. 300 IN A 192.0.2.1",
		"*.seized.test. 300 IN A 192.0.2.1",
	)
	_, addr := startServer(t, Config{Fallback: fakeSource{"seized.test.": zone}})
	msgs, err := transferIn(t, addr, "seized.test.", false, 0, testKey, testSecret)
	if err != nil || !sameZone(flatten(msgs), zone) {
		t.Errorf("fallback axfr: %v %v", flatten(msgs), err)
	}
	msgs, err = transferIn(t, addr, "seized.test.", true, 3, testKey, testSecret)
	if err != nil || len(flatten(msgs)) != len(zone)+1 {
		t.Errorf("fallback ixfr: %v %v, want full", flatten(msgs), err)
	}
	m := new(dns.Msg)
	m.SetQuestion("Seized.Test.", dns.TypeNS)
	r, err := exchange(t, "udp", addr, m, testKey, testSecret)
	if err != nil || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeNS {
		t.Errorf("fallback NS: %v %v", r, err)
	}
	m.SetQuestion("seized.test.", dns.TypeMX)
	r, err = exchange(t, "udp", addr, m, testKey, testSecret)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Errorf("fallback NODATA: %v %v", r, err)
	}
}

// TestLargeZone transfers a 100,000-name zone (200,002 records) and checks
// that it is split into messages and arrives complete.
func TestLargeZone(t *testing.T) {
	s, addr := startServer(t, Config{})
	const n = 100_000
	zone := rpzZone(1, n)
	if err := s.SetZone(testZone, zone); err != nil {
		t.Fatal(err)
	}
	msgs, err := transferIn(t, addr, testZone, false, 0, testKey, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	resp := flatten(msgs)
	if len(resp) != len(zone)+1 || len(msgs) < 100 {
		t.Fatalf("axfr: %d records in %d messages, want %d in many", len(resp), len(msgs), len(zone)+1)
	}
	if !sameZone(resp[:len(resp)-1], zone) {
		t.Error("axfr content differs")
	}
	t.Logf("%d records in %d messages", len(resp), len(msgs))

	next := rpzZone(2, n, "one-more.example")
	if err := s.SetZone(testZone, next); err != nil {
		t.Fatal(err)
	}
	msgs, err = transferIn(t, addr, testZone, true, 1, testKey, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if resp := flatten(msgs); len(resp) != 6 || len(msgs) != 1 {
		t.Errorf("ixfr of one name: %d records in %d messages, want 6 in 1", len(resp), len(msgs))
	}
}

// TestNotify checks that SetZone sends a signed NOTIFY with the new SOA and
// retries when the first one goes unanswered.
func TestNotify(t *testing.T) {
	var (
		mu   sync.Mutex
		got  []uint32
		seen int
	)
	done := make(chan struct{}, 10)
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		defer mu.Unlock()
		seen++
		if seen == 1 {
			return // drop the first: the sender must retry
		}
		if r.Opcode != dns.OpcodeNotify || r.IsTsig() == nil || w.TsigStatus() != nil || len(r.Answer) != 1 {
			t.Errorf("bad notify: %v (tsig %v)", r, w.TsigStatus())
		}
		got = append(got, r.Answer[0].(*dns.SOA).Serial)
		m := new(dns.Msg)
		m.SetReply(r)
		m.SetTsig(testKey, dns.HmacSHA256, 300, time.Now().Unix())
		w.WriteMsg(m)
		done <- struct{}{}
	})
	started := make(chan struct{})
	srv := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: h,
		TsigSecret: map[string]string{testKey: testSecret}, NotifyStartedFunc: func() { close(started) }}
	var wg sync.WaitGroup
	wg.Go(func() { srv.ListenAndServe() })
	<-started
	defer func() { srv.Shutdown(); wg.Wait() }()

	reg := prometheus.NewRegistry()
	s, err := New(Config{Notify: []string{srv.PacketConn.LocalAddr().String()}, NotifyKey: testKey,
		NotifyBackoff: 10 * time.Millisecond, NotifyTimeout: 200 * time.Millisecond,
		TSIGKeys: map[string]string{testKey: testSecret}, Registerer: reg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if err := s.SetZone(testZone, rpzZone(42, 2)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no notify")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != 42 || seen != 2 {
		t.Errorf("notifies %v after %d tries, want [42] after 2", got, seen)
	}
	deadline := time.Now().Add(5 * time.Second)
	for value(s.met.notifies.WithLabelValues("sent")) != 1 && time.Now().Before(deadline) {
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
	}
	if value(s.met.notifies.WithLabelValues("sent")) != 1 {
		t.Error("notify sent metric not 1")
	}
}

// TestNotifyGivesUp: a target that never answers gets
// Config.NotifyAttempts tries, each waiting NotifyTimeout, and is then
// given up.
func TestNotifyGivesUp(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var tries atomic.Int32
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			tries.Add(1) // and no answer
		}
	}()
	s, err := New(Config{Notify: []string{pc.LocalAddr().String()},
		NotifyAttempts: 3, NotifyBackoff: 10 * time.Millisecond, NotifyTimeout: 100 * time.Millisecond,
		Registerer: prometheus.NewRegistry(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	start := time.Now()
	if err := s.SetZone(testZone, rpzZone(7, 1)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); value(s.met.notifies.WithLabelValues("failed")) != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("notify not given up after %d tries", tries.Load())
		}
	}
	if n, r := tries.Load(), value(s.met.notifies.WithLabelValues("retried")); n != 3 || r != 2 {
		t.Errorf("%d tries (%v retries) before giving up, want 3 (2)", n, r)
	}
	t.Logf("given up after %v", time.Since(start).Round(time.Millisecond))
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{TSIGKeys: map[string]string{"k.": "not base64!"}},
		{TSIGKeys: map[string]string{"": testSecret}},
		{NotifyKey: "missing."},
		{Notify: []string{"no-port"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		} else if err.Error() != strings.ToLower(err.Error()[:1])+err.Error()[1:] {
			t.Errorf("error %q is not lower-case", err)
		}
	}
}

func TestInZone(t *testing.T) {
	for _, tc := range []struct {
		owner string
		want  bool
	}{
		{"rpz.test.", true},
		{"RPZ.Test.", true},
		{"a.rpz.test.", true},
		{"*.a.b.rpz.test.", true},
		{"xrpz.test.", false},
		{"test.", false},
		{`a\.rpz.test.`, false},
		{`a\\.rpz.test.`, true},
	} {
		if got := inZone("rpz.test.", tc.owner); got != tc.want {
			t.Errorf("inZone(rpz.test., %q) = %v", tc.owner, got)
		}
	}
}

// madeContent is a Content whose records are made at each call, as the
// RPZ's are from the served set; it counts the calls.
type madeContent struct {
	rrs   []dns.RR
	calls *atomic.Int32
}

func (c madeContent) SOA() *dns.SOA  { soa, _ := c.rrs[0].(*dns.SOA); return soa }
func (c madeContent) Apex() []dns.RR { return apexOf(c.rrs[0].Header().Name, c.rrs) }
func (c madeContent) Len() int       { return len(c.rrs) }

func (c madeContent) Records(yield func(dns.RR) bool) {
	c.calls.Add(1)
	for _, rr := range c.rrs {
		if !yield(dns.Copy(rr)) {
			return
		}
	}
}

func TestPublish(t *testing.T) {
	s, addr := startServer(t, Config{})
	var calls atomic.Int32
	v1 := rpzZone(1, 10)
	if err := s.Publish(testZone, madeContent{v1, &calls}, &Diff{Del: v1[2:4]}); err != nil {
		t.Fatal(err) // the first version: its diff is ignored
	}
	msgs, err := transferIn(t, addr, testZone, false, 0, testKey, testSecret)
	if resp := flatten(msgs); err != nil || !sameZone(resp[:len(resp)-1], v1) || calls.Load() != 1 {
		t.Fatalf("axfr of the first version: %v %v, %d calls", resp, err, calls.Load())
	}
	v2 := rpzZone(2, 9, "added.example") // d9 deleted, added.example added
	del := zoneText(t, "d9.example.rpz.test. 300 IN CNAME .", "*.d9.example.rpz.test. 300 IN CNAME .")
	add := zoneText(t, "added.example.rpz.test. 300 IN CNAME .", "*.added.example.rpz.test. 300 IN CNAME .")
	for _, bad := range []struct {
		c    madeContent
		d    *Diff
		want string
	}{
		{madeContent{v1, &calls}, &Diff{Del: del}, "serial 1 is not after 1"},
		{madeContent{v2, &calls}, &Diff{Del: v1[:1]}, "deletion 0 is an SOA"},
		{madeContent{v2, &calls}, &Diff{Add: zoneText(t, "a.other.test. 300 IN A 192.0.2.1")}, "outside the zone"},
		{madeContent{rpzZone(3, 1)[2:], &calls}, nil, "no SOA"},
	} {
		if err := s.Publish(testZone, bad.c, bad.d); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Publish(%v) = %v, want %q", bad.d, err, bad.want)
		}
	}
	if err := s.Publish(testZone, madeContent{v2, &calls}, &Diff{Del: del, Add: add}); err != nil {
		t.Fatal(err)
	}
	msgs, err = transferIn(t, addr, testZone, true, 1, testKey, testSecret)
	if resp := flatten(msgs); err != nil || len(resp) != 8 || !sameZone(applyIXFR(t, v1, resp), v2) {
		t.Fatalf("ixfr after Publish: %v %v", resp, err)
	}
	if calls.Load() != 1 {
		t.Errorf("an IXFR made the zone's records: %d calls", calls.Load())
	}
	r, err := exchange(t, "tcp", addr, soaQuery(testZone), testKey, testSecret)
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Serial != 2 {
		t.Errorf("SOA after Publish: %v %v", r, err)
	}
	// Without a diff the journal starts afresh: an older client gets the
	// whole zone.
	v3 := rpzZone(3, 9, "added.example")
	if err := s.Publish(testZone, madeContent{v3, &calls}, nil); err != nil {
		t.Fatal(err)
	}
	msgs, err = transferIn(t, addr, testZone, true, 2, testKey, testSecret)
	if resp := flatten(msgs); err != nil || !sameZone(resp[:len(resp)-1], v3) {
		t.Fatalf("ixfr from a serial before a new start: %v %v", resp, err)
	}
	// SetZone takes a published zone over, starting afresh too.
	if err := s.SetZone(testZone, rpzZone(4, 9)); err != nil {
		t.Fatal(err)
	}
	if j := s.zone(testZone).st.Load().journal; len(j) != 0 {
		t.Errorf("SetZone after Publish: a journal of %d", len(j))
	}
}

func soaQuery(zone string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(zone, dns.TypeSOA)
	return m
}
