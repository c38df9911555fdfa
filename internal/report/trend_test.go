package report

import (
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/scope"
	"github.com/takedown-project/takedown/internal/store"
)

func TestSeriesMeasure(t *testing.T) {
	decay := make([]int64, 31)
	for i := range decay {
		decay[i] = int64(math.Round(1000 * math.Pow(0.5, float64(i)/10)))
	}
	for _, tc := range []struct {
		name                     string
		hosts                    []int64
		rem7, rem30              float64
		halved                   int
		halfLife, halfLifeWithin float64
	}{
		{"halving every 10 days", decay, 500.0 / 1000 * math.Pow(0.5, 0.7) / 0.5, 125.0 / 1000, 10, 10, 0.01},
		{"steps", []int64{100, 90, 80, 70, 60, 55, 52, 40}, 0.4, -1, 7, 0, 0},
		{"not halved yet", []int64{100, 95, 90, 85}, -1, -1, -1, 0, 0},
		{"rising", []int64{10, 20, 40}, -1, -1, -1, -1, 0},
		{"nothing on the first day", []int64{0, 10, 5}, -1, -1, -1, 1, 1e-9},
		{"one day", []int64{7}, -1, -1, -1, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Series{Hosts: tc.hosts}
			s.measure()
			if math.Abs(s.Remaining7-tc.rem7) > 0.005 || math.Abs(s.Remaining30-tc.rem30) > 1e-9 || s.HalvedAfter != tc.halved {
				t.Errorf("remaining %.4f %.4f, halved after %d; want %.4f %.4f %d", s.Remaining7, s.Remaining30, s.HalvedAfter, tc.rem7, tc.rem30, tc.halved)
			}
			switch {
			case tc.halfLifeWithin > 0 && math.Abs(s.HalfLife-tc.halfLife) > tc.halfLifeWithin:
				t.Errorf("half life %.4f, want %.4f", s.HalfLife, tc.halfLife)
			case tc.halfLife == -1 && s.HalfLife != -1:
				t.Errorf("half life %.4f, want none", s.HalfLife)
			case tc.halfLife == 0 && s.HalfLife <= 0:
				t.Errorf("half life %.4f, want an estimate", s.HalfLife)
			}
		})
	}
}

// TestTrend: the hosts of a scope (an ASN and a country) per day over the
// store, the scope counted once where the two overlap.
func TestTrend(t *testing.T) {
	db, err := dbfile.Open(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := store.Open(t.Context(), store.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Day d: 8>>d hosts in AS64500 (DE) and 2 hosts in AS64501 (FR).
	var evs []event.Event
	for d := range 4 {
		day := fxDay.AddDate(0, 0, d)
		for h := range 8 >> d {
			evs = append(evs, event.Event{Time: day.Add(time.Hour), Protocol: event.ProtoHTTP, Family: "waledac",
				SrcIP: netip.AddrFrom4([4]byte{10, 0, 0, byte(h)}), ASN: 64500, ASName: "ALPHA", CountryCode: "DE"})
		}
		for h := range 2 {
			evs = append(evs, event.Event{Time: day.Add(2 * time.Hour), Protocol: event.ProtoHTTP, Family: "waledac",
				SrcIP: netip.AddrFrom4([4]byte{10, 1, 0, byte(h)}), ASN: 64501, ASName: "BETA", CountryCode: "FR"})
		}
	}
	// A host in AS64500 and in France counts once for the scope.
	evs = append(evs, event.Event{Time: fxDay.Add(3 * time.Hour), Protocol: event.ProtoHTTP, Family: "waledac",
		SrcIP: netip.MustParseAddr("10.0.0.0"), ASN: 64500, ASName: "ALPHA", CountryCode: "FR"})
	// Outside the scope, and a scanner.
	evs = append(evs,
		event.Event{Time: fxDay.Add(time.Hour), Protocol: event.ProtoHTTP, Family: "waledac", SrcIP: netip.MustParseAddr("10.9.0.1"), ASN: 64999, CountryCode: "US"},
		event.Event{Time: fxDay.Add(time.Hour), Protocol: event.ProtoTCP, SrcIP: netip.MustParseAddr("10.0.0.99"), ASN: 64500, CountryCode: "DE"})
	if err := s.Append(t.Context(), evs); err != nil {
		t.Fatal(err)
	}

	sc := scope.Scope{ASNs: []uint32{64500}, Countries: []string{"FR"}}
	rem, err := Trend(t.Context(), s, sc, fxDay, fxDay.AddDate(0, 0, 5).Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !rem.From.Equal(fxDay) || !rem.To.Equal(fxDay.AddDate(0, 0, 5)) {
		t.Errorf("period %s–%s", rem.From, rem.To)
	}
	got := fmt.Sprint(rem.Scope.Hosts)
	for _, a := range rem.ByASN {
		got += fmt.Sprintf(" AS%d %s %v", a.ASN, a.ASName, a.Hosts)
	}
	if want := "[10 6 4 3 0] AS64500 ALPHA [8 4 2 1 0] AS64501 BETA [2 2 2 2 0]"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// A day without hosts is a day with at most half of the first's.
	if rem.Scope.HalvedAfter != 2 || rem.ByASN[0].HalvedAfter != 1 || rem.ByASN[1].HalvedAfter != 4 || rem.ByASN[1].HalfLife != -1 {
		t.Errorf("halved after %d, %d, %d; half life of AS64501 %v", rem.Scope.HalvedAfter, rem.ByASN[0].HalvedAfter, rem.ByASN[1].HalvedAfter, rem.ByASN[1].HalfLife)
	}
	if math.Abs(rem.ByASN[0].HalfLife-1) > 1e-9 {
		t.Errorf("AS64500 halves every %v days, want 1", rem.ByASN[0].HalfLife)
	}

	// An empty scope has no hosts and asks nothing.
	empty, err := Trend(t.Context(), nil, scope.Scope{}, fxDay, fxDay.AddDate(0, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(empty.Scope.Hosts, []int64{0, 0}) || empty.ByASN != nil {
		t.Errorf("empty scope: %+v", empty)
	}
	if _, err := Trend(t.Context(), s, sc, fxDay, fxDay); err == nil {
		t.Error("empty period accepted")
	}
}
