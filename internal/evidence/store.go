package evidence

import (
	"context"

	"github.com/takedown-project/takedown/internal/event"
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
// is in a leaf. A crash between the two leaves a leaf whose events the
// replay stores later, maybe in another batch and so in a second leaf.
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
func (s *Store) AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error {
	if len(batch) > 0 {
		if _, err := s.log.AppendBatch(ctx, batch); err != nil {
			return err
		}
	}
	return s.next.AppendMarked(ctx, batch, source, mark)
}

// Mark returns the last mark of source from the event store.
func (s *Store) Mark(ctx context.Context, source string) ([]byte, error) {
	return s.next.Mark(ctx, source)
}
