package eventstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// EventError is the error of Append and AppendMarked when the batch is
// refused for one of its events: that event can never be stored as it is,
// and the rest of the batch can.
type EventError struct {
	Index int // in the batch
	Err   error
}

func (e *EventError) Error() string { return fmt.Sprintf("event %d: %v", e.Index, e.Err) }

func (e *EventError) Unwrap() error { return e.Err }

// EventIndex is the index of the event in the batch.
func (e *EventError) EventIndex() int { return e.Index }

// TransientError wraps an error of Append and AppendMarked that comes from
// the engine's state, not from the batch: the disk is full or failing,
// memory ran out, the query was interrupted. The same batch may be taken
// later; no event of it is to blame.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }

func (e *TransientError) Unwrap() error { return e.Err }

// Transient reports true.
func (e *TransientError) Transient() bool { return true }

// Check tells why an event cannot be stored, by any engine: it has no
// time, or one outside the years 1678 to 2261 (MinTime, MaxTime); no
// valid source address; a protocol or transport not of package event; a
// country code that is not two upper-case letters; a negative size.
func Check(e *event.Event) error {
	switch {
	case e.Time.IsZero():
		return errors.New("missing time")
	case e.Time.Year() < 1678 || e.Time.Year() > 2261:
		return fmt.Errorf("time %s out of range (1678 to 2261)", e.Time.UTC().Format(time.RFC3339))
	case !e.SrcIP.IsValid():
		return errors.New("invalid source ip")
	case e.Protocol != "" && !e.Protocol.Valid():
		return fmt.Errorf("invalid protocol %q", e.Protocol)
	case e.Transport != "" && e.Transport != event.TransportTCP && e.Transport != event.TransportUDP:
		return fmt.Errorf("invalid transport %q", e.Transport)
	case e.CountryCode != "" && !isCountryCode(e.CountryCode):
		return fmt.Errorf("invalid country code %q (want two upper-case letters)", e.CountryCode)
	case e.Bytes < 0:
		return fmt.Errorf("negative size %d", e.Bytes)
	}
	return nil
}

func isCountryCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}
