package collect_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/collect"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/store/storegen"
)

// anyZone serves every zone.
type anyZone struct{}

func (anyZone) Zone(host string) (string, string, string, bool) { return host, "c", "f", true }

// benchBatches makes n generated events of sensor s1 into the messages an
// uplink would publish: batches of up to 512 KiB of spool records.
func benchBatches(b *testing.B, n int) (msgs []*bus.Batch, events int) {
	s := newSensor("s1", 1)
	gen := storegen.ForEvents(n)
	cur := &bus.Batch{Sensor: "s1", Spool: s.spool}
	size := 0
	err := gen.Generate(func(batch []event.Event) error {
		for i := range batch {
			if events == n {
				return nil
			}
			e := &batch[i]
			e.Sensor = "s1"
			if e.Validate() != nil {
				// storegen places a few cities past the antimeridian.
				e.Longitude = max(-180, min(180, e.Longitude))
			}
			rec := s.record(e)
			if size+rec.EncodedLen() > 512<<10 {
				msgs = append(msgs, cur)
				cur, size = &bus.Batch{Sensor: "s1", Spool: s.spool}, 0
			}
			cur.Records = append(cur.Records, rec)
			size += rec.EncodedLen()
			events++
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return append(msgs, cur), events
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCollect measures the central's side of the JetStream hop: a
// backlog of a sensor's batches (generated Waledac events, 512 KiB
// messages) in the stream of an embedded server, stored by the collector
// into a DuckDB file, against the same records decoded and appended to the
// store directly (what the single-process pipeline does after its spool).
// It reports events per second from the collector's start to the last one
// stored, and the process's CPU time per event (the embedded server's
// deliveries included). TAKEDOWN_BENCH_EVENTS sets the events (200,000);
// run it with -benchtime=1x.
func BenchmarkCollect(b *testing.B) {
	n := 200_000
	if v := os.Getenv("TAKEDOWN_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("TAKEDOWN_BENCH_EVENTS=%q", v)
		}
	}
	msgs, n := benchBatches(b, n)
	for _, batchSize := range []int{collect.DefaultBatchSize, 122_880} {
		b.Run(fmt.Sprintf("path=jetstream/batch=%d", batchSize), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				b.StopTimer()
				r := newRig(b)
				for _, m := range msgs {
					r.publishRaw(bus.EventsSubject("s1"), m.AppendBinary(nil), m.MsgID())
				}
				cfg := r.config("s1")
				cfg.Zones, cfg.Classifier, cfg.Enricher, cfg.Observer = anyZone{}, nil, nil, nil
				cfg.BatchSize, cfg.FlushInterval = batchSize, collect.DefaultFlushInterval
				c := r.collector(cfg)
				b.StartTimer()
				cpu0, t0 := cpuTime(), time.Now()
				stop := start(b, c)
				for c.Stats().Stored < uint64(n) {
					time.Sleep(5 * time.Millisecond)
					if time.Since(t0) > 10*time.Minute {
						b.Fatalf("stats %+v, n %d, stream %d", c.Stats(), n, r.streamMsgs())
					}
				}
				took, cpu := time.Since(t0), cpuTime()-cpu0
				b.StopTimer()
				stop()
				if got := r.count(); got != int64(n) {
					b.Fatalf("%d stored, want %d", got, n)
				}
				b.ReportMetric(float64(n)/took.Seconds(), "events/s")
				b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
			}
		})
		b.Run(fmt.Sprintf("path=direct/batch=%d", batchSize), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				b.StopTimer()
				r := newRig(b)
				b.StartTimer()
				cpu0, t0 := cpuTime(), time.Now()
				var dec event.Decoder
				batch := make([]event.Event, 0, batchSize)
				mark := make([]byte, 32)
				flush := func() {
					if err := r.st.AppendMarked(context.Background(), batch, "bench", mark); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
				for _, m := range msgs {
					for _, rec := range m.Records {
						batch = append(batch, event.Event{})
						if err := dec.Decode(rec.Data, &batch[len(batch)-1]); err != nil {
							b.Fatal(err)
						}
						if len(batch) == batchSize {
							flush()
						}
					}
				}
				flush()
				took, cpu := time.Since(t0), cpuTime()-cpu0
				b.StopTimer()
				if got := r.count(); got != int64(n) {
					b.Fatalf("%d stored, want %d", got, n)
				}
				b.ReportMetric(float64(n)/took.Seconds(), "events/s")
				b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
			}
		})
	}
}
