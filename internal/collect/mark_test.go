package collect

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/spool"
)

func sampleMarks() *marks {
	m := newMarks()
	m.seq = 1234567
	m.advance("s1", spool.ID{1}, spool.Pos{Segment: 3, Offset: 4096})
	m.advance("fra-02", spool.ID{2}, spool.Pos{Segment: 1, Offset: 16})
	m.advance("fra-02", spool.ID{3}, spool.Pos{Segment: 1, Offset: 99})
	return m
}

func TestMarkRoundTrip(t *testing.T) {
	m := sampleMarks()
	b := m.appendBinary([]byte("x"))[1:]
	// magic, version, sequence, count; two sensors; crc.
	if want := 4 + 1 + 8 + 1 + (1 + 2 + 1 + 32) + (1 + 6 + 1 + 64) + 4; len(b) != want {
		t.Errorf("%d bytes, want %d", len(b), want)
	}
	got, err := parseMark(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.seq != m.seq || !bytes.Equal(got.appendBinary(nil), b) {
		t.Errorf("read back as %+v", got)
	}
	if l := got.sensors["fra-02"]; len(l) != 2 || l[0].id != (spool.ID{3}) || l[1].pos != (spool.Pos{Segment: 1, Offset: 16}) {
		t.Errorf("fra-02: %+v", l)
	}
	if empty := newMarks().appendBinary(nil); len(empty) != 4+1+8+1+4 {
		t.Errorf("empty mark: %d bytes", len(empty))
	} else if _, err := parseMark(empty); err != nil {
		t.Error(err)
	}
}

func TestMarkStoredAndAdvance(t *testing.T) {
	m := newMarks()
	a, b := spool.ID{0xa}, spool.ID{0xb}
	p := func(seg uint64, off int64) spool.Pos { return spool.Pos{Segment: seg, Offset: off} }
	if m.stored("s1", a, p(1, 10)) {
		t.Error("stored before anything")
	}
	m.advance("s1", a, p(2, 50))
	for _, tc := range []struct {
		id   spool.ID
		pos  spool.Pos
		want bool
	}{
		{a, p(1, 999), true}, {a, p(2, 50), true}, {a, p(2, 51), false}, {a, p(3, 1), false}, {b, p(1, 1), false},
	} {
		if got := m.stored("s1", tc.id, tc.pos); got != tc.want {
			t.Errorf("stored(%v, %v) = %v", tc.id, tc.pos, got)
		}
	}
	if m.stored("s2", a, p(1, 1)) {
		t.Error("another sensor's records are not this one's")
	}
	// A new spool starts over; the old one is still known.
	m.advance("s1", b, p(1, 20))
	if !m.stored("s1", a, p(2, 40)) || !m.stored("s1", b, p(1, 20)) || m.stored("s1", b, p(1, 21)) {
		t.Error("after a new spool")
	}
	// Going back to the old spool makes it the latest again, and never
	// moves its position back.
	m.advance("s1", a, p(1, 1))
	if l, _ := m.latest("s1"); l.id != a || l.pos != p(2, 50) {
		t.Errorf("latest %+v", l)
	}
	// At most maxSpools spools: the oldest goes.
	for i := range maxSpools {
		m.advance("s1", spool.ID{byte(i + 1), 1}, p(1, 1))
	}
	if n := len(m.sensors["s1"]); n != maxSpools {
		t.Errorf("%d spools kept", n)
	}
	if m.stored("s1", b, p(1, 1)) || m.stored("s1", a, p(1, 1)) {
		t.Error("the oldest spools are still known")
	}
}

func TestParseMarkRefuses(t *testing.T) {
	good := sampleMarks().appendBinary(nil)
	flip := bytes.Clone(good)
	flip[20] ^= 1
	unordered := newMarks()
	unordered.sensors["b"] = []spoolMark{{id: spool.ID{1}}}
	unordered.sensors["a"] = []spoolMark{{id: spool.ID{1}}}
	ub := unordered.appendBinary(nil)
	// Swap the two sensors' bytes by hand: same length, reversed order.
	swapped := bytes.Clone(ub)
	copy(swapped[14:], ub[14+35:14+70])
	copy(swapped[14+35:], ub[14:14+35])
	swapped = fixCRC(swapped)
	twice := newMarks()
	twice.sensors["s1"] = []spoolMark{{id: spool.ID{1}}, {id: spool.ID{1}}}
	tooMany := newMarks()
	tooMany.sensors["s1"] = make([]spoolMark, maxSpools+1)
	for i := range tooMany.sensors["s1"] {
		tooMany.sensors["s1"][i].id[0] = byte(i)
	}
	badID := newMarks()
	badID.sensors["S.1"] = []spoolMark{{}}
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"short":     {good[:10], "too short"},
		"magic":     {append([]byte("TDEB"), good[4:]...), "magic"},
		"version":   {fixCRC(append(append([]byte("TDCM"), 2), good[5:]...)), "version"},
		"checksum":  {flip, "checksum"},
		"order":     {swapped, "does not follow"},
		"twice":     {twice.appendBinary(nil), "twice"},
		"too many":  {tooMany.appendBinary(nil), "out of range"},
		"sensor id": {badID.appendBinary(nil), "not a sensor id"},
		"trailing":  {fixCRC(append(good[:len(good)-4:len(good)-4], 0, 0, 0, 0, 0)), "after the last sensor"},
	} {
		_, err := parseMark(tc.b)
		if err == nil || !errors.Is(err, errMark) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one with %q", name, err, tc.want)
		}
	}
}

// fixCRC replaces the last 4 bytes of b with the checksum of the rest.
func fixCRC(b []byte) []byte {
	body := bytes.Clone(b[:len(b)-4])
	return binary.BigEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
}

// FuzzParseMark feeds the reader of the mark kept in the store: it must
// never panic, and what it accepts must encode back to the same bytes.
func FuzzParseMark(f *testing.F) {
	f.Add(sampleMarks().appendBinary(nil))
	f.Add(newMarks().appendBinary(nil))
	f.Add([]byte("TDCM\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMark(b)
		if err != nil {
			return
		}
		if again := m.appendBinary(nil); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, which encodes back as %x", b, again)
		}
	})
}

// nopStore takes everything.
type nopStore struct{}

func (nopStore) AppendMarked(context.Context, []event.Event, string, []byte) error { return nil }
func (nopStore) Mark(context.Context, string) ([]byte, error)                      { return nil, nil }

// FuzzProcess feeds the collector's reading of a message from sensor s1,
// the production path from the stream to the batch: it must never panic,
// every event it takes must be valid and s1's, and every record either
// taken, refused or known stored.
func FuzzProcess(f *testing.F) {
	e := &event.Event{Sensor: "s1", Protocol: event.ProtoDNS, SrcIP: netip.MustParseAddr("192.0.2.1"), Time: time.Unix(1700000000, 0)}
	rec := event.AppendBinary(nil, e)
	good := (&bus.Batch{Sensor: "s1", Spool: spool.ID{1}, Records: []bus.Record{
		{End: spool.Pos{Segment: 1, Offset: 50}, Data: rec},
		{End: spool.Pos{Segment: 1, Offset: 90}, Data: []byte("junk")},
	}}).AppendBinary(nil)
	f.Add(good)
	f.Add((&bus.Batch{Sensor: "s2", Records: []bus.Record{{End: spool.Pos{Segment: 1}, Data: rec}}}).AppendBinary(nil))
	f.Add([]byte("TDEB\x01"))
	c, err := New(Config{JS: nilJS{}, Store: nopStore{}, Sensors: []string{"s1"}, MaxMessageBytes: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &run{c: c, marks: newMarks()}
		before := c.Stats()
		r.process(bus.EventsSubject("s1"), b)
		after := c.Stats()
		for i := range r.events {
			if err := r.events[i].Validate(); err != nil || r.events[i].Sensor != "s1" {
				t.Fatalf("took %+v (%v)", r.events[i], err)
			}
		}
		batch, err := bus.DecodeBatch(b)
		if err != nil || len(b) > c.cfg.MaxMessageBytes {
			if len(r.events) != 0 || r.dirty {
				t.Fatal("took records of a message it refused")
			}
			return
		}
		var rejected uint64
		for k, v := range after.Rejected {
			rejected += v - before.Rejected[k]
		}
		if batch.Sensor != "s1" {
			return
		}
		if n := uint64(len(r.events)) + rejected + after.Duplicates - before.Duplicates; n != uint64(len(batch.Records)) {
			t.Fatalf("%d records, %d taken, refused or known", len(batch.Records), n)
		}
	})
}

// nilJS is a JetStream context that is never used.
type nilJS struct{ jetstream.JetStream }
