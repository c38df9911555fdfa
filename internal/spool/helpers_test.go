package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// payload is record i of writer w: w, i and a filler of varying length,
// so that records straddle buffers and segments at every alignment.
func payload(w, i int) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(w))
	b = binary.BigEndian.AppendUint32(b, uint32(i))
	for j := range (i * 7) % 131 {
		b = append(b, byte('a'+j%26))
	}
	return b
}

// parsePayload returns the writer and index of a payload and checks the
// filler.
func parsePayload(t testing.TB, b []byte) (w, i int) {
	t.Helper()
	if len(b) < 8 {
		t.Fatalf("record of %d bytes", len(b))
	}
	w, i = int(binary.BigEndian.Uint32(b)), int(binary.BigEndian.Uint32(b[4:]))
	if !bytes.Equal(b, payload(w, i)) {
		t.Fatalf("record %d/%d: wrong payload %q", w, i, b)
	}
	return w, i
}

// damages collects the damage reported by a spool.
type damages struct {
	mu sync.Mutex
	d  []Damage
}

func (d *damages) add(x Damage) {
	d.mu.Lock()
	d.d = append(d.d, x)
	d.mu.Unlock()
}

func (d *damages) list() []Damage {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.d)
}

// open opens a spool in dir, closed at the end of the test.
func open(t testing.TB, o Config) *Spool {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendAll appends records 0..n-1 of writer w.
func appendAll(t testing.TB, s *Spool, w, n int) {
	t.Helper()
	for i := range n {
		if err := s.Append(payload(w, i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// readAll reads records until none arrives for idle, which ends the
// reading. It returns copies of the records and the last position.
func readAll(t testing.TB, r *Reader, idle time.Duration) ([][]byte, Pos) {
	t.Helper()
	var recs [][]byte
	var last Pos
	for {
		ctx, cancel := context.WithTimeout(context.Background(), idle)
		rec, end, err := r.Next(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrClosed) {
			return recs, last
		}
		if err != nil {
			t.Fatal(err)
		}
		if end.Compare(last) <= 0 {
			t.Fatalf("position %v after %v", end, last)
		}
		recs, last = append(recs, slices.Clone(rec)), end
	}
}

// drain reads the records already on disk: Next returns them even with
// a context that is done.
func drain(t testing.TB, r *Reader) ([][]byte, Pos) {
	t.Helper()
	return readAll(t, r, 0)
}

// readN reads n records, failing after the deadline.
func readN(t testing.TB, r *Reader, n int, deadline time.Duration) ([][]byte, Pos) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var recs [][]byte
	var last Pos
	for len(recs) < n {
		rec, end, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of %d records: %v", len(recs), n, err)
		}
		recs, last = append(recs, slices.Clone(rec)), end
	}
	return recs, last
}

// checkSequence checks that recs are records from..from+len-1 of writer w.
func checkSequence(t testing.TB, recs [][]byte, w, from int) {
	t.Helper()
	for k, rec := range recs {
		gw, gi := parsePayload(t, rec)
		if gw != w || gi != from+k {
			t.Fatalf("record %d is %d/%d, want %d/%d", k, gw, gi, w, from+k)
		}
	}
}

// segments lists the segment files of dir.
func segments(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// copyDir copies the files of src to a new directory.
// dirBytes returns the size of the files in dir.
func dirBytes(t testing.TB, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
