package servedset

import (
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkApply measures one step of a million-zone set: one zone removed
// or added in turn (what a release or a restraint of one domain costs), and
// reports the heap the set holds, names included, and how long the full
// form took to apply.
func BenchmarkApply(b *testing.B) {
	const n = 1_000_000
	before := heapInUse()
	full := bigFull(n) // its names are the set's
	start := time.Now()
	s := mustApply(b, Empty(), full)
	load := time.Since(start)
	full = nil
	heap := heapInUse() - before
	one := []string{"d0000007x.example"}
	b.Run(fmt.Sprintf("zones=%d/change=1", n), func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			d := &Delta{From: s.Serial(), To: s.Serial() + 1}
			if i%2 == 0 {
				d.Remove = one
			} else {
				d.Put = []Zone{{Name: one[0], Case: "case-7"}}
			}
			s = mustApply(b, s, d)
		}
		b.ReportMetric(float64(heap)/float64(n), "heap-B/zone")
		b.ReportMetric(load.Seconds(), "full-s")
	})
}

// BenchmarkLookup measures the lookup of a name below a zone of a
// million-zone set (the DNS answer's and the listeners' attribution).
func BenchmarkLookup(b *testing.B) {
	s := mustApply(b, Empty(), bigFull(1_000_000))
	for _, q := range []string{"bot-1234.d0999999x.example.", "www.notseized.example."} {
		name := []byte(q)
		b.Run("zones=1000000/q="+q[:3], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Lookup(name)
			}
		})
	}
}

// BenchmarkWriteTo measures writing the full form of a million zones.
func BenchmarkWriteTo(b *testing.B) {
	s := mustApply(b, Empty(), bigFull(1_000_000))
	b.ReportAllocs()
	for b.Loop() {
		n, err := s.WriteTo(io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(n)
	}
}
