package rawsink

import (
	"net/netip"
	"strconv"
	"testing"

	"github.com/takedown-project/takedown/internal/event"
)

type discard struct{}

func (discard) Record(*event.Event) {}

// BenchmarkDatagram maps one UDP datagram to a classified event.
func BenchmarkDatagram(b *testing.B) {
	for _, size := range []int{64, 1200} {
		b.Run("size="+strconv.Itoa(size), func(b *testing.B) {
			s, err := New(Config{Sensor: "bench", Recorder: discard{}, Classifier: testClassifier(b)})
			if err != nil {
				b.Fatal(err)
			}
			p := payload("BEACON", size)
			src := netip.MustParseAddrPort("192.0.2.1:4000")
			dst := netip.MustParseAddrPort("198.51.100.1:9999")
			var e event.Event
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				s.datagram(nil, &e, p, src, dst)
			}
		})
	}
}
