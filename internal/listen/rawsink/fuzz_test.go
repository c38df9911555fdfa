package rawsink

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/takedown-project/takedown/internal/event"
)

// FuzzRecord maps a fuzzed payload to a TCP and a UDP event: never a
// panic; size, hash and head always match the payload; the event is valid.
func FuzzRecord(f *testing.F) {
	f.Add([]byte("BEACON hello"), uint16(9999))
	f.Add([]byte{}, uint16(0))
	f.Add(bytes.Repeat([]byte{0xff}, 5000), uint16(53))
	f.Add([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), uint16(443))
	rec := &memRecorder{}
	s, err := New(Config{Sensor: "fuzz", Recorder: rec, Classifier: testClassifier(f), UDPReply: []byte("x")})
	if err != nil {
		f.Fatal(err)
	}
	src := netip.MustParseAddrPort("192.0.2.1:4000")
	f.Fuzz(func(t *testing.T, p []byte, port uint16) {
		dst := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), port)
		rec.events = rec.events[:0]
		var e event.Event
		s.datagram(nil, &e, p, src, dst)
		n := min(len(p), s.cfg.MaxBytes)
		s.fill(&e, event.TransportTCP, src, dst, p[:n], int64(n))
		s.record(&e, p[:n])
		if len(rec.events) != 2 {
			t.Fatalf("%d events", len(rec.events))
		}
		for i, got := range rec.events {
			whole := p
			if i == 1 {
				whole = p[:n]
			}
			if got.Bytes != int64(len(whole)) || got.DstPort != port || got.Family == "" {
				t.Fatalf("event %d: bytes %d port %d family %q", i, got.Bytes, got.DstPort, got.Family)
			}
			if len(whole) > 0 && (got.PayloadSHA256 != sum(whole) || !bytes.Equal(got.PayloadHead, whole[:min(len(whole), DefaultHeadBytes)])) {
				t.Fatalf("event %d: hash or head wrong", i)
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
			var buf []byte
			buf = event.AppendBinary(buf, &got)
			var back event.Event
			if err := new(event.Decoder).Decode(buf, &back); err != nil {
				t.Fatal(err)
			}
		}
	})
}
