package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/spool"
)

// sizes notes the size of every batch it stores.
type sizes struct {
	Store
	mu sync.Mutex
	n  []int
}

func (s *sizes) AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error {
	if len(batch) > 0 {
		s.mu.Lock()
		s.n = append(s.n, len(batch))
		s.mu.Unlock()
	}
	return s.Store.AppendMarked(ctx, batch, source, mark)
}

func (s *sizes) get() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.n)
}

// TestBatchFillsWhenEventsComeFast: events that would fill a whole batch
// within ten flush intervals are stored as one whole batch; events that
// come slower are stored every flush interval, as they are.
func TestBatchFillsWhenEventsComeFast(t *testing.T) {
	const size, flush = 2000, 100 * time.Millisecond
	t.Run("fast", func(t *testing.T) {
		r := newRig(t, t.TempDir(), spool.Config{})
		defer r.close()
		st := &sizes{Store: r.st}
		// A flush interval of a second: the batch is stored as it is
		// once an interval brings no event, and on a loaded machine
		// short pauses of the producer below have taken more than
		// 100 ms.
		p, _ := New(Config{Spool: r.sp, Store: st, BatchSize: size, FlushInterval: 10 * flush})
		// 300 events in the first interval: at that rate the batch is
		// whole in well under ten intervals.
		for i := range 300 {
			p.Record(ev(i))
		}
		stop := start(t, p, time.Second)
		defer stop()
		// The rest over about three intervals.
		for i := 300; i < size; i += 50 {
			time.Sleep(90 * time.Millisecond)
			for j := i; j < i+50; j++ {
				p.Record(ev(j))
			}
		}
		waitFor(t, "the events stored", func() bool { return r.stored() == size })
		if got := st.get(); !slices.Equal(got, []int{size}) {
			t.Errorf("batches %v, want one whole batch of %d", got, size)
		}
		if got := testutil.ToFloat64(p.m.filled); got != 1 {
			t.Errorf("batches_filled_total %v, want 1", got)
		}
	})
	t.Run("slow", func(t *testing.T) {
		r := newRig(t, t.TempDir(), spool.Config{})
		defer r.close()
		st := &sizes{Store: r.st}
		p, _ := New(Config{Spool: r.sp, Store: st, BatchSize: size, FlushInterval: flush})
		stop := start(t, p, time.Second)
		defer stop()
		// 10 events an interval would take 20 s to fill a batch.
		for i := range 5 {
			for j := range 10 {
				p.Record(ev(10*i + j))
			}
			time.Sleep(flush + flush/2)
		}
		waitFor(t, "the events stored", func() bool { return r.stored() == 50 })
		// Stored as they came, not held back to fill a batch: on a quiet
		// machine an interval's worth at a time; on a loaded one the
		// writer, in the idle CPU class until its lag passes
		// pipeline.max_lag_s, may come round only after a few intervals
		// and take what they brought at once.
		got := st.get()
		if len(got) < 2 {
			t.Errorf("batches %v, want the events stored as they came, over several batches", got)
		}
		if testutil.ToFloat64(p.m.filled) != 0 {
			t.Errorf("a slow batch waited to fill")
		}
	})
}
