package rpz

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/servedset"
)

var feedCfg = Config{Zone: "rpz.test", A: []netip.Addr{netip.MustParseAddr("192.0.2.53")}, AAAA: []netip.Addr{netip.MustParseAddr("2001:db8::53")}}

var feedPolicies = Policies{Default: NXDOMAIN, Cases: map[string]Policy{"c2": Redirect}}

// servedSet returns a served set of the names, "name=case" each.
func servedSet(t testing.TB, names ...string) *servedset.Set {
	t.Helper()
	set := servedset.NewSet()
	d := &servedset.Delta{To: 10,
		Sinkhole: &servedset.Sinkhole{NameServers: []servedset.NameServer{{Name: "ns1.sinkhole.example"}}},
		Cases:    []servedset.Case{{Name: "c1"}, {Name: "c2"}},
	}
	for _, n := range names {
		name, c, _ := strings.Cut(n, "=")
		d.Put = append(d.Put, servedset.Zone{Name: name, Case: c})
	}
	if err := set.Apply(d); err != nil {
		t.Fatal(err)
	}
	return set
}

// lines renders records as sorted zone-file lines.
func lines(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	slices.Sort(out)
	return out
}

func records(z *Zone) []dns.RR {
	var out []dns.RR
	z.Records(func(rr dns.RR) bool { out = append(out, rr); return true })
	return out
}

// TestFeedZone: the version made from a snapshot holds what Build makes of
// the same names and policies.
func TestFeedZone(t *testing.T) {
	set := servedSet(t, "a.example=c1", "b.example=c2", "c.example=c1")
	f, err := NewFeed(feedCfg, feedPolicies)
	if err != nil {
		t.Fatal(err)
	}
	z := f.Zone(set.Load())
	want, err := Build(feedCfg, 10, []Entry{{Name: "a.example"}, {Name: "b.example", Policy: Redirect}, {Name: "c.example"}})
	if err != nil {
		t.Fatal(err)
	}
	got := records(z)
	if !slices.Equal(lines(got), lines(want)) {
		t.Errorf("zone:\n%s\nwant:\n%s", strings.Join(lines(got), "\n"), strings.Join(lines(want), "\n"))
	}
	if z.Len() != len(want) || z.SOA().Serial != 10 || len(z.Apex()) != 2 || z.Name() != "rpz.test." || got[0] != z.SOA() {
		t.Errorf("Len %d (want %d), serial %d, apex %d, name %s", z.Len(), len(want), z.SOA().Serial, len(z.Apex()), z.Name())
	}
}

// TestFeedNext: a step of the served set is the records of the names it
// removed, put or moved to a case of another policy, and nothing else.
func TestFeedNext(t *testing.T) {
	set := servedSet(t, "a.example=c1", "b.example=c2", "c.example=c1", "d.example=c1")
	f, err := NewFeed(feedCfg, feedPolicies)
	if err != nil {
		t.Fatal(err)
	}
	var ups []servedset.Update
	set.Subscribe(func(u servedset.Update) { ups = append(ups, u) })
	step := func(d servedset.Delta) {
		t.Helper()
		d.From = set.Load().Serial()
		d.To = d.From + 1
		if err := set.Apply(&d); err != nil {
			t.Fatal(err)
		}
	}
	step(servedset.Delta{
		Remove: []string{"a.example"},
		Put:    []servedset.Zone{{Name: "new.example", Case: "c2"}, {Name: "C.Example", Case: "c2"}, {Name: "d.example", Case: "c1"}},
	})
	step(servedset.Delta{Cases: []servedset.Case{{Name: "c1", TXT: "amended"}}})
	step(servedset.Delta{Remove: []string{"b.example"}, Put: []servedset.Zone{{Name: "b.example", Case: "c2"}}})

	z, st := f.Next(ups[0])
	if z == nil || st == nil || z.SOA().Serial != 11 {
		t.Fatalf("first step: %v %v", z, st)
	}
	del, _ := Build(feedCfg, 1, []Entry{{Name: "a.example"}, {Name: "c.example"}})
	add, _ := Build(feedCfg, 1, []Entry{{Name: "new.example", Policy: Redirect}, {Name: "c.example", Policy: Redirect}})
	if got, want := lines(st.Del), lines(del[2:]); !slices.Equal(got, want) {
		t.Errorf("deleted:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := lines(st.Add), lines(add[2:]); !slices.Equal(got, want) {
		t.Errorf("added:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Applying the step to the version before gives the version after.
	noSOA := func(ls []string) []string {
		return slices.DeleteFunc(ls, func(l string) bool { return strings.Contains(l, " SOA ") })
	}
	applied := slices.DeleteFunc(noSOA(lines(records(f.Zone(ups[0].Old)))), func(l string) bool { return slices.Contains(lines(st.Del), l) })
	applied = append(applied, lines(st.Add)...)
	slices.Sort(applied)
	if after := noSOA(lines(records(z))); !slices.Equal(applied, after) {
		t.Errorf("the step does not lead from one version to the next:\n%s\n\nwant:\n%s", strings.Join(applied, "\n"), strings.Join(after, "\n"))
	}
	if z, st := f.Next(ups[1]); z != nil || st != nil {
		t.Errorf("a case's TXT changed the policy zone: %v", st)
	}
	if z, st := f.Next(ups[2]); z != nil || st != nil {
		t.Errorf("a name removed and put again in the same case changed the policy zone: %v", st)
	}
	if z, st := f.Next(servedset.Update{New: set.Load()}); z == nil || st != nil {
		t.Errorf("a new start: %v %v", z, st)
	}
}

func TestFeedRefuses(t *testing.T) {
	if _, err := NewFeed(Config{}, Policies{Cases: map[string]Policy{"c": Redirect}}); err == nil || !strings.Contains(err.Error(), "redirect without sinkhole addresses") {
		t.Errorf("a redirect without addresses: %v", err)
	}
	if _, err := NewFeed(Config{Zone: "a..b"}, Policies{}); err == nil {
		t.Error("a bad zone name accepted")
	}
	// A name whose triggers would pass 255 bytes is left out.
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + ".example"
	set := servedSet(t, "a.example=c1", long+"=c1")
	f, _ := NewFeed(feedCfg, feedPolicies)
	for _, rr := range records(f.Zone(set.Load())) {
		if strings.Contains(rr.Header().Name, "dddd") {
			t.Errorf("a name too long for the zone: %s", rr.Header().Name)
		}
	}
}

// BenchmarkFeedNext measures the step of the policy zone for one name
// released in a million-name served set.
func BenchmarkFeedNext(b *testing.B) {
	const n = 1_000_000
	set := servedset.NewSet()
	full := &servedset.Delta{To: 1, Sinkhole: &servedset.Sinkhole{NameServers: []servedset.NameServer{{Name: "ns1.sinkhole.example"}}},
		Cases: []servedset.Case{{Name: "c1"}, {Name: "c2"}}}
	for i := range n {
		full.Put = append(full.Put, servedset.Zone{Name: fmt.Sprintf("d%07dx.example", i), Case: "c1"})
	}
	if err := set.Apply(full); err != nil {
		b.Fatal(err)
	}
	f, err := NewFeed(feedCfg, feedPolicies)
	if err != nil {
		b.Fatal(err)
	}
	old := set.Load()
	next, err := old.Apply(&servedset.Delta{From: 1, To: 2, Remove: []string{"d0000007x.example"}})
	if err != nil {
		b.Fatal(err)
	}
	u := servedset.Update{Old: old, New: next, Delta: &servedset.Delta{From: 1, To: 2, Remove: []string{"d0000007x.example"}}}
	b.Run("names=1000000/change=1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if z, st := f.Next(u); z == nil || len(st.Del) != 2 {
				b.Fatal("no step")
			}
		}
	})
	// What an AXFR of the feed asks of it: every record, made anew.
	b.Run("names=1000000/records", func(b *testing.B) {
		b.ReportAllocs()
		z := f.Zone(next)
		for b.Loop() {
			n := 0
			z.Records(func(dns.RR) bool { n++; return true })
			if n != z.Len() {
				b.Fatalf("%d records, Len %d", n, z.Len())
			}
		}
	})
}
