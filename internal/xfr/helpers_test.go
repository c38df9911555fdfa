package xfr

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const (
	testKey    = "takedown-xfr."
	testSecret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==" // "secret-secret-secret-secret!"
	testZone   = "rpz.test."
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startServer starts a server on a free loopback port and returns it with its
// address.
func startServer(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	if cfg.TSIGKeys == nil {
		cfg.TSIGKeys = map[string]string{testKey: testSecret}
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return s, s.Addrs()[0].String()
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	return rr
}

// zoneText builds zone content from zone-file lines; the first is the SOA.
func zoneText(t testing.TB, lines ...string) []dns.RR {
	t.Helper()
	var rrs []dns.RR
	for _, l := range lines {
		rrs = append(rrs, mustRR(t, l))
	}
	return rrs
}

func soaLine(zone string, serial uint32) string {
	return fmt.Sprintf("%s 300 IN SOA localhost. hostmaster.%s %d 300 60 604800 60", zone, zone, serial)
}

// rpzZone returns an RPZ-like zone with n NXDOMAIN names d0..d(n-1).
func rpzZone(serial uint32, n int, extra ...string) []dns.RR {
	rrs := make([]dns.RR, 0, 2+2*n)
	soa, _ := dns.NewRR(soaLine(testZone, serial))
	ns, _ := dns.NewRR(testZone + " 300 IN NS localhost.")
	rrs = append(rrs, soa, ns)
	add := func(name string) {
		for _, o := range []string{name + "." + testZone, "*." + name + "." + testZone} {
			rrs = append(rrs, &dns.CNAME{Hdr: dns.RR_Header{Name: o, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300}, Target: "."})
		}
	}
	for i := range n {
		add(fmt.Sprintf("d%d.example", i))
	}
	for _, e := range extra {
		add(e)
	}
	return rrs
}

// transferIn runs AXFR (serial 0 and ixfr false) or IXFR from serial and
// returns the messages' answers.
func transferIn(t testing.TB, addr, zone string, ixfr bool, serial uint32, key, secret string) ([][]dns.RR, error) {
	t.Helper()
	m := new(dns.Msg)
	if ixfr {
		m.SetIxfr(zone, serial, "localhost.", "hostmaster."+zone)
	} else {
		m.SetAxfr(zone)
	}
	tr := &dns.Transfer{}
	if key != "" {
		tr.TsigSecret = map[string]string{key: secret}
		m.SetTsig(key, dns.HmacSHA256, 300, time.Now().Unix())
	}
	ch, err := tr.In(m, addr)
	if err != nil {
		return nil, err
	}
	var out [][]dns.RR
	var errs []error
	for env := range ch {
		if env.Error != nil {
			errs = append(errs, env.Error)
			continue
		}
		out = append(out, env.RR)
	}
	if len(errs) > 0 {
		return out, errs[0]
	}
	return out, nil
}

func flatten(msgs [][]dns.RR) []dns.RR {
	var out []dns.RR
	for _, m := range msgs {
		out = append(out, m...)
	}
	return out
}

// applyIXFR applies an RFC 1995 response to a zone and returns the result;
// a full (AXFR-style) response replaces the zone.
func applyIXFR(t testing.TB, zone []dns.RR, resp []dns.RR) []dns.RR {
	t.Helper()
	if len(resp) < 2 {
		t.Fatalf("ixfr response has %d records", len(resp))
	}
	newSOA := resp[0].(*dns.SOA)
	if _, ok := resp[1].(*dns.SOA); !ok { // AXFR style
		return resp[:len(resp)-1]
	}
	set := map[string]dns.RR{}
	for _, rr := range zone[1:] {
		set[rr.String()] = rr
	}
	i := 1
	for i < len(resp)-1 {
		// resp[i] is the old SOA of a step.
		i++
		for ; resp[i].Header().Rrtype != dns.TypeSOA; i++ {
			if _, ok := set[resp[i].String()]; !ok {
				t.Fatalf("ixfr deletes %s which is not in the zone", resp[i])
			}
			delete(set, resp[i].String())
		}
		i++ // new SOA of the step
		for ; resp[i].Header().Rrtype != dns.TypeSOA; i++ {
			set[resp[i].String()] = resp[i]
		}
		if i == len(resp)-1 {
			break
		}
	}
	out := []dns.RR{newSOA}
	for _, rr := range set {
		out = append(out, rr)
	}
	return out
}

// sameZone compares two zones as sets of records, SOA included.
func sameZone(a, b []dns.RR) bool {
	str := func(rrs []dns.RR) []string {
		s := make([]string, len(rrs))
		for i, rr := range rrs {
			s[i] = strings.ToLower(rr.String())
		}
		sort.Strings(s)
		return slices.Compact(s)
	}
	return slices.Equal(str(a), str(b))
}

// exchange sends m over net ("udp" or "tcp") signed with key if set.
func exchange(t testing.TB, netw, addr string, m *dns.Msg, key, secret string) (*dns.Msg, error) {
	t.Helper()
	c := &dns.Client{Net: netw, Timeout: 5 * time.Second}
	if key != "" {
		c.TsigSecret = map[string]string{key: secret}
		m.SetTsig(key, dns.HmacSHA256, 300, time.Now().Unix())
	}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// fakeWriter is a ResponseWriter that packs and keeps what is written.
type fakeWriter struct {
	tcp   bool
	keep  bool // keep the messages in msgs
	msgs  [][]byte
	bytes int
	n     int // messages written
}

func (w *fakeWriter) LocalAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}

func (w *fakeWriter) RemoteAddr() net.Addr {
	ip := netip.MustParseAddr("127.0.0.2").AsSlice()
	if w.tcp {
		return &net.TCPAddr{IP: ip, Port: 4000}
	}
	return &net.UDPAddr{IP: ip, Port: 4000}
}

func (w *fakeWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (w *fakeWriter) Write(b []byte) (int, error) {
	w.bytes += len(b)
	w.n++
	if w.keep {
		w.msgs = append(w.msgs, slices.Clone(b))
	}
	return len(b), nil
}

func (w *fakeWriter) Close() error        { return nil }
func (w *fakeWriter) TsigStatus() error   { return nil }
func (w *fakeWriter) TsigTimersOnly(bool) {}
func (w *fakeWriter) Hijack()             {}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
