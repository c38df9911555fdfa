package cpuload

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestSaturationSeen(t *testing.T) {
	if _, _, ok := read(); !ok {
		t.Fatal("/proc/stat unreadable")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := Start(ctx, 50*time.Millisecond)
	// Keep every CPU busy until the sampler sees it, for at most 10 s.
	var stop atomic.Bool
	for range runtime.NumCPU() {
		go func() {
			for !stop.Load() {
			}
		}()
	}
	defer stop.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for !s.Saturated() {
		if time.Now().After(deadline) {
			t.Fatalf("busy %.2f with every CPU spinning", s.Busy())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
