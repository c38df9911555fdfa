package storetest

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// testAppendMarked: a batch and its mark are stored together or not at
// all; each source has its own mark; an empty batch moves the mark alone.
func testAppendMarked(t *testing.T, b Engine) {
	fx := Fixture()
	if m, err := b.Mark(t.Context(), "spool"); err != nil || m != nil {
		t.Fatalf("mark before any: %q, %v", m, err)
	}
	if err := b.AppendMarked(t.Context(), fx[:5], "spool", []byte("at-5")); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendMarked(t.Context(), nil, "other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A batch with a bad event moves neither the events nor the mark.
	bad := append([]event.Event(nil), fx[5:8]...)
	bad[2].SrcIP = netip.Addr{}
	err := b.AppendMarked(t.Context(), bad, "spool", []byte("at-8"))
	var ee *eventstore.EventError
	if !errors.As(err, &ee) || ee.Index != 2 {
		t.Fatalf("bad batch: %v, want an EventError of event 2", err)
	}
	if m, err := b.Mark(t.Context(), "spool"); err != nil || string(m) != "at-5" {
		t.Fatalf("mark after a refused batch: %q, %v", m, err)
	}
	if got := scanAll(t, b, eventstore.ScanQuery{}); len(got) != 5 {
		t.Fatalf("%d events stored, want 5", len(got))
	}
	if err := b.AppendMarked(t.Context(), fx[5:8], "spool", []byte("at-8")); err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{"spool": "at-8", "other": "x"} {
		if m, err := b.Mark(t.Context(), src); err != nil || string(m) != want {
			t.Errorf("mark of %s: %q, %v; want %q", src, m, err, want)
		}
	}
	if got := scanAll(t, b, eventstore.ScanQuery{}); len(got) != 8 {
		t.Fatalf("%d events stored, want 8", len(got))
	}
}

// testAppendMarkedCancelled: a batch whose context ends while it is being
// stored is either stored with its mark and reported stored, or reported
// failed and not stored at all — never stored and reported failed, which
// would make the caller store it twice. The context ends at a different
// point of each append.
func testAppendMarkedCancelled(t *testing.T, b Engine) {
	var batch []event.Event
	for range 200 {
		batch = append(batch, Fixture()...)
	}
	want := 0
	var ok, failed int
	for i := range 100 {
		ctx, cancel := context.WithCancel(t.Context())
		// Spread the cancellations over an append's duration (a few
		// milliseconds).
		time.AfterFunc(time.Duration(i%50)*300*time.Microsecond, cancel)
		mark := []byte(strconv.Itoa(i))
		err := b.AppendMarked(ctx, batch, "spool", mark)
		cancel()
		if err == nil {
			want += len(batch)
			ok++
			// The mark went with the batch.
			if got, err := b.Mark(t.Context(), "spool"); err != nil || string(got) != string(mark) {
				t.Fatalf("append %d: mark %q (%v), want %q", i, got, err, mark)
			}
		} else {
			failed++
		}
		st, err := b.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n := st.Events; n != int64(want) {
			t.Fatalf("append %d: %d events stored, want %d (%d appends reported stored, %d failed)", i, n, want, ok, failed)
		}
	}
	t.Logf("%d appends stored, %d cancelled", ok, failed)
}
