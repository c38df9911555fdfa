// Package cpuload tells whether the machine's CPUs are saturated, from
// /proc/stat. The pipeline's store writer asks it before each batch: while
// the sinks and the load they answer use every core, the writer waits and
// the disk spool holds the events, so that answering never competes with
// storing.
package cpuload

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// Sampler samples the host's CPU use at an interval.
type Sampler struct {
	busy atomic.Uint32 // per mille of the last interval
	ok   atomic.Bool   // /proc/stat could be read
	sat  atomic.Bool
}

// Saturation thresholds, with hysteresis so that a writer that waits
// (lowering the load) does not start again at once: saturated from 85 %
// busy on, until the load falls below 70 %.
const (
	enterSaturated = 850
	leaveSaturated = 700
)

// Start samples every interval until ctx ends.
func Start(ctx context.Context, interval time.Duration) *Sampler {
	s := &Sampler{}
	prevBusy, prevTotal, ok := read()
	s.ok.Store(ok)
	if !ok {
		return s
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			b, tot, ok := read()
			if !ok || tot <= prevTotal {
				continue
			}
			busy := uint32(1000 * (b - prevBusy) / (tot - prevTotal))
			s.busy.Store(busy)
			switch {
			case busy >= enterSaturated:
				s.sat.Store(true)
			case busy < leaveSaturated:
				s.sat.Store(false)
			}
			prevBusy, prevTotal = b, tot
		}
	}()
	return s
}

// Busy returns the share of CPU time in use over the last interval, 0 to 1;
// 0 where /proc/stat is not available.
func (s *Sampler) Busy() float64 { return float64(s.busy.Load()) / 1000 }

// Saturated reports whether the CPUs are saturated: 85 % busy or more,
// and not yet below 70 % since.
func (s *Sampler) Saturated() bool { return s.sat.Load() }

// read returns the busy and total jiffies of all CPUs.
func read() (busy, total uint64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, false
	}
	fields := bytes.Fields(sc.Bytes())
	if len(fields) < 5 || string(fields[0]) != "cpu" {
		return 0, 0, false
	}
	// user nice system idle iowait irq softirq steal ...
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i >= 8 { // guest and guest_nice are counted in user already
			break
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, true
}
