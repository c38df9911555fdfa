package sim

import (
	"context"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// BenchmarkBackfill makes an hour of history of 70,000 bots of the three
// families; ns/op is per event.
func BenchmarkBackfill(b *testing.B) {
	b.ReportAllocs()
	events := 0
	for b.Loop() {
		s := newSim(b, Config{Bots: DefaultBots, Families: []Share{{Waledac, 0.8}, {Conficker, 0.1}, {Rustock, 0.1}},
			Domains: map[string][]string{Waledac: testNames, Conficker: allDGANames(1)}})
		err := s.Backfill(context.Background(), time.Hour, func(_ context.Context, evs []event.Event) error {
			events += len(evs)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
}
