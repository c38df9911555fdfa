package evidence_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storegen"
)

// ingestBatch is the batch size of BenchmarkIngest: what the collector
// writes at a time.
const ingestBatch = 20_000

// ingestBatches returns n batches of simulated Waledac callbacks.
func ingestBatches(b testing.TB, n int) [][]event.Event {
	gen := storegen.ForEvents(n * ingestBatch)
	gen.BatchSize = ingestBatch
	var out [][]event.Event
	errFull := fmt.Errorf("full")
	gen.Generate(func(batch []event.Event) error {
		out = append(out, slices.Clone(batch))
		if len(out) == n {
			return errFull
		}
		return nil
	})
	if len(out) != n {
		b.Fatalf("generated %d batches, want %d", len(out), n)
	}
	return out
}

// BenchmarkIngest stores batches of 20,000 simulated events in the DuckDB
// store through AppendMarked, once with the evidence log in front (on) and
// once without (off), each into its own database file. One op stores the
// same batch both ways, in alternating order, so that both see the same
// load; it reports the medians of the batches' times and the log's cost:
// how much longer a batch takes with the log, in per cent. It reports the
// process's CPU time a batch too, and how much more the log takes
// (%cpu-cost): on a machine whose CPUs are all busy with other work, the
// time's cost tends to that.
//
//	go test -run '^$' -bench Ingest -benchtime 40x ./internal/evidence/
func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	benchIngest(b, func(on bool) evidence.Appender {
		db, _ := openDB(b)
		es, err := store.Open(ctx, store.Config{DB: db})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { es.Close() })
		if on {
			return evidence.NewStore(es, openLog(b, db))
		}
		return es
	})
}

// BenchmarkIngestClickHouse is BenchmarkIngest with the ClickHouse engine
// (one clickhouse-server, a database each way; the log in a DuckDB file):
// the leaf is logged, then the batch stored.
//
//	go test -run '^$' -bench IngestClickHouse -benchtime 20x ./internal/evidence/
func BenchmarkIngestClickHouse(b *testing.B) {
	c := chtest.Start(b, chtest.Options{})
	ctx := context.Background()
	benchIngest(b, func(on bool) evidence.Appender {
		ch, err := chstore.Open(ctx, chstore.Config{Addrs: c.Addrs(), Database: fmt.Sprintf("bench_%v", on), Username: c.User(), Password: c.Password()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ch.Close() })
		if on {
			db, _ := openDB(b)
			return evidence.NewStore(ch, openLog(b, db))
		}
		return ch
	})
}

// benchIngest stores the same batches through the store open(false) gives
// (off) and the one open(true) gives (on), alternating, and reports both.
func benchIngest(b *testing.B, open func(on bool) evidence.Appender) {
	batches := ingestBatches(b, 8)
	ctx := context.Background()
	stores := [2]evidence.Appender{open(false), open(true)}
	var took, cpu [2][]time.Duration
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		batch := batches[i%len(batches)]
		for k := range 2 {
			on := (i + k) % 2 // alternate which goes first
			start, cpu0 := time.Now(), cpuTime()
			if err := stores[on].AppendMarked(ctx, batch, "bench", []byte(strconv.Itoa(i))); err != nil {
				b.Fatal(err)
			}
			took[on] = append(took[on], time.Since(start))
			cpu[on] = append(cpu[on], cpuTime()-cpu0)
		}
		i++
	}
	off, on := median(took[0]), median(took[1])
	b.ReportMetric(float64(off.Microseconds())/1000, "ms/batch-off")
	b.ReportMetric(float64(on.Microseconds())/1000, "ms/batch-on")
	b.ReportMetric(100*(float64(on)/float64(off)-1), "%cost")
	if c := median(cpu[0]); c > 0 {
		b.ReportMetric(float64(c.Microseconds())/1000, "cpu-ms/batch-off")
		b.ReportMetric(100*(float64(median(cpu[1]))/float64(c)-1), "%cpu-cost")
	}
	b.ReportMetric(float64(ingestBatch)/on.Seconds(), "events/s-on")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkBatchHash hashes a batch of 20,000 simulated events and makes
// its leaf: the log's work per batch besides the database.
func BenchmarkBatchHash(b *testing.B) {
	batch := ingestBatches(b, 1)[0]
	b.ReportAllocs()
	for b.Loop() {
		evidence.BatchLeaf(evidence.HashEvents(batch))
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}
