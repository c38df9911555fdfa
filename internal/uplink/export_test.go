package uplink

import (
	"time"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/spool"
)

// SetAfterAck sets a hook called after each acknowledgement, before the
// mark is saved; when it returns false Run returns at once, as a crash
// there would end it.
func SetAfterAck(u *Uplink, f func(*bus.Batch) bool) { u.afterAck = f }

// SetMaxBackoff shortens the longest wait between retries.
func SetMaxBackoff(u *Uplink, d time.Duration) { u.maxBackoffWait = d }

// From returns where Run starts reading.
func From(u *Uplink) spool.Pos { return u.from }

var (
	AppendMark = appendMark
	ParseMark  = parseMark
)
