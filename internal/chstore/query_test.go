package chstore_test

import (
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// TestTimesOutsideDates: events before 1970 and after the last day a Date
// holds (their day column is clamped) come back to the nanosecond, are
// counted on their own days and hours, and ranges find them.
func TestTimesOutsideDates(t *testing.T) {
	ctx := t.Context()
	s, _ := openEngine(t, servers(t, "node"), time.Now)
	at := []time.Time{
		time.Date(1700, 3, 1, 10, 0, 0, 1, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
		time.Date(2105, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(2106, 1, 1, 0, 30, 0, 0, time.UTC),
		time.Date(2261, 12, 31, 23, 59, 59, 999999999, time.UTC),
	}
	var evs []event.Event
	for i, a := range at {
		evs = append(evs, event.Event{Time: a, SrcIP: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Family: "waledac"})
	}
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	scan := func(from, to time.Time) []time.Time {
		t.Helper()
		var got []time.Time
		if err := s.Scan(ctx, eventstore.ScanQuery{From: from, To: to}, func(e *event.Event) error {
			got = append(got, e.Time)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := scan(time.Time{}, time.Time{}); !reflect.DeepEqual(got, at) {
		t.Errorf("all: %v, want %v", got, at)
	}
	for _, tc := range []struct {
		from, to time.Time
		want     []time.Time
	}{
		{at[0], at[1], at[:1]},
		{at[1], at[3], at[1:3]},
		{time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC), at[1:3]},
		{at[4], time.Time{}, at[4:]},
		{at[5], at[6], at[5:6]},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), eventstore.MaxTime, at[6:]},
		{eventstore.MinTime, time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC), at[:1]},
	} {
		if got := scan(tc.from, tc.to); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s..%s: %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	days, err := s.UniqueHosts(ctx, eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimDay}, From: at[0], To: at[3]})
	if err != nil {
		t.Fatal(err)
	}
	want := []eventstore.HostCount{
		{Day: time.Date(1700, 3, 1, 0, 0, 0, 0, time.UTC), IPs: 1, Events: 1},
		{Day: time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), IPs: 1, Events: 1},
		{Day: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), IPs: 1, Events: 1},
	}
	if !reflect.DeepEqual(days, want) {
		t.Errorf("by day:\n got %+v\nwant %+v", days, want)
	}
	hours, err := s.CallbacksPerHour(ctx, eventstore.HourQuery{From: at[1].Add(-time.Hour), To: at[2].Add(time.Hour)})
	if want := []eventstore.HourCount{{Hour: at[1].Truncate(time.Hour), Events: 1, IPs: 1}, {Hour: at[2], Events: 1, IPs: 1}}; err != nil || !reflect.DeepEqual(hours, want) {
		t.Errorf("hours around 1970: %+v (%v), want %+v", hours, err, want)
	}
	st, err := s.Stats(ctx)
	if want := (eventstore.Stats{Events: int64(len(at)), Oldest: at[0], Newest: at[len(at)-1]}); err != nil || st != want {
		t.Errorf("stats %+v (%v), want %+v", st, err, want)
	}
}

// TestRollupConcurrent: readers of the rollup beside refreshes that take
// in new events (go test -race): every answer is one of a refresh.
func TestRollupConcurrent(t *testing.T) {
	ctx := t.Context()
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := day.Add(time.Hour)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, r := openEngine(t, servers(t, "node"), clock)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				rows, err := r.Hosts(ctx, eventstore.HostQuery{From: day, To: day.AddDate(0, 0, 1)})
				if err != nil || len(rows) != 1 {
					t.Errorf("hosts: %+v (%v)", rows, err)
					return
				}
				if rows[0].Events != rows[0].IPs { // each host calls once
					t.Errorf("hosts: %+v", rows[0])
					return
				}
				rows[0].IPs = -1 // the caller's copy
			}
		})
	}
	for i := range 20 {
		e := event.Event{Time: day.Add(time.Duration(i) * time.Minute), SrcIP: netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), Family: "conficker"}
		if err := s.Append(ctx, []event.Event{e}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		now = now.Add(time.Minute)
		mu.Unlock()
		if _, err := r.Refresh(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	rows, err := r.Hosts(ctx, eventstore.HostQuery{From: day, To: day.AddDate(0, 0, 1)})
	if want := []eventstore.HostCount{{IPs: 20, Events: 20}}; err != nil || !reflect.DeepEqual(rows, want) {
		t.Errorf("after the refreshes: %+v (%v), want %+v", rows, err, want)
	}
}

// TestRollupBusy: after a refresh that took longer than Busy, the next
// takes in nothing (AsOf stays) until twice that time has passed.
func TestRollupBusy(t *testing.T) {
	ctx := t.Context()
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := day.Add(time.Hour)
	s, _ := openEngine(t, servers(t, "node"), func() time.Time { return now })
	r, err := chstore.OpenRollup(ctx, chstore.RollupConfig{Store: s, Days: 5, Lag: time.Microsecond, Busy: time.Nanosecond, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	add := func(i int) {
		t.Helper()
		e := event.Event{Time: day.Add(time.Duration(i) * time.Minute), SrcIP: netip.AddrFrom4([4]byte{10, 0, 2, byte(i)}), Family: "conficker"}
		if err := s.Append(ctx, []event.Event{e}); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Minute)
	}
	add(0)
	t0 := time.Now()
	if st, err := r.Refresh(ctx, true); err != nil || !st.Changed() {
		t.Fatalf("first refresh: %+v %v", st, err)
	}
	cost := time.Since(t0)
	asOf := r.AsOf()
	add(1)
	if st, err := r.Refresh(ctx, false); err != nil || st.Changed() || !r.AsOf().Equal(asOf) {
		t.Errorf("refresh right after a busy one: %+v %v, as of %s (was %s); want no change", st, err, r.AsOf(), asOf)
	}
	// Then, once twice the time has passed, the new event.
	deadline := t0.Add(2*cost + 10*time.Second)
	for {
		st, err := r.Refresh(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Changed() {
			if time.Since(t0) < 2*cost || !r.AsOf().After(asOf) {
				t.Errorf("changed after %s (the first took %s), as of %s", time.Since(t0), cost, r.AsOf())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no change %s after a refresh of %s", time.Since(t0), cost)
		}
		time.Sleep(cost / 4)
	}
}
