package chstore

import (
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

func TestSmoke(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	s := open(t, config(c, "takedown"))
	day := time.Date(2024, 5, 1, 22, 0, 0, 0, time.UTC)
	if err := s.AppendMarked(t.Context(), testEvents(200, day, time.Minute), "spool", []byte("m1")); err != nil {
		t.Fatal(err)
	}
	if n := queryUint(t, c, 0, "takedown", "SELECT count() FROM takedown.events"); n != 200 {
		t.Fatalf("%d rows", n)
	}
	m, err := s.Mark(t.Context(), "spool")
	if err != nil || string(m) != "m1" {
		t.Fatalf("mark %q %v", m, err)
	}
	conn := c.Conn(t, 0)
	rows, err := conn.Query(t.Context(), "SELECT partition, toString(max_date) FROM system.parts WHERE database = 'takedown' AND table = 'events' AND active")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p, d string
		rows.Scan(&p, &d)
		t.Logf("partition %q max_date %s", p, d)
	}
	n, err := s.DeleteBefore(t.Context(), time.Date(2024, 5, 2, 0, 30, 0, 0, time.UTC))
	t.Logf("deleted %d %v", n, err)
	if n := queryUint(t, c, 0, "takedown", "SELECT count() FROM takedown.events"); n != 50 {
		t.Fatalf("%d rows after", n)
	}
}
