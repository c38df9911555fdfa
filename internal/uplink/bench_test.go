//go:build unix

package uplink_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/uplink"
)

// BenchmarkUplink measures the hop from the sensor's spool to the events
// stream: b.N HTTP events (about 190 bytes each in binary form) are
// recorded into the spool first, untimed, then Run publishes them with the
// default batch size and linger, and the clock stops when the stream has
// acknowledged the last one. It reports events/s and the process's CPU
// time (user + system) per event. With an embedded server that CPU
// includes the server's work (the JetStream file store, the acks); with
// TAKEDOWN_BENCH_NATS_URL set to a nats-server of its own (a separate
// process) it is the sensor's side alone.
func BenchmarkUplink(b *testing.B) {
	b.ReportAllocs()
	var (
		nc *nats.Conn
		js jetstream.JetStream
	)
	if url := os.Getenv("TAKEDOWN_BENCH_NATS_URL"); url != "" {
		var err error
		if nc, err = bus.Connect(bus.Config{Servers: []string{url}, User: "s1"}); err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		if js, err = jetstream.New(nc); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: bus.EventsStream, Subjects: []string{bus.EventsSubjects},
			Duplicates: 2 * time.Minute, Storage: jetstream.FileStorage})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Purge(context.Background())
	} else {
		ns := startNATS(b, nil)
		js = ns.js(b)
		createStream(b, js)
		nc = ns.connect(b, "s1")
	}
	sp := openSpool(b, b.TempDir(), spool.Config{MaxBytes: 16 << 30})
	u, err := uplink.New(uplink.Config{Sensor: "s1", Conn: nc, Spool: sp, StateDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		e := testEvent("bench", i)
		for !u.Record(e) { // the spool's buffer waits for the disk
			time.Sleep(time.Millisecond)
		}
	}
	if err := sp.Sync(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- u.Run(ctx) }()
	for u.Stats().Published < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	st := u.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
	b.ReportMetric(float64(b.N)/float64(st.Batches), "events/batch")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
