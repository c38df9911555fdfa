package servedsync

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/servedset"
)

// TestEndToEnd: a central with a set and rules, a sensor that starts
// empty; the sensor gets the full form, then every change, then the new
// rules, with the sensor's permissions only; its set is kept on disk.
func TestEndToEnd(t *testing.T) {
	ts := newTestServer(t)
	cc, sc := connect(t, ts, "central"), connect(t, ts, "s1")
	var rules atomic.Pointer[[]byte]
	r1 := []byte("rules: []\n# version 1\n")
	rules.Store(&r1)
	cen := startCentral(t, cc, fullSnapshot(t, 1000, 500), PublisherConfig{
		Rules:      func() []byte { return *rules.Load() },
		RulesEvery: 20 * time.Millisecond,
	})
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	var reloads atomic.Int32
	reg := prometheus.NewRegistry()
	sen := startSensor(t, sc, nil, FollowerConfig{Dir: dir, RulesFile: rulesFile, Name: "s1",
		DefaultRules: []byte("# shipped\n"), OnRules: func() { reloads.Add(1) }, Registerer: reg})

	waitSame(t, 10*time.Second, cen, sen)
	for range 20 {
		cen.change()
	}
	waitSame(t, 5*time.Second, cen, sen)
	if got := sen.set.Load().Len(); got != 502 {
		t.Errorf("sensor serves %d zones, want 502", got)
	}
	if _, ok := sen.set.Load().Has("new19.example"); !ok {
		t.Error("the last zone put is not served")
	}
	if _, ok := sen.set.Load().Has("new17.example"); ok {
		t.Error("a zone removed is still served")
	}
	if n := testutil.ToFloat64(sen.f.m.deltas); n != 20 {
		t.Errorf("deltas applied: %v, want 20 (one per change, no full form after the first)", n)
	}
	if n := testutil.ToFloat64(sen.f.m.fulls); n != 1 {
		t.Errorf("full forms loaded: %v, want 1", n)
	}

	waitFor(t, 5*time.Second, "the rules file", func() bool {
		b, _ := os.ReadFile(rulesFile)
		return bytes.Equal(b, r1) && reloads.Load() == 1
	})
	r2 := []byte("rules: []\n# version 2\n")
	rules.Store(&r2)
	waitFor(t, 5*time.Second, "the new rules file", func() bool {
		b, _ := os.ReadFile(rulesFile)
		return bytes.Equal(b, r2) && reloads.Load() == 2
	})
	var none []byte
	rules.Store(&none) // back to the shipped rules
	waitFor(t, 5*time.Second, "the shipped rules", func() bool {
		b, _ := os.ReadFile(rulesFile)
		return string(b) == "# shipped\n" && reloads.Load() == 3
	})

	st := sen.f.Status()
	if st.Serial != cen.set.Load().Serial() || !st.Connected || time.Since(st.Applied) > time.Minute {
		t.Errorf("status %+v", st)
	}
	sen.stop()
	disk := servedset.NewSet()
	if serial, err := LoadDisk(dir, disk); err != nil || serial != cen.set.Load().Serial() || !same(disk.Load(), cen.set.Load()) {
		t.Errorf("LoadDisk: serial %d, %v; the file is not the set", serial, err)
	}
	if errs := sc.permissionErrors(); len(errs) > 0 {
		t.Errorf("the sensor met permissions violations: %q", errs)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Errorf("metrics: %d, %v", n, err)
	}
}

// TestLatency measures the time from a change on the central to the
// change in the sensor's set, over many changes: the target is 2 s.
func TestLatency(t *testing.T) {
	ts := newTestServer(t)
	cc, sc := connect(t, ts, "central"), connect(t, ts, "s1")
	cen := startCentral(t, cc, fullSnapshot(t, 1000, 10_000), PublisherConfig{})
	sen := startSensor(t, sc, nil, FollowerConfig{})
	waitSame(t, 10*time.Second, cen, sen)

	arrived := make(chan uint32, 16)
	cancel := sen.set.Subscribe(func(u servedset.Update) { arrived <- u.New.Serial() })
	defer cancel()
	const n = 100
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		d := cen.change()
		select {
		case s := <-arrived:
			if s != d.To {
				t.Fatalf("sensor moved to %d, want %d", s, d.To)
			}
			lat = append(lat, time.Since(t0))
		case <-time.After(2 * time.Second):
			t.Fatalf("change %d→%d not on the sensor within 2 s", d.From, d.To)
		}
	}
	slices.Sort(lat)
	t.Logf("change to sensor, %d changes of a 10,000-zone set: median %v, p99 %v, max %v",
		n, lat[n/2], lat[n*99/100-1], lat[n-1])
	waitSame(t, time.Second, cen, sen)
}

// TestRestartFromDiskWithNATSDown: a sensor that restarts while NATS is
// away answers from the set it kept on disk, and catches up when NATS is
// back.
func TestRestartFromDiskWithNATSDown(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, PublisherConfig{}, FollowerConfig{Dir: dir, PersistDelay: 10 * time.Millisecond})
	ts, cen, sen := r.ts, r.cen, r.sen
	waitFor(t, 5*time.Second, "the set on disk", func() bool {
		s, err := servedset.ReadFile(filepath.Join(dir, DiskFile))
		return err == nil && s.Serial() == cen.set.Load().Serial()
	})
	sen.stop()
	ts.stop()

	// The sensor starts again: NATS is down.
	set := servedset.NewSet()
	serial, err := LoadDisk(dir, set)
	if err != nil || serial != 1001 {
		t.Fatalf("LoadDisk: %d, %v", serial, err)
	}
	if _, caseName, _, ok := set.Zone("www.d0000007.example"); !ok || caseName != "case-b" {
		t.Fatal("the set from disk does not answer")
	}
	sc2 := connect(t, ts, "s1")
	sen2 := startSensor(t, sc2, set, FollowerConfig{Dir: dir, CheckEvery: 100 * time.Millisecond})
	if st := sen2.f.Status(); st.Connected || st.Serial != 1001 {
		t.Errorf("status with NATS down: %+v", st)
	}

	ts.start()
	cen.change()
	cen.change()
	waitSame(t, 15*time.Second, cen, sen2)
	if n := testutil.ToFloat64(sen2.f.m.fulls); n != 0 {
		t.Errorf("the restarted sensor loaded %v full forms; the deltas were enough", n)
	}
	if st := sen2.f.Status(); !st.Connected || st.Serial != 1003 {
		t.Errorf("status: %+v", st)
	}
}

// TestLoadDiskDamaged: a damaged file is an error naming it, and leaves
// the set empty.
func TestLoadDiskDamaged(t *testing.T) {
	dir := t.TempDir()
	set := servedset.NewSet()
	if serial, err := LoadDisk(dir, set); err != nil || serial != 0 {
		t.Fatalf("no file: %d, %v", serial, err)
	}
	path := filepath.Join(dir, DiskFile)
	if err := servedset.WriteFile(path, fullSnapshot(t, 7, 10)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 0x40
	os.WriteFile(path, b, 0o600)
	_, err := LoadDisk(dir, set)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("damaged file: %v, want an error naming %s", err, path)
	}
	if set.Load().Serial() != 0 || set.Load().Len() != 0 {
		t.Error("the set changed")
	}
}

// TestGapRecovery: deltas deleted from the stream while the sensor was
// away. The sensor keeps its set (it never goes back) until the central's
// next full form, then reaches the central's set.
func TestGapRecovery(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, PublisherConfig{FullEvery: 8}, FollowerConfig{Dir: dir, PersistDelay: 10 * time.Millisecond})
	ts, cc, cen, sen := r.ts, r.cc, r.cen, r.sen
	for range 2 {
		cen.change()
	}
	waitSame(t, 10*time.Second, cen, sen)
	sen.stop()
	for range 4 {
		cen.change()
	}
	// Delete two of the four deltas the sensor has not seen, once they are
	// all in the stream.
	ctx := context.Background()
	st, err := cc.js.Stream(ctx, bus.ServedStream)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	waitFor(t, 5*time.Second, "the deltas", func() bool {
		m, err := st.GetLastMsgForSubject(ctx, bus.ServedDeltaSubject)
		if err != nil {
			return false
		}
		last = m.Sequence
		_, to, _ := deltaSerials(m.Header)
		return to == cen.set.Load().Serial()
	})
	for _, seq := range []uint64{last - 2, last - 1} {
		if err := st.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}

	set := servedset.NewSet()
	if _, err := LoadDisk(dir, set); err != nil {
		t.Fatal(err)
	}
	var serials []uint32
	var mu sync.Mutex
	cancel := set.Subscribe(func(u servedset.Update) {
		mu.Lock()
		serials = append(serials, u.New.Serial())
		mu.Unlock()
	})
	defer cancel()
	sen2 := startSensor(t, connect(t, ts, "s1"), set, FollowerConfig{Dir: dir, CheckEvery: 100 * time.Millisecond})
	waitFor(t, 10*time.Second, "the sensor to meet the gap", func() bool {
		return testutil.ToFloat64(sen2.f.m.errors.WithLabelValues("gap")) > 0
	})
	// It applied the one delta that follows its set (1003→1004), then met
	// the gap, and the full form of serial 1000 does not lead past it.
	if got := set.Load().Serial(); got != 1004 {
		t.Errorf("the sensor is at serial %d with deltas missing, want 1004", got)
	}
	// The central's next full form (FullEvery 8) brings the sensor on.
	cen.change()
	waitSame(t, 10*time.Second, cen, sen2)
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(serials); i++ {
		if servedset.SerialLess(serials[i], serials[i-1]) {
			t.Errorf("the sensor's set went back: %v", serials)
		}
	}
}

// TestFarBehind: the stream keeps 10 deltas; a sensor away for 30 changes
// gets the full form, then follows the deltas again.
func TestFarBehind(t *testing.T) {
	ts := newTestServer(t)
	cc, sc := connect(t, ts, "central"), connect(t, ts, "s1")
	cen := startCentral(t, cc, fullSnapshot(t, 1000, 100), PublisherConfig{StreamMaxMsgs: 10, FullEvery: 8})
	dir := t.TempDir()
	sen := startSensor(t, sc, nil, FollowerConfig{Dir: dir, PersistDelay: 10 * time.Millisecond})
	waitSame(t, 10*time.Second, cen, sen)
	sen.stop()
	for range 30 {
		cen.change()
	}
	// FullEvery is 5 here (half the stream's messages): the 30th change
	// is a full form.
	obs, err := cc.js.ObjectStore(context.Background(), bus.ServedBucket)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the last full form", func() bool {
		info, err := obs.GetInfo(context.Background(), FullObject)
		return err == nil && info.Metadata[metaSerial] == "1030"
	})
	set := servedset.NewSet()
	if _, err := LoadDisk(dir, set); err != nil {
		t.Fatal(err)
	}
	sen2 := startSensor(t, connect(t, ts, "s1"), set, FollowerConfig{Dir: dir})
	waitSame(t, 10*time.Second, cen, sen2)
	if n := testutil.ToFloat64(sen2.f.m.fulls); n != 1 {
		t.Errorf("full forms loaded: %v, want 1", n)
	}
	cen.change()
	waitSame(t, 5*time.Second, cen, sen2)
}

// TestReplace: the central replaces its set (a reload of the registry);
// no delta leads there, and the sensor takes the full form.
func TestReplace(t *testing.T) {
	r := newRig(t, PublisherConfig{}, FollowerConfig{})
	cen, sen := r.cen, r.sen
	cen.set.Replace(fullSnapshot(t, 5000, 40))
	waitSame(t, 5*time.Second, cen, sen)
	cen.change()
	waitSame(t, 5*time.Second, cen, sen)
	if n := testutil.ToFloat64(sen.f.m.fulls); n != 2 {
		t.Errorf("full forms loaded: %v, want 2", n)
	}
}

// TestGarbage: messages on the delta subject that are not deltas, or
// deltas that do not apply, are counted and do not stop the sensor; a
// delta that does not apply is answered with the full form.
func TestGarbage(t *testing.T) {
	r := newRig(t, PublisherConfig{}, FollowerConfig{})
	cc, cen, sen := r.cc, r.cen, r.sen
	ctx := context.Background()
	pub := func(data []byte, h nats.Header) {
		t.Helper()
		if _, err := cc.js.PublishMsg(ctx, &nats.Msg{Subject: bus.ServedDeltaSubject, Data: data, Header: h}); err != nil {
			t.Fatal(err)
		}
	}
	pub([]byte("garbage"), nil)
	pub(nil, nats.Header{HeaderFrom: {"1001"}, HeaderTo: {"1002"}})
	full, _ := fullDelta(1002, 3).MarshalBinary()
	pub(full, nil)
	cur := cen.set.Load().Serial()
	// A delta that follows but does not apply: it removes a zone not served.
	bad, _ := (&servedset.Delta{From: cur, To: cur + 1, Remove: []string{"not-served.example"}}).MarshalBinary()
	pub(bad, nil)
	waitFor(t, 5*time.Second, "the errors counted", func() bool {
		return testutil.ToFloat64(sen.f.m.errors.WithLabelValues("delta_decode")) == 3 &&
			testutil.ToFloat64(sen.f.m.errors.WithLabelValues("delta_apply")) == 1 &&
			testutil.ToFloat64(sen.f.m.fulls) == 2
	})
	if !same(cen.set.Load(), sen.set.Load()) {
		t.Error("garbage changed the sensor's set")
	}
	for range 3 {
		cen.change()
	}
	waitSame(t, 5*time.Second, cen, sen)
	if n := testutil.ToFloat64(sen.f.m.fulls); n != 2 {
		t.Errorf("full forms loaded: %v, want 2 (the first, and the answer to the delta that did not apply)", n)
	}
}

// TestPublisherWaitsForNATS: the central starts with NATS down and
// changes its set meanwhile, past its queue: once NATS is up, one full
// form carries it all.
func TestPublisherWaitsForNATS(t *testing.T) {
	ts := newTestServer(t)
	ts.stop()
	cc := connect(t, ts, "central")
	cen := startCentral(t, cc, fullSnapshot(t, 1000, 100), PublisherConfig{QueueLen: 5})
	waitFor(t, 5*time.Second, "the publisher to queue the set", func() bool { return testutil.ToFloat64(cen.pub.m.queue) == 1 })
	for range 20 {
		cen.change()
	}
	if n := testutil.ToFloat64(cen.pub.m.overflows); n == 0 {
		t.Error("the queue did not overflow")
	}
	ts.start()
	sen := startSensor(t, connect(t, ts, "s1"), nil, FollowerConfig{})
	waitSame(t, 15*time.Second, cen, sen)
	cen.change()
	waitSame(t, 5*time.Second, cen, sen)
}

// TestBigDelta: a delta larger than the server's maximum payload goes as
// a full form.
func TestBigDelta(t *testing.T) {
	ts := newTestServer(t)
	cc, sc := connect(t, ts, "central"), connect(t, ts, "s1")
	cen := startCentral(t, cc, fullSnapshot(t, 1000, 10), PublisherConfig{})
	sen := startSensor(t, sc, nil, FollowerConfig{})
	waitSame(t, 10*time.Second, cen, sen)
	big := fullDelta(0, 120_000) // ~2 MB of names
	d := &servedset.Delta{From: 1000, To: 1001, Put: big.Put}
	if err := cen.set.Apply(d); err != nil {
		t.Fatal(err)
	}
	waitSame(t, 15*time.Second, cen, sen)
	if n := testutil.ToFloat64(cen.pub.m.fulls); n != 2 {
		t.Errorf("full forms put: %v, want 2", n)
	}
	cen.change()
	waitSame(t, 5*time.Second, cen, sen)
}

// TestServerRestart: the server restarts under a running sensor and
// central; both carry on.
func TestServerRestart(t *testing.T) {
	r := newRig(t, PublisherConfig{}, FollowerConfig{CheckEvery: 200 * time.Millisecond})
	ts, sc, cen, sen := r.ts, r.sc, r.cen, r.sen
	ts.stop()
	cen.change()
	waitFor(t, 5*time.Second, "the sensor to see NATS away", func() bool { return !sen.f.Status().Connected })
	ts.start()
	cen.change()
	waitSame(t, 20*time.Second, cen, sen)
	if errs := sc.permissionErrors(); len(errs) > 0 {
		t.Errorf("the sensor met permissions violations: %q", errs)
	}
}

func TestParseMeta(t *testing.T) {
	good := `{"name":"full","nuid":"AbC123","size":10,"chunks":1,"digest":"` + digestOf([]byte("0123456789")) +
		`","metadata":{"serial":"7","seq":"3","zones":"2"}}`
	o, err := parseMeta([]byte(good))
	if err != nil || o.Serial != 7 || o.Seq != 3 || o.Zones != 2 || o.NUID != "AbC123" {
		t.Fatalf("%+v %v", o, err)
	}
	for name, bad := range map[string]string{
		"not json":    `{`,
		"nuid dot":    strings.Replace(good, "AbC123", "a.>", 1),
		"no serial":   strings.Replace(good, `"serial":"7"`, `"serial":"x"`, 1),
		"serial 0":    strings.Replace(good, `"serial":"7"`, `"serial":"0"`, 1),
		"chunks":      strings.Replace(good, `"chunks":1`, `"chunks":0`, 1),
		"digest":      strings.Replace(good, "SHA-256=", "MD5=", 1),
		"huge object": strings.Replace(good, `"size":10`, `"size":10000000000`, 1),
	} {
		if _, err := parseMeta([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if o, err := parseMeta([]byte(`{"name":"rules","deleted":true}`)); err != nil || !o.Deleted {
		t.Errorf("deleted: %+v %v", o, err)
	}
}

// TestFollowerBeforeCentral: a sensor that starts before the central made
// the stream and the bucket waits for them (it may not make them).
func TestFollowerBeforeCentral(t *testing.T) {
	ts := newTestServer(t)
	sc := connect(t, ts, "s1")
	sen := startSensor(t, sc, nil, FollowerConfig{})
	waitFor(t, 5*time.Second, "the follower to look for the bucket", func() bool {
		return testutil.ToFloat64(sen.f.m.errors.WithLabelValues("nats")) > 0
	})
	cen := startCentral(t, connect(t, ts, "central"), fullSnapshot(t, 1000, 100), PublisherConfig{})
	cen.change()
	waitSame(t, 15*time.Second, cen, sen)
	if errs := sc.permissionErrors(); len(errs) > 0 {
		t.Errorf("the sensor met permissions violations: %q", errs)
	}
}

// TestStreamRecreated: the delta stream is deleted under a running
// central and sensor; the central makes it again, the sensor binds again.
func TestStreamRecreated(t *testing.T) {
	r := newRig(t, PublisherConfig{}, FollowerConfig{CheckEvery: 100 * time.Millisecond})
	cc, cen, sen := r.cc, r.cen, r.sen
	for range 4 {
		cen.change()
	}
	waitSame(t, 10*time.Second, cen, sen)
	if err := cc.js.DeleteStream(context.Background(), bus.ServedStream); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		cen.change()
	}
	waitSame(t, 20*time.Second, cen, sen)
	cen.change()
	waitSame(t, 5*time.Second, cen, sen)
}
