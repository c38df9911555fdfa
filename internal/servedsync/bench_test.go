package servedsync

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/takedown-project/takedown/internal/servedset"
)

// BenchmarkFollower measures, on a set of a million zones: how long a
// fresh follower takes from its start to the central's set (bind, fetch of
// the full form, decode, replace: "full-load"), and how long a change of
// one zone takes from the central's Apply to the sensor's set ("delta").
// It also reports how long the publisher took to put the full form.
func BenchmarkFollower(b *testing.B) {
	const n = 1_000_000
	ts := newTestServer(b)
	cc := connect(b, ts, "central")
	cen := startCentral(b, cc, fullSnapshot(b, 1000, n), PublisherConfig{})
	fullPut := testutil.ToFloat64(cen.pub.m.fullSeconds)
	fullBytes := testutil.ToFloat64(cen.pub.m.fullBytes)
	serial := cen.set.Load().Serial()

	b.Run(fmt.Sprintf("zones=%d/full-load", n), func(b *testing.B) {
		for b.Loop() {
			sen := startSensor(b, connect(b, ts, "s1"), nil, FollowerConfig{})
			waitFor(b, time.Minute, "the full form", func() bool { return sen.set.Load().Serial() == serial })
			b.StopTimer()
			sen.stop()
			b.StartTimer()
		}
		b.ReportMetric(fullPut, "full-put-s")
		b.ReportMetric(fullBytes/float64(n), "full-B/zone")
	})

	b.Run(fmt.Sprintf("zones=%d/delta", n), func(b *testing.B) {
		sen := startSensor(b, connect(b, ts, "s1"), nil, FollowerConfig{})
		waitFor(b, time.Minute, "the full form", func() bool { return sen.set.Load().Serial() == cen.set.Load().Serial() })
		arrived := make(chan uint32, 1)
		cancel := sen.set.Subscribe(func(u servedset.Update) { arrived <- u.New.Serial() })
		defer cancel()
		var worst time.Duration
		for b.Loop() {
			t0 := time.Now()
			d := cen.change()
			if got := <-arrived; got != d.To {
				b.Fatalf("sensor at %d, want %d", got, d.To)
			}
			worst = max(worst, time.Since(t0))
		}
		b.ReportMetric(worst.Seconds()*1000, "max-ms")
	})
}
