package sim

import (
	"context"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/event"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testWorld = func() *demoworld.World {
	w, err := demoworld.New()
	if err != nil {
		panic(err)
	}
	return w
}()

var testNames = []string{"bad.example.com", "worse.example.net", "evil.example.org"}

// testStart is a fixed start at 06:00 UTC, so that a short run stays in
// one simulated day.
var testStart = time.Date(2026, 3, 10, 6, 0, 0, 0, time.UTC)

var testTargets = Targets{DNS: "127.0.0.1:5300", HTTP: "127.0.0.1:8080", SMTP: "127.0.0.1:2525"}

func newSim(t testing.TB, cfg Config) *Sim {
	t.Helper()
	if cfg.Targets == (Targets{}) {
		cfg.Targets = testTargets
	}
	if cfg.Domains == nil {
		cfg.Domains = map[string][]string{Waledac: testNames}
	}
	if cfg.World == nil {
		cfg.World = testWorld
	}
	if cfg.Start.IsZero() {
		cfg.Start = testStart
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewRefusesRemoteTargets(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Targets: Targets{DNS: "10.0.0.1:53", HTTP: "127.0.0.1:80"}}, "target dns 10.0.0.1:53 is not on loopback"},
		{Config{Targets: Targets{DNS: "127.0.0.1:53", HTTP: "[2001:db8::1]:80"}}, "target http [2001:db8::1]:80 is not on loopback"},
		{Config{Targets: Targets{DNS: "0.0.0.0:53", HTTP: "127.0.0.1:80"}}, "target dns 0.0.0.0:53 is not on loopback"},
		{Config{Targets: Targets{DNS: "127.0.0.1", HTTP: "127.0.0.1:80"}}, `target dns "127.0.0.1"`},
		{Config{Targets: Targets{DNS: "127.0.0.1:53"}}, "family waledac needs the http target"},
		{Config{Targets: testTargets, Families: []Share{{"foo", 1}}}, `families: "foo" is not one of waledac, conficker, rustock`},
		{Config{Targets: testTargets, Families: []Share{{Rustock, 1}, {Rustock, 2}}}, "rustock is listed twice"},
		{Config{Targets: testTargets, Domains: map[string][]string{}}, "waledac needs seized names"},
		{Config{Targets: testTargets, NotifiedASNs: []uint32{1}}, "notified AS1 is not a network"},
		{Config{Targets: testTargets, Churn: 1}, "churn: 1 is not below 1"},
		{Config{Targets: testTargets, Bots: -1}, "bots: -1"},
	} {
		if tc.cfg.Domains == nil {
			tc.cfg.Domains = map[string][]string{Waledac: testNames}
		}
		tc.cfg.World = testWorld
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", tc.cfg.Targets, err, tc.want)
		}
	}
	s := newSim(t, Config{Bots: 10, AllowRemote: true, Targets: Targets{DNS: "10.0.0.1:53", HTTP: "192.0.2.1:80"}})
	if s.sinks[0].dns.bind || s.sinks[0].http.bind {
		t.Error("bots bind loopback source addresses towards a remote target")
	}
	s = newSim(t, Config{Bots: 10, Targets: Targets{DNS: "localhost:5300", HTTP: "127.0.0.2:80", SMTP: "[::1]:25"}, Families: []Share{{Waledac, 1}, {Rustock, 1}}})
	if !s.sinks[0].dns.ap.Addr().IsLoopback() || !s.sinks[0].http.bind || s.sinks[0].smtp.bind {
		t.Errorf("targets %+v", s.sinks[0])
	}
}

func TestParseShares(t *testing.T) {
	got, err := ParseShares("waledac=0.8, Conficker=0.1,rustock")
	want := []Share{{Waledac, 0.8}, {Conficker, 0.1}, {Rustock, 1}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ParseShares = %v, %v", got, err)
	}
	if _, err := ParseShares("waledac=lots"); err == nil || !strings.Contains(err.Error(), `"lots"`) {
		t.Errorf("bad share: %v", err)
	}
}

func TestFamiliesExactCounts(t *testing.T) {
	s := newSim(t, Config{Bots: 1001, Families: []Share{{Waledac, 0.8}, {Conficker, 0.1}, {Rustock, 0.1}}})
	if got := s.pop.famBots; got != [numFamilies]int{801, 100, 100} {
		t.Errorf("bots per family %v", got)
	}
}

func TestNAT(t *testing.T) {
	const n = 50_000
	s := newSim(t, Config{Bots: n, Seed: 7})
	p := &s.pop
	perAddr := map[uint32]int{}
	for b := range n {
		perAddr[p.addr[b]]++
	}
	if len(perAddr) != p.addrs {
		t.Fatalf("%d addresses used, %d counted", len(perAddr), p.addrs)
	}
	nat, groups := 0, 0
	for b := range n {
		k := perAddr[p.addr[b]]
		if (k > 1) != p.nat.has(b) {
			t.Fatalf("bot %d: NAT flag %v with %d bots on its address", b, p.nat.has(b), k)
		}
		if k > 1 {
			nat++
		}
	}
	sizes := map[int]int{}
	for _, k := range perAddr {
		if k > 1 {
			groups++
			sizes[k]++
		}
		if k > DefaultNATMax {
			t.Fatalf("%d bots on one address, want at most %d", k, DefaultNATMax)
		}
	}
	if math.Abs(float64(nat)-DefaultNATShare*n) > 1 {
		t.Errorf("%d bots behind NAT, want %.0f", nat, DefaultNATShare*n)
	}
	if mean := float64(nat) / float64(groups); math.Abs(mean-5) > 0.3 {
		t.Errorf("mean NAT group %.2f, want about 5 (2..8)", mean)
	}
	for k := 2; k <= DefaultNATMax; k++ {
		if sizes[k] < groups/12 {
			t.Errorf("groups of %d: %d of %d", k, sizes[k], groups)
		}
	}
	// Distinct addresses map to distinct demo-world hosts in its networks.
	seen := map[netip.Addr]bool{}
	for a := range perAddr {
		ip := testWorld.Addr(uint64(a))
		if seen[ip] {
			t.Fatalf("address %v twice", ip)
		}
		seen[ip] = true
		if _, ok := testWorld.NetworkOf(ip); !ok {
			t.Fatalf("%v in no network", ip)
		}
	}
	off := newSim(t, Config{Bots: 1000, NATShare: -1})
	if off.pop.addrs != 1000 || off.pop.nat.count() != 0 {
		t.Errorf("NAT off: %d addresses, %d NAT bots", off.pop.addrs, off.pop.nat.count())
	}
}

func TestDGANames(t *testing.T) {
	d := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	a := DGANames(d, DGANamesPerDay)
	b := DGANames(d.Add(23*time.Hour+59*time.Minute), DGANamesPerDay)
	c := DGANames(d.Add(24*time.Hour), DGANamesPerDay)
	if !slices.Equal(a, b) {
		t.Error("names differ within one UTC day")
	}
	if slices.Equal(a, c) || len(a) != DGANamesPerDay {
		t.Errorf("%d names; next day the same: %v", len(a), slices.Equal(a, c))
	}
	if east := DGANames(time.Date(2026, 3, 10, 1, 0, 0, 0, time.FixedZone("x", 5*3600)), 10); !slices.Equal(east, DGANames(d.Add(-24*time.Hour), 10)) {
		t.Error("the day is not taken in UTC")
	}
	shape := regexp.MustCompile(`^(?:www\.)?[a-z]{4,12}\.[a-z]{2,6}$`) // rule conficker-dga-dns
	seen := map[string]bool{}
	lengths := map[int]bool{}
	for _, n := range a {
		if !shape.MatchString(n) || seen[n] {
			t.Errorf("name %q: shape or repeated", n)
		}
		seen[n] = true
		lengths[strings.IndexByte(n, '.')] = true
	}
	if len(lengths) != 9 {
		t.Errorf("label lengths %v, want 4 to 12", lengths)
	}
	if DGANames(d, 0) != nil || !slices.Equal(DGANames(d, 5), a[:5]) {
		t.Error("a shorter list is not the start of the day's list")
	}
}

func TestRulesRecogniseTheBots(t *testing.T) {
	rules, err := classify.Default()
	if err != nil {
		t.Fatal(err)
	}
	s := newSim(t, Config{Bots: 300, Families: []Share{{Waledac, 1}, {Conficker, 1}, {Rustock, 1}}})
	ids := map[string]uint32{}
	for b := range uint32(300) {
		for k := range 3 {
			at := testStart.UnixNano() + int64(k)*int64(time.Hour) + int64(b)
			c := s.plan(b, at)
			var r classify.Request
			want := familyNames[c.fam]
			switch c.fam {
			case famWaledac:
				// As httpsink sees it, and as the server sees a backfilled
				// event (the body is the event's PayloadHead).
				ev := s.appendEvents(nil, c)[1]
				r = classify.Request{Protocol: event.ProtoHTTP, Transport: event.TransportTCP, Port: 8080,
					Domain: c.name, Method: ev.HTTPMethod, Path: ev.HTTPPath, UserAgent: ev.HTTPUserAgent, Body: ev.PayloadHead}
			case famConficker:
				r = classify.Request{Protocol: event.ProtoDNS, Transport: event.TransportUDP, Domain: c.name, CaseFamily: Conficker}
			case famRustock:
				r = classify.Request{Protocol: event.ProtoSMTP, Transport: event.TransportTCP, HELO: c.helo, Domain: c.rcptDomains()[0], Body: c.msg}
			}
			res := rules.Classify(&r)
			if res.Family != want || res.Rule == "" {
				t.Fatalf("bot %d %s: classified %+v from %+v", b, want, res, r)
			}
			if c.fam != famWaledac {
				continue
			}
			if res.BotID != s.botID(b) || res.BotID == "" {
				t.Fatalf("bot %d: bot id %q, want %q", b, res.BotID, s.botID(b))
			}
			if other, ok := ids[res.BotID]; ok && other != b {
				t.Fatalf("bots %d and %d share the id %q", b, other, res.BotID)
			}
			ids[res.BotID] = b
			if res.Response == nil || res.Response.Status != 200 {
				t.Errorf("waledac-http-post response %+v", res.Response)
			}
		}
	}
	if len(ids) != s.pop.famBots[famWaledac] {
		t.Errorf("%d bot ids for %d waledac bots", len(ids), s.pop.famBots[famWaledac])
	}
}

// allDGANames returns the DGA names of the days before testStart and its
// day: every conficker lookup is served.
func allDGANames(days int) []string {
	var out []string
	for d := -days; d <= 0; d++ {
		out = append(out, DGANames(testStart.AddDate(0, 0, d), DGANamesPerDay)...)
	}
	return out
}

func TestCallbacksArePoisson(t *testing.T) {
	const bots, days = 300, 5
	s := newSim(t, Config{Bots: bots, Churn: -1, NATShare: -1, Families: []Share{{Conficker, 1}},
		Domains: map[string][]string{Conficker: allDGANames(days)}})
	botOf := map[netip.Addr]int{}
	for b := range uint32(bots) {
		botOf[s.pop.ip(b)] = int(b) // without NAT an address is a bot
	}
	from := testStart.Add(-days * 24 * time.Hour)
	counts := make([]float64, bots*days)
	err := s.Backfill(context.Background(), days*24*time.Hour, func(_ context.Context, evs []event.Event) error {
		for _, e := range evs {
			counts[botOf[e.SrcIP]*days+int(e.Time.Sub(from)/(24*time.Hour))]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var sum, sq float64
	for _, k := range counts {
		sum += k
		sq += k * k
	}
	n := float64(bots * days)
	mean := sum / n
	variance := sq/n - mean*mean
	if math.Abs(mean-DefaultCallbacksPerDay) > 0.03*DefaultCallbacksPerDay {
		t.Errorf("mean callbacks per bot and day %.2f, want %d ± 3 %%", mean, DefaultCallbacksPerDay)
	}
	// A Poisson count's variance is its mean.
	if r := variance / mean; r < 0.85 || r > 1.15 {
		t.Errorf("variance/mean %.2f, want about 1 (Poisson)", r)
	}
	if tr := s.Truth(); tr.Callbacks != int64(sum) || tr.Active != bots {
		t.Errorf("truth %d callbacks, %d active; counted %.0f", tr.Callbacks, tr.Active, sum)
	}
}

func TestChurnFasterWhenNotified(t *testing.T) {
	const bots, days = 4000, 20
	s := newSim(t, Config{Bots: bots, NotifiedShare: 0.5, CallbacksPerDay: 1, NATShare: -1, Families: []Share{{Conficker, 1}},
		Domains: map[string][]string{Conficker: allDGANames(days)}})
	if got := len(s.Notified()); got != int(math.Round(0.5*float64(len(testWorld.Networks)))) {
		t.Fatalf("%d notified networks", got)
	}
	last := map[netip.Addr]time.Time{}
	err := s.Backfill(context.Background(), days*24*time.Hour, func(_ context.Context, evs []event.Event) error {
		for _, e := range evs {
			last[e.SrcIP] = e.Time
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var alive, total [2]float64
	for b := range uint32(bots) {
		g := 0
		if s.notified[s.pop.netOf(b)] {
			g = 1
		}
		total[g]++
		clean := s.cleanAt(b)
		if clean >= testStart.UnixNano() {
			alive[g]++
		}
		if l, ok := last[s.pop.ip(b)]; ok && l.UnixNano() >= clean {
			t.Fatalf("bot %d called at %v, after it was cleaned at %v", b, l, time.Unix(0, clean).UTC())
		}
	}
	for g, want := range []float64{math.Pow(1-DefaultChurn, days), math.Pow(1-DefaultNotifiedChurn, days)} {
		if got := alive[g] / total[g]; math.Abs(got-want) > 0.05 {
			t.Errorf("group %d: %.3f of %0.f bots left after %d days, want %.3f", g, got, total[g], days, want)
		}
	}
	if tr := s.Truth(); tr.Active != int(alive[0]+alive[1]) || !tr.From.Equal(testStart.Add(-days*24*time.Hour)) {
		t.Errorf("truth: %d active from %v; want %v", tr.Active, tr.From, alive)
	}
	// The live run starts with the survivors only.
	h := s.initSchedule(s.start, 1<<63-1, newRand(1, saltLive))
	if len(h) > int(alive[0]+alive[1]) || len(h) < int(alive[0]+alive[1])*9/10 {
		t.Errorf("live schedule has %d bots, %v survived", len(h), alive)
	}
	for _, e := range h {
		if s.cleanAt(e.bot) <= s.start {
			t.Fatalf("bot %d cleaned at %v is scheduled", e.bot, time.Unix(0, s.cleanAt(e.bot)))
		}
	}
	asn := testWorld.Networks[3].ASN
	s2 := newSim(t, Config{Bots: 10, NotifiedASNs: []uint32{asn}})
	if n := s2.Notified(); !slices.Equal(n, []uint32{asn}) {
		t.Errorf("notified %v, want AS%d", n, asn)
	}
}

func TestBackfillShape(t *testing.T) {
	const days = 2
	from := testStart.Add(-days * 24 * time.Hour)
	var seized []string
	for d := range days + 1 {
		names := DGANames(from.Add(time.Duration(d)*24*time.Hour), DGANamesPerDay)
		seized = append(seized, names[:len(names)/2]...)
	}
	s := newSim(t, Config{
		Bots: 400, Families: []Share{{Waledac, 0.5}, {Conficker, 0.25}, {Rustock, 0.25}},
		Domains: map[string][]string{Waledac: testNames, Conficker: seized},
	})
	isSeized := map[string]bool{}
	for _, n := range seized {
		isSeized[n] = true
	}
	type set = map[string]bool
	ips := map[string]set{Waledac: {}, Conficker: {}, Rustock: {}}
	ids := set{}
	dayIPs := map[string]set{}
	events := map[string]int64{}
	var prev time.Time
	batches := 0
	err := s.Backfill(context.Background(), days*24*time.Hour, func(_ context.Context, evs []event.Event) error {
		batches++
		if len(evs) == 0 || len(evs) > BatchSize {
			t.Fatalf("batch of %d events", len(evs))
		}
		if d0, d1 := evs[0].Time.Truncate(24*time.Hour), evs[len(evs)-1].Time.Truncate(24*time.Hour); !d0.Equal(d1) {
			t.Fatalf("batch crosses midnight: %v to %v", evs[0].Time, evs[len(evs)-1].Time)
		}
		for i := range evs {
			e := &evs[i]
			if err := e.Validate(); err != nil {
				t.Fatal(err)
			}
			if e.Time.Before(from) || !e.Time.Before(testStart) || e.Time.Before(prev) {
				t.Fatalf("event at %v: outside [%v, %v) or before %v", e.Time, from, testStart, prev)
			}
			prev = e.Time
			if e.Family != "" || e.Tag != "" || e.BotID != "" || e.Zone != "" || e.Case != "" || e.Sensor != "" || e.ASN != 0 || e.CountryCode != "" {
				t.Fatalf("event fills what the server fills: %+v", e)
			}
			if e.SrcPort == 0 || !e.DstIP.IsLoopback() || e.DstPort == 0 || e.Domain != strings.ToLower(e.Domain) {
				t.Fatalf("event %+v", e)
			}
			var fam string
			switch e.Protocol {
			case event.ProtoDNS:
				fam = Waledac
				if !slices.Contains(testNames, e.Domain) {
					fam = Conficker
					if !isSeized[e.Domain] {
						t.Fatalf("lookup of %s, which is not seized", e.Domain)
					}
				}
				if e.DNSQType != "A" || e.DNSRcode != "NOERROR" || e.Transport != event.TransportUDP || e.DstPort != 5300 {
					t.Fatalf("dns event %+v", e)
				}
			case event.ProtoHTTP:
				fam = Waledac
				id := string(e.PayloadHead[strings.Index(string(e.PayloadHead), "&b=")+3:])
				ids[id] = true
				if e.HTTPMethod != "POST" || e.HTTPUserAgent != "Mozilla" || e.PayloadSHA256 == "" || e.Bytes != int64(len(e.PayloadHead)) || e.DstPort != 8080 {
					t.Fatalf("http event %+v", e)
				}
			case event.ProtoSMTP:
				fam = Rustock
				if e.SMTPHelo == "" || e.SMTPRcptCount < 2 || e.SMTPRcptCount > 6 || e.SMTPMessageID == "" || e.SMTPSubject == "" || e.DstPort != 2525 {
					t.Fatalf("smtp event %+v", e)
				}
			}
			ips[fam][e.SrcIP.String()] = true
			events[fam]++
			k := fam + " " + e.Time.Format(time.DateOnly)
			if dayIPs[k] == nil {
				dayIPs[k] = set{}
			}
			dayIPs[k][e.SrcIP.String()] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := s.Truth()
	if len(tr.Families) != 3 || batches < days {
		t.Fatalf("truth families %d, %d batches", len(tr.Families), batches)
	}
	for _, ft := range tr.Families {
		if ft.IPs != int64(len(ips[ft.Family])) || ft.Events != events[ft.Family] || ft.IPs == 0 {
			t.Errorf("%s: truth %d IPs %d events; events have %d IPs %d events", ft.Family, ft.IPs, ft.Events, len(ips[ft.Family]), events[ft.Family])
		}
		if ft.Family == Waledac && (ft.Bots != int64(len(ids)) || ft.Events != 2*ft.Callbacks) {
			t.Errorf("waledac: truth %d bot ids, %d events, %d callbacks; events have %d ids", ft.Bots, ft.Events, ft.Callbacks, len(ids))
		}
		if ft.Family == Conficker && (ft.Refused == 0 || ft.Callbacks == 0) {
			t.Errorf("conficker: %d refused, %d callbacks: half the names are seized", ft.Refused, ft.Callbacks)
		}
		if len(ft.ByDay) != days+1 { // 06:00 two days before to 06:00
			t.Errorf("%s: %d days", ft.Family, len(ft.ByDay))
		}
		var sumIPs, sumCB int64
		for _, d := range ft.ByDay {
			if d.IPs != int64(len(dayIPs[ft.Family+" "+d.Day])) {
				t.Errorf("%s %s: truth %d IPs, events %d", ft.Family, d.Day, d.IPs, len(dayIPs[ft.Family+" "+d.Day]))
			}
			sumCB += d.Callbacks
		}
		for _, n := range ft.ByASN {
			sumIPs += n.IPs
		}
		if sumCB != ft.Callbacks || sumIPs != ft.IPs {
			t.Errorf("%s: days add up to %d callbacks of %d, networks to %d IPs of %d", ft.Family, sumCB, ft.Callbacks, sumIPs, ft.IPs)
		}
	}
	if err := s.Backfill(context.Background(), time.Hour, func(context.Context, []event.Event) error { return nil }); err == nil {
		t.Error("a second Backfill ran")
	}
}
