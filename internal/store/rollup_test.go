package store_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/store"
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
			Time: t.Add(time.Duration(w.rng.Int64N(int64(time.Hour)))), SrcIP: ip, Protocol: event.ProtoHTTP,
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
		return store.UnknownFamily, true
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

func TestRollup(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, "")
	defer db.Close()
	s := openStore(t, db)
	defer s.Close()
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := day0.AddDate(0, 0, 2).Add(12 * time.Hour)
	r, err := store.OpenRollup(ctx, store.RollupConfig{DB: db, Days: 5, Lag: time.Microsecond, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
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
			for _, dims := range [][]store.Dimension{nil, {store.DimFamily}, {store.DimCountry}, {store.DimASN}, {store.DimDay, store.DimFamily, store.DimCountry}} {
				rows, err := r.Hosts(ctx, store.HostQuery{From: span.from, To: span.to, GroupBy: dims})
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
						case store.DimDay:
							k[0] = e.Time.UTC().Format(time.DateOnly)
						case store.DimFamily:
							k[1] = fam
						case store.DimASN:
							k[2] = fmt.Sprint(e.ASN)
						case store.DimCountry:
							k[3] = e.CountryCode
						}
					}
					return fmt.Sprintf("%s/%s/%s/%s", k[0], k[1], k[2], k[3])
				})
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %s..%s by %v:\n got %v\nwant %v", step, span.from.Format(time.DateOnly), span.to.Format(time.DateOnly), dims, got, want)
				}
			}
			// Cities equal HostsPerCity over the events.
			fromRollup, err := r.Cities(ctx, store.CityQuery{From: span.from, To: span.to})
			if err != nil {
				t.Fatal(err)
			}
			fromEvents, err := s.HostsPerCity(ctx, store.CityQuery{From: span.from, To: span.to})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromRollup, fromEvents) {
				t.Errorf("%s: cities: rollup %v, events %v", step, fromRollup, fromEvents)
			}
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
		// Callbacks per hour: the infected events.
		hours, err := r.Hours(ctx, store.HourQuery{From: day0})
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

	st, err := r.Refresh(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rebuilt != 3 || st.Added != 0 {
		t.Errorf("first refresh: %+v, want 3 days rebuilt", st)
	}
	check("built")
	if st, err := r.Refresh(ctx, false); err != nil || st.Changed() {
		t.Errorf("refresh without new events: %+v, %v", st, err)
	}

	// The live day grows at its end: an increment, several times.
	for i := range 3 {
		now = now.Add(time.Hour)
		if err := s.Append(ctx, w.add(now.Add(-time.Hour), 30)); err != nil {
			t.Fatal(err)
		}
		st, err := r.Refresh(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Added != 1 || st.Rebuilt != 0 {
			t.Errorf("increment %d: %+v, want one day added", i, st)
		}
	}
	check("increments")

	// A late event in the middle of yesterday: rebuilt.
	if err := s.Append(ctx, w.add(day0.AddDate(0, 0, 1).Add(3*time.Hour), 5)); err != nil {
		t.Fatal(err)
	}
	if st, err := r.Refresh(ctx, false); err != nil || st.Rebuilt != 1 {
		t.Errorf("late events: %+v, %v; want one day rebuilt", st, err)
	}
	check("late events")

	// Retention: the first day goes.
	if _, err := s.DeleteBefore(ctx, day0.AddDate(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	w.events = slices.DeleteFunc(w.events, func(e event.Event) bool { return e.Time.Before(day0.AddDate(0, 0, 1)) })
	if st, err := r.Refresh(ctx, true); err != nil || st.Dropped != 1 {
		t.Errorf("retention: %+v, %v; want one day dropped", st, err)
	}
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
	hosts, err := r.HostList(ctx, store.HostListQuery{From: day0, To: now, ASN: 64500})
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
	daily, err := s.DailyHosts(ctx, store.DailyHostQuery{From: day0, To: day0.AddDate(0, 0, 3), Filter: store.HostFilter{ASNs: []uint32{64501}}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(trend[64501], daily) {
		t.Errorf("trend of AS64501: rollup %v, events %v", trend[64501], daily)
	}
}

// TestRollupCompacts: a day rebuilds after MaxChunks increments.
func TestRollupCompacts(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, "")
	defer db.Close()
	s := openStore(t, db)
	defer s.Close()
	now := time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)
	r, err := store.OpenRollup(ctx, store.RollupConfig{DB: db, MaxChunks: 2, Lag: time.Microsecond, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	w := &rollupWorld{rng: rand.New(rand.NewPCG(3, 4))}
	var kinds []string
	for range 4 {
		if err := s.Append(ctx, w.add(now, 10)); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
		st, err := r.Refresh(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, fmt.Sprintf("a%d r%d", st.Added, st.Rebuilt))
	}
	if want := []string{"a0 r1", "a1 r0", "a0 r1", "a1 r0"}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("refreshes %v, want %v", kinds, want)
	}
}

// TestRollupLag: the newest events wait for Lag, so that one recorded a
// little out of order is an increment, not a late event.
func TestRollupLag(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, "")
	defer db.Close()
	s := openStore(t, db)
	defer s.Close()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	r, err := store.OpenRollup(ctx, store.RollupConfig{DB: db, Lag: 10 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(at time.Duration, host byte) event.Event {
		return event.Event{Time: t0.Add(at), SrcIP: netip.AddrFrom4([4]byte{10, 0, 0, host}), Family: "waledac"}
	}
	hosts := func() int64 {
		rows, err := r.Hosts(ctx, store.HostQuery{From: t0.Truncate(24 * time.Hour)})
		if err != nil || len(rows) != 1 {
			t.Fatalf("hosts: %v %v", rows, err)
		}
		return rows[0].IPs
	}
	if err := s.Append(ctx, []event.Event{ev(-20*time.Second, 1), ev(-5*time.Second, 2)}); err != nil {
		t.Fatal(err)
	}
	if st, err := r.Refresh(ctx, false); err != nil || st.Rebuilt != 1 || hosts() != 1 || !r.AsOf().Equal(t0.Add(-10*time.Second)) {
		t.Fatalf("first refresh: %+v %v, %d hosts as of %s; want the host of 20 s ago only, as of 10 s ago", st, err, hosts(), r.AsOf())
	}
	// Recorded late, but within the lag.
	if err := s.Append(ctx, []event.Event{ev(-12*time.Second, 3)}); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(10 * time.Second)
	if st, err := r.Refresh(ctx, false); err != nil || st.Added != 1 || st.Rebuilt != 0 || hosts() != 3 {
		t.Fatalf("second refresh: %+v %v, %d hosts; want an increment to 3 hosts", st, err, hosts())
	}
}
