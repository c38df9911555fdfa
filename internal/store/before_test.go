package store_test

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// TestAppendMarkedBefore: before runs once the rows are written and before
// the commit; when it fails, neither the batch nor the mark is stored, and
// the store takes the next batch.
func TestAppendMarkedBefore(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, filepath.Join(t.TempDir(), "before.db"))
	defer db.Close()
	s := openStore(t, db)
	defer s.Close()
	batch := []event.Event{{Time: time.Date(2010, 2, 22, 0, 0, 0, 0, time.UTC), Protocol: event.ProtoDNS, SrcIP: netip.MustParseAddr("198.51.100.7")}}
	count := func() int {
		n := 0
		if err := s.Scan(ctx, eventstore.ScanQuery{}, func(*event.Event) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	refuse := errors.New("no leaf")
	calls := 0
	err := s.AppendMarkedBefore(ctx, batch, "src", []byte("1"), func(context.Context) error {
		calls++
		// The rows are written in the transaction, not yet visible to
		// another connection.
		if n := count(); n != 0 {
			t.Errorf("%d events visible before the commit", n)
		}
		return refuse
	})
	if !errors.Is(err, refuse) || calls != 1 {
		t.Fatalf("AppendMarkedBefore: %v after %d calls", err, calls)
	}
	if mark, _ := s.Mark(ctx, "src"); mark != nil || count() != 0 {
		t.Fatalf("a refused batch left mark %q and %d events", mark, count())
	}
	if err := s.AppendMarkedBefore(ctx, batch, "src", []byte("2"), func(context.Context) error { calls++; return nil }); err != nil {
		t.Fatal(err)
	}
	if mark, _ := s.Mark(ctx, "src"); string(mark) != "2" || count() != 1 || calls != 2 {
		t.Fatalf("after the second batch: mark %q, %d events, %d calls", mark, count(), calls)
	}
}
