// Package progress draws a one-line progress report with rate and ETA on a
// terminal, for long work such as imports, simulations and replays. On
// anything that is not a terminal it prints nothing, so machine output stays
// clean.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Bar reports progress towards a known total.
type Bar struct {
	mu      sync.Mutex
	w       io.Writer
	label   string
	unit    string
	total   int64
	done    int64
	start   time.Time
	last    time.Time
	enabled bool
	now     func() time.Time
}

// New returns a bar that writes to w when w is a terminal.
func New(w io.Writer, label, unit string, total int64) *Bar {
	return &Bar{w: w, label: label, unit: unit, total: total, start: time.Now(), enabled: IsTerminal(w), now: time.Now}
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Add counts n more units done and redraws at most five times a second.
func (b *Bar) Add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	if !b.enabled {
		return
	}
	if now := b.now(); now.Sub(b.last) >= 200*time.Millisecond {
		b.last = now
		fmt.Fprintf(b.w, "\r\033[K%s", b.line(now))
	}
}

// Done draws the final line and ends it.
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.enabled {
		fmt.Fprintf(b.w, "\r\033[K%s\n", b.line(b.now()))
	}
}

// line renders the state: label, count, percent, rate, ETA.
func (b *Bar) line(now time.Time) string {
	el := now.Sub(b.start)
	rate := 0.0
	if el > 0 {
		rate = float64(b.done) / el.Seconds()
	}
	s := fmt.Sprintf("%s: %d", b.label, b.done)
	if b.total > 0 {
		pct := 100 * float64(b.done) / float64(b.total)
		s = fmt.Sprintf("%s: %d/%d %s (%.0f%%)", b.label, b.done, b.total, b.unit, pct)
	}
	s += fmt.Sprintf(", %.0f %s/s", rate, b.unit)
	if b.total > 0 && rate > 0 && b.done < b.total {
		eta := time.Duration(float64(b.total-b.done) / rate * float64(time.Second))
		s += ", ETA " + eta.Round(time.Second).String()
	} else if b.done >= b.total && b.total > 0 {
		s += ", took " + el.Round(10*time.Millisecond).String()
	}
	return s
}
