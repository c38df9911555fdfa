package bus

import (
	"bytes"
	"testing"
)

// FuzzDecodeBatch feeds the central's decoder of what a sensor publishes:
// it must never panic, and what it accepts must encode back to the same
// bytes.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(sampleBatch().AppendBinary(nil))
	f.Add((&Batch{Sensor: "a"}).AppendBinary(nil))
	f.Add([]byte("TDEB\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeBatch(b)
		if err != nil {
			return
		}
		if again := got.AppendBinary(nil); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, which encodes back as %x", b, again)
		}
	})
}

// FuzzDecodeHeartbeat feeds the central's decoder of heartbeats.
func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add([]byte(`{"sensor":"s1","backlog_bytes":3}`))
	f.Add([]byte(`{"sensor":"s1","backlog_bytes":-3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeartbeat("takedown.sensors.s1", b)
		if err == nil && (h.Sensor != "s1" || h.BacklogBytes < 0) {
			t.Fatalf("accepted %q as %+v", b, h)
		}
	})
}
