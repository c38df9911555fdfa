package evidence

import (
	"context"
	"fmt"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// Appender is the event store the write path feeds: pipeline.Store's
// methods.
type Appender interface {
	// AppendMarked stores batch and sets the mark of source to mark, both
	// or neither.
	AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error
	// Mark returns the last mark of source, nil when none.
	Mark(ctx context.Context, source string) ([]byte, error)
}

// Store puts the log in front of an event store, write-ahead: a batch's
// leaf is appended before the batch is stored, so that every stored event
// is in a leaf. The converse does not hold: a crash between the two leaves
// a leaf whose events the replay stores later, maybe in another batch and
// so in a second leaf, and a batch the store refuses (the pipeline then
// stores its events one by one and quarantines the bad ones) leaves a leaf
// naming events that are stored under other leaves or not at all.
//
// With an engine that is a PreCommitAppender, the batch is hashed on one
// goroutine while the engine appends it: the engine's append takes one
// CPU, the hashing another (hashing on every CPU took CPU time from the
// append and made the log cost more). With another engine the leaf comes
// first and the batch is hashed on every CPU.
type Store struct {
	next Appender
	log  *Log
}

var _ Appender = (*Store)(nil)

// NewStore returns a Store that logs each batch in log before handing it
// to next.
func NewStore(next Appender, log *Log) *Store { return &Store{next: next, log: log} }

// AppendMarked appends the batch's leaf, then stores the batch and the
// mark. A batch without events only moves the mark.
//
// A batch with an event that no engine takes (eventstore.Check) is refused
// before its leaf is written, with the engines' *eventstore.EventError, so
// that the caller sets that event aside as it would without the log. A
// failure of the log is an *eventstore.TransientError: no event is to
// blame, and the batch is to be taken again later.
func (s *Store) AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error {
	for i := range batch {
		if err := eventstore.Check(&batch[i]); err != nil {
			return fmt.Errorf("evidence: appending batch: %w", &eventstore.EventError{Index: i, Err: err})
		}
	}
	if len(batch) == 0 {
		return s.next.AppendMarked(ctx, batch, source, mark)
	}
	pc, ok := s.next.(PreCommitAppender)
	if !ok {
		if _, err := s.log.AppendBatch(ctx, batch); err != nil {
			return &eventstore.TransientError{Err: err}
		}
		return s.next.AppendMarked(ctx, batch, source, mark)
	}
	// Hash and log the batch on one goroutine while the engine appends
	// it; the engine commits only once the leaf is committed.
	leaf := make(chan error, 1)
	go func() {
		hashes := make([][32]byte, len(batch))
		hashInto(hashes, batch)
		_, err := s.log.appendHashed(ctx, hashes, timeRange(batch))
		leaf <- err
	}()
	waited := false
	err := pc.AppendMarkedBefore(ctx, batch, source, mark, func(context.Context) error {
		waited = true
		if err := <-leaf; err != nil {
			return &eventstore.TransientError{Err: err}
		}
		return nil
	})
	if !waited {
		// The engine failed before it was ready to commit: the leaf may
		// still be written, naming events not stored, which the log
		// allows (see Store).
		<-leaf
	}
	return err
}

// PreCommitAppender is an engine that can run a function inside its append
// transaction just before the commit (store.Store can). Store then hashes
// and logs a batch while the engine appends it, and lets the engine commit
// only once the leaf is committed: the write-ahead holds, and the log costs
// the ingest little more than the CPU the hashing takes from the engine.
// With another engine, Store logs the batch, then stores it.
type PreCommitAppender interface {
	// AppendMarkedBefore is AppendMarked that calls before after writing
	// the batch and the mark and before committing them; if before fails,
	// nothing is stored and its error is returned.
	AppendMarkedBefore(ctx context.Context, batch []event.Event, source string, mark []byte, before func(context.Context) error) error
}

// Mark returns the last mark of source from the event store.
func (s *Store) Mark(ctx context.Context, source string) ([]byte, error) {
	return s.next.Mark(ctx, source)
}
