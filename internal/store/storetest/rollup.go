package storetest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// rollupWorld makes events of infected hosts (and some scanners) over
// days, with hosts that move network mid-day and IPv6 hosts.
type rollupWorld struct {
	rng    *rand.Rand
	events []event.Event
}

var rollupCities = []struct {
	cc, city string
	lat, lon float64
	asn      uint32
}{
	{"DE", "Berlin", 52.5, 13.4, 64500}, {"DE", "Munich", 48.1, 11.6, 64501}, {"FR", "Paris", 48.9, 2.35, 64502},
	{"US", "Dallas", 32.8, -96.8, 64503}, {"US", "", 0, 0, 64504}, {"", "", 0, 0, 0},
}

func (w *rollupWorld) add(t time.Time, n int) []event.Event {
	var out []event.Event
	for range n {
		h := w.rng.IntN(300)
		var ip netip.Addr
		if h%17 == 0 {
			ip = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", h))
		} else {
			ip = netip.AddrFrom4([4]byte{10, 0, byte(h / 256), byte(h)})
		}
		c := rollupCities[h%len(rollupCities)]
		if w.rng.IntN(50) == 0 { // the enrichment changed: another network
			c = rollupCities[(h+1)%len(rollupCities)]
		}
		e := event.Event{
			Time: t.Add(time.Duration(w.rng.Int64N(int64(59 * time.Minute)))), SrcIP: ip, Protocol: event.ProtoHTTP,
			ASN: c.asn, ASName: fmt.Sprintf("AS-%d", c.asn), CountryCode: c.cc, City: c.city, Latitude: c.lat, Longitude: c.lon,
		}
		switch h % 4 {
		case 0:
			e.Family = "waledac"
			e.Case, e.Zone = "wal", fmt.Sprintf("z%d.example", h%5)
		case 1:
			e.Family = "conficker"
		case 2:
			e.Case, e.Zone = "dga", "dga.example" // family unknown
		case 3:
			if h%3 == 0 {
				e.Family = "rustock"
			} // else a scanner: no family, no case
		}
		out = append(out, e)
	}
	w.events = append(w.events, out...)
	return out
}

func infectedOf(e *event.Event) (string, bool) {
	switch {
	case e.Family != "":
		return e.Family, true
	case e.Case != "":
		return eventstore.UnknownFamily, true
	}
	return "", false
}

// want counts the distinct infected addresses of [from, to) by key.
func (w *rollupWorld) want(from, to time.Time, key func(e *event.Event, fam string) string) map[string]int64 {
	sets := map[string]map[netip.Addr]bool{}
	for i := range w.events {
		e := &w.events[i]
		fam, ok := infectedOf(e)
		if !ok || e.Time.Before(from) || !e.Time.Before(to) {
			continue
		}
		k := key(e, fam)
		if sets[k] == nil {
			sets[k] = map[netip.Addr]bool{}
		}
		sets[k][e.SrcIP] = true
	}
	out := map[string]int64{}
	for k, s := range sets {
		out[k] = int64(len(s))
	}
	return out
}

func testRollup(t *testing.T, sub *subject) {
	ctx := t.Context()
	s, r := sub.Engine, sub.rollup
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := day0.AddDate(0, 0, 2).Add(12 * time.Hour)
	sub.clock.Set(now)
	w := &rollupWorld{rng: rand.New(rand.NewPCG(1, 2))}
	// Three days, hour by hour up to noon of the third.
	for h := day0; h.Before(now); h = h.Add(time.Hour) {
		if err := s.Append(ctx, w.add(h, 40)); err != nil {
			t.Fatal(err)
		}
	}
	// An old day out of the window.
	if err := s.Append(ctx, w.add(day0.AddDate(0, 0, -10), 20)); err != nil {
		t.Fatal(err)
	}

	check := func(step string) {
		t.Helper()
		for _, span := range []struct{ from, to time.Time }{
			{day0, day0.AddDate(0, 0, 3)}, {day0.AddDate(0, 0, 2), day0.AddDate(0, 0, 3)}, {day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 2)},
		} {
			for _, dims := range [][]eventstore.Dimension{nil, {eventstore.DimFamily}, {eventstore.DimCountry}, {eventstore.DimASN}, {eventstore.DimDay, eventstore.DimFamily, eventstore.DimCountry}} {
				rows, err := r.Hosts(ctx, eventstore.HostQuery{From: span.from, To: span.to, GroupBy: dims})
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]int64{}
				for _, row := range rows {
					if row.IPs > 0 {
						got[fmt.Sprintf("%s/%s/%d/%s", row.Day.Format(time.DateOnly), row.Family, row.ASN, row.Country)] = row.IPs
					}
				}
				want := w.want(span.from, span.to, func(e *event.Event, fam string) string {
					var k [4]string
					k[0], k[2] = "0001-01-01", "0"
					for _, d := range dims {
						switch d {
						case eventstore.DimDay:
							k[0] = e.Time.UTC().Format(time.DateOnly)
						case eventstore.DimFamily:
							k[1] = fam
						case eventstore.DimASN:
							k[2] = fmt.Sprint(e.ASN)
						case eventstore.DimCountry:
							k[3] = e.CountryCode
						}
					}
					return fmt.Sprintf("%s/%s/%s/%s", k[0], k[1], k[2], k[3])
				})
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %s..%s by %v:\n got %v\nwant %v", step, span.from.Format(time.DateOnly), span.to.Format(time.DateOnly), dims, got, want)
				}
			}
			// The map: cities of the events, and the rollup's equal to them.
			wantCities := w.want(span.from, span.to, func(e *event.Event, _ string) string {
				return fmt.Sprintf("%s/%s/%g/%g", e.CountryCode, e.City, e.Latitude, e.Longitude)
			})
			for k := range wantCities {
				if strings.Contains(k, "//") { // no city
					delete(wantCities, k)
				}
			}
			for _, q := range []eventstore.CityQuery{
				{From: span.from, To: span.to},
				{From: span.from, To: span.to, Family: eventstore.UnknownFamily, Country: "DE"},
				{From: span.from, To: span.to, Family: "waledac", Limit: 2},
			} {
				fromEvents, err := s.HostsPerCity(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				fromRollup, err := r.Cities(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(fromRollup, fromEvents) {
					t.Errorf("%s: cities %+v: rollup %v, events %v", step, q, fromRollup, fromEvents)
				}
				if q.Family != "" {
					continue
				}
				got := map[string]int64{}
				for i, c := range fromEvents {
					got[fmt.Sprintf("%s/%s/%g/%g", c.Country, c.City, c.Latitude, c.Longitude)] = c.IPs
					if i > 0 && c.IPs > fromEvents[i-1].IPs {
						t.Errorf("%s: cities not most first: %v", step, fromEvents)
					}
				}
				if !reflect.DeepEqual(got, wantCities) {
					t.Errorf("%s: cities %s..%s:\n got %v\nwant %v", step, span.from.Format(time.DateOnly), span.to.Format(time.DateOnly), got, wantCities)
				}
			}
		}
		families, err := r.Families(ctx)
		if want := []string{"conficker", "rustock", eventstore.UnknownFamily, "waledac"}; err != nil || !slices.Equal(families, want) {
			t.Errorf("%s: families %q (%v), want %q", step, families, err, want)
		}
		// Today, 2 and 3 days per family.
		spans, err := r.Spans(ctx, now, []int{1, 2, 3}, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, sc := range spans {
			for i, n := range []int{1, 2, 3} {
				from := day0.AddDate(0, 0, 3-n)
				want := w.want(from, day0.AddDate(0, 0, 3), func(e *event.Event, fam string) string {
					if sc.Family == "" {
						return ""
					}
					return fam
				})[sc.Family]
				if sc.IPs[i] != want {
					t.Errorf("%s: spans: family %q last %d days: %d hosts, want %d", step, sc.Family, n, sc.IPs[i], want)
				}
			}
		}
		if len(spans) != 5 || spans[0].Family != "" {
			t.Errorf("%s: spans: %+v, want the total and 4 families", step, spans)
		}
		// One family: its row and the total of it alone.
		wal := w.want(day0.AddDate(0, 0, 2), day0.AddDate(0, 0, 3), func(_ *event.Event, fam string) string { return fam })["waledac"]
		spans, err = r.Spans(ctx, now, []int{1}, "waledac")
		if want := []eventstore.SpanCount{{Family: "", IPs: []int64{wal}}, {Family: "waledac", IPs: []int64{wal}}}; err != nil || !reflect.DeepEqual(spans, want) {
			t.Errorf("%s: spans of waledac: %+v (%v), want %+v", step, spans, err, want)
		}
		// Callbacks per hour: the infected events.
		hours, err := r.Hours(ctx, eventstore.HourQuery{From: day0})
		if err != nil {
			t.Fatal(err)
		}
		wantHours := map[time.Time]int64{}
		for i := range w.events {
			if _, ok := infectedOf(&w.events[i]); ok && !w.events[i].Time.Before(day0) {
				wantHours[w.events[i].Time.Truncate(time.Hour)]++
			}
		}
		gotHours := map[time.Time]int64{}
		for _, h := range hours {
			gotHours[h.Hour] = h.Events
		}
		if !reflect.DeepEqual(gotHours, wantHours) {
			t.Errorf("%s: hours: got %v, want %v", step, gotHours, wantHours)
		}
	}

	// refresh refreshes the rollup at the clock's time and checks that it
	// says whether it changed (the dashboard tells its pages then) and up
	// to when it took in events.
	refresh := func(step string, full, changed bool) {
		t.Helper()
		sub.clock.Set(now)
		st, err := r.Refresh(ctx, full)
		if err != nil {
			t.Fatalf("%s: refresh: %v", step, err)
		}
		if st.Changed() != changed {
			t.Errorf("%s: refresh %+v: changed %v, want %v", step, st, st.Changed(), changed)
		}
		if asOf := r.AsOf(); asOf.After(now) || asOf.Before(now.Add(-time.Minute)) {
			t.Errorf("%s: as of %s, want within the minute before %s", step, asOf, now)
		}
	}

	if r.Days() < 5 {
		t.Fatalf("the rollup keeps %d days, want at least 5", r.Days())
	}
	refresh("built", true, true)
	check("built")
	refresh("without new events", false, false)

	// The live day grows at its end, several times.
	for range 3 {
		now = now.Add(time.Hour)
		if err := s.Append(ctx, w.add(now.Add(-time.Hour), 30)); err != nil {
			t.Fatal(err)
		}
		refresh("new events", false, true)
	}
	check("new events")

	// Late events in the middle of yesterday.
	if err := s.Append(ctx, w.add(day0.AddDate(0, 0, 1).Add(3*time.Hour), 5)); err != nil {
		t.Fatal(err)
	}
	refresh("late events", false, true)
	check("late events")

	// Retention: the first day goes.
	if _, err := s.DeleteBefore(ctx, day0.AddDate(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	w.events = slices.DeleteFunc(w.events, func(e event.Event) bool { return e.Time.Before(day0.AddDate(0, 0, 1)) })
	refresh("retention", true, true)
	check("retention")
	days, err := r.RollupDays(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []time.Time{day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 2)}; !reflect.DeepEqual(days, want) {
		t.Errorf("days %v, want %v", days, want)
	}

	// Zones: the newest event of each and their number.
	zones, err := r.Zones(ctx, []string{"z0.example", "dga.example", "none.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range []string{"z0.example", "dga.example"} {
		var last time.Time
		var n int64
		for _, e := range w.events {
			if e.Zone == z {
				n++
				if e.Time.After(last) {
					last = e.Time
				}
			}
		}
		if got := zones[z]; !got.Last.Equal(last) || got.Queries != n {
			t.Errorf("zone %s: %+v, want last %s, %d queries", z, got, last, n)
		}
	}
	if _, ok := zones["none.example"]; ok {
		t.Errorf("zone without events reported")
	}

	// The host list: addresses, IPv6 included.
	hosts, err := r.HostList(ctx, eventstore.HostListQuery{From: day0, To: now, ASN: 64500})
	if err != nil {
		t.Fatal(err)
	}
	wantHosts := w.want(day0.AddDate(0, 0, 1), now, func(e *event.Event, fam string) string {
		if e.ASN != 64500 {
			return ""
		}
		return e.SrcIP.String() + "/" + fam
	})
	delete(wantHosts, "")
	gotHosts := map[string]int64{}
	for _, h := range hosts {
		gotHosts[h.IP.String()+"/"+h.Family] = 1
		if h.ASN != 64500 || h.Events <= 0 || h.LastSeen.Before(h.FirstSeen) {
			t.Errorf("host %+v", h)
		}
	}
	if len(gotHosts) != len(wantHosts) {
		t.Errorf("host list: %d hosts, want %d", len(gotHosts), len(wantHosts))
	}
	for k := range wantHosts {
		if gotHosts[k] == 0 {
			t.Errorf("host list lacks %s", k)
		}
	}

	// The trend of a network equals DailyHosts over the events.
	trend, err := r.DailyByASN(ctx, day0, now, []uint32{64501})
	if err != nil {
		t.Fatal(err)
	}
	daily, err := s.DailyHosts(ctx, eventstore.DailyHostQuery{From: day0, To: day0.AddDate(0, 0, 3), Filter: eventstore.HostFilter{ASNs: []uint32{64501}}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(trend[64501], daily) {
		t.Errorf("trend of AS64501: rollup %v, events %v", trend[64501], daily)
	}
}

// testRollupEmpty: the rollup of no events, as the dashboard of a new
// installation reads it.
func testRollupEmpty(t *testing.T, sub *subject) {
	ctx := t.Context()
	r := sub.rollup
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sub.clock.Set(now)
	if asOf := r.AsOf(); !asOf.IsZero() {
		t.Errorf("as of %s before the first refresh, want zero", asOf)
	}
	if st, err := r.Refresh(ctx, true); err != nil || st.Changed() {
		t.Errorf("refresh: %+v, %v; want no change", st, err)
	}
	day := now.Truncate(24 * time.Hour)
	hosts, err := r.Hosts(ctx, eventstore.HostQuery{From: day})
	if want := []eventstore.HostCount{{}}; err != nil || !reflect.DeepEqual(hosts, want) {
		t.Errorf("hosts: %+v (%v), want %+v", hosts, err, want)
	}
	if hosts, err := r.Hosts(ctx, eventstore.HostQuery{From: day, GroupBy: []eventstore.Dimension{eventstore.DimCountry}}); err != nil || len(hosts) != 0 {
		t.Errorf("hosts by country: %+v (%v), want none", hosts, err)
	}
	spans, err := r.Spans(ctx, now, []int{1, 7}, "")
	if want := []eventstore.SpanCount{{IPs: []int64{0, 0}}}; err != nil || !reflect.DeepEqual(spans, want) {
		t.Errorf("spans: %+v (%v), want %+v", spans, err, want)
	}
	if _, err := r.Spans(ctx, now, []int{0}, ""); err == nil {
		t.Error("a span of 0 days: no error")
	}
	if hours, err := r.Hours(ctx, eventstore.HourQuery{From: day}); err != nil || len(hours) != 0 {
		t.Errorf("hours: %+v (%v), want none", hours, err)
	}
	if cities, err := r.Cities(ctx, eventstore.CityQuery{From: day}); err != nil || len(cities) != 0 {
		t.Errorf("cities: %+v (%v), want none", cities, err)
	}
	if days, err := r.RollupDays(ctx); err != nil || len(days) != 0 {
		t.Errorf("days: %v (%v), want none", days, err)
	}
	if fams, err := r.Families(ctx); err != nil || len(fams) != 0 {
		t.Errorf("families: %q (%v), want none", fams, err)
	}
	if trend, err := r.DailyByASN(ctx, day, now, []uint32{64500}); err != nil || len(trend) != 0 {
		t.Errorf("daily by network: %v (%v), want none", trend, err)
	}
	if zones, err := r.Zones(ctx, []string{"bad.example"}); err != nil || len(zones) != 0 {
		t.Errorf("zones: %v (%v), want none", zones, err)
	}
	if list, err := r.HostList(ctx, eventstore.HostListQuery{From: day}); err != nil || len(list) != 0 {
		t.Errorf("host list: %v (%v), want none", list, err)
	}
}
