package pipeline

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/event"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type memStore struct {
	mu      sync.Mutex
	events  []event.Event
	batches int
	block   chan struct{}
}

func (s *memStore) Append(ctx context.Context, batch []event.Event) error {
	if s.block != nil {
		<-s.block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, batch...)
	s.batches++
	return nil
}

func (s *memStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

func ev(i int) *event.Event {
	return &event.Event{Time: time.Unix(int64(i), 0), Protocol: event.ProtoDNS, SrcIP: netip.MustParseAddr("127.0.0.1"), SrcPort: uint16(i)}
}

func TestBatchesBySizeAndTime(t *testing.T) {
	st := &memStore{}
	b := New(Config{Store: st, BatchSize: 100, FlushInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	go b.Run(ctx, time.Second)
	for i := 0; i < 250; i++ {
		if !b.Record(ev(i)) {
			t.Fatal("dropped with room in the queue")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for st.count() < 250 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st.count() != 250 {
		t.Fatalf("stored %d of 250 (the last 50 wait for the timer)", st.count())
	}
	cancel()
	<-b.Done()
	for i, e := range st.events {
		if e.SrcPort != uint16(i) {
			t.Fatalf("event %d out of order", i)
		}
	}
}

func TestFullQueueDropsAndNeverBlocks(t *testing.T) {
	st := &memStore{block: make(chan struct{})}
	b := New(Config{Store: st, QueueSize: 10, BatchSize: 5, FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	go b.Run(ctx, time.Second)
	queued := 0
	for i := 0; i < 100; i++ {
		if b.Record(ev(i)) {
			queued++
		}
	}
	s := b.Stats()
	if s.Dropped == 0 || int(s.Dropped)+queued != 100 {
		t.Errorf("stats %+v with %d queued", s, queued)
	}
	close(st.block)
	cancel()
	<-b.Done()
	if st.count() != queued {
		t.Errorf("stored %d, queued %d: the drain at shutdown lost some", st.count(), queued)
	}
}
