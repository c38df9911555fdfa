package dnssink

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/servedset"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memRecorder keeps events in memory.
type memRecorder struct {
	mu     sync.Mutex
	events []*event.Event
}

func (r *memRecorder) Record(e *event.Event) {
	c := *e // the server reuses e
	r.mu.Lock()
	r.events = append(r.events, &c)
	r.mu.Unlock()
}

func (r *memRecorder) all() []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*event.Event(nil), r.events...)
}

func (r *memRecorder) reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testZone is a seized zone of the tests with its case; the first zone of
// a case gives the case's family and TXT.
type testZone struct{ Name, Case, Family, TXT string }

var testZones = []testZone{
	{Name: "example.com", Case: "waledac", Family: "waledac", TXT: "sinkholed by order of E.D. Va. 1:10-cv-00156"},
	{Name: "Seized.TEST.", Case: "waledac", Family: "Waledac", TXT: "sinkholed by order of E.D. Va. 1:10-cv-00156"},
	{Name: "deep.example.com", Case: "other", TXT: "other case"},
	{Name: "notxt.test", Case: "quiet"},
}

// testSinkhole is what the test zones answer.
func testSinkhole() servedset.Sinkhole {
	return servedset.Sinkhole{
		NameServers: []servedset.NameServer{
			{Name: "ns1.sinkhole.example", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")}},
			{Name: "ns2.example.com", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.54")}},
		},
		A:          []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		AAAA:       []netip.Addr{netip.MustParseAddr("2001:db8::1")},
		Hostmaster: "abuse@sinkhole.example",
	}
}

func testConfig() Config {
	return Config{
		Listen:     []string{"127.0.0.1:0"},
		Sensor:     "test-node",
		UDPWorkers: 2,
	}
}

// servedSet returns a served set of zones that answer with sh.
func servedSet(t testing.TB, sh servedset.Sinkhole, zones []testZone) *servedset.Set {
	t.Helper()
	set := servedset.NewSet()
	setZones(t, set, &sh, zones)
	return set
}

// setZones makes zones (and sh, unless nil) the content of set, in one step.
func setZones(t testing.TB, set *servedset.Set, sh *servedset.Sinkhole, zones []testZone) {
	t.Helper()
	cur := set.Load()
	d := &servedset.Delta{From: cur.Serial(), To: cur.Serial() + 1, Sinkhole: sh}
	seen := map[string]bool{}
	for _, z := range zones {
		if !seen[z.Case] {
			seen[z.Case] = true
			d.Cases = append(d.Cases, servedset.Case{Name: z.Case, Family: z.Family, TXT: z.TXT})
		}
		d.Put = append(d.Put, servedset.Zone{Name: z.Name, Case: z.Case})
	}
	for name := range cur.All() {
		d.Remove = append(d.Remove, name)
	}
	if err := set.Apply(d); err != nil {
		t.Fatal(err)
	}
}

// startServer starts a server with cfg (by default on the test zones) on
// loopback.
func startServer(t testing.TB, cfg Config) (*Server, *memRecorder) {
	t.Helper()
	rec := &memRecorder{}
	if cfg.Recorder == nil {
		cfg.Recorder = rec
	}
	if cfg.Served == nil {
		cfg.Served = servedSet(t, testSinkhole(), testZones)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	if len(cfg.Listen) > 0 {
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return s, rec
}

// exchange sends m over netw ("udp" or "tcp") to the server.
func exchange(t *testing.T, s *Server, netw string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: netw, Timeout: 2 * time.Second, UDPSize: 65535}
	addr := s.UDPAddr(0).String()
	if netw == "tcp" {
		addr = s.TCPAddr(0).String()
	}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("exchange %s over %s: %v", m.Question[0].String(), netw, err)
	}
	return r
}

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// rrStrings renders RRs as zone-file lines with single spaces.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, normRR(rr.String()))
	}
	return out
}

func normRR(s string) string {
	rr, err := dns.NewRR(s)
	if err != nil || rr == nil {
		return s
	}
	str := rr.String()
	out := make([]byte, 0, len(str))
	for i := 0; i < len(str); i++ {
		if str[i] == '\t' {
			out = append(out, ' ')
			continue
		}
		out = append(out, str[i])
	}
	return string(out)
}

// discard is a Recorder that keeps nothing.
type discard struct{}

func (discard) Record(*event.Event) {}
