package spool

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// benchConfig: a spool big enough not to fill during a benchmark.
func benchConfig(b *testing.B) Config {
	return Config{Dir: b.TempDir(), MaxBytes: 1 << 40, MaxBufferBytes: 256 << 20}
}

// BenchmarkAppend appends 120-byte records, the size of an encoded DNS
// event. Drops (the disk falling behind the buffer) are reported.
func BenchmarkAppend(b *testing.B) {
	rec := make([]byte, 120)
	for i := range rec {
		rec[i] = byte(i)
	}
	report := func(b *testing.B, s *Spool) {
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		st := s.Stats()
		b.ReportMetric(float64(st.Dropped)/float64(b.N), "drops/op")
		b.SetBytes(int64(len(rec)))
	}
	b.Run("size=120/writers=1", func(b *testing.B) {
		s, err := Open(benchConfig(b))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Append(rec); err != nil && !errors.Is(err, ErrFull) {
				b.Fatal(err)
			}
		}
		report(b, s)
	})
	b.Run("size=120/writers=parallel", func(b *testing.B) {
		s, err := Open(benchConfig(b))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Append(rec); err != nil && !errors.Is(err, ErrFull) {
					b.Error(err)
					return
				}
			}
		})
		report(b, s)
	})
}

// BenchmarkRead reads back records written before the timer starts.
func BenchmarkRead(b *testing.B) {
	for _, size := range []int{120, 1000} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			s, err := Open(benchConfig(b))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rec := make([]byte, size)
			for range b.N {
				err := s.Append(rec)
				if errors.Is(err, ErrFull) { // the buffer; the disk is behind
					err = s.Flush()
					if err == nil {
						err = s.Append(rec)
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
			r, err := s.NewReader(Pos{})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, _, err := r.Next(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
