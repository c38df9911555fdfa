package chstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chtest"
)

// BenchmarkAppendMarked stores batches of HTTP events of one day into one
// node, each with its mark: the writer's whole path (hashes, columns, the
// pending row, the INSERT, the mark). Run with -benchtime=20x or so; the
// server shares the machine's CPUs.
func BenchmarkAppendMarked(b *testing.B) {
	for _, n := range []int{1000, 16384, 122880} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			c := chtest.Start(b, chtest.Options{})
			s, err := Open(b.Context(), config(c, "takedown"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := testEvents(n, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), time.Millisecond)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if err := s.AppendMarked(b.Context(), batch, "spool", []byte(fmt.Sprint(i))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
