package evidence_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/store"
)

// crashing is an event store whose next AppendMarked fails without
// storing anything, as if the process died after the leaf was written.
type crashing struct {
	evidence.Appender
	crash bool
}

var errCrash = errors.New("killed")

var _ evidence.PreCommitAppender = (*crashingBefore)(nil)

func (c *crashing) AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error {
	if c.crash {
		c.crash = false
		return errCrash
	}
	return c.Appender.AppendMarked(ctx, batch, source, mark)
}

// crashingBefore is crashing for an engine that logs while it appends:
// its next append fails after the leaf is committed, before the commit.
type crashingBefore struct {
	*store.Store
	crash bool
}

func (c *crashingBefore) AppendMarkedBefore(ctx context.Context, batch []event.Event, source string, mark []byte, before func(context.Context) error) error {
	return c.Store.AppendMarkedBefore(ctx, batch, source, mark, func(ctx context.Context) error {
		if err := before(ctx); err != nil {
			return err
		}
		if c.crash {
			c.crash = false
			return errCrash
		}
		return nil
	})
}

// TestWriteAheadCrash: the store fails after a batch's leaf is written;
// the replay stores the events in another grouping. Every stored event is
// stored once and its hash is in a leaf. Both ways of the write path:
// leaf then store (an engine without AppendMarkedBefore), and leaf while
// storing.
func TestWriteAheadCrash(t *testing.T) {
	for _, name := range []string{"serial", "before-commit"} {
		t.Run(name, func(t *testing.T) { testWriteAheadCrash(t, name) })
	}
}

func testWriteAheadCrash(t *testing.T, way string) {
	ctx := t.Context()
	db, _ := openDB(t)
	es, err := store.Open(ctx, store.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	l := openLog(t, db)
	events := batch(0, 15)
	var engine evidence.Appender = &crashing{Appender: es, crash: true}
	if way == "before-commit" {
		engine = &crashingBefore{Store: es, crash: true}
	}
	s := evidence.NewStore(engine, l)
	if err := s.AppendMarked(ctx, events[:10], "spool", []byte("10")); !errors.Is(err, errCrash) {
		t.Fatalf("the crashing append: %v", err)
	}
	if size, _ := l.Size(ctx); size != 1 {
		t.Fatalf("%d leaves after the crash, want the batch's leaf", size)
	}
	if mark, _ := s.Mark(ctx, "spool"); mark != nil {
		t.Fatalf("mark %q after the crash", mark)
	}

	// Restart: a new log over the same file, and the replay from the mark.
	l = openLog(t, db)
	s = evidence.NewStore(engine, l)
	if err := s.AppendMarked(ctx, events[:7], "spool", []byte("7")); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendMarked(ctx, events[7:], "spool", []byte("15")); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendMarked(ctx, nil, "spool", []byte("15")); err != nil {
		t.Fatal(err)
	}
	if size, _ := l.Size(ctx); size != 3 {
		t.Fatalf("%d leaves, want 3 (the crashed batch's and the replay's two)", size)
	}
	logged := loggedEvents(t, l, 3)
	stored := storedEvents(t, es)
	if len(stored) != len(events) {
		t.Fatalf("%d distinct events stored, want %d", len(stored), len(events))
	}
	for h, n := range stored {
		if n != 1 {
			t.Errorf("event %x stored %d times", h[:4], n)
		}
		if logged[h] == 0 {
			t.Errorf("stored event %x is in no leaf", h[:4])
		}
	}
	// The crashed batch's events are in two leaves: the write-ahead's and
	// the replay's.
	if logged[evidence.EventHash(&events[0])] != 2 || logged[evidence.EventHash(&events[14])] != 1 {
		t.Errorf("event 0 in %d leaves, event 14 in %d", logged[evidence.EventHash(&events[0])], logged[evidence.EventHash(&events[14])])
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrent appends from several goroutines beside checkpoints,
// proofs and verification; run it with -race.
func TestConcurrent(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	const writers, perWriter = 4, 15
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if _, err := l.AppendBatch(ctx, batch(1000*w+10*i, 5)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var cps []evidence.Checkpoint
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			c, err := l.Checkpoint(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			if len(cps) == 0 || cps[len(cps)-1].Size != c.Size {
				cps = append(cps, c)
			}
			if c.Size > 0 {
				if _, err := l.ProveInclusion(ctx, c.Size/2, c.Size); err != nil {
					t.Error(err)
				}
				if _, err := l.ProveConsistency(ctx, (c.Size+1)/2, c.Size); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	wg.Wait()
	<-done
	last, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last.Size != writers*perWriter {
		t.Fatalf("final size %d, want %d", last.Size, writers*perWriter)
	}
	for _, c := range append(cps, last) {
		if c.Size == 0 {
			continue
		}
		p, err := l.ProveConsistency(ctx, c.Size, last.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, last.Size, last.Root, c.Size, c.Root); err != nil {
			t.Errorf("checkpoint %d is not consistent with the last: %v", c.Size, err)
		}
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestStoreErrors: an event no engine takes is refused before its leaf,
// as the engine refuses it; a failing log is a transient error.
func TestStoreErrors(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	es, err := store.Open(ctx, store.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	l := openLog(t, db)
	s := evidence.NewStore(es, l)
	bad := batch(0, 3)
	bad[1].Bytes = -1
	err = s.AppendMarked(ctx, bad, "spool", []byte("1"))
	var ee *eventstore.EventError
	if !errors.As(err, &ee) || ee.Index != 1 {
		t.Fatalf("a batch with a bad event: %v", err)
	}
	if size, _ := l.Size(ctx); size != 0 {
		t.Errorf("a refused batch left %d leaves", size)
	}
	exec(t, db, `DROP TABLE evidence_hashes`)
	err = s.AppendMarked(ctx, batch(0, 3), "spool", []byte("1"))
	var te *eventstore.TransientError
	if !errors.As(err, &te) {
		t.Fatalf("a failing log: %v, want a transient error", err)
	}
	if mark, _ := es.Mark(ctx, "spool"); mark != nil {
		t.Errorf("the batch was stored although its leaf was not written")
	}
}

// loggedEvents counts the event hashes of the log's first size leaves.
func loggedEvents(t *testing.T, l *evidence.Log, size int64) map[[32]byte]int {
	t.Helper()
	logged := map[[32]byte]int{}
	for i := range size {
		data, err := l.Leaf(t.Context(), i)
		if err != nil {
			t.Fatal(err)
		}
		lf, err := evidence.ParseLeaf(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range lf.Events {
			logged[h]++
		}
	}
	return logged
}

// storedEvents counts the hashes of the events a store holds.
func storedEvents(t *testing.T, st eventstore.Reader) map[[32]byte]int {
	t.Helper()
	stored := map[[32]byte]int{}
	err := st.Scan(t.Context(), eventstore.ScanQuery{}, func(e *event.Event) error {
		stored[evidence.EventHash(e)]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return stored
}
