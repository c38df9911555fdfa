package chstore

import (
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chtest"
)

// A writer that dies between the inserts and the mark of the first batch
// a source ever writes leaves the source without a mark (nil, as before
// the batch: not an empty one, which a collector takes for a damaged
// mark), and the replay stores each event once.
func TestCrashInFirstBatch(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	all := testEvents(300, time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), time.Second)
	s := open(t, config(c, "t_first"))
	if !appendCrashing(t, s, all[:200], "m200") {
		t.Fatal("no crash")
	}
	s.Close()
	s = open(t, config(c, "t_first"))
	m, err := s.Mark(t.Context(), "spool")
	if err != nil || m != nil {
		t.Fatalf("mark after a crash in the first batch: %q (nil: %v), %v; want nil", m, m == nil, err)
	}
	for _, r := range [][2]int{{0, 100}, {100, 300}} {
		if err := s.AppendMarked(t.Context(), all[r[0]:r[1]], "spool", []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	if n, d := counts(t, c, "t_first"); n != 300 || d != 300 {
		t.Fatalf("%d events stored, %d distinct; want 300 each", n, d)
	}
}
