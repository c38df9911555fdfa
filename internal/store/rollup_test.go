package store_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storetest"
)

// TestRollupStrategy: how the DuckDB rollup takes in a change (the
// results are the conformance suite's): the first refresh rebuilds every
// day, new events at the end of the live day are an increment, a late
// event rebuilds its day, and a day without events is dropped.
func TestRollupStrategy(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, "")
	defer db.Close()
	s := openStore(t, db)
	defer s.Close()
	fx := storetest.Fixture() // three days from 2024-05-01, up to 06:00 of the third
	day0 := fx[0].Time.Truncate(24 * time.Hour)
	now := day0.AddDate(0, 0, 2).Add(12 * time.Hour)
	r, err := store.OpenRollup(ctx, store.RollupConfig{DB: db, Days: 5, Lag: time.Microsecond, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, fx); err != nil {
		t.Fatal(err)
	}
	refresh := func(step string, full bool, want eventstore.RefreshStats) {
		t.Helper()
		st, err := r.Refresh(ctx, full)
		st.Checked = 0
		if err != nil || st != want {
			t.Errorf("%s: %+v (%v), want %+v", step, st, err, want)
		}
	}
	refresh("first", true, eventstore.RefreshStats{Rebuilt: 3})
	refresh("nothing new", false, eventstore.RefreshStats{})
	for i := range 3 {
		late := fx[14]
		late.Time = now
		now = now.Add(time.Hour)
		if err := s.Append(ctx, []event.Event{late}); err != nil {
			t.Fatal(err)
		}
		refresh(fmt.Sprintf("increment %d", i), false, eventstore.RefreshStats{Added: 1})
	}
	late := fx[8]
	late.Time = late.Time.Add(-time.Minute) // yesterday, before its last event
	if err := s.Append(ctx, []event.Event{late}); err != nil {
		t.Fatal(err)
	}
	refresh("late event", false, eventstore.RefreshStats{Rebuilt: 1})
	if _, err := s.DeleteBefore(ctx, day0.AddDate(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	refresh("retention", true, eventstore.RefreshStats{Dropped: 1})
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
	var kinds []string
	for range 4 {
		batch := storetest.Fixture()
		for i := range batch {
			batch[i].Time = now.Add(time.Duration(i) * time.Minute)
		}
		if err := s.Append(ctx, batch); err != nil {
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
		rows, err := r.Hosts(ctx, eventstore.HostQuery{From: t0.Truncate(24 * time.Hour)})
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
