package chstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// crash is what the afterInsert hook panics with: the writer dies between
// a batch's INSERTs and its mark.
type crash struct{}

// appendCrashing runs AppendMarked with the writer dying after the
// inserts, and reports whether it did.
func appendCrashing(t *testing.T, s *Store, batch []event.Event, mark string) (crashed bool) {
	t.Helper()
	s.SetAfterInsert(func() { panic(crash{}) })
	defer s.SetAfterInsert(nil)
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			crashed = true
		}
	}()
	if err := s.AppendMarked(t.Context(), batch, "spool", []byte(mark)); err != nil {
		t.Fatal(err)
	}
	return false
}

// counts returns the number of events stored and the number of distinct
// events (by their hash), read with plain SQL through node 0.
func counts(t *testing.T, c *chtest.Cluster, db string) (rows, distinct uint64) {
	t.Helper()
	conn := c.Conn(t, 0)
	if err := conn.QueryRow(t.Context(), "SELECT count(), uniqExact(ev_hash) FROM "+db+".events").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	return rows, distinct
}

// Each event is stored once when the writer dies between a batch's
// inserts and its mark, and the next run, starting from the stored mark,
// replays the batch's events grouped otherwise: in smaller batches, or in
// one with the events after it. The batch spans two days (two INSERTs).
// On one node and on a cluster of two shards.
func TestExactlyOnceAfterCrash(t *testing.T) {
	for name, bin := range chtest.Binaries(t) {
		for _, shards := range []int{1, 2} {
			t.Run(fmt.Sprintf("clickhouse-%s/shards=%d", name, shards), func(t *testing.T) {
				c := chtest.Start(t, chtest.Options{Shards: shards, Binary: bin})
				start := time.Date(2024, 5, 1, 23, 0, 0, 0, time.UTC)
				all := testEvents(1000, start, 7*time.Second) // 23:00 to 00:56
				for i := range all {
					all[i].BotID = fmt.Sprint(i % 10) // identical pairs are not needed: hashes differ by time
				}
				// The marks are positions in all: "m<n>" stands after n events.
				regroupings := map[string][][2]int{
					"smaller": {{100, 250}, {250, 400}, {400, 600}, {600, 1000}},
					"larger":  {{100, 1000}},
					"same":    {{100, 600}, {600, 1000}},
				}
				for name, replays := range regroupings {
					t.Run(name, func(t *testing.T) {
						db := "t_" + name
						s := open(t, config(c, db))
						if err := s.AppendMarked(t.Context(), all[:100], "spool", []byte("m100")); err != nil {
							t.Fatal(err)
						}
						if !appendCrashing(t, s, all[100:600], "m600") {
							t.Fatal("no crash")
						}
						s.Close()
						if n, _ := counts(t, c, db); n != 600 {
							t.Fatalf("%d events after the crash, want 600 (the batch inserted, unmarked)", n)
						}
						s = open(t, config(c, db))
						m, err := s.Mark(t.Context(), "spool")
						if err != nil || string(m) != "m100" {
							t.Fatalf("mark after the crash: %q, %v; want m100", m, err)
						}
						for _, r := range replays {
							if err := s.AppendMarked(t.Context(), all[r[0]:r[1]], "spool", []byte(fmt.Sprintf("m%d", r[1]))); err != nil {
								t.Fatal(err)
							}
						}
						if n, d := counts(t, c, db); n != 1000 || d != 1000 {
							t.Fatalf("%d events stored, %d distinct; want 1000 each", n, d)
						}
						if m, err := s.Mark(t.Context(), "spool"); err != nil || string(m) != "m1000" {
							t.Fatalf("mark: %q, %v", m, err)
						}
						// New batches go on as usual.
						more := testEvents(10, start.Add(time.Hour*5), time.Second)
						if err := s.AppendMarked(t.Context(), more, "spool", []byte("m1010")); err != nil {
							t.Fatal(err)
						}
						if n, _ := counts(t, c, db); n != 1010 {
							t.Fatalf("%d events, want 1010", n)
						}
					})
				}
			})
		}
	}
}

// A batch whose writer died before anything was inserted leaves nothing;
// the restart costs no lookup and stores the replay whole.
func TestCrashBeforeInsert(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	s := open(t, config(c, "takedown"))
	evs := testEvents(50, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), time.Second)
	if err := s.AppendMarked(t.Context(), evs[:10], "spool", []byte("m10")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, config(c, "takedown"))
	if err := s.AppendMarked(t.Context(), evs[10:], "spool", []byte("m50")); err != nil {
		t.Fatal(err)
	}
	if n, d := counts(t, c, "takedown"); n != 50 || d != 50 {
		t.Fatalf("%d events, %d distinct; want 50", n, d)
	}
}

// Identical events in one batch (a bot that sent the same thing twice in
// the same nanosecond) are all stored, and a replay after a crash neither
// loses nor doubles them.
func TestIdenticalEvents(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	s := open(t, config(c, "takedown"))
	e := testEvents(1, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), time.Second)[0]
	batch := []event.Event{e, e, e}
	if !appendCrashing(t, s, batch[:2], "m2") {
		t.Fatal("no crash")
	}
	s.Close()
	s = open(t, config(c, "takedown"))
	if err := s.AppendMarked(t.Context(), batch, "spool", []byte("m3")); err != nil {
		t.Fatal(err)
	}
	if n, d := counts(t, c, "takedown"); n != 3 || d != 1 {
		t.Fatalf("%d events, %d distinct; want 3 of one", n, d)
	}
}

// A refused batch names its event and stores nothing.
func TestRefusedEvent(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	s := open(t, config(c, "takedown"))
	evs := testEvents(5, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), time.Second)
	evs[3].CountryCode = "de"
	err := s.AppendMarked(t.Context(), evs, "spool", []byte("x"))
	var ee *eventstore.EventError
	if !errors.As(err, &ee) || ee.Index != 3 {
		t.Fatalf("err = %v, want an EventError of event 3", err)
	}
	if n, _ := counts(t, c, "takedown"); n != 0 {
		t.Fatalf("%d events stored", n)
	}
}

// A batch whose context ends while it is being stored is either stored
// with its mark and reported stored, or reported failed and not stored
// at all: the context ends at a different point of each append.
func TestAppendCancelled(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	s := open(t, config(c, "takedown"))
	batch := testEvents(3000, time.Date(2024, 5, 1, 23, 0, 0, 0, time.UTC), 3*time.Second) // two days
	var want uint64
	var ok, failed int
	for i := range 60 {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Duration(i%30)*500*time.Microsecond, cancel)
		err := s.AppendMarked(ctx, batch, "spool", []byte(fmt.Sprint(i)))
		cancel()
		if err == nil {
			want += uint64(len(batch))
			ok++
		} else {
			failed++
		}
		if n := queryUint(t, c, 0, "SELECT count() FROM takedown.events"); n != want {
			t.Fatalf("append %d: %d events stored, want %d (%d reported stored, %d failed; last: %v)", i, n, want, ok, failed, err)
		}
	}
	t.Logf("%d appends stored, %d cancelled", ok, failed)
	if ok == 0 || failed == 0 {
		t.Errorf("%d stored, %d cancelled: the cancellations missed", ok, failed)
	}
}

// A second crash while the replay of the first half-stored batch is under
// way, and a crash right after a mark moved alone (the pipeline writes its
// stored position alone before it halves a failing batch): the rows of
// the first batch that no replayed event has matched yet are carried in
// every mark, and nothing is doubled.
func TestExactlyOnceAfterTwoCrashes(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	all := testEvents(1000, time.Date(2024, 5, 1, 23, 0, 0, 0, time.UTC), 7*time.Second)
	s := open(t, config(c, "takedown"))
	if err := s.AppendMarked(t.Context(), all[:100], "spool", []byte("m100")); err != nil {
		t.Fatal(err)
	}
	if !appendCrashing(t, s, all[100:600], "m600") {
		t.Fatal("no crash")
	}
	s.Close()

	s = open(t, config(c, "takedown"))
	if err := s.AppendMarked(t.Context(), all[100:200], "spool", []byte("m200")); err != nil {
		t.Fatal(err)
	}
	// The mark alone, at the same position.
	if err := s.AppendMarked(t.Context(), nil, "spool", []byte("m200")); err != nil {
		t.Fatal(err)
	}
	// Crashes again, with events of the first batch and new ones.
	if !appendCrashing(t, s, all[200:700], "m700") {
		t.Fatal("no crash")
	}
	s.Close()

	s = open(t, config(c, "takedown"))
	if m, err := s.Mark(t.Context(), "spool"); err != nil || string(m) != "m200" {
		t.Fatalf("mark: %q, %v; want m200", m, err)
	}
	for _, r := range [][2]int{{200, 300}, {300, 650}, {650, 1000}} {
		if err := s.AppendMarked(t.Context(), all[r[0]:r[1]], "spool", []byte(fmt.Sprintf("m%d", r[1]))); err != nil {
			t.Fatal(err)
		}
	}
	if n, d := counts(t, c, "takedown"); n != 1000 || d != 1000 {
		t.Fatalf("%d events stored, %d distinct; want 1000 each", n, d)
	}
	// Every leftover matched: the mark carries none.
	if n := queryUint(t, c, 0, "SELECT length(argMax(left, version)) FROM takedown.ingest_marks WHERE source = 'spool'"); n != 0 {
		t.Fatalf("the mark carries %d leftovers", n)
	}
}

// A write that fails half-way twice at the same mark, regrouped between
// the attempts (the pipeline halves a failing batch), then succeeds: each
// event once.
func TestExactlyOnceAfterFailures(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	all := testEvents(600, time.Date(2024, 5, 1, 23, 30, 0, 0, time.UTC), 5*time.Second) // two days
	s := open(t, config(c, "takedown"))
	fail := func(batch []event.Event, mark string) {
		t.Helper()
		s.SetAfterInsert(func() { c.Kill(0) })
		err := s.AppendMarked(t.Context(), batch, "spool", []byte(mark))
		s.SetAfterInsert(nil)
		var te *eventstore.TransientError
		if !errors.As(err, &te) {
			t.Fatalf("append with the server killed: %v", err)
		}
		c.Restart(0)
	}
	fail(all[:600], "m600")
	fail(all[:300], "m300")
	for _, r := range [][2]int{{0, 150}, {150, 600}} {
		if err := retry(t, func() error {
			return s.AppendMarked(t.Context(), all[r[0]:r[1]], "spool", []byte(fmt.Sprintf("m%d", r[1])))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if n, d := counts(t, c, "takedown"); n != 600 || d != 600 {
		t.Fatalf("%d events stored, %d distinct; want 600 each", n, d)
	}
}
