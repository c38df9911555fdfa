package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestLineShowsRateAndETA(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &Bar{label: "events", unit: "events", total: 1000, start: start}
	b.done = 250
	got := b.line(start.Add(10 * time.Second))
	for _, want := range []string{"events: 250/1000", "(25%)", "25 events/s", "ETA 30s"} {
		if !strings.Contains(got, want) {
			t.Errorf("line %q lacks %q", got, want)
		}
	}
	b.done = 1000
	if got := b.line(start.Add(40 * time.Second)); !strings.Contains(got, "took 40s") {
		t.Errorf("final line %q lacks the time taken", got)
	}
}

func TestSilentOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "x", "rows", 10)
	b.Add(5)
	b.Done()
	if buf.Len() != 0 {
		t.Errorf("wrote %q to a non-terminal", buf.String())
	}
}
