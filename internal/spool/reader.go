package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// readSize is how much a reader reads from a segment at once.
const readSize = 1 << 20

// errMore: the segment may hold more records once it grows.
var errMore = errors.New("no more data yet")

// Reader reads a spool's records in order, from a position on, and keeps
// following the live segment. It is not safe for concurrent use; a spool
// has one reader at a time.
type Reader struct {
	s       *Spool
	from    Pos
	last    uint64     // newest segment read to its end
	sr      *segReader // the segment being read; nil between segments
	sawDone bool       // the spool was closed when the reader last waited
}

// NewReader returns a reader of the records after from (a position
// returned by a Reader of this directory, or the zero Pos for the oldest
// record kept). Segments released since are skipped. A position after
// the newest segment is an error: the directory is not the one the
// position came from.
func (s *Spool) NewReader(from Pos) (*Reader, error) {
	s.mu.Lock()
	last := s.lastSeq
	s.mu.Unlock()
	if from.Segment > last {
		return nil, fmt.Errorf("spool: position %v is after the newest segment %d (was %s replaced?)", from, last, s.dir)
	}
	return &Reader{s: s, from: from}, nil
}

// Next returns the next record and the position just after it. It waits
// until a record is written to the file (Append's buffer is written
// within FlushInterval), ctx is done or the spool is closed (ErrClosed).
// A record already on disk is returned even when ctx is done, so that a
// consumer can take what is there with an expired context. rec is valid
// until the next call. Damaged bytes are skipped: logged, counted and
// passed to Config.OnDamage.
func (r *Reader) Next(ctx context.Context) (rec []byte, end Pos, err error) {
	for {
		if r.sr == nil {
			wait, err := r.openNext()
			if err != nil {
				return nil, Pos{}, err
			}
			if wait != nil {
				if err := r.wait(ctx, wait); err != nil {
					return nil, Pos{}, err
				}
				continue
			}
		}
		sr := r.sr
		rec, off, err := sr.next(r.s.reportDamage)
		switch {
		case err == nil:
			return rec, Pos{Segment: sr.seq, Offset: off}, nil
		case err == io.EOF:
			r.last = sr.seq
			sr.close()
			r.sr = nil
			continue
		case err != errMore:
			return nil, Pos{}, err
		}
		if wait := r.refresh(); wait != nil {
			if err := r.wait(ctx, wait); err != nil {
				return nil, Pos{}, err
			}
		}
	}
}

// openNext opens the first segment not yet read. When there is none it
// returns a channel that is closed when that may have changed.
func (r *Reader) openNext() (<-chan struct{}, error) {
	s := r.s
	for {
		want := max(r.from.Segment, r.last+1)
		s.mu.Lock()
		var g segInfo
		found := false
		for _, x := range s.segs {
			if x.seq >= want {
				g, found = x, true
				break
			}
		}
		wait := s.notify
		s.mu.Unlock()
		if !found {
			return wait, nil
		}
		path := filepath.Join(s.dir, segmentName(g.seq))
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			r.last = g.seq // released meanwhile
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		sr := &segReader{seq: g.seq, path: path, f: f, src: f, limit: g.size, sealed: g.sealed, bad: -1}
		if g.seq == r.from.Segment && r.from.Offset > headerLen {
			sr.off0 = r.from.Offset
		} else {
			var h [headerLen]byte
			n, _ := f.ReadAt(h[:], 0)
			sr.off0 = headerLen
			if seq, err := parseSegmentHeader(h[:n]); err != nil || seq != g.seq {
				sr.off0 = 0 // read the header as damage up to the first record
			}
		}
		r.sr = sr
		return nil, nil
	}
}

// refresh updates the readable size of the current segment. It returns
// nil if that changed, or a channel closed on the next change.
func (r *Reader) refresh() <-chan struct{} {
	s, sr := r.s, r.sr
	s.mu.Lock()
	defer s.mu.Unlock()
	if sr.fixed {
		return s.notify
	}
	for _, g := range s.segs {
		if g.seq != sr.seq {
			continue
		}
		if g.size == sr.limit && g.sealed == sr.sealed {
			return s.notify
		}
		sr.limit, sr.sealed = g.size, g.sealed
		return nil
	}
	// Released while read: read what the file has.
	if sr.sealed {
		return s.notify
	}
	sr.sealed = true
	return nil
}

// wait blocks until ch is closed, ctx is done or the spool is closed.
// After Close one more pass reads what was written last.
func (r *Reader) wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.s.done:
		if r.sawDone {
			return ErrClosed
		}
		r.sawDone = true
		return nil
	}
}

// Close closes the reader's file.
func (r *Reader) Close() error {
	if r.sr != nil {
		r.sr.close()
		r.sr = nil
	}
	return nil
}

// segReader decodes the records of one segment file. It never reads past
// limit: the bytes the writer has finished writing.
type segReader struct {
	seq    uint64
	path   string
	f      *os.File // closed by close; nil in fuzz tests
	src    io.ReaderAt
	buf    []byte // bytes of the file from offset off0
	r      int    // next byte of buf to decode
	off0   int64
	limit  int64 // bytes of the file that may be read
	sealed bool  // limit is final
	fixed  bool  // the file ended before limit; do not refresh
	bad    int64 // start of the damage being skipped, or -1
	rsize  int   // read size; 0 is readSize (tests use tiny ones)
}

// next returns the next record and the offset just after it. Errors:
// io.EOF at the end of a sealed segment, errMore when the writer has not
// written more yet.
func (sr *segReader) next(report func(Damage)) ([]byte, int64, error) {
	for {
		final := sr.sealed && sr.off0+int64(len(sr.buf)) >= sr.limit
		b := sr.buf[sr.r:]
		off := sr.off0 + int64(sr.r)
		if len(b) == 0 && final {
			sr.endDamage(off, report)
			return nil, off, io.EOF
		}
		rec, n, st := decodeRecord(b, final)
		switch st {
		case decOK:
			sr.endDamage(off, report)
			sr.r += n
			return rec, off + int64(n), nil
		case decBad:
			// Resynchronise: skip to the next marker; the CRC tells
			// whether a record really starts there.
			if sr.bad < 0 {
				sr.bad = off
			}
			if i := bytes.Index(b[1:], recMarker[:]); i >= 0 {
				sr.r += 1 + i
			} else {
				sr.r += max(1, len(b)-(len(recMarker)-1)) // keep a possible marker prefix
			}
		case decShort:
			more, err := sr.fill()
			if err != nil {
				return nil, off, err
			}
			if !more {
				return nil, off, errMore
			}
		}
	}
}

// endDamage reports the damaged bytes that end at off, if any.
func (sr *segReader) endDamage(off int64, report func(Damage)) {
	if sr.bad >= 0 {
		report(Damage{File: sr.path, Offset: sr.bad, Length: off - sr.bad})
		sr.bad = -1
	}
}

// fill reads more of the file, up to limit. It reports whether it did.
func (sr *segReader) fill() (bool, error) {
	end := sr.off0 + int64(len(sr.buf))
	if end >= sr.limit {
		return false, nil
	}
	if sr.r > 0 {
		n := copy(sr.buf, sr.buf[sr.r:])
		sr.buf = sr.buf[:n]
		sr.off0 += int64(sr.r)
		sr.r = 0
	}
	rsize := sr.rsize
	if rsize <= 0 {
		rsize = readSize
	}
	if cap(sr.buf)-len(sr.buf) < rsize/2+1 {
		// Grow by what there is to read, at most rsize: a short segment
		// does not cost a whole read buffer.
		grow := int(min(int64(rsize), sr.limit-end))
		nb := make([]byte, len(sr.buf), max(2*cap(sr.buf), len(sr.buf)+max(grow, 4096)))
		copy(nb, sr.buf)
		sr.buf = nb
	}
	want := int(min(sr.limit-end, int64(min(rsize, cap(sr.buf)-len(sr.buf)))))
	l := len(sr.buf)
	n, err := sr.src.ReadAt(sr.buf[l:l+want], end)
	sr.buf = sr.buf[:l+n]
	if err == io.EOF {
		if n < want {
			// The file is shorter than we were told: it ends here.
			sr.limit, sr.sealed, sr.fixed = end+int64(n), true, true
		}
		err = nil
	}
	if err != nil {
		return false, fmt.Errorf("spool: reading %s: %w", sr.path, err)
	}
	return n > 0 || sr.fixed, nil
}

func (sr *segReader) close() {
	if sr.f != nil {
		sr.f.Close()
	}
}
