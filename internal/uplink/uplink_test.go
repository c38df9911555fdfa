package uplink_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/promtest"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/testnet"
	"github.com/takedown-project/takedown/internal/uplink"
)

// sensor is an uplink under test, with its spool and state directory.
type sensor struct {
	t     *testing.T
	u     *uplink.Uplink
	sp    *spool.Spool
	reg   *prometheus.Registry
	state string
	// spoolDir is the spool's directory, when newSensor opened it.
	spoolDir string
	logs     *logBuffer
	done     chan error
	stop     context.CancelFunc
}

type sensorOpts struct {
	cfg      uplink.Config
	spoolCfg spool.Config
	spoolDir string
	state    string
	sp       *spool.Spool
}

func newSensor(t *testing.T, nc *nats.Conn, o sensorOpts) *sensor {
	t.Helper()
	if o.spoolDir == "" {
		o.spoolDir = filepath.Join(t.TempDir(), "spool")
	}
	if o.state == "" {
		o.state = t.TempDir()
	}
	if o.sp == nil {
		o.sp = openSpool(t, o.spoolDir, o.spoolCfg)
	}
	s := &sensor{t: t, sp: o.sp, reg: prometheus.NewRegistry(), state: o.state, spoolDir: o.spoolDir, logs: &logBuffer{}}
	cfg := o.cfg
	cfg.Sensor, cfg.Conn, cfg.Spool, cfg.StateDir = "s1", nc, o.sp, o.state
	cfg.Registerer = s.reg
	cfg.Logger = slog.New(slog.NewTextHandler(s.logs, nil))
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 50 * time.Millisecond
	}
	u, err := uplink.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.u = u
	return s
}

func (s *sensor) run() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan error, 1)
	go func() { s.done <- s.u.Run(ctx) }()
	s.t.Cleanup(func() { s.halt() })
}

// halt cancels Run and waits for it; it returns how long Run took to
// return.
func (s *sensor) halt() time.Duration {
	if s.stop == nil {
		return 0
	}
	t := time.Now()
	s.stop()
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		s.t.Fatal("Run did not return")
	}
	s.stop = nil
	return time.Since(t)
}

func (s *sensor) record(prefix string, from, to int) {
	s.t.Helper()
	for i := from; i < to; i++ {
		if !s.u.Record(testEvent(prefix, i)) {
			s.t.Fatalf("event %d dropped", i)
		}
	}
}

func (s *sensor) waitPublished(n uint64, d time.Duration) {
	s.t.Helper()
	waitFor(s.t, d, "published records", func() bool { return s.u.Stats().Published >= n })
	if got := s.u.Stats().Published; got != n {
		s.t.Fatalf("published %d, want %d", got, n)
	}
}

// logBuffer keeps the uplink's log for the tests to read.
type logBuffer struct{ testnet.Buffer }

func (l *logBuffer) count(s string) int { return strings.Count(l.String(), s) }

func TestNewRefuses(t *testing.T) {
	sp := openSpool(t, t.TempDir(), spool.Config{})
	nc := &nats.Conn{}
	for name, tc := range map[string]struct {
		cfg  uplink.Config
		want string
	}{
		"sensor":   {uplink.Config{Sensor: "S.1", Conn: nc, Spool: sp, StateDir: "x"}, "not a DNS label"},
		"conn":     {uplink.Config{Sensor: "s1", Spool: sp, StateDir: "x"}, "no NATS connection"},
		"spool":    {uplink.Config{Sensor: "s1", Conn: nc, StateDir: "x"}, "no spool"},
		"statedir": {uplink.Config{Sensor: "s1", Conn: nc, Spool: sp}, "no state directory"},
	} {
		if _, err := uplink.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", name, err, tc.want)
		}
	}
}

// Every recorded event arrives once, in order, in batches that decode;
// the mark follows the acknowledgements, the acknowledged segments are
// released, the metrics and Stats count it all.
func TestDeliversOnceInOrder(t *testing.T) {
	ns := startNATS(t, nil)
	js := ns.js(t)
	createStream(t, js)
	s := newSensor(t, ns.connect(t, "s1"), sensorOpts{cfg: uplink.Config{MaxBatchBytes: 16 << 10, Linger: 20 * time.Millisecond},
		spoolCfg: spool.Config{SegmentBytes: 64 << 10}})
	s.run()
	const n = 5000
	// Recorded in bursts while Run publishes, as sinks do.
	for i := 0; i < n; i += 500 {
		s.record("a", i, i+500)
		time.Sleep(5 * time.Millisecond)
	}
	s.waitPublished(n, 20*time.Second)
	d := readStream(t, js)
	d.checkOnceInOrder(t, "a", n)
	st := s.u.Stats()
	if st.Recorded != n || st.Dropped != 0 || st.Batches != uint64(d.msgs) || st.Duplicates != 0 || st.LastError != "" || !st.Connected {
		t.Errorf("stats %+v; %d messages in the stream", st, d.msgs)
	}
	total := 0
	for i, b := range d.batches {
		size := len(b.AppendBinary(nil))
		total += size
		if size > 16<<10 {
			t.Errorf("batch %d: %d bytes, over MaxBatchBytes", i, size)
		}
	}
	if d.msgs > 2*(total/(16<<10)+1)+n/500 {
		t.Errorf("%d messages for %d bytes in batches of at most 16 KiB", d.msgs, total)
	}
	if st.LastAck.IsZero() || time.Since(st.LastAck) > time.Minute {
		t.Errorf("LastAck %v", st.LastAck)
	}
	// The mark is the last record's end; only the live segment is left.
	id, pos, err := uplink.ParseMark(mustRead(t, filepath.Join(s.state, uplink.MarkFile)))
	if err != nil || id != s.sp.ID() || pos != d.ends[len(d.ends)-1] {
		t.Errorf("mark %s %v %v, want %s %v", id, pos, err, s.sp.ID(), d.ends[len(d.ends)-1])
	}
	waitFor(t, 5*time.Second, "the acknowledged segments to be released", func() bool { return s.sp.Stats().Segments == 1 })
	waitFor(t, 5*time.Second, "an empty backlog", func() bool { return s.u.Stats().BacklogBytes == 0 })
	for name, want := range map[string]float64{
		"takedown_uplink_published_records_total": n,
		"takedown_uplink_published_batches_total": float64(d.msgs),
		"takedown_uplink_events_recorded_total":   n,
		"takedown_uplink_connected":               1,
		"takedown_uplink_backlog_bytes":           0,
	} {
		if got := promtest.Value(t, s.reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Run drains what the sinks recorded before it was stopped, within Drain.
func TestDrainOnStop(t *testing.T) {
	ns := startNATS(t, nil)
	js := ns.js(t)
	createStream(t, js)
	s := newSensor(t, ns.connect(t, "s1"), sensorOpts{cfg: uplink.Config{Linger: time.Second}})
	s.run()
	s.record("d", 0, 300)
	if took := s.halt(); took > 2*time.Second+time.Second {
		t.Errorf("Run took %v to return", took)
	}
	if st := s.u.Stats(); st.Published != 300 {
		t.Errorf("published %d of 300 at stop", st.Published)
	}
	readStream(t, js).checkOnceInOrder(t, "d", 300)
}

// With NATS down, Record does not wait and the spool holds the events;
// when the server is back (same store) everything is delivered, in order,
// nothing twice.
func TestServerDownAndBack(t *testing.T) {
	ns := startNATS(t, nil)
	js := ns.js(t)
	createStream(t, js)
	s := newSensor(t, ns.connect(t, "s1"), sensorOpts{cfg: uplink.Config{MaxBatchBytes: 32 << 10, Linger: 10 * time.Millisecond}})
	s.run()
	s.record("b", 0, 1000)
	s.waitPublished(1000, 20*time.Second)

	ns.stop()
	waitFor(t, 10*time.Second, "the connection to be down", func() bool { return !s.u.Stats().Connected })
	var slowest time.Duration
	for i := 1000; i < 4000; i++ {
		t0 := time.Now()
		if !s.u.Record(testEvent("b", i)) {
			t.Fatalf("event %d dropped", i)
		}
		slowest = max(slowest, time.Since(t0))
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("a Record took %v while NATS was down", slowest)
	}
	waitFor(t, 10*time.Second, "a failed attempt", func() bool {
		return promtest.Value(t, s.reg, "takedown_uplink_publish_errors_total", "reason", "disconnected") > 0
	})
	st := s.u.Stats()
	if st.Published != 1000 || st.BacklogBytes < 3000*150 || st.BacklogRecords < 2500 || st.LastError == "" || st.Connected {
		t.Errorf("while down: %+v", st)
	}
	if got := promtest.Value(t, s.reg, "takedown_uplink_connected"); got != 0 {
		t.Errorf("connected gauge %v while down", got)
	}
	time.Sleep(300 * time.Millisecond) // a while down, retrying

	ns.start()
	s.waitPublished(4000, 30*time.Second)
	js = ns.js(t) // the central reconnects too
	readStream(t, js).checkOnceInOrder(t, "b", 4000)
	if n := s.logs.count("NATS connection lost"); n != 1 {
		t.Errorf("the lost connection logged %d times:\n%s", n, s.logs)
	}
	if n := s.logs.count("connected to NATS; publishing the backlog"); n != 1 {
		t.Errorf("the returned connection logged %d times:\n%s", n, s.logs)
	}
}

// A crash after the stream acknowledged a batch but before the mark was
// saved sends the batch again after the restart: the same grouping has
// the same message id, and the stream keeps it once.
func TestCrashBetweenAckAndMark(t *testing.T) {
	ns := startNATS(t, nil)
	js := ns.js(t)
	createStream(t, js)
	nc := ns.connect(t, "s1")
	spoolDir, state := filepath.Join(t.TempDir(), "spool"), t.TempDir()
	sp := openSpool(t, spoolDir, spool.Config{})
	first := newSensor(t, nc, sensorOpts{sp: sp, state: state})
	first.record("c", 0, 100)
	if err := sp.Flush(); err != nil {
		t.Fatal(err)
	}
	var acked *bus.Batch
	uplink.SetAfterAck(first.u, func(b *bus.Batch) bool {
		acked = &bus.Batch{Sensor: b.Sensor, Spool: b.Spool, Records: append([]bus.Record(nil), b.Records...)}
		return false // killed here
	})
	first.run()
	select {
	case err := <-first.done:
		if err != nil {
			t.Fatal(err)
		}
		first.stop = nil
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop at the hook")
	}
	if acked == nil || len(acked.Records) != 100 {
		t.Fatalf("acknowledged batch %+v", acked)
	}
	if exists(filepath.Join(state, uplink.MarkFile)) {
		t.Fatal("the mark was saved after the crash point")
	}
	if d := readStream(t, js); d.msgs != 1 {
		t.Fatalf("%d messages", d.msgs)
	}

	second := newSensor(t, nc, sensorOpts{sp: sp, state: state})
	if uplink.From(second.u) != (spool.Pos{}) {
		t.Fatalf("restart reads from %v", uplink.From(second.u))
	}
	second.run()
	second.waitPublished(100, 10*time.Second)
	if st := second.u.Stats(); st.Duplicates != 1 || st.Batches != 1 {
		t.Errorf("after the restart: %+v", st)
	}
	d := readStream(t, js)
	if d.msgs != 1 || d.msgIDs[0] != acked.MsgID() {
		t.Errorf("stream has %d messages %v, want one, %s", d.msgs, d.msgIDs, acked.MsgID())
	}
	d.checkOnceInOrder(t, "c", 100)
	if got := promtest.Value(t, second.reg, "takedown_uplink_duplicate_batches_total"); got != 1 {
		t.Errorf("duplicate batches %v", got)
	}
	if !exists(filepath.Join(state, uplink.MarkFile)) {
		t.Error("no mark after the acknowledgement")
	}
}

// No segment is released before the stream acknowledged every record in
// it: with no stream, or a stream that refuses the batches, the segments
// stay on disk and the same batch is retried; once the stream takes them
// everything is delivered in order and the segments go.
func TestReleaseOnlyAfterAck(t *testing.T) {
	ns := startNATS(t, nil)
	js := ns.js(t)
	s := newSensor(t, ns.connect(t, "s1"), sensorOpts{cfg: uplink.Config{MaxBatchBytes: 8 << 10, Linger: 10 * time.Millisecond},
		spoolCfg: spool.Config{SegmentBytes: 4096}})
	uplink.SetMaxBackoff(s.u, 100*time.Millisecond)
	dir := s.spoolDir
	var hookErr error
	var mu sync.Mutex
	uplink.SetAfterAck(s.u, func(b *bus.Batch) bool {
		// Acknowledged, not yet marked: every segment of the batch is
		// still on disk.
		for seg := b.Records[0].End.Segment; seg <= b.Records[len(b.Records)-1].End.Segment; seg++ {
			if !exists(filepath.Join(dir, segName(seg))) {
				mu.Lock()
				hookErr = errors.New("segment " + segName(seg) + " released before its acknowledgement")
				mu.Unlock()
			}
		}
		return true
	})
	s.record("r", 0, 400)
	if err := s.sp.Flush(); err != nil {
		t.Fatal(err)
	}
	before := segments(t, dir)
	if len(before) < 10 {
		t.Fatalf("%d segments; the test wants many", len(before))
	}
	s.run()
	waitFor(t, 10*time.Second, "publish attempts without a stream", func() bool {
		return promtest.Value(t, s.reg, "takedown_uplink_publish_errors_total", "reason", "no_stream") >= 3
	})
	// A stream of another name on the subjects: the expected-stream
	// header makes it refuse.
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{bus.EventsSubjects}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "refused attempts", func() bool {
		return promtest.Value(t, s.reg, "takedown_uplink_publish_errors_total", "reason", "rejected") >= 3
	})
	if after := segments(t, dir); len(after) < len(before) || after[0] != before[0] {
		t.Fatalf("segments before any acknowledgement: %v, were %v", after, before)
	}
	if st := s.u.Stats(); st.Published != 0 || st.LastError == "" || st.BacklogBytes == 0 {
		t.Errorf("before any acknowledgement: %+v", st)
	}
	if err := js.DeleteStream(ctx, "OTHER"); err != nil {
		t.Fatal(err)
	}
	createStream(t, js)
	s.waitPublished(400, 20*time.Second)
	readStream(t, js).checkOnceInOrder(t, "r", 400)
	mu.Lock()
	if hookErr != nil {
		t.Error(hookErr)
	}
	mu.Unlock()
	waitFor(t, 5*time.Second, "the segments to be released", func() bool { return len(segments(t, dir)) == 1 })
	if st := s.u.Stats(); st.LastError != "" {
		t.Errorf("LastError %q after success", st.LastError)
	}
	for _, want := range []string{"publishing to the events stream fails", "publishing to the events stream works again"} {
		if n := s.logs.count(want); n != 1 {
			t.Errorf("%q logged %d times:\n%s", want, n, s.logs)
		}
	}
	if n := s.logs.count("still fails"); n > 2 {
		t.Errorf("repeated failures logged %d times within a minute:\n%s", n, s.logs)
	}
}

func segName(seq uint64) string { return fmt.Sprintf("%016x.seg", seq) }

// A spool deleted and made anew (another identity) is published from its
// start, although the mark's position lies inside its new segments.
func TestSpoolReplaced(t *testing.T) {
	ns := startNATS(t, nil)
	js := ns.js(t)
	createStream(t, js)
	nc := ns.connect(t, "s1")
	spoolDir, state := filepath.Join(t.TempDir(), "spool"), t.TempDir()
	sp1, err := spool.Open(spool.Config{Dir: spoolDir})
	if err != nil {
		t.Fatal(err)
	}
	old := newSensor(t, nc, sensorOpts{sp: sp1, state: state})
	old.run()
	old.record("old", 0, 10)
	old.waitPublished(10, 10*time.Second)
	old.halt()
	if err := sp1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(spoolDir); err != nil {
		t.Fatal(err)
	}

	sp2 := openSpool(t, spoolDir, spool.Config{})
	if sp2.ID() == sp1.ID() {
		t.Fatal("the new spool has the old identity")
	}
	// More records than the old spool had: the mark's position now
	// points after the first ten of them.
	for i := range 30 {
		if err := sp2.Append(event.AppendBinary(nil, testEvent("new", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp2.Flush(); err != nil {
		t.Fatal(err)
	}
	fresh := newSensor(t, nc, sensorOpts{sp: sp2, state: state})
	if from := uplink.From(fresh.u); from != (spool.Pos{}) {
		t.Errorf("a replaced spool is read from %v", from)
	}
	if note := fresh.u.Stats().SpoolNote; !strings.Contains(note, "deleted or replaced") {
		t.Errorf("SpoolNote %q", note)
	}
	fresh.run()
	fresh.waitPublished(30, 10*time.Second)
	d := readStream(t, js)
	d.checkOnceInOrder(t, "old", 10)
	d.checkOnceInOrder(t, "new", 30)
}

// A mark past the spool's end (an older copy of the segments put back)
// starts at the newest segment; a damaged mark reads the spool from its
// start.
func TestMarkPastEndAndDamaged(t *testing.T) {
	nc := &nats.Conn{}
	dir, state := t.TempDir(), t.TempDir()
	sp := openSpool(t, dir, spool.Config{})
	sp.Append([]byte("x"))
	sp.Flush()
	past := spool.Pos{Segment: sp.Newest(), Offset: 1 << 20}
	if err := os.WriteFile(filepath.Join(state, uplink.MarkFile), uplink.AppendMark(nil, sp.ID(), past), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	u, err := uplink.New(uplink.Config{Sensor: "s1", Conn: nc, Spool: sp, StateDir: state, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if from := uplink.From(u); from != (spool.Pos{Segment: sp.Newest()}) {
		t.Errorf("a mark past the end reads from %v", from)
	}
	if !strings.Contains(u.Stats().SpoolNote, "older copy") {
		t.Errorf("note %q", u.Stats().SpoolNote)
	}

	good := uplink.AppendMark(nil, sp.ID(), spool.Pos{Segment: 1, Offset: 29})
	good[10] ^= 0xff
	os.WriteFile(filepath.Join(state, uplink.MarkFile), good, 0o600)
	logs = logBuffer{}
	u, err = uplink.New(uplink.Config{Sensor: "s1", Conn: nc, Spool: sp, StateDir: state, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if from := uplink.From(u); from != (spool.Pos{}) {
		t.Errorf("a damaged mark reads from %v", from)
	}
	if !strings.Contains(logs.String(), "checksum") {
		t.Errorf("the damaged mark was not logged: %s", logs.String())
	}
}

// The heartbeat goes out on the sensor's subject and says what the
// uplink did and which served set it answers from.
func TestHeartbeat(t *testing.T) {
	ns := startNATS(t, nil)
	js := ns.js(t)
	createStream(t, js)
	central := ns.connect(t, bus.CentralUser)
	beats := make(chan *nats.Msg, 64)
	sub, err := central.ChanSubscribe(bus.HeartbeatSubjects, beats)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	central.Flush()
	s := newSensor(t, ns.connect(t, "s1"), sensorOpts{cfg: uplink.Config{Version: "v-test",
		Served: func() (uint32, int) { return 42, 7 }}})
	s.run()
	s.record("h", 0, 3)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-beats:
			h, err := bus.DecodeHeartbeat(m.Subject, m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != "takedown.sensors.s1" || h.ServedSerial != 42 || h.ServedZones != 7 || h.Version != "v-test" || h.Started.IsZero() {
				t.Fatalf("heartbeat on %s: %+v", m.Subject, h)
			}
			if h.Published == 3 && h.Recorded == 3 && h.BacklogBytes == 0 {
				return
			}
		case <-deadline:
			t.Fatal("no heartbeat with the published events")
		}
	}
}

// Record never waits and counts what the spool refuses.
func TestRecordDrops(t *testing.T) {
	reg := prometheus.NewRegistry()
	sp := openSpool(t, t.TempDir(), spool.Config{MaxBytes: 16 << 10, MaxBufferBytes: 4 << 10})
	u, err := uplink.New(uplink.Config{Sensor: "s1", Conn: &nats.Conn{}, Spool: sp, StateDir: t.TempDir(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for i := range 1000 {
		if u.Record(testEvent("x", i)) {
			accepted++
		}
	}
	st := u.Stats()
	if accepted == 1000 || st.Recorded != uint64(accepted) || st.Dropped != uint64(1000-accepted) {
		t.Errorf("accepted %d, stats %+v", accepted, st)
	}
	if got := promtest.Value(t, reg, "takedown_uplink_events_dropped_total"); got != float64(1000-accepted) {
		t.Errorf("dropped metric %v", got)
	}
	if st.BacklogRecords < int64(accepted)-5 || st.BacklogRecords > int64(accepted)+5 {
		t.Errorf("backlog estimate %d records for %d", st.BacklogRecords, accepted)
	}
}

// A server that takes small messages gets small batches, and a record no
// message it takes can hold is skipped, counted, rather than stopping the
// uplink for good.
func TestServerMaxPayload(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.MaxPayload = 8 << 10 })
	js := ns.js(t)
	createStream(t, js)
	s := newSensor(t, ns.connect(t, "s1"), sensorOpts{})
	s.record("m", 0, 200)
	big := testEvent("m", 200)
	big.PayloadHead = bytes.Repeat([]byte{'A'}, 16<<10)
	if !s.u.Record(big) {
		t.Fatal("big event dropped")
	}
	s.record("m", 201, 400)
	s.run()
	waitFor(t, 10*time.Second, "published records", func() bool { return s.u.Stats().Published == 399 })
	if st := s.u.Stats(); st.Skipped != 1 {
		t.Errorf("stats %+v", st)
	}
	d := readStream(t, js)
	for i, b := range d.batches {
		if size := len(b.AppendBinary(nil)); size > 8<<10 {
			t.Errorf("batch %d: %d bytes, over the server's max payload", i, size)
		}
	}
	var want []string
	for i := range 400 {
		if i != 200 {
			want = append(want, testDomain("m", i))
		}
	}
	if strings.Join(d.ids, ",") != strings.Join(want, ",") {
		t.Errorf("stream holds %d events, want the 399 that fit, in order", len(d.ids))
	}
	if !strings.Contains(s.logs.String(), "too large for any message") {
		t.Errorf("the skipped record was not logged:\n%s", s.logs)
	}
}

// Stopped while the stream takes nothing, Run tries for Drain and
// returns; the events stay in the spool for the next run.
func TestStopWhileFailing(t *testing.T) {
	ns := startNATS(t, nil)
	s := newSensor(t, ns.connect(t, "s1"), sensorOpts{cfg: uplink.Config{Drain: 500 * time.Millisecond}})
	s.run()
	s.record("f", 0, 50)
	waitFor(t, 10*time.Second, "a failed attempt", func() bool { return s.u.Stats().LastError != "" })
	if took := s.halt(); took > 500*time.Millisecond+time.Second {
		t.Errorf("Run took %v to return with a drain of 500 ms", took)
	}
	st := s.u.Stats()
	if st.Published != 0 || st.BacklogRecords < 45 || exists(filepath.Join(s.state, uplink.MarkFile)) {
		t.Errorf("after the stop: %+v", st)
	}
	if !strings.Contains(st.LastError, "no response from stream") {
		t.Errorf("LastError %q", st.LastError)
	}
}
