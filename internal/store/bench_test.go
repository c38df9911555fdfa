package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storegen"
)

// benchEvents returns TAKEDOWN_BENCH_EVENTS, or def.
func benchEvents(b *testing.B, def int) int {
	v := os.Getenv("TAKEDOWN_BENCH_EVENTS")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("TAKEDOWN_BENCH_EVENTS=%q: want a positive number", v)
	}
	return n
}

// benchBatch returns TAKEDOWN_BENCH_BATCH, or dbfile.RowGroupSize: the
// batch size of the benchmarks that store what a sink records.
func benchBatch(b *testing.B) int {
	v := os.Getenv("TAKEDOWN_BENCH_BATCH")
	if v == "" {
		return dbfile.RowGroupSize
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("TAKEDOWN_BENCH_BATCH=%q: want a positive number", v)
	}
	return n
}

// BenchmarkAppendWaledacWeek appends a week of a 58,000-host Waledac botnet
// (14.6M events; TAKEDOWN_BENCH_EVENTS scales it) in batches of 122,880 to a
// database file, then times the report queries. Run it with -benchtime=1x.
func BenchmarkAppendWaledacWeek(b *testing.B) {
	gen := storegen.ForEvents(benchEvents(b, 14_600_000))
	// The pipeline's batch size: whole DuckDB row groups (122,880 rows).
	gen.BatchSize = dbfile.RowGroupSize
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), fmt.Sprintf("week%d.db", i))
		db := openDB(b, path)
		s := openStore(b, db)
		ctx := context.Background()
		var appending time.Duration
		var n int
		err := gen.Generate(func(batch []event.Event) error {
			b.StartTimer()
			start := time.Now()
			err := s.Append(ctx, batch)
			appending += time.Since(start)
			b.StopTimer()
			n += len(batch)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "CHECKPOINT"); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n)/appending.Seconds(), "events/s")
		b.ReportMetric(float64(fi.Size())/float64(n), "bytes/event")

		day := gen.Start.UTC().Truncate(24*time.Hour).AddDate(0, 0, min(2, gen.Days-1))
		for _, q := range []struct {
			unit string
			q    eventstore.HostQuery
		}{
			{"ms/country-day", eventstore.HostQuery{From: day, To: day.AddDate(0, 0, 1), GroupBy: []eventstore.Dimension{eventstore.DimCountry}}},
			{"ms/asn-week", eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimASN}}},
			{"ms/day-country-week", eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimDay, eventstore.DimCountry}}},
		} {
			b.ReportMetric(timeQuery(b, s, q.q), q.unit)
		}
		start := time.Now()
		if _, err := s.CallbacksPerHour(ctx, eventstore.HourQuery{Family: "waledac"}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms/hours-week")
		s.Close()
		db.Close()
	}
}

// timeQuery returns the best of three runs of q in milliseconds.
func timeQuery(b *testing.B, s *store.Store, q eventstore.HostQuery) float64 {
	best := time.Duration(1 << 62)
	for range 3 {
		start := time.Now()
		rows, err := s.UniqueHosts(context.Background(), q)
		if err != nil {
			b.Fatal(err)
		}
		if len(rows) == 0 {
			b.Fatalf("query %+v: no rows", q)
		}
		best = min(best, time.Since(start))
	}
	return float64(best.Microseconds()) / 1000
}

// BenchmarkAppend appends batches of generated events to a database file;
// one op is one batch.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{100, 1000, 10_000, 50_000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			gen := storegen.ForEvents(0)
			gen.BatchSize = size
			var batch []event.Event
			gen.Generate(func(evs []event.Event) error {
				batch = append(batch, evs...)
				return errStop
			})
			db := openDB(b, filepath.Join(b.TempDir(), "append.db"))
			defer db.Close()
			s := openStore(b, db)
			defer s.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := s.Append(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

var errStop = fmt.Errorf("stop")

// BenchmarkAppendDNSQueries appends what the DNS sinkhole records: one
// event per query. See benchAppendSink.
func BenchmarkAppendDNSQueries(b *testing.B) {
	benchAppendSink(b, func(k int) event.Event {
		return event.Event{
			Time: t0Bench.Add(time.Duration(k) * 5 * time.Microsecond), Sensor: "ns1",
			Protocol: event.ProtoDNS, Transport: event.TransportUDP,
			SrcIP: netip.AddrFrom4([4]byte{127, byte(k >> 16), byte(k >> 8), byte(k)}), SrcPort: uint16(k),
			DstIP: netip.MustParseAddr("127.0.0.1"), DstPort: 5300,
			Domain: fmt.Sprintf("q%d.d%03d.example", k%100000, k%276), Zone: fmt.Sprintf("d%03d.example", k%276),
			Case: "waledac", DNSQType: "A", DNSRcode: "NOERROR", Bytes: 40,
		}
	})
}

// BenchmarkAppendHTTPRequests appends what the HTTP sinkhole records under
// the listener benchmark's load (bench/http-ours.sh): one GET / per event,
// from one host on changing ports. See benchAppendSink.
func BenchmarkAppendHTTPRequests(b *testing.B) {
	benchAppendSink(b, func(k int) event.Event {
		return event.Event{
			Time: t0Bench.Add(time.Duration(k) * 7 * time.Microsecond), Sensor: "bench",
			Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			SrcIP: netip.AddrFrom4([4]byte{127, 0, 0, 1}), SrcPort: uint16(32768 + k%28000),
			DstIP: netip.MustParseAddr("127.0.0.1"), DstPort: 18090,
			Domain: "127.0.0.1", Family: "unknown", HTTPMethod: "GET", HTTPPath: "/",
		}
	})
}

var t0Bench = time.Date(2010, 2, 25, 0, 0, 0, 0, time.UTC)

// benchAppendSink appends the events ev(0), ev(1)… that a sink records
// (TAKEDOWN_BENCH_EVENTS, default 983,040: eight row groups), in batches of
// dbfile.RowGroupSize (TAKEDOWN_BENCH_BATCH), to a database file, and
// reports the events appended a second and the file's bytes per event. Run
// it with -benchtime=1x.
func benchAppendSink(b *testing.B, ev func(k int) event.Event) {
	n := benchEvents(b, 8*dbfile.RowGroupSize)
	batchSize := benchBatch(b)
	batch := make([]event.Event, batchSize)
	for i := 0; i < b.N; i++ {
		path := filepath.Join(b.TempDir(), fmt.Sprintf("sink%d.db", i))
		db := openDB(b, path)
		s := openStore(b, db)
		var appending time.Duration
		for done := 0; done < n; done += batchSize {
			for j := range batch {
				batch[j] = ev(done + j)
			}
			start := time.Now()
			if err := s.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			appending += time.Since(start)
		}
		b.ReportMetric(float64(n)/appending.Seconds(), "events/s")
		s.Close()
		db.Close()
		if fi, err := os.Stat(path); err == nil {
			b.ReportMetric(float64(fi.Size())/float64(n), "bytes/event")
		}
	}
}
