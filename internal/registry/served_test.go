package registry

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/servedset"
)

// importDomains imports names into the case.
func importDomains(t testing.TB, r *Registry, caseName string, names ...string) {
	t.Helper()
	if _, err := r.ImportDomains(ctxBack, caseName, "t", []byte(strings.Join(names, "\n")), alice); err != nil {
		t.Fatal(err)
	}
}

func setState(t testing.TB, r *Registry, st State, names ...string) {
	t.Helper()
	if _, err := r.SetState(ctxBack, names, st, alice); err != nil {
		t.Fatal(err)
	}
}

func TestChangesSince(t *testing.T) {
	r, _, _ := newTestRegistry(t)
	mustCase(t, r)
	importDomains(t, r, waledac.Name, "a.example", "b.example", "c.example")
	seq, err := r.ServedDomains(ctxBack, func(string, string) error { t.Error("a listed domain is served"); return nil })
	if err != nil || seq == 0 {
		t.Fatalf("ServedDomains: %d, %v", seq, err)
	}
	setState(t, r, StateRestrained, "a.example", "b.example")
	setState(t, r, StateSinkholed, "a.example")
	setState(t, r, StateReleased, "b.example")
	if _, err := r.AddCase(ctxBack, NewCase{Name: "dga", Court: "E.D. Va.", Docket: "2", Family: "conficker"}, alice); err != nil {
		t.Fatal(err)
	}
	ch, err := r.ChangesSince(ctxBack, seq)
	if err != nil {
		t.Fatal(err)
	}
	want := []DomainChange{{"a.example", waledac.Name, StateSinkholed}, {"b.example", waledac.Name, StateReleased}}
	if !slices.Equal(ch.Domains, want) || !slices.Equal(ch.Cases, []string{"dga"}) {
		t.Errorf("changes: %+v", ch)
	}
	last, _ := r.LastSeq(ctxBack)
	if ch.Seq != last {
		t.Errorf("changes up to %d, the log ends at %d", ch.Seq, last)
	}
	if again, err := r.ChangesSince(ctxBack, ch.Seq); err != nil || again.Seq != ch.Seq || len(again.Domains)+len(again.Cases) != 0 {
		t.Errorf("nothing changed: %+v, %v", again, err)
	}
	// A change the sinks do not care for moves the sequence only.
	if _, err := r.AddOrder(ctxBack, "dga", NewOrder{Type: OrderTRO, Issued: dateTRO}, alice); err != nil {
		t.Fatal(err)
	}
	if ch2, err := r.ChangesSince(ctxBack, ch.Seq); err != nil || ch2.Seq != ch.Seq+1 || len(ch2.Domains)+len(ch2.Cases) != 0 {
		t.Errorf("an order added: %+v, %v", ch2, err)
	}
	served := map[string]string{}
	if _, err := r.ServedDomains(ctxBack, func(n, c string) error { served[n] = c; return nil }); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(served, map[string]string{"a.example": waledac.Name}) {
		t.Errorf("served: %v", served)
	}
}

var testSinkhole = servedset.Sinkhole{
	NameServers: []servedset.NameServer{{Name: "ns1.sinkhole.example", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.53")}}},
	A:           []netip.Addr{netip.MustParseAddr("192.0.2.1")},
}

// zonesOf renders a served set as "name=case".
func zonesOf(s *servedset.Snapshot) []string {
	var out []string
	for name, c := range s.All() {
		out = append(out, name+"="+c.Name)
	}
	slices.Sort(out)
	return out
}

func TestPublisher(t *testing.T) {
	r, _, clk := newTestRegistry(t)
	mustCase(t, r)
	importDomains(t, r, waledac.Name, "a.example", "b.example", "c.example")
	setState(t, r, StateRestrained, "a.example", "b.example")
	set := servedset.NewSet()
	p := r.NewPublisher(PublisherConfig{Served: set, Sinkhole: testSinkhole, Operator: "Example CERT", Now: clk.Now})
	if err := p.Load(ctxBack); err != nil {
		t.Fatal(err)
	}
	s1 := set.Load()
	if got := zonesOf(s1); !slices.Equal(got, []string{"a.example=waledac-2010", "b.example=waledac-2010"}) {
		t.Errorf("loaded: %v", got)
	}
	if s1.Serial() != uint32(t0.Unix()) {
		t.Errorf("serial %d, want the unix time %d", s1.Serial(), t0.Unix())
	}
	if c, _ := s1.Has("a.example"); c.TXT != "sinkholed by order of U.S. District Court, E.D. Virginia 1:10-cv-00156 (case waledac-2010); operator Example CERT" {
		t.Errorf("TXT %q", c.TXT)
	}
	if changed, err := p.Poll(ctxBack); changed || err != nil {
		t.Errorf("a poll with nothing new: %v, %v", changed, err)
	}
	// Released, restrained, a new case with a domain restrained, a domain
	// only imported: one step.
	setState(t, r, StateReleased, "a.example")
	setState(t, r, StateRestrained, "c.example")
	if _, err := r.AddCase(ctxBack, NewCase{Name: "dga", Court: "E.D. Va.", Docket: "2", Family: "Conficker"}, alice); err != nil {
		t.Fatal(err)
	}
	importDomains(t, r, "dga", "x.example", "y.example")
	setState(t, r, StateRestrained, "x.example")
	var steps []servedset.Update
	set.Subscribe(func(u servedset.Update) { steps = append(steps, u) })
	if changed, err := p.Poll(ctxBack); !changed || err != nil {
		t.Fatalf("poll: %v, %v", changed, err)
	}
	if got := zonesOf(set.Load()); !slices.Equal(got, []string{"b.example=waledac-2010", "c.example=waledac-2010", "x.example=dga"}) {
		t.Errorf("after the step: %v", got)
	}
	if len(steps) != 1 || steps[0].Delta == nil || len(steps[0].Delta.Remove) != 1 || len(steps[0].Delta.Put) != 2 {
		t.Fatalf("steps: %+v", steps)
	}
	if _, _, fam, _ := set.Zone("www.x.example"); fam != "conficker" {
		t.Errorf("the new case's family: %q", fam)
	}
	if got := set.Load().Serial(); got != s1.Serial()+1 {
		t.Errorf("serial %d after a step in the same second as the load, want %d", got, s1.Serial()+1)
	}
	clk.Advance(time.Hour)
	setState(t, r, StateSinkholed, "b.example") // still served: no step
	if changed, err := p.Poll(ctxBack); changed || err != nil {
		t.Errorf("a move between served states: %v, %v", changed, err)
	}
	setState(t, r, StateReleased, "b.example")
	if _, err := p.Poll(ctxBack); err != nil {
		t.Fatal(err)
	}
	if got := set.Load().Serial(); got != uint32(t0.Add(time.Hour).Unix()) {
		t.Errorf("serial %d an hour later, want the unix time", got)
	}
}

// TestPublisherRun: a change reaches the set within a few polls.
func TestPublisherRun(t *testing.T) {
	r, _, _ := newTestRegistry(t)
	mustCase(t, r)
	importDomains(t, r, waledac.Name, "a.example")
	set := servedset.NewSet()
	p := r.NewPublisher(PublisherConfig{Served: set, Sinkhole: testSinkhole, Every: 10 * time.Millisecond})
	if err := p.Load(ctxBack); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxBack)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	setState(t, r, StateRestrained, "a.example")
	deadline := time.Now().Add(5 * time.Second)
	for set.Load().Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the restrained domain did not reach the served set")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkChangesSince measures reading one domain's change after 20,000
// domains were imported and restrained (40,000 audit entries before it).
func BenchmarkChangesSince(b *testing.B) {
	const n = 20_000
	r, _, _ := newTestRegistry(b)
	mustCase(b, r)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("d%07dx.example", i)
	}
	importDomains(b, r, waledac.Name, names...)
	setState(b, r, StateRestrained, names...)
	seq, _ := r.LastSeq(ctxBack)
	setState(b, r, StateReleased, names[7])
	b.ReportAllocs()
	for b.Loop() {
		ch, err := r.ChangesSince(ctxBack, seq)
		if err != nil || len(ch.Domains) != 1 {
			b.Fatal(ch, err)
		}
	}
}
