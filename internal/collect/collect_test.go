package collect_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/collect"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/promtest"
	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/spool"
)

// publishEvents records n events of s and publishes them in batches of
// per; it returns the events as the store should keep them.
func (r *rig) publishEvents(s *sensor, n, per int) []event.Event {
	r.t.Helper()
	var want []event.Event
	var recs []bus.Record
	for i := range n {
		e := s.event(s.n)
		recs = append(recs, s.record(e))
		want = append(want, stored(e))
		if len(recs) == per || i == n-1 {
			r.publish(s, recs...)
			recs = nil
		}
	}
	return want
}

func TestStoresEveryEventOnceWithEveryField(t *testing.T) {
	r := newRig(t)
	s1, s2 := newSensor("s1", 1), newSensor("fra-02", 2)
	var want []event.Event
	want = append(want, r.publishEvents(s1, 300, 7)...)
	want = append(want, r.publishEvents(s2, 200, 64)...)
	cfg := r.config("s1", "fra-02", "s3")
	obs := cfg.Observer.(*counter)
	c := r.collector(cfg)
	stop := start(t, c)
	waitFor(t, "500 events stored", func() bool { return r.count() >= 500 })
	// More while it runs, and a heartbeat.
	want = append(want, r.publishEvents(s1, 50, 50)...)
	hb := &bus.Heartbeat{Sensor: "s1", Time: time.Now().UTC().Truncate(time.Second), BacklogBytes: 123, ServedSerial: 9}
	if err := r.nc.Publish(bus.HeartbeatSubject("s1"), hb.Marshal()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "550 events stored", func() bool { return r.count() >= 550 })
	waitFor(t, "the heartbeat", func() bool { return c.Sensors()[1].Heartbeat != nil })
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 })
	waitFor(t, "pending 0", func() bool { return c.Stats().Pending == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	r.checkStored(want)
	if obs.n != 550 {
		t.Errorf("observer saw %d events", obs.n)
	}
	st := c.Stats()
	if st.Stored != 550 || st.Duplicates != 0 || len(nonZero(st.Rejected)) != 0 || st.LastError != "" {
		t.Errorf("stats %+v", st)
	}
	sensors := c.Sensors()
	if len(sensors) != 3 || sensors[0].Sensor != "fra-02" || sensors[1].Sensor != "s1" || sensors[2].Sensor != "s3" {
		t.Fatalf("sensors %+v", sensors)
	}
	if s := sensors[1]; s.Stored != 350 || s.Heartbeat.BacklogBytes != 123 || s.Heartbeat.ServedSerial != 9 ||
		s.LastSeen.IsZero() || s.EventsPerSecond <= 0 || s.Spool != s1.spool || s.Position != s1.pos {
		t.Errorf("s1 %+v", s)
	}
	if s := sensors[0]; s.Stored != 200 || s.Heartbeat != nil || s.Position != s2.pos {
		t.Errorf("fra-02 %+v", s)
	}
	if s := sensors[2]; s.Stored != 0 || !s.LastSeen.IsZero() || s.Position != (spool.Pos{}) {
		t.Errorf("s3 %+v", s)
	}
	if v := promtest.Value(t, r.reg, "takedown_collect_events_stored_total"); v != 550 {
		t.Errorf("stored metric %v", v)
	}
	if v := promtest.Value(t, r.reg, "takedown_collect_sensor_events_stored_total", "sensor", "fra-02"); v != 200 {
		t.Errorf("per-sensor metric %v", v)
	}
	if v := promtest.Value(t, r.reg, "takedown_collect_sensor_last_seen_seconds", "sensor", "s1"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last seen metric %v", v)
	}

	// A new collector on the same store reads the positions back.
	c2 := r.collector(r.config("s1", "fra-02"))
	stop2 := start(t, c2)
	r.publish(s1, bus.Record{End: s1.pos, Data: event.AppendBinary(nil, s1.event(0))}) // the last record again
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 && c2.Stats().Duplicates == 1 })
	stop2()
	if n := r.count(); n != 550 {
		t.Errorf("%d events after a record came again", n)
	}
	if s := c2.Sensors()[1]; s.Position != s1.pos || s.Spool != s1.spool {
		t.Errorf("s1 after a restart: %+v", s)
	}
}

func nonZero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// TestCrashBetweenCommitAndAck stops the collector after each of its first
// appends, before it acknowledges: the next run stores nothing twice.
func TestCrashBetweenCommitAndAck(t *testing.T) {
	r := newRig(t)
	s1 := newSensor("s1", 1)
	want := r.publishEvents(s1, 200, 10)
	for round := range 3 {
		cfg := r.config("s1")
		cfg.BatchSize = 30 // three messages
		c := r.collector(cfg)
		var commits atomic.Int32
		c.SetAfterCommit(func() bool { return commits.Add(1) == 1 })
		stop := start(t, c)
		waitFor(t, "a commit", func() bool { return commits.Load() >= 1 })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if round == 0 && r.streamMsgs() != 20 {
			t.Errorf("the first run acknowledged messages: %d left of 20", r.streamMsgs())
		}
	}
	c := r.collector(r.config("s1"))
	stop := start(t, c)
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 })
	stop()
	r.checkStored(want)
	if c.Stats().Duplicates == 0 {
		t.Error("the last run found no duplicates: the test did not test")
	}
}

// TestRepublishedInAnotherGrouping: a sensor that lost its own mark
// publishes records again, grouped otherwise (other message ids); a sensor
// whose spool was replaced starts over; a message of its old spool that
// comes again is still known.
func TestRepublishedInAnotherGrouping(t *testing.T) {
	r := newRig(t)
	s1 := newSensor("s1", 1)
	var recs []bus.Record
	var want []event.Event
	for range 12 {
		e := s1.event(s1.n)
		recs = append(recs, s1.record(e))
		want = append(want, stored(e))
	}
	r.publish(s1, recs[0:4]...)
	r.publish(s1, recs[4:10]...)
	r.publish(s1, recs[2:7]...)
	r.publish(s1, recs[7:12]...)
	r.publish(s1, recs[0:12]...)
	r.publish(s1, recs[4:10]...) // the same message id as the second: dropped by the stream
	if n := r.streamMsgs(); n != 5 {
		t.Fatalf("stream holds %d messages, want 5", n)
	}
	c := r.collector(r.config("s1"))
	stop := start(t, c)
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 })
	if n := r.count(); n != 12 {
		t.Fatalf("%d events stored, want 12", n)
	}
	if d := c.Stats().Duplicates; d != 3+5+12 {
		t.Errorf("%d duplicates, want 20", d)
	}

	// The spool replaced: positions start again; then one of the old
	// spool's messages comes again.
	old := *s1
	s1.spool, s1.pos = spool.ID{9, 9, 9}, spool.Pos{Segment: 1, Offset: 16}
	want = append(want, r.publishEvents(s1, 5, 5)...)
	r.publish(&old, recs[10:12]...)
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 })
	stop()
	r.checkStored(want)
}

// TestEarlierRunsDeliveriesComeFirst: a run that took messages and died
// before it stored them leaves them delivered and unacknowledged; the next
// run must store them — at once, not after AckWait, and before the
// messages published since, which would otherwise be stored first and
// make them look stored.
func TestEarlierRunsDeliveriesComeFirst(t *testing.T) {
	r := newRig(t)
	s1 := newSensor("s1", 1)
	want := r.publishEvents(s1, 20, 5)
	down := &failingStore{Store: r.st, fail: func([]event.Event) error { return &eventstore.TransientError{Err: errors.New("disk on fire")} }}
	cfg := r.config("s1")
	cfg.Store = down
	c := r.collector(cfg)
	stop := start(t, c)
	waitFor(t, "an append", func() bool { return down.calls.Load() > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want = append(want, r.publishEvents(s1, 20, 5)...)

	began := time.Now()
	c2 := r.collector(r.config("s1"))
	stop2 := start(t, c2)
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 })
	stop2()
	if took := time.Since(began); took > collect.AckWait/2 {
		t.Errorf("took %v", took)
	}
	r.checkStored(want)
}

// TestLostDelivery: a delivery that never reaches the collector (here
// another client takes it from the consumer) would come again only after
// AckWait, after the messages behind it; the collector sees the gap in the
// consumer's sequence and makes the consumer anew.
func TestLostDelivery(t *testing.T) {
	r := newRig(t)
	s1 := newSensor("s1", 1)
	c := r.collector(r.config("s1"))
	ready, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.SetBeforeFetch(func() {
		once.Do(func() {
			close(ready)
			<-release
		})
	})
	stop := start(t, c)
	<-ready
	want := r.publishEvents(s1, 5, 5)
	cons, err := r.js.Consumer(context.Background(), bus.EventsStream, collect.DefaultDurable)
	if err != nil {
		t.Fatal(err)
	}
	stolen, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range stolen.Messages() {
		n++
	}
	if n != 1 {
		t.Fatalf("took %d messages, want 1", n)
	}
	want = append(want, r.publishEvents(s1, 5, 5)...)
	close(release)
	waitFor(t, "10 events", func() bool { return r.count() >= 10 })
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 })
	stop()
	r.checkStored(want)
	if n := c.Stats().ConsumerResets; n != 2 {
		t.Errorf("%d consumer resets, want 2", n)
	}
}

// failingStore fails AppendMarked while fail returns an error.
type failingStore struct {
	collect.Store
	calls atomic.Int32
	fail  func(batch []event.Event) error
}

func (f *failingStore) AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error {
	f.calls.Add(1)
	if err := f.fail(batch); err != nil {
		return err
	}
	return f.Store.AppendMarked(ctx, batch, source, mark)
}

func TestTransientStoreErrorsLoseNothing(t *testing.T) {
	r := newRig(t)
	s1 := newSensor("s1", 1)
	want := r.publishEvents(s1, 100, 10)
	var down atomic.Bool
	down.Store(true)
	fs := &failingStore{Store: r.st, fail: func([]event.Event) error {
		if down.Load() {
			return fmt.Errorf("store: appending batch: %w", &eventstore.TransientError{Err: errors.New("no space left on device")})
		}
		return nil
	}}
	cfg := r.config("s1")
	cfg.Store = fs
	c := r.collector(cfg)
	stop := start(t, c)
	// The messages wait, delivered and not acknowledged, while the store
	// refuses them.
	waitFor(t, "failures and the pending messages", func() bool {
		st := c.Stats()
		return st.StoreFailures >= 3 && st.Pending == 10 && strings.Contains(st.LastError, "no space left")
	})
	if n := r.streamMsgs(); n != 10 {
		t.Errorf("%d messages in the stream, want 10", n)
	}
	down.Store(false)
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 })
	stop()
	r.checkStored(want)
	if st := c.Stats(); st.LastError != "" || st.Stored != 100 || st.Duplicates != 0 {
		t.Errorf("stats %+v", st)
	}
	if v := promtest.Value(t, r.reg, "takedown_collect_store_failures_total"); v < 3 {
		t.Errorf("failures metric %v", v)
	}
}

// TestStoreRefusesAnEvent: the event the store names goes to the
// quarantine, the rest of its batch is stored.
func TestStoreRefusesAnEvent(t *testing.T) {
	r := newRig(t)
	s1 := newSensor("s1", 1)
	want := r.publishEvents(s1, 30, 30)
	fs := &failingStore{Store: r.st, fail: func(batch []event.Event) error {
		for i, e := range batch {
			if e.SrcPort == 40007 {
				return fmt.Errorf("store: %w", &eventstore.EventError{Index: i, Err: errors.New("out of range")})
			}
		}
		return nil
	}}
	cfg := r.config("s1")
	cfg.Store = fs
	c := r.collector(cfg)
	stop := start(t, c)
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 })
	stop()
	r.checkStored(slices.DeleteFunc(want, func(e event.Event) bool { return e.SrcPort == 40007 }))
	if st := c.Stats(); st.Rejected[collect.RejectRefused] != 1 || st.Quarantined != 1 {
		t.Errorf("stats %+v", st)
	}
	entries := quarantined(t, r)
	if len(entries) != 1 || entries[0].Kind != quarantine.KindRefused || !strings.Contains(entries[0].Reason, "out of range") ||
		!strings.HasPrefix(entries[0].Source, "sensor s1 spool "+s1.spool.String()+" ") {
		t.Errorf("quarantine %+v", entries)
	}
}

func quarantined(t *testing.T, r *rig) []quarantine.Entry {
	t.Helper()
	out, err := r.q.Entries(0)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBadInput sends one of every kind of bad input between good batches:
// each is counted by its kind, acknowledged, and not stored, and the good
// ones around it are.
func TestBadInput(t *testing.T) {
	r := newRig(t)
	s1, s2 := newSensor("s1", 1), newSensor("s2", 2)
	var want []event.Event
	good := func() { want = append(want, r.publishEvents(s1, 3, 3)...) }

	good()
	// A message over the limit (a valid batch).
	var big []bus.Record
	for len(big) < 40 {
		big = append(big, s1.record(s1.event(s1.n)))
	}
	r.publish(s1, big...)
	good()
	// A sensor that is not configured.
	s9 := newSensor("s9", 9)
	r.publishEvents(s9, 2, 2)
	good()
	// Not a batch.
	r.publishRaw(bus.EventsSubject("s1"), []byte("hello, central"), "")
	r.publishRaw(bus.EventsSubject("s1"), nil, "")
	good()
	// A batch of s2 on s1's subject.
	b := &bus.Batch{Sensor: "s2", Spool: s2.spool, Records: []bus.Record{s2.record(s2.event(0))}}
	r.publishRaw(bus.EventsSubject("s1"), b.AppendBinary(nil), b.MsgID())
	good()
	// Records that are no events, or no valid ones, an event of another
	// sensor and one of a zone not served, between good records.
	bad := s1.event(s1.n)
	bad.Time = time.Time{}
	other := s1.event(s1.n)
	other.Sensor = "s2"
	unserved := s1.event(s1.n)
	unserved.Zone, unserved.Domain = "good.example", "www.good.example"
	e1, e2 := s1.event(s1.n), s1.event(s1.n+1)
	r.publish(s1, s1.record(e1), s1.raw(garbage(40)), s1.raw(nil), s1.record(bad), s1.record(other), s1.record(unserved), s1.record(e2))
	want = append(want, stored(e1), stored(e2))
	good()
	// A message that looks like a status message of the server to the
	// client library: no payload, a Status header.
	poison := nats.NewMsg(bus.EventsSubject("s1"))
	poison.Header.Set("Status", "404")
	poison.Header.Set("Description", "No Messages")
	if _, err := r.js.PublishMsg(context.Background(), poison); err != nil {
		t.Fatal(err)
	}
	good()

	cfg := r.config("s1", "s2")
	cfg.MaxMessageBytes = 4 << 10
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	c := r.collector(cfg)
	stop := start(t, c)
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 })
	// A heartbeat that is not one, and one of a sensor not configured
	// (the collector has subscribed: the stream is empty).
	r.nc.Publish(bus.HeartbeatSubject("s1"), []byte("{"))
	r.nc.Publish(bus.HeartbeatSubject("s9"), (&bus.Heartbeat{Sensor: "s9"}).Marshal())
	waitFor(t, "the heartbeats", func() bool { return c.Stats().Rejected[collect.RejectHeartbeat] == 2 })
	stop()

	r.checkStored(want)
	wantRejected := map[string]uint64{
		collect.RejectOversized: 1, collect.RejectUnknownSensor: 1, collect.RejectBatch: 3, collect.RejectSensorMismatch: 1,
		collect.RejectEvent: 3, collect.RejectEventSensor: 1, collect.RejectZone: 1, collect.RejectHeartbeat: 2,
	}
	st := c.Stats()
	if !reflect.DeepEqual(nonZero(st.Rejected), wantRejected) {
		t.Errorf("rejected %v\n        want %v", nonZero(st.Rejected), wantRejected)
	}
	for kind, n := range wantRejected {
		if v := promtest.Value(t, r.reg, "takedown_collect_rejected_total", "kind", kind); v != float64(n) {
			t.Errorf("metric of %s: %v, want %d", kind, v, n)
		}
	}
	if st.Quarantined != 3 {
		t.Errorf("%d quarantined, want 3", st.Quarantined)
	}
	kinds := map[string]int{}
	for _, e := range quarantined(t, r) {
		kinds[e.Kind]++
		if !strings.HasPrefix(e.Source, "sensor s1 spool "+s1.spool.String()+" ") || e.Reason == "" {
			t.Errorf("entry %+v", e)
		}
	}
	if kinds[quarantine.KindUndecodable] != 2 || kinds[quarantine.KindInvalid] != 1 {
		t.Errorf("quarantine kinds %v", kinds)
	}
	if s := c.Sensors(); s[0].Rejected != 1+3+1+3+1+1+1 || s[1].Rejected != 0 {
		t.Errorf("per sensor: s1 %d, s2 %d rejected", s[0].Rejected, s[1].Rejected)
	}
}

// TestServerRestart: the NATS server goes away while the collector runs,
// and comes back with its stream and consumer; nothing is lost or stored
// twice. Whether the collector makes its consumer anew depends on whether
// a pull failed while the server was away (the consumer itself survives):
// logged, not asserted (TestLostDelivery makes a reset happen and counts
// it).
func TestServerRestart(t *testing.T) {
	r := newRig(t)
	s1 := newSensor("s1", 1)
	want := r.publishEvents(s1, 50, 5)
	cfg := r.config("s1")
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	c := r.collector(cfg)
	stop := start(t, c)
	waitFor(t, "50 events", func() bool { return r.count() >= 50 })
	want = append(want, r.publishEvents(s1, 50, 5)...)
	r.stopServer()
	waitFor(t, "the client to notice", func() bool { return !r.nc.IsConnected() })
	r.startServer()
	waitFor(t, "the connection", r.nc.IsConnected)
	want = append(want, r.publishEvents(s1, 50, 5)...)
	waitFor(t, "150 events", func() bool { return r.count() >= 150 })
	waitFor(t, "the stream to be empty", func() bool { return r.streamMsgs() == 0 })
	waitFor(t, "the error to clear", func() bool { return c.Stats().LastError == "" })
	t.Logf("consumer made %d times", c.Stats().ConsumerResets)
	stop()
	r.checkStored(want)
}

func TestNewRefusesConfig(t *testing.T) {
	r := newRig(t)
	for name, tc := range map[string]struct {
		cfg  collect.Config
		want string
	}{
		"no store":  {collect.Config{JS: r.js}, "required"},
		"bad id":    {collect.Config{JS: r.js, Store: r.st, Sensors: []string{"S1"}}, "not a sensor id"},
		"twice":     {collect.Config{JS: r.js, Store: r.st, Sensors: []string{"s1", "s1"}}, "twice"},
		"no stream": {collect.Config{Store: r.st}, "required"},
	} {
		if _, err := collect.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestEnsureStream(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if err := collect.EnsureStream(ctx, r.js, 1, 1<<30, time.Minute); err != nil {
		t.Fatal(err)
	}
	s, err := r.js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Retention != jetstream.WorkQueuePolicy || cfg.Discard != jetstream.DiscardNew || cfg.MaxBytes != 1<<30 ||
		cfg.Duplicates != time.Minute || len(cfg.Subjects) != 1 || cfg.Subjects[0] != bus.EventsSubjects {
		t.Errorf("stream config %+v", cfg)
	}
	// A stream made otherwise cannot become a work queue: the error says
	// what to do.
	if err := r.js.DeleteStream(ctx, bus.EventsStream); err != nil {
		t.Fatal(err)
	}
	if _, err := r.js.CreateStream(ctx, jetstream.StreamConfig{Name: bus.EventsStream, Subjects: []string{bus.EventsSubjects}}); err != nil {
		t.Fatal(err)
	}
	if err := collect.EnsureStream(ctx, r.js, 1, 0, 0); err == nil || !strings.Contains(err.Error(), "cannot be changed") {
		t.Errorf("EnsureStream on a limits stream: %v", err)
	}
}
