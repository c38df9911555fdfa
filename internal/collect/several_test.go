package collect_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/collect"
	"github.com/takedown-project/takedown/internal/event"
)

// TestSeveralCentrals runs two named centrals on one stream and one store,
// at once: each takes the events and heartbeats of its own sensors only,
// keeps its own mark, and a crash of one between its commit and its
// acknowledgements doubles nothing.
func TestSeveralCentrals(t *testing.T) {
	r := newRig(t)
	s1, s2, s3 := newSensor("s1", 1), newSensor("s2", 2), newSensor("s3", 3)
	var want []event.Event
	want = append(want, r.publishEvents(s1, 300, 10)...)
	want = append(want, r.publishEvents(s2, 200, 25)...)
	want = append(want, r.publishEvents(s3, 250, 5)...)

	cfgA := r.config("s1", "s2")
	cfgA.Name, cfgA.BatchSize = "a", 40
	a := r.collector(cfgA)
	var commits atomic.Int32
	a.SetAfterCommit(func() bool { return commits.Add(1) == 2 }) // dies after its second commit
	cfgB := r.config("s3")
	cfgB.Name = "b"
	b := r.collector(cfgB)
	stopA, stopB := start(t, a), start(t, b)
	waitFor(t, "central a's second commit", func() bool { return commits.Load() >= 2 })
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	cfgA.Registerer = prometheus.NewRegistry()
	a = r.collector(cfgA) // a again, after its "crash"
	stopA = start(t, a)
	// More while both run, and every sensor's heartbeat.
	want = append(want, r.publishEvents(s3, 40, 8)...)
	want = append(want, r.publishEvents(s1, 40, 8)...)
	for _, id := range []string{"s1", "s2", "s3"} {
		hb := &bus.Heartbeat{Sensor: id, Time: time.Now().UTC().Truncate(time.Second)}
		if err := r.nc.Publish(bus.HeartbeatSubject(id), hb.Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 })
	waitFor(t, "every heartbeat", func() bool {
		as, bs := a.Sensors(), b.Sensors()
		return len(as) == 2 && as[0].Heartbeat != nil && as[1].Heartbeat != nil && len(bs) == 1 && bs[0].Heartbeat != nil
	})
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	r.checkStored(want)
	for name, c := range map[string]*collect.Collector{"a": a, "b": b} {
		if rej := nonZero(c.Stats().Rejected); len(rej) > 0 {
			t.Errorf("central %s refused %v: it saw what is another's", name, rej)
		}
	}
	if a.Stats().Duplicates == 0 {
		t.Error("central a found no duplicates after its crash: the test did not test")
	}
	ctx := context.Background()
	for _, src := range []string{collect.MarkSourceOf("a"), collect.MarkSourceOf("b")} {
		if m, err := r.st.Mark(ctx, src); err != nil || m == nil {
			t.Errorf("no mark of %s (%v)", src, err)
		}
	}
	if m, _ := r.st.Mark(ctx, collect.MarkSource); m != nil {
		t.Errorf("the unnamed central's mark was written by named ones")
	}
}

func TestNamedCentralConfig(t *testing.T) {
	r := newRig(t)
	for _, tc := range []struct {
		name    string
		sensors []string
		want    string
	}{
		{"Bad_Name", []string{"s1"}, "not a DNS label"},
		{"c1", nil, "names no sensors"},
	} {
		cfg := r.config(tc.sensors...)
		cfg.Name = tc.name
		if _, err := collect.New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("name %q, sensors %v: err %v, want one saying %q", tc.name, tc.sensors, err, tc.want)
		}
	}
}
