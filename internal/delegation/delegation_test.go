package delegation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssectest"
)

var (
	sinkA    = netip.MustParseAddr("192.0.2.53")
	sinkAAAA = netip.MustParseAddr("2001:db8::53")
	ourNS    = []string{"ns1.sinkhole.example", "NS2.Sinkhole.Example."}
)

// fakeServer is an in-process DNS server on 127.0.0.1 (UDP and TCP on the
// same port) whose behaviour depends on the first label of the question.
type fakeServer struct {
	addr string

	mu   sync.Mutex
	hits map[string]int // "udp silent.test. NS" -> count

	inflight, maxInflight atomic.Int32
	silentHit             chan struct{} // gets a value (non-blocking) on each silent query
}

func (f *fakeServer) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[key]
}

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("bad test record %q: %v", s, err)
	}
	return r
}

// signedDS are the DS records the fake has for signed.test, sorted, in
// upper case, owned by the root (the test sets the owner).
var signedDS = []*dns.DS{
	{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeDS, Class: dns.ClassINET, Ttl: 60}, KeyTag: 2371, Algorithm: 13, DigestType: 2,
		Digest: "1F987CC6583E92DF0890718C42C6F9C2D7A4D8E7C2F1A3D3B4C5D6E7F8091A2B"},
	{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeDS, Class: dns.ClassINET, Ttl: 60}, KeyTag: 60485, Algorithm: 13, DigestType: 2,
		Digest: "D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A"},
}

func startFake(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{hits: map[string]int{}, silentHit: make(chan struct{}, 1)}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		q := req.Question[0]
		network := "udp"
		if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
			network = "tcp"
		}
		f.mu.Lock()
		f.hits[network+" "+q.Name+" "+dns.TypeToString[q.Qtype]]++
		f.mu.Unlock()

		m := new(dns.Msg)
		m.SetReply(req)
		label := strings.SplitN(q.Name, ".", 2)[0]
		switch {
		case label == "silent" || strings.HasPrefix(label, "silent-") ||
			(label == "halfsilent" && q.Qtype != dns.TypeNS):
			select {
			case f.silentHit <- struct{}{}:
			default:
			}
			return // never answer
		case label == "servfail":
			m.Rcode = dns.RcodeServerFailure
		case label == "tc":
			if network == "udp" {
				m.Truncated = true
				break
			}
			switch q.Qtype {
			case dns.TypeNS:
				m.Answer = []dns.RR{rr(t, q.Name+" 60 NS ns1.sinkhole.example."), rr(t, q.Name+" 60 NS ns2.sinkhole.example.")}
			case dns.TypeA:
				m.Answer = []dns.RR{rr(t, q.Name+" 60 A 192.0.2.53")}
			}
		case label == "signed" || label == "signed-tc":
			switch {
			case q.Qtype == dns.TypeNS:
				m.Answer = []dns.RR{rr(t, q.Name+" 60 NS ns1.sinkhole.example.")}
			case q.Qtype != dns.TypeDS:
			case label == "signed-tc" && network == "udp":
				m.Truncated = true
			case req.IsEdns0() != nil && req.IsEdns0().Do() && req.CheckingDisabled:
				// Out of order, once in lower case: sorted and
				// de-duplicated.
				m.Answer = []dns.RR{rr(t, q.Name+" 60 DS 60485 13 2 d4b7d520e7bb5f0f67674a0cceb1e3e0614b93c4f9e99b8383f6a1e4469da50a"),
					rr(t, q.Name+" 60 DS 2371 13 2 1F987CC6583E92DF0890718C42C6F9C2D7A4D8E7C2F1A3D3B4C5D6E7F8091A2B"),
					rr(t, q.Name+" 60 DS 60485 13 2 D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A"),
					rr(t, "other.test. 60 DS 1 13 2 1F987CC6583E92DF0890718C42C6F9C2D7A4D8E7C2F1A3D3B4C5D6E7F8091A2B")}
			}
		case label == "halfsilent":
			m.Answer = []dns.RR{rr(t, q.Name+" 60 NS ns1.sinkhole.example.")}
		case label == "referral":
			if q.Qtype == dns.TypeNS || q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA {
				m.Ns = []dns.RR{rr(t, q.Name+" 60 NS ns2.sinkhole.example."), rr(t, q.Name+" 60 NS ns1.sinkhole.example.")}
				m.Extra = []dns.RR{rr(t, "ns1.sinkhole.example. 60 A 198.51.100.1")} // glue: not an address of the domain
			}
		case label == "cname":
			switch q.Qtype {
			case dns.TypeNS:
				m.Answer = []dns.RR{rr(t, q.Name+" 60 CNAME elsewhere.example.")}
			case dns.TypeA:
				m.Answer = []dns.RR{rr(t, q.Name+" 60 CNAME elsewhere.example."), rr(t, "elsewhere.example. 60 A 198.51.100.9")}
			}
		case label == "nodata":
			m.Ns = []dns.RR{rr(t, "test. 60 SOA ns.test. host.test. 1 60 60 60 60")}
		case strings.HasPrefix(label, "slow-"):
			n := f.inflight.Add(1)
			for {
				old := f.maxInflight.Load()
				if n <= old || f.maxInflight.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond) // simulated server latency
			f.inflight.Add(-1)
			if q.Qtype == dns.TypeNS {
				m.Answer = []dns.RR{rr(t, q.Name+" 60 NS ns1.sinkhole.example.")}
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})

	f.addr = dnssectest.Serve(t, handler)
	return f
}

func fakeConfig(f *fakeServer) Config {
	return Config{
		Resolver:    f.addr,
		NameServers: ourNS,
		Addrs:       []netip.Addr{sinkA, sinkAAAA},
		Timeout:     150 * time.Millisecond,
		Retries:     1,
	}
}

func TestCheckFake(t *testing.T) {
	f := startFake(t)
	fixed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg := fakeConfig(f)
	cfg.Timeout = 0 // the default: no timeouts expected here, even under -race on a busy machine
	cfg.Now = func() time.Time { return fixed }

	domains := []string{"tc.test", "servfail.test", "referral.test.", "nodata.test", "cname.test", "gone.test", "bad..name", "signed.test", "signed-tc.test"}
	var calls []int
	res, err := Check(t.Context(), cfg, domains, func(done int) { calls = append(calls, done) })
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Domain: "tc.test", Verified: true, NS: []string{"ns1.sinkhole.example", "ns2.sinkhole.example"}, Addrs: []netip.Addr{sinkA}, AddrsOurs: true},
		{Domain: "servfail.test", Problem: "SERVFAIL; address lookup: A: SERVFAIL; AAAA: SERVFAIL", DSProblem: "SERVFAIL"},
		{Domain: "referral.test.", Verified: true, NS: []string{"ns1.sinkhole.example", "ns2.sinkhole.example"}},
		{Domain: "nodata.test", Problem: "no NS records (NODATA)"},
		{Domain: "cname.test", Problem: "no NS records (answer has other records, e.g. a CNAME)", Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.9")}},
		{Domain: "gone.test", Problem: "no NS records (NXDOMAIN)"},
		{Domain: "bad..name", Problem: `invalid domain name "bad..name"`, DSProblem: `invalid domain name "bad..name"`},
		{Domain: "signed.test", Verified: true, NS: []string{"ns1.sinkhole.example"}, DS: []*dns.DS{signedDS[0], signedDS[1]}},
		{Domain: "signed-tc.test", Verified: true, NS: []string{"ns1.sinkhole.example"}, DS: []*dns.DS{signedDS[0], signedDS[1]}},
	}
	for _, d := range want[len(want)-2:] {
		for i, ds := range d.DS {
			c := *ds
			c.Hdr.Name = dns.Fqdn(d.Domain)
			d.DS[i] = &c
		}
	}
	for i := range want {
		want[i].CheckedAt = fixed
	}
	compareResults(t, res, want)

	if !slices.Equal(calls, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("progress calls %v", calls)
	}
	// TC over UDP made Check ask again over TCP.
	for _, key := range []string{"udp tc.test. NS", "tcp tc.test. NS", "udp tc.test. A", "tcp tc.test. A", "udp signed-tc.test. DS", "tcp signed-tc.test. DS"} {
		if n := f.count(key); n != 1 {
			t.Errorf("%s: %d queries, want 1", key, n)
		}
	}
}

func compareResults(t *testing.T, got, want []Result) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Domain != w.Domain || !g.CheckedAt.Equal(w.CheckedAt) || g.Verified != w.Verified ||
			!slices.Equal(g.NS, w.NS) || !slices.Equal(g.Addrs, w.Addrs) || g.AddrsOurs != w.AddrsOurs || g.Problem != w.Problem ||
			fmt.Sprint(g.DS) != fmt.Sprint(w.DS) || g.DSProblem != w.DSProblem {
			t.Errorf("result %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// TestCheckTimeout: a server that never answers costs (1+Retries)*Timeout
// for the NS query, and the address queries are not sent.
func TestCheckTimeout(t *testing.T) {
	f := startFake(t)
	cfg := fakeConfig(f)
	start := time.Now()
	res, err := Check(t.Context(), cfg, []string{"silent.test"}, nil)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Verified || res[0].Problem != "resolver timeout" {
		t.Errorf("got %+v", res[0])
	}
	attempts := 1 + cfg.Retries
	if lo, hi := time.Duration(attempts)*cfg.Timeout, time.Duration(attempts)*cfg.Timeout+time.Second; elapsed < lo || elapsed > hi {
		t.Errorf("took %v, want between %v and %v", elapsed, lo, hi)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.count("udp silent.test. NS") != attempts && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // poll
	}
	if n := f.count("udp silent.test. NS"); n != attempts {
		t.Errorf("%d NS queries, want %d", n, attempts)
	}
	if n := f.count("udp silent.test. A"); n != 0 {
		t.Errorf("%d A queries after the NS query timed out, want 0", n)
	}

	// The NS answer comes, the address queries time out: still verified,
	// with the address problem noted.
	res, err = Check(t.Context(), cfg, []string{"Halfsilent.Test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Domain: "Halfsilent.Test", CheckedAt: res[0].CheckedAt, Verified: true, NS: []string{"ns1.sinkhole.example"},
		Problem: "address lookup: A: resolver timeout; AAAA: resolver timeout", DSProblem: "resolver timeout"}
	compareResults(t, res, []Result{want})
}

func TestCheckCancel(t *testing.T) {
	f := startFake(t)
	cfg := fakeConfig(f)
	cfg.Timeout = 30 * time.Second // only cancellation can end the queries
	cfg.Concurrency = 2
	var domains []string
	for i := range 10 {
		domains = append(domains, "silent-"+string(rune('a'+i))+".test")
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-f.silentHit // a query is in flight
		cancel()
	}()
	start := time.Now()
	res, err := Check(ctx, cfg, domains, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	if len(res) != len(domains) {
		t.Fatalf("%d results, want %d", len(res), len(domains))
	}
	for i, r := range res {
		if r.Domain != domains[i] || r.Verified || r.Problem != "not checked: context canceled" {
			t.Errorf("result %d: %+v", i, r)
		}
	}

	// Already cancelled: nothing is asked.
	res, err = Check(ctx, cfg, []string{"tc.test"}, nil)
	if !errors.Is(err, context.Canceled) || len(res) != 1 || res[0].Problem != "not checked: context canceled" {
		t.Errorf("cancelled context: %+v, %v", res, err)
	}
	if n := f.count("udp tc.test. NS"); n != 0 {
		t.Errorf("cancelled context sent %d queries", n)
	}
}

func TestCheckConcurrency(t *testing.T) {
	f := startFake(t)
	cfg := fakeConfig(f)
	cfg.Timeout = 5 * time.Second
	cfg.Concurrency = 3
	var domains []string
	for i := range 12 {
		domains = append(domains, "slow-"+string(rune('a'+i))+".test")
	}
	res, err := Check(t.Context(), cfg, domains, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Domain != domains[i] || !r.Verified {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if m := f.maxInflight.Load(); m > 3 {
		t.Errorf("%d queries in flight at once, want at most 3", m)
	}
}

func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no resolver", Config{}, "delegation: no resolver configured"},
		{"no port", Config{Resolver: "127.0.0.1"}, `delegation: resolver "127.0.0.1": address 127.0.0.1: missing port in address`},
		{"bad port", Config{Resolver: "127.0.0.1:dns"}, `delegation: resolver "127.0.0.1:dns": bad port "dns"`},
		{"no host", Config{Resolver: ":53"}, `delegation: resolver ":53": missing host`},
		{"bad ns", Config{Resolver: "127.0.0.1:53", NameServers: []string{"ns1..example"}}, `delegation: name server "ns1..example" is not a domain name`},
		{"zero addr", Config{Resolver: "127.0.0.1:53", Addrs: []netip.Addr{{}}}, "delegation: invalid (zero) sinkhole address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Check(t.Context(), tc.cfg, []string{"a.test"}, nil)
			if err == nil || err.Error() != tc.want || res != nil {
				t.Errorf("got %v, %v; want error %q", res, err, tc.want)
			}
		})
	}
}
