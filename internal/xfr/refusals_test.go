package xfr

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/testnet"
)

// logLines returns the lines of out that contain every one of words.
func logLines(out string, words ...string) []string {
	var lines []string
	for line := range strings.SplitSeq(out, "\n") {
		all := line != ""
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			lines = append(lines, line)
		}
	}
	return lines
}

// dig runs dig against addr and returns what it printed.
func dig(t *testing.T, addr string, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	path := needBinary(t, "dig", "bind9-dnsutils")
	out, err := exec.CommandContext(ctx, path, append([]string{"@" + host, "-p", port, "+tries=1", "+time=2"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestRefusalLog: a dig SOA (or AXFR) without TSIG on the transfer port is
// REFUSED and logged, with the reason, once per source and reason in
// refusalLogEvery; the next line tells how many went unlogged. A flood of
// sources gets at most refusalLogBurst lines at once. Every refusal is
// counted by reason.
func TestRefusalLog(t *testing.T) {
	var logs testnet.Buffer
	reg := prometheus.NewRegistry()
	s, addr := startServer(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registerer: reg})
	if err := s.SetZone(testZone, rpzZone(1, 3)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Unix(1_700_000_000, 0)
	s.refusals.mu.Lock()
	s.refusals.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	s.refusals.mu.Unlock()
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	for range 5 {
		if out := dig(t, addr, testZone, "SOA"); !strings.Contains(out, "status: REFUSED") {
			t.Fatalf("unsigned SOA:\n%s", out)
		}
	}
	for range 2 {
		if out := dig(t, addr, testZone, "AXFR"); !strings.Contains(out, "Transfer failed") {
			t.Fatalf("unsigned AXFR:\n%s", out)
		}
	}
	soa := logLines(logs.String(), `msg="query refused"`, "zone="+testZone, "type=soa", "client=127.0.0.1", `reason="tsig required"`)
	axfr := logLines(logs.String(), `msg="transfer refused"`, "type=axfr", "client=127.0.0.1", `reason="tsig required"`)
	if len(soa) != 1 || len(axfr) != 1 {
		t.Fatalf("%d SOA and %d AXFR refusal lines, want 1 each:\n%s", len(soa), len(axfr), logs.String())
	}
	if got := value(s.met.refused.WithLabelValues("unsigned")); got != 7 {
		t.Errorf("refused_total{reason=unsigned} = %v, want 7", got)
	}

	advance(refusalLogEvery)
	dig(t, addr, testZone, "SOA")
	soa = logLines(logs.String(), `msg="query refused"`, "client=127.0.0.1", `reason="tsig required"`)
	if len(soa) != 2 || !strings.Contains(soa[1], "suppressed=4") {
		t.Fatalf("after %v: %q, want a second line with suppressed=4", refusalLogEvery, soa)
	}

	// Spoofed sources, all at once: the first refusalLogBurst are logged.
	advance(time.Minute)
	before := len(logLines(logs.String(), "refused"))
	m := new(dns.Msg)
	m.SetQuestion(testZone, dns.TypeSOA)
	const sources = 100
	for i := range sources {
		w := &fromWriter{fakeWriter: fakeWriter{}, from: netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)})}
		s.ServeDNS(w, m)
	}
	if got := len(logLines(logs.String(), "refused")) - before; got != refusalLogBurst {
		t.Errorf("%d sources at once: %d lines, want %d", sources, got, refusalLogBurst)
	}
	advance(time.Second)
	s.ServeDNS(&fromWriter{from: netip.MustParseAddr("127.2.0.1")}, m)
	last := logLines(logs.String(), "client=127.2.0.1")
	if want := fmt.Sprintf("unlogged_other_sources=%d", sources-refusalLogBurst); len(last) != 1 || !strings.Contains(last[0], want) {
		t.Errorf("the line after the flood: %q, want %s", last, want)
	}
}

// fromWriter is a fakeWriter whose client is from.
type fromWriter struct {
	fakeWriter
	from netip.Addr
}

func (w *fromWriter) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: w.from.AsSlice(), Port: 4000}
}

// TestMisplacedOPT: RFC 6891 section 6.1.1 on the transfer port: two OPT
// records, or an OPT whose owner is not the root, get FORMERR without an
// OPT, never larger than the query.
func TestMisplacedOPT(t *testing.T) {
	s, addr := startServer(t, Config{AllowUnsigned: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err := s.SetZone(testZone, rpzZone(1, 3)); err != nil {
		t.Fatal(err)
	}
	two := new(dns.Msg)
	two.SetQuestion(testZone, dns.TypeSOA)
	two.SetEdns0(4096, false)
	two.Extra = append(two.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 4096}})
	nonRoot := new(dns.Msg)
	nonRoot.SetQuestion(testZone, dns.TypeSOA)
	nonRoot.Extra = append(nonRoot.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: testZone, Rrtype: dns.TypeOPT, Class: 4096}})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, m := range map[string]*dns.Msg{"two OPT": two, "non-root OPT": nonRoot} {
		raw, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:n]); err != nil || r.Rcode != dns.RcodeFormatError || len(r.Extra) != 0 || n > len(raw) {
			t.Errorf("%s: %d bytes for a query of %d: %v %v", name, n, len(raw), r, err)
		}
	}
}
