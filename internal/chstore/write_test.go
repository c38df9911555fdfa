package chstore

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/event"
)

func testEvents(n int, start time.Time, step time.Duration) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.Event{
			Time:      start.Add(time.Duration(i) * step),
			Protocol:  event.ProtoHTTP,
			Transport: event.TransportTCP,
			SrcIP:     netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
			SrcPort:   uint16(1024 + i),
			DstIP:     netip.MustParseAddr("192.0.2.53"),
			DstPort:   80,
			Family:    "waledac",
			ASN:       64500 + uint32(i%3),
		}
	}
	return out
}

// DeleteBefore drops the partitions before the cut's day on every shard
// and deletes the cut's day before it with a mutation; Retain cuts at
// midnight. Marks are kept.
func TestRetention(t *testing.T) {
	for name, bin := range chtest.Binaries(t) {
		for _, shards := range []int{1, 2} {
			t.Run(fmt.Sprintf("clickhouse-%s/shards=%d", name, shards), func(t *testing.T) {
				c := chtest.Start(t, chtest.Options{Shards: shards, Binary: bin})
				s := open(t, config(c, "takedown"))
				start := time.Date(2024, 5, 1, 22, 0, 0, 0, time.UTC)
				// 22:00 on day 1 to 01:19 on day 3, a minute apart.
				if err := s.AppendMarked(t.Context(), testEvents(1640, start, time.Minute), "spool", []byte("m")); err != nil {
					t.Fatal(err)
				}
				total := func() uint64 { return queryUint(t, c, 0, "SELECT count() FROM takedown.events") }
				if n := total(); n != 1640 {
					t.Fatalf("%d events", n)
				}
				// Day 1 (120 events) goes whole, day 2 up to 00:30 (30).
				n, err := s.DeleteBefore(t.Context(), time.Date(2024, 5, 2, 0, 30, 0, 0, time.UTC))
				if err != nil || n != 150 {
					t.Fatalf("deleted %d (%v), want 150", n, err)
				}
				if n := total(); n != 1490 {
					t.Fatalf("%d events left, want 1490", n)
				}
				for i := range shards {
					if p := queryUint(t, c, i, "SELECT count() FROM system.parts WHERE database = 'takedown' AND table = ? AND active AND partition = '2024-05-01'", s.layout.local("events")); p != 0 {
						t.Errorf("shard %d keeps %d parts of day 1", i, p)
					}
				}
				if n, err := s.DeleteBefore(t.Context(), time.Date(2024, 5, 2, 0, 30, 0, 0, time.UTC)); err != nil || n != 0 {
					t.Fatalf("deleted again %d (%v)", n, err)
				}
				if _, err := s.Retain(t.Context(), start, 0); err == nil {
					t.Fatal("retain 0 days: no error")
				}
				// Keep day 3 and the day before: nothing more goes.
				if n, err := s.Retain(t.Context(), start.AddDate(0, 0, 2), 1); err != nil || n != 0 {
					t.Fatalf("retain 1 day: %d (%v), want 0", n, err)
				}
				if n, err := s.DeleteBefore(t.Context(), time.Date(2024, 5, 3, 0, 0, 0, 0, time.UTC)); err != nil || n != 1440-30 {
					t.Fatalf("delete before day 3: %d (%v), want %d", n, err, 1440-30)
				}
				if n := total(); n != 80 {
					t.Fatalf("%d events left, want 80", n)
				}
				if m, err := s.Mark(t.Context(), "spool"); err != nil || string(m) != "m" {
					t.Fatalf("mark after retention: %q, %v", m, err)
				}
			})
		}
	}
}
