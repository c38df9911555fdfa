package quarantine

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

func record(i int) []byte {
	e := event.Event{Time: time.Unix(1267106100+int64(i), 0).UTC(), Protocol: event.ProtoDNS,
		SrcIP: netip.AddrFrom4([4]byte{127, 1, 0, byte(i)})}
	return event.AppendBinary(nil, &e)
}

// TestAddKeepsEachSourceOnce: an entry written again (the pipeline set it
// aside, then died before it moved past it) is kept once; the entries
// survive a reopen, with their counts, the record's bytes and its JSON.
func TestAddKeepsEachSourceOnce(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	a := NewEntry(KindInvalid, "event: time 1000", "spool x 1:100", record(1), now)
	b := NewEntry(KindUndecodable, "bad tag", "spool x 1:200", []byte{0xff, 1}, now.Add(time.Second))
	if err := q.Add(a, b); err != nil {
		t.Fatal(err)
	}
	if err := q.Add(a); err != nil {
		t.Fatal(err)
	}
	if a.Event == nil || b.Event != nil {
		t.Fatalf("event JSON: %s / %s", a.Event, b.Event)
	}
	if fi, err := os.Stat(filepath.Join(dir, FileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
	q2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := q2.Summary()
	if s.Entries != 2 || len(s.Kinds) != 2 || !s.Oldest.Equal(now) || !s.Newest.Equal(now.Add(time.Second)) {
		t.Fatalf("summary %+v", s)
	}
	entries, err := q2.Entries(0)
	if err != nil || len(entries) != 2 || string(entries[0].Record) != string(record(1)) || entries[1].Reason != "bad tag" {
		t.Fatalf("entries %+v %v", entries, err)
	}
}

// TestTornLine: a line cut by a crash is skipped and counted, and the
// next entry is written whole after it.
func TestTornLine(t *testing.T) {
	dir := t.TempDir()
	q, _ := Open(dir)
	if err := q.Add(NewEntry(KindInvalid, "r", "s1", record(1), time.Now())); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, FileName), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"kind":"invalid","rec`)
	f.Close()
	q, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Add(NewEntry(KindInvalid, "r", "s2", record(2), time.Now())); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSummary(dir)
	if err != nil || s.Entries != 2 || s.Damaged != 1 {
		t.Fatalf("summary %+v %v", s, err)
	}
}

// TestReplay: the entries requeue takes leave the file once commit
// succeeds; those it refuses stay; a failed commit keeps them all.
func TestReplay(t *testing.T) {
	dir := t.TempDir()
	q, _ := Open(dir)
	for i := range 4 {
		if err := q.Add(NewEntry(KindRefused, "r", "s"+string(rune('a'+i)), record(i), time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	refuseOdd := func(en Entry) error {
		if en.Source == "sb" || en.Source == "sd" {
			return errors.New("still bad")
		}
		return nil
	}
	if _, _, err := q.Replay(refuseOdd, func() error { return errors.New("disk full") }); err == nil {
		t.Fatal("a failed commit reported no error")
	}
	if n := q.Summary().Entries; n != 4 {
		t.Fatalf("%d entries after a failed commit, want 4", n)
	}
	taken, kept, err := q.Replay(refuseOdd, func() error { return nil })
	if err != nil || taken != 2 || kept != 2 {
		t.Fatalf("replay: %d taken, %d kept, %v", taken, kept, err)
	}
	s, _ := ReadSummary(dir)
	if s.Entries != 2 || q.Summary().Entries != 2 {
		t.Fatalf("after the replay: file %+v, memory %+v", s, q.Summary())
	}
	// The taken sources may be set aside again later.
	if err := q.Add(NewEntry(KindRefused, "r", "sa", record(0), time.Now())); err != nil || q.Summary().Entries != 3 {
		t.Fatalf("re-adding a replayed source: %v, %+v", err, q.Summary())
	}
}
