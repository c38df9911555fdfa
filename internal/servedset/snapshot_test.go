package servedset

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"testing"
)

var testSinkhole = Sinkhole{
	NameServers: []NameServer{
		{Name: "NS1.Sinkhole.example.", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")}},
		{Name: "ns2.example.com", Addrs: []netip.Addr{netip.MustParseAddr("::ffff:192.0.2.54")}},
	},
	A:          []netip.Addr{netip.MustParseAddr("192.0.2.1")},
	AAAA:       []netip.Addr{netip.MustParseAddr("2001:db8::1")},
	TTL:        300,
	Hostmaster: "Abuse@Sinkhole.example",
}

// testFull is a full form of a few zones of three cases.
func testFull() *Delta {
	return &Delta{
		To:       100,
		Sinkhole: &testSinkhole,
		Cases: []Case{
			{Name: "waledac-2010", Family: "Waledac", TXT: "sinkholed by order of E.D. Va. 1:10-cv-00156"},
			{Name: "other", TXT: "other case"},
			{Name: "quiet"},
		},
		Put: []Zone{
			{Name: "example.com", Case: "waledac-2010"},
			{Name: "Seized.TEST.", Case: "waledac-2010"},
			{Name: "deep.example.com", Case: "other"},
			{Name: "notxt.test", Case: "quiet"},
		},
	}
}

func mustApply(t testing.TB, s *Snapshot, d *Delta) *Snapshot {
	t.Helper()
	n, err := s.Apply(d)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// contents renders a snapshot's zones as "name=case".
func contents(s *Snapshot) map[string]string {
	out := map[string]string{}
	for name, c := range s.All() {
		out[name] = c.Name
	}
	return out
}

func TestLookup(t *testing.T) {
	s := mustApply(t, Empty(), testFull())
	for _, tc := range []struct {
		name, zone, kase, family string
		start                    int
	}{
		{"example.com.", "example.com", "waledac-2010", "waledac", 0},
		{"example.com", "example.com", "waledac-2010", "waledac", 0},
		{"www.example.com.", "example.com", "waledac-2010", "waledac", 4},
		{"a.b.deep.example.com.", "deep.example.com", "other", "", 4},
		{"deep.example.com.", "deep.example.com", "other", "", 0},
		{"x.seized.test.", "seized.test", "waledac-2010", "waledac", 2},
		{"a\\.b.notxt.test.", "notxt.test", "quiet", "", 5},
		{"com.", "", "", "", 0},
		{"example.org.", "", "", "", 0},
		{"notexample.com.", "", "", "", 0},
		{"example\\.com.", "", "", "", 0},
		{".", "", "", "", 0},
		{"", "", "", "", 0},
	} {
		m, ok := s.Lookup([]byte(tc.name))
		if ok != (tc.zone != "") || m.Apex != tc.zone || (ok && (m.Start != tc.start || s.Case(m.Case).Name != tc.kase)) {
			t.Errorf("Lookup(%q) = %+v, %v; want %s from %d, case %s", tc.name, m, ok, tc.zone, tc.start, tc.kase)
		}
		z, c, f, ok := s.Zone(strings.ToUpper(tc.name))
		if z != tc.zone || c != tc.kase || f != tc.family || ok != (tc.zone != "") {
			t.Errorf("Zone(%q) = %q %q %q %v", strings.ToUpper(tc.name), z, c, f, ok)
		}
	}
	if _, _, _, ok := s.Zone(strings.Repeat("a.", 200) + "example.com"); ok {
		t.Error("a name longer than 253 bytes found a zone")
	}
	if c, ok := s.Has("Deep.Example.com."); !ok || c.Name != "other" {
		t.Errorf("Has(deep.example.com) = %v, %v", c, ok)
	}
	if _, ok := s.Has("www.example.com"); ok {
		t.Error("Has(www.example.com): a name below a zone is not a zone")
	}
	if got := allocs(func() { s.Lookup([]byte("bot-1234.deep.example.com.")) }); got != 0 {
		t.Errorf("Lookup allocates %v times", got)
	}
	if got := allocs(func() { s.Zone("Bot-1234.Deep.Example.com") }); got != 0 {
		t.Errorf("Zone allocates %v times", got)
	}
}

func allocs(fn func()) float64 { return testing.AllocsPerRun(100, fn) }

func TestApply(t *testing.T) {
	s1 := mustApply(t, Empty(), testFull())
	if s1.Len() != 4 || s1.Serial() != 100 || len(s1.Cases()) != 3 {
		t.Fatalf("full form: %d zones, serial %d, %d cases", s1.Len(), s1.Serial(), len(s1.Cases()))
	}
	sh := s1.Sinkhole()
	if sh.NameServers[0].Name != "ns1.sinkhole.example" || sh.NameServers[1].Addrs[0] != netip.MustParseAddr("192.0.2.54") || sh.Hostmaster != "abuse@sinkhole.example" {
		t.Errorf("sinkhole not normalised: %+v", sh)
	}
	before := contents(s1)
	s2 := mustApply(t, s1, &Delta{From: 100, To: 101,
		Cases:  []Case{{Name: "new", Family: "dga"}, {Name: "other", TXT: "other case, amended"}},
		Remove: []string{"Example.com."},
		Put:    []Zone{{Name: "new.example", Case: "new"}, {Name: "notxt.test", Case: "other"}},
	})
	want := map[string]string{"seized.test": "waledac-2010", "deep.example.com": "other", "notxt.test": "other", "new.example": "new"}
	if got := contents(s2); !maps.Equal(got, want) {
		t.Errorf("after the delta: %v, want %v", got, want)
	}
	if got := contents(s1); !maps.Equal(got, before) {
		t.Errorf("the old snapshot changed: %v", got)
	}
	if c, _ := s1.Has("deep.example.com"); c.TXT != "other case" {
		t.Errorf("the old snapshot's case changed: %+v", c)
	}
	if c, _ := s2.Has("deep.example.com"); c.TXT != "other case, amended" {
		t.Errorf("the case change did not reach its zones: %+v", c)
	}
	if _, ok := s2.Lookup([]byte("www.example.com.")); ok {
		t.Error("a removed zone is still found")
	}
	if _, ok := s2.Lookup([]byte("www.deep.example.com.")); !ok {
		t.Error("a zone below a removed one is lost")
	}
	for i, n := range []int{1, 2, 0, 1} { // waledac-2010, other, quiet, new
		if s2.CaseZones(uint32(i)) != n {
			t.Errorf("case %s has %d zones, want %d", s2.Cases()[i].Name, s2.CaseZones(uint32(i)), n)
		}
	}
	if s1.maxLabels != 3 || s2.maxLabels != 3 {
		t.Errorf("max labels %d, %d", s1.maxLabels, s2.maxLabels)
	}
	s3 := mustApply(t, s2, &Delta{From: 101, To: 102, Remove: []string{"deep.example.com"}})
	if s3.maxLabels != 2 {
		t.Errorf("max labels %d after the only 3-label zone left", s3.maxLabels)
	}
	// A serial bump alone is a step too.
	if s4 := mustApply(t, s3, &Delta{From: 102, To: 103}); s4.Len() != s3.Len() || s4.Serial() != 103 {
		t.Error("an empty delta")
	}
}

func TestApplyRefuses(t *testing.T) {
	s := mustApply(t, Empty(), testFull())
	for _, tc := range []struct {
		d    Delta
		want string
	}{
		{Delta{From: 99, To: 101}, "applied to serial 100"},
		{Delta{From: 100, To: 100}, "must follow"},
		{Delta{From: 100, To: 100 + 1<<31}, "must follow"},
		{Delta{From: 100, To: 101, Remove: []string{"nothere.example"}}, "removal 1 nothere.example is not served"},
		{Delta{From: 100, To: 101, Remove: []string{"bad name.example"}}, "not a host name"},
		{Delta{From: 100, To: 101, Put: []Zone{{Name: "x.example", Case: "nocase"}}}, `case "nocase" is not in the served set`},
		{Delta{From: 100, To: 101, Put: []Zone{{Name: "ex*ample.test", Case: "other"}}}, "put 1"},
		{Delta{From: 100, To: 101, Put: []Zone{{Name: strings.Repeat("a", 64) + ".com", Case: "other"}}}, "not a host name"},
		{Delta{From: 100, To: 101, Cases: []Case{{Name: "Bad Case"}}}, "case 1: name"},
		{Delta{From: 100, To: 101, Cases: []Case{{Name: "c", Family: "bad family"}}}, "family"},
		{Delta{From: 100, To: 101, Cases: []Case{{Name: "c", TXT: strings.Repeat("x", 3000)}}}, "TXT"},
		{Delta{From: 100, To: 101, Sinkhole: &Sinkhole{}}, "without a name server"},
		{Delta{From: 100, To: 101, Sinkhole: &Sinkhole{NameServers: []NameServer{{Name: "ns..x"}}}}, "name server 1"},
		{Delta{From: 100, To: 101, Sinkhole: &Sinkhole{NameServers: testSinkhole.NameServers, A: []netip.Addr{netip.MustParseAddr("::1")}}}, "not an IPv4"},
		{Delta{From: 100, To: 101, Sinkhole: &Sinkhole{NameServers: testSinkhole.NameServers, AAAA: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}}, "not an IPv6"},
		{Delta{From: 100, To: 101, Sinkhole: &Sinkhole{NameServers: testSinkhole.NameServers, Hostmaster: "a b@example"}}, "hostmaster"},
		{Delta{From: 100, To: 101, Sinkhole: &Sinkhole{NameServers: testSinkhole.NameServers, TTL: 1 << 31}}, "TTLs"},
	} {
		_, err := s.Apply(&tc.d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Apply(%+v) = %v, want an error with %q", tc.d, err, tc.want)
		}
	}
	_, err := s.Apply(&Delta{From: 7, To: 8})
	if !errors.Is(err, ErrSerial) {
		t.Errorf("a delta for another serial: %v, want ErrSerial", err)
	}
	if s.Len() != 4 || s.Serial() != 100 {
		t.Error("a refused delta changed the snapshot")
	}
}

func TestNextSerial(t *testing.T) {
	for _, tc := range []struct {
		prev uint32
		now  int64
		want uint32
	}{{0, 1_700_000_000, 1_700_000_000}, {1_700_000_000, 1_700_000_000, 1_700_000_001}, {1_700_000_005, 1_700_000_001, 1_700_000_006}, {0xFFFFFFFF, 5, 5}, {0xFFFFFFFF, 0, 1}} {
		if got := NextSerial(tc.prev, tc.now); got != tc.want {
			t.Errorf("NextSerial(%d, %d) = %d, want %d", tc.prev, tc.now, got, tc.want)
		}
	}
}

// bigFull is a full form of n zones of eight cases.
func bigFull(n int) *Delta {
	d := &Delta{To: 1, Sinkhole: &testSinkhole}
	for i := range 8 {
		d.Cases = append(d.Cases, Case{Name: fmt.Sprintf("case-%d", i), TXT: "sinkholed by order of the court"})
	}
	d.Put = make([]Zone, n)
	for i := range d.Put {
		d.Put[i] = Zone{Name: fmt.Sprintf("d%07dx.example", i), Case: d.Cases[i%8].Name}
	}
	return d
}

func TestLargeDelta(t *testing.T) {
	s := mustApply(t, Empty(), bigFull(20_000))
	if s.Len() != 20_000 {
		t.Fatalf("%d zones", s.Len())
	}
	for _, i := range []int{0, 9_999, 19_999} {
		name := fmt.Sprintf("www.d%07dx.example.", i)
		if m, ok := s.Lookup([]byte(name)); !ok || s.Case(m.Case).Name != fmt.Sprintf("case-%d", i%8) {
			t.Errorf("Lookup(%s) = %+v %v", name, m, ok)
		}
	}
	for i := range 8 {
		if s.CaseZones(uint32(i)) != 2500 {
			t.Errorf("case %d: %d zones", i, s.CaseZones(uint32(i)))
		}
	}
}
