package spool

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Many writers, a reader following them, records across many segments.
func TestConcurrentRoundTrip(t *testing.T) {
	const writers, perWriter = 4, 5000
	s := open(t, Config{Dir: t.TempDir(), SegmentBytes: 64 << 10})
	r, err := s.NewReader(Pos{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() { appendAll(t, s, w, perWriter) })
	}
	// The reader runs while the writers write: it must follow the live
	// segment and the segments started after it.
	recs, last := readN(t, r, writers*perWriter, 30*time.Second)
	wg.Wait()

	next := make([]int, writers)
	for _, rec := range recs {
		w, i := parsePayload(t, rec)
		if i != next[w] {
			t.Fatalf("writer %d: record %d after %d", w, i, next[w]-1)
		}
		next[w]++
	}
	st := s.Stats()
	if st.Appended != writers*perWriter || st.Dropped != 0 || st.Damaged != 0 {
		t.Errorf("stats %+v", st)
	}
	if st.Segments < 4 || last.Segment < 4 {
		t.Errorf("%d segments, last position %v: want several", st.Segments, last)
	}
	// Nothing more.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := r.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next after the last record: %v", err)
	}
}

// Close, reopen, continue from a saved position; Release deletes what was
// stored, and a reopened spool starts after it.
func TestReopenFromPosition(t *testing.T) {
	dir := t.TempDir()
	o := Config{Dir: dir, SegmentBytes: 16 << 10}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 0, 3000)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := s.NewReader(Pos{})
	if err != nil {
		t.Fatal(err)
	}
	_, pos := readN(t, r, 1200, 10*time.Second)
	r.Close()
	saved, _ := pos.MarshalBinary()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, o)
	var from Pos
	if err := from.UnmarshalBinary(saved); err != nil {
		t.Fatal(err)
	}
	r, err = s.NewReader(from)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := drain(t, r)
	checkSequence(t, recs, 0, 1200)
	if len(recs) != 1800 {
		t.Fatalf("read %d records after %v, want 1800", len(recs), from)
	}
	// More appends after the reopen go on after the old records.
	appendAll(t, s, 1, 10)
	more, end := readN(t, r, 10, 10*time.Second)
	checkSequence(t, more, 1, 0)
	r.Close()

	before := segments(t, dir)
	if err := s.Release(from); err != nil {
		t.Fatal(err)
	}
	after := segments(t, dir)
	if len(after) >= len(before) {
		t.Fatalf("Release(%v) kept all %d segments", from, len(before))
	}
	if first := filepath.Base(after[0]); first != segmentName(from.Segment) {
		t.Fatalf("first segment after Release(%v) is %s", from, first)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// From the oldest kept record: the first of from's segment.
	s = open(t, o)
	r, err = s.NewReader(Pos{})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ = drain(t, r)
	r.Close()
	if len(recs) < 10+1800 {
		t.Fatalf("read %d records from the oldest", len(recs))
	}
	_, i := parsePayload(t, recs[0])
	if i > 1200 {
		t.Fatalf("oldest record kept is %d, after the released position's record 1199", i)
	}
	// Release everything read: only the newest segment stays, and the
	// numbering goes on from it.
	if err := s.Release(end); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	left := segments(t, dir)
	s = open(t, o)
	if st := s.Stats(); st.Segments > len(left)+1 {
		t.Fatalf("%d segments after reopen, %d files before", st.Segments, len(left))
	}
	appendAll(t, s, 2, 1)
	r, err = s.NewReader(end)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, p := readN(t, r, 1, 10*time.Second)
	checkSequence(t, got, 2, 0)
	if p.Compare(end) <= 0 {
		t.Fatalf("new record at %v, not after %v", p, end)
	}
}

// A crash leaves the last record torn at any byte: every record before it
// is kept, the torn one is reported, nothing panics.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	appendAll(t, s, 0, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segments(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	lastLen := recHeaderLen + len(payload(0, n-1))
	lastStart := len(data) - lastLen

	for cut := lastStart; cut < len(data); cut++ {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, filepath.Base(segs[0])), data[:cut], 0o640); err != nil {
			t.Fatal(err)
		}
		var dm damages
		s := open(t, Config{Dir: d, OnDamage: dm.add})
		r, err := s.NewReader(Pos{})
		if err != nil {
			t.Fatal(err)
		}
		recs, _ := drain(t, r)
		r.Close()
		s.Close()
		checkSequence(t, recs, 0, 0)
		if len(recs) != n-1 {
			t.Fatalf("cut at %d: %d records, want %d", cut, len(recs), n-1)
		}
		want := []Damage{}
		if cut > lastStart {
			want = append(want, Damage{File: filepath.Join(d, filepath.Base(segs[0])), Offset: int64(lastStart), Length: int64(cut - lastStart)})
		}
		if got := dm.list(); !equalDamage(got, want) {
			t.Fatalf("cut at %d: damage %v, want %v", cut, got, want)
		}
	}
}

func equalDamage(a, b []Damage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A byte changed anywhere in a record costs that record only: the reader
// finds the next one by its marker.
func TestFlippedByte(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	const n, victim = 40, 17
	appendAll(t, s, 0, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := segments(t, dir)[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	start := headerLen
	for i := range victim {
		start += recHeaderLen + len(payload(0, i))
	}
	size := recHeaderLen + len(payload(0, victim))

	for at := start; at < start+size; at++ {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(data)
			bad[at] ^= x
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, filepath.Base(seg)), bad, 0o640); err != nil {
				t.Fatal(err)
			}
			var dm damages
			s := open(t, Config{Dir: d, OnDamage: dm.add})
			r, err := s.NewReader(Pos{})
			if err != nil {
				t.Fatal(err)
			}
			recs, _ := drain(t, r)
			r.Close()
			s.Close()
			if len(recs) != n-1 {
				t.Fatalf("byte %d ^ %#x: %d records, want %d", at, x, len(recs), n-1)
			}
			checkSequence(t, recs[:victim], 0, 0)
			checkSequence(t, recs[victim:], 0, victim+1)
			want := []Damage{{File: filepath.Join(d, filepath.Base(seg)), Offset: int64(start), Length: int64(size)}}
			if got := dm.list(); !equalDamage(got, want) {
				t.Fatalf("byte %d ^ %#x: damage %v, want %v", at, x, got, want)
			}
			if st := s.Stats(); st.Damaged != 1 || st.DamagedBytes != uint64(size) {
				t.Fatalf("stats %+v", st)
			}
		}
	}
}

// A copy of the directory taken while records are being written is what
// a crash leaves: reopened, it gives a gapless prefix of the records.
func TestCopyWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir, SegmentBytes: 32 << 10, FlushInterval: time.Millisecond})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written int
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				written = i
				return
			default:
			}
			if err := s.Append(payload(0, i)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	// On disk, not only appended: Stats counts the records still in the
	// buffer too, and a copy made before the first flush held nothing.
	waitFor(t, "records on disk", 10*time.Second, func() bool { return dirBytes(t, dir) > 100<<10 })
	cp := copyDir(t, dir)
	close(stop)
	wg.Wait()

	var dm damages
	s2 := open(t, Config{Dir: cp, OnDamage: dm.add})
	r, err := s2.NewReader(Pos{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	recs, _ := drain(t, r)
	checkSequence(t, recs, 0, 0)
	if len(recs) == 0 || len(recs) > written {
		t.Fatalf("%d records from the copy, %d written", len(recs), written)
	}
	// A segment being written when copied may end in a torn record;
	// nothing else is damaged.
	for _, d := range dm.list() {
		fi, err := os.Stat(d.File)
		if err != nil || d.Offset+d.Length != fi.Size() {
			t.Errorf("damage %v is not a torn tail", d)
		}
	}
	t.Logf("copied %d of %d records, damage %v", len(recs), written, dm.list())
}

// Over MaxBytes records are dropped and counted; Release makes room.
func TestFullAndRelease(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := open(t, Config{Dir: t.TempDir(), MaxBytes: 256 << 10, Registerer: reg})
	n := 0
	for ; ; n++ {
		err := s.Append(payload(0, n))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 1e6 {
			t.Fatal("never full")
		}
	}
	for range 9 {
		if err := s.Append(payload(0, n)); !errors.Is(err, ErrFull) {
			t.Fatalf("append to a full spool: %v", err)
		}
	}
	st := s.Stats()
	if st.Dropped != 10 || st.Appended != uint64(n) || st.Bytes > 256<<10 {
		t.Fatalf("stats %+v after %d appends", st, n)
	}
	if got := metricValue(t, reg, "takedown_spool_records_dropped_total", "full"); got != 10 {
		t.Fatalf("dropped metric %v", got)
	}

	r, err := s.NewReader(Pos{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	recs, last := readN(t, r, n, 10*time.Second)
	checkSequence(t, recs, 0, 0)
	if err := s.Release(last); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Bytes > 256<<10/4+4096 {
		t.Fatalf("%d bytes after releasing everything (segment size %d)", st.Bytes, s.opt.SegmentBytes)
	}
	appendAll(t, s, 1, 100)
	more, _ := readN(t, r, 100, 10*time.Second)
	checkSequence(t, more, 1, 0)
}

// metricValue returns the gathered value of a counter or gauge, found by
// name and the value of its first label.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label) {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	o := Config{Dir: t.TempDir(), SyncInterval: -1, Registerer: reg}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 0, 100)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "takedown_spool_records_appended_total", ""); got != 100 {
		t.Errorf("appended %v", got)
	}
	if got := metricValue(t, reg, "takedown_spool_segments", ""); got != 1 {
		t.Errorf("segments %v", got)
	}
	if got := metricValue(t, reg, "takedown_spool_bytes", ""); got != float64(s.Stats().Bytes) || got < 100*recHeaderLen {
		t.Errorf("bytes %v", got)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "takedown_spool_fsync_duration_seconds" {
			if c := mf.GetMetric()[0].GetHistogram().GetSampleCount(); c == 0 {
				t.Error("no fsync observed with SyncInterval < 0")
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed, the metrics are gone: the directory can be opened again
	// with the same registry.
	s = open(t, o)
	s.Close()
}

// A damaged segment header does not lose the records after it.
func TestDamagedHeader(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 0, 20)
	s.Close()
	seg := segments(t, dir)[0]
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("XXXX"), 0)
	f.Close()

	var logs syncBuffer
	var dm damages
	s = open(t, Config{Dir: dir, OnDamage: dm.add, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	r, err := s.NewReader(Pos{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	recs, _ := drain(t, r)
	checkSequence(t, recs, 0, 0)
	if len(recs) != 20 {
		t.Fatalf("%d records", len(recs))
	}
	if got, want := dm.list(), []Damage{{File: seg, Offset: 0, Length: headerLen}}; !equalDamage(got, want) {
		t.Fatalf("damage %v, want %v", got, want)
	}
	if l := logs.String(); !strings.Contains(l, "file="+seg) || !strings.Contains(l, "offset=0") {
		t.Fatalf("log does not name file and offset: %s", l)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Open refuses a segment of another format version; it cleans up
// segments that a crash left without a header.
func TestOpenChecks(t *testing.T) {
	dir := t.TempDir()
	h := appendSegmentHeader(nil, 1)
	h[4] = 9
	if err := os.WriteFile(filepath.Join(dir, segmentName(1)), h, 0o640); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(Config{Dir: dir}); err == nil || !errors.Is(err, errVersion) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open with a version 9 segment: %v", err)
	}

	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, segmentName(3)), []byte("TDS"), 0o640)
	os.WriteFile(filepath.Join(dir, segmentName(4)), nil, 0o640)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a segment"), 0o640)
	s := open(t, Config{Dir: dir})
	if st := s.Stats(); st.Segments != 1 || st.Damaged != 1 || st.DamagedBytes != 3 {
		t.Fatalf("stats %+v", st)
	}
	if got := segments(t, dir); len(got) != 1 || filepath.Base(got[0]) != segmentName(5) {
		t.Fatalf("segments %v, want only %s", got, segmentName(5))
	}
	if _, err := s.NewReader(Pos{Segment: 6}); err == nil {
		t.Fatal("NewReader after the newest segment: no error")
	}
	if err := s.Append(make([]byte, MaxRecordBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append too large: %v", err)
	}
	if _, err := Open(Config{}); err == nil {
		t.Fatal("Open without a directory")
	}
}

// Close wakes a waiting reader, after it has read the last records.
func TestCloseWakesReader(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir(), FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.NewReader(Pos{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan int)
	go func() {
		n := 0
		for {
			_, _, err := r.Next(context.Background())
			if err != nil {
				if !errors.Is(err, ErrClosed) {
					t.Error(err)
				}
				got <- n
				return
			}
			n++
		}
	}()
	appendAll(t, s, 0, 10) // buffered: FlushInterval is an hour
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 10 {
		t.Fatalf("read %d records before ErrClosed", n)
	}
	if err := s.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

func TestPos(t *testing.T) {
	p := Pos{Segment: 7, Offset: 4096}
	b, err := p.MarshalBinary()
	if err != nil || len(b) != posLen {
		t.Fatal(b, err)
	}
	var q Pos
	if err := q.UnmarshalBinary(b); err != nil || q != p {
		t.Fatal(q, err)
	}
	if p.String() != "7:4096" {
		t.Error(p.String())
	}
	ps := []Pos{{}, {1, 16}, {1, 17}, {2, 16}, {1 << 40, 1}}
	for i := range ps {
		for j := range ps {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			bi, _ := ps[i].MarshalBinary()
			bj, _ := ps[j].MarshalBinary()
			if ps[i].Compare(ps[j]) != want || bytes.Compare(bi, bj) != want {
				t.Errorf("%v vs %v: want %d", ps[i], ps[j], want)
			}
		}
	}
	if err := q.UnmarshalBinary(b[:15]); err == nil {
		t.Error("short position accepted")
	}
}

// TestWriterSleepsWhenIdle: with nothing buffered and everything synced the
// writer stops its ticker; the next record wakes it and is on disk, and
// fsynced, within the usual intervals, and so is every record of a steady
// trickle.
func TestWriterSleepsWhenIdle(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir(), FlushInterval: 5 * time.Millisecond, SyncInterval: 20 * time.Millisecond})
	defer s.Close()
	r, err := s.NewReader(Pos{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	synced := func() bool {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		return !s.dirty
	}
	appendAll(t, s, 0, 10)
	waitFor(t, "the writer to sleep", 5*time.Second, s.sleeping.Load)
	checkSequence(t, func() [][]byte { recs, _ := drain(t, r); return recs }(), 0, 0)
	if !synced() {
		t.Fatal("the writer sleeps with records not fsynced")
	}
	for i := range 3 {
		if err := s.Append(payload(1, i)); err != nil {
			t.Fatal(err)
		}
		if s.sleeping.Load() {
			t.Fatal("an append left the writer asleep")
		}
		recs, _ := readN(t, r, 1, 5*time.Second)
		checkSequence(t, recs, 1, i)
		waitFor(t, "the record fsynced and the writer asleep again", 5*time.Second, func() bool { return s.sleeping.Load() && synced() })
	}
}

// TestWriteThrough: with a negative FlushInterval every Append has written
// its record to the segment file when it returns (a kill of the process
// right after loses nothing), where the default waits for the writer.
func TestWriteThrough(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flush time.Duration
		want  bool
	}{{"write-through", -1, true}, {"buffered", time.Hour, false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, Config{Dir: dir, FlushInterval: tc.flush})
			rec := []byte("an event the sink has answered")
			if err := s.Append(rec); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, segmentName(1)))
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(b, rec); got != tc.want {
				t.Errorf("record in the file right after Append: %v, want %v", got, tc.want)
			}
		})
	}
}
