package pipeline

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestWriterLeavesIdleClassWhenSpoolFills: a backlog past half the spool
// makes the writer run at the normal priority, and it stores everything.
func TestWriterLeavesIdleClassWhenSpoolFills(t *testing.T) {
	r := newRig(t, t.TempDir(), spool.Config{SegmentBytes: 16 << 10})
	defer r.close()
	var logs testnet.Buffer
	const max = 64 << 10
	p, err := New(Config{Spool: r.sp, Store: r.st, SpoolMaxBytes: max, BatchSize: 100,
		FlushInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// A backlog past half the spool before the writer starts.
	n := 0
	for r.sp.Stats().Bytes <= max/2+4096 {
		if !p.Record(ev(n)) {
			t.Fatalf("record %d refused", n)
		}
		n++
		if n%100 == 0 {
			r.sp.Flush()
		}
	}
	r.sp.Flush()
	// The store holds the backlog until the writer has been raised.
	g := &gated{Store: r.st, open: make(chan struct{})}
	p.cfg.Store = g
	stop := start(t, p, 5*time.Second)
	waitFor(t, "the writer raised", func() bool { return p.Stats().WriterRaised })
	close(g.open)
	waitFor(t, "the backlog stored", func() bool { return r.stored() == int64(n) })
	waitFor(t, "the writer lowered", func() bool { return !p.Stats().WriterRaised })
	stop()
	if !strings.Contains(logs.String(), "runs at the normal CPU priority") {
		t.Errorf("the writer did not leave the idle class with %d events in a %d-byte spool; log:\n%s", n, max, logs.String())
	}
}
