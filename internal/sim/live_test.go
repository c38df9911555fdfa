package sim

import (
	"bytes"
	"context"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/dnssink"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/listen/httpsink"
	"github.com/takedown-project/takedown/internal/listen/smtpsink"
	"github.com/takedown-project/takedown/internal/servedset"
	"github.com/takedown-project/takedown/internal/testnet"
)

// recorder keeps copies of the sinks' events.
type recorder struct {
	mu     sync.Mutex
	events []event.Event
}

func (r *recorder) Record(e *event.Event) {
	c := *e // the sinks reuse e
	c.PayloadHead = bytes.Clone(e.PayloadHead)
	r.mu.Lock()
	r.events = append(r.events, c)
	r.mu.Unlock()
}

func (r *recorder) all() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// sinks are the real DNS, HTTP and SMTP sinks on loopback, serving the
// test names for waledac and half of the day's DGA names for conficker.
type sinks struct {
	rec     *recorder
	targets Targets
	seized  []string // DGA names
}

func startSinks(t *testing.T) *sinks {
	t.Helper()
	rules, err := classify.Default()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	sk := &sinks{rec: rec}
	full := &servedset.Delta{To: 1,
		Sinkhole: &servedset.Sinkhole{
			NameServers: []servedset.NameServer{{Name: "ns1.sinkhole.example", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.53")}}},
			A:           []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		},
		Cases: []servedset.Case{{Name: "waledac-2010", Family: Waledac}, {Name: "conficker-2009", Family: Conficker}},
	}
	for _, n := range testNames {
		full.Put = append(full.Put, servedset.Zone{Name: n, Case: "waledac-2010"})
	}
	names := DGANames(testStart, DGANamesPerDay)
	sk.seized = names[:len(names)/2]
	for _, n := range sk.seized {
		full.Put = append(full.Put, servedset.Zone{Name: n, Case: "conficker-2009"})
	}
	served := servedset.NewSet()
	if err := served.Apply(full); err != nil {
		t.Fatal(err)
	}
	ds, err := dnssink.New(dnssink.Config{
		Listen:     []string{"127.0.0.1:0"},
		Served:     served,
		UDPWorkers: 2,
		Recorder:   rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := httpsink.New(httpsink.Config{HTTP: []string{"127.0.0.1:0"}, Classifier: rules, Zones: served, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := smtpsink.New(smtpsink.Config{Listen: []string{"127.0.0.1:0"}, Classifier: rules, Zones: served, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, start := range []func(context.Context) error{ds.Start, hs.Start, ms.Start} {
		if err := start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, stop := range []func(context.Context) error{ms.Shutdown, hs.Shutdown, ds.Shutdown} {
			if err := stop(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	sk.targets = Targets{DNS: ds.UDPAddr(0).String(), HTTP: hs.Addrs()[0].String(), SMTP: ms.Addrs()[0].String()}
	return sk
}

// TestLiveEventsAreWhatBackfillMakes sends one callback of each family to
// the real sinks and compares what they recorded with the events Backfill
// makes of the same callback.
func TestLiveEventsAreWhatBackfillMakes(t *testing.T) {
	sk := startSinks(t)
	s := newSim(t, Config{Bots: 50, Targets: sk.targets, Families: []Share{{Waledac, 1}, {Conficker, 1}, {Rustock, 1}},
		Domains: map[string][]string{Waledac: testNames, Conficker: sk.seized}})
	cl := s.newClients()
	defer cl.tr.CloseIdleConnections()
	done := [numFamilies]bool{}
	for b := uint32(0); b < 50; b++ {
		for k := range int64(20) {
			c := s.plan(b, testStart.UnixNano()+k)
			if done[c.fam] || c.fam == famConficker && !s.seizedDGA[c.name] {
				continue
			}
			done[c.fam] = true
			sk.rec.reset()
			o := s.execute(context.Background(), cl, c)
			want := s.appendEvents(nil, c)
			if o.err != nil || o.events != len(want) {
				t.Fatalf("%s: %+v, want %d events", familyNames[c.fam], o, len(want))
			}
			testnet.WaitFor(t, "events", func() bool { return len(sk.rec.all()) >= len(want) })
			got := sk.rec.all()
			for i := range want {
				g, w := got[i], want[i]
				if g.Family != familyNames[c.fam] || c.fam == famWaledac && g.Protocol == event.ProtoHTTP && g.BotID != c.id {
					t.Errorf("%s: the sink classified %s, bot id %q", familyNames[c.fam], g.Family, g.BotID)
				}
				if g.SrcIP != c.src {
					t.Errorf("%s: from %v, want the bot's %v", familyNames[c.fam], g.SrcIP, c.src)
				}
				// What the server fills, and what differs by nature.
				g.Time, w.Time = time.Time{}, time.Time{}
				g.SrcPort, w.SrcPort = 0, 0
				g.Family, g.Tag, g.BotID, g.Zone, g.Case = "", "", "", "", ""
				if !eventsEqual(g, w) {
					t.Errorf("%s: the sink recorded\n%+v\nbackfill makes\n%+v", familyNames[c.fam], g, w)
				}
			}
		}
	}
	if done != [numFamilies]bool{true, true, true} {
		t.Fatalf("families tried: %v", done)
	}
}

func eventsEqual(a, b event.Event) bool {
	return reflect.DeepEqual(a, b) || bytes.Equal(a.PayloadHead, b.PayloadHead) && len(a.PayloadHead) == 0 &&
		reflect.DeepEqual(withHead(a, nil), withHead(b, nil))
}

func withHead(e event.Event, h []byte) event.Event { e.PayloadHead = h; return e }

// TestRunMatchesTheSinks runs a few hundred bots at high speed against the
// real sinks and checks that the unique hosts, bot ids and events they
// recorded per family are the simulator's truth, exactly.
func TestRunMatchesTheSinks(t *testing.T) {
	sk := startSinks(t)
	var progress bytes.Buffer
	s := newSim(t, Config{
		Bots: 300, Targets: sk.targets, Families: []Share{{Waledac, 0.6}, {Conficker, 0.2}, {Rustock, 0.2}},
		Domains: map[string][]string{Waledac: testNames, Conficker: sk.seized},
		// About one callback per bot and second.
		Speed: 2400, Duration: 3 * time.Second, MaxCallbacks: 700, Concurrency: 32, Seed: 42,
		Progress: &progress, ProgressInterval: time.Second,
	})
	start := time.Now()
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("Run took %v, bounded by 3 s", took)
	}
	tr := s.Truth()
	if tr.Errors != 0 || tr.Callbacks < 100 {
		t.Fatalf("truth: %d errors, %d callbacks\n%s", tr.Errors, tr.Callbacks, progress.String())
	}
	testnet.WaitFor(t, "the sinks' events", func() bool { return int64(len(sk.rec.all())) >= tr.Events })
	type counts struct {
		ips, ids map[string]bool
		events   int64
	}
	got := map[string]*counts{}
	for _, e := range sk.rec.all() {
		c := got[e.Family]
		if c == nil {
			c = &counts{ips: map[string]bool{}, ids: map[string]bool{}}
			got[e.Family] = c
		}
		c.ips[e.SrcIP.String()] = true
		if e.BotID != "" {
			c.ids[e.BotID] = true
		}
		c.events++
	}
	if len(got) != len(tr.Families) {
		t.Errorf("sinks saw families %v, truth has %d", got, len(tr.Families))
	}
	for _, ft := range tr.Families {
		c := got[ft.Family]
		if c == nil {
			t.Errorf("%s: no events at the sinks", ft.Family)
			continue
		}
		if int64(len(c.ips)) != ft.IPs || int64(len(c.ids)) != ft.Bots || c.events != ft.Events {
			t.Errorf("%s: sinks saw %d IPs, %d bot ids, %d events; truth %d, %d, %d",
				ft.Family, len(c.ips), len(c.ids), c.events, ft.IPs, ft.Bots, ft.Events)
		}
		if ft.Family == Conficker && ft.Refused == 0 {
			t.Error("conficker: no lookup was refused, though half the names are not seized")
		}
	}
	if !bytes.Contains(progress.Bytes(), []byte("callbacks (")) {
		t.Errorf("progress: %q", progress.String())
	}
	if tr.To.Before(testStart.Add(time.Hour)) {
		t.Errorf("simulated time reached %v, want about 2 hours after %v", tr.To, testStart)
	}
}

// TestRunSplitsBetweenSensors runs the bots against two sets of real
// sinks: each bot calls one sensor only, and each sensor recorded exactly
// the events Truth.Sensors gives it.
func TestRunSplitsBetweenSensors(t *testing.T) {
	a, b := startSinks(t), startSinks(t)
	s := newSim(t, Config{
		Bots: 200, Sensors: []Targets{a.targets, b.targets}, Families: []Share{{Waledac, 0.6}, {Conficker, 0.2}, {Rustock, 0.2}},
		Domains: map[string][]string{Waledac: testNames, Conficker: a.seized},
		Speed:   2400, Duration: 2 * time.Second, MaxCallbacks: 400, Concurrency: 32, Seed: 9,
	})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr := s.Truth()
	if tr.Errors != 0 || len(tr.Sensors) != 2 {
		t.Fatalf("truth: %d errors, sensors %+v", tr.Errors, tr.Sensors)
	}
	if tr.Sensors[0].Bots != 100 || tr.Sensors[1].Bots != 100 {
		t.Errorf("bots per sensor %+v, want 100 each", tr.Sensors)
	}
	if tr.Sensors[0].Events+tr.Sensors[1].Events != tr.Events || tr.Sensors[0].Callbacks+tr.Sensors[1].Callbacks != tr.Callbacks {
		t.Errorf("sensors %+v do not add up to the truth's %d callbacks, %d events", tr.Sensors, tr.Callbacks, tr.Events)
	}
	for i, sk := range []*sinks{a, b} {
		want := tr.Sensors[i].Events
		if want == 0 {
			t.Fatalf("sensor %d got nothing", i)
		}
		testnet.WaitFor(t, "the sinks' events", func() bool { return int64(len(sk.rec.all())) >= want })
		if got := int64(len(sk.rec.all())); got != want {
			t.Errorf("sensor %d recorded %d events, truth %d", i, got, want)
		}
	}
}
