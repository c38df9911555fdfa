package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Errors of Append and NewReader.
var (
	// ErrFull is returned by Append when the record is dropped: the spool
	// holds MaxBytes, or more than MaxBufferBytes wait for the disk.
	ErrFull = errors.New("spool full")
	// ErrTooLarge is returned by Append for a record over MaxRecordBytes.
	ErrTooLarge = errors.New("spool record too large")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("spool closed")
	// ErrNoSpace is returned by Append when the record is dropped because
	// the filesystem has less free space than MinFreeBytes.
	ErrNoSpace = errors.New("spool: the filesystem is below its free-space reserve")
)

// Config configures a Spool. Zero values take the defaults.
type Config struct {
	// Dir holds the segment files; created if missing. Required. One
	// Spool at a time may use it.
	Dir string
	// SegmentBytes: a segment is closed and a new one started once it
	// would grow past this size; default 64 MiB. It is lowered to a
	// quarter of MaxBytes, so that Release can always make room.
	SegmentBytes int64
	// MaxBytes bounds the segments on disk plus the buffer; records over
	// it are dropped (ErrFull). Default 4 GiB.
	MaxBytes int64
	// MaxBufferBytes bounds the records buffered in memory while the disk
	// is slow; records over it are dropped (ErrFull). Default 32 MiB.
	MaxBufferBytes int64
	// FlushInterval: the buffer is written to the file at least this
	// often (and whenever 256 KiB are buffered); default 10 ms. Readers
	// see records once they are written. Negative: write-through, every
	// Append writes its record (with whatever else waits) to the file
	// before it returns, so that what a sink answered survives a kill of
	// the process; it costs a write call per record.
	FlushInterval time.Duration
	// SyncInterval: the file is fsynced at most this often, if written
	// since; default 200 ms. Negative: after every write of the buffer.
	SyncInterval time.Duration
	// MinFreeBytes is a reserve of free space on the spool's filesystem:
	// while less is free, Append drops records (ErrNoSpace, counted)
	// instead of filling the disk that the store, by default on the same
	// filesystem, needs to take the backlog and free the spool. Free space
	// is looked up after each write, and at most every 100 ms by Append
	// while below the reserve. Zero keeps no reserve.
	MinFreeBytes int64
	// OnDamage, if set, is called (from the reader's goroutine) for every
	// stretch of damaged bytes a Reader skips, after it is logged and
	// counted.
	OnDamage func(Damage)
	// Logger and Registerer; nil discards / does not register.
	Logger     *slog.Logger
	Registerer prometheus.Registerer

	writeThrough bool // FlushInterval < 0
}

// Defaults of Config.
const (
	DefaultSegmentBytes   = 64 << 20
	DefaultMaxBytes       = 4 << 30
	DefaultMaxBufferBytes = 32 << 20
	DefaultFlushInterval  = 10 * time.Millisecond
	DefaultSyncInterval   = 200 * time.Millisecond
)

// flushBytes of buffered records wake the writer before its interval.
const flushBytes = 256 << 10

// Damage is a stretch of a segment that holds no valid record: a record
// torn by a crash, or bytes changed on disk. Every record in it is lost.
type Damage struct {
	File   string // path of the segment
	Offset int64  // first damaged byte
	Length int64  // damaged bytes
}

func (d Damage) Error() string {
	return fmt.Sprintf("spool: %s: %d damaged bytes at offset %d skipped", d.File, d.Length, d.Offset)
}

// Stats are the spool's counters.
type Stats struct {
	Bytes    int64  // segments on disk plus the buffer
	Buffered int64  // bytes buffered in memory, not yet written
	Segments int    // segment files
	Appended uint64 // records accepted by Append
	// Dropped is every record lost on its way to the disk: the sum of
	// the four reasons below.
	Dropped        uint64
	DroppedFull    uint64 // refused by Append: MaxBytes reached
	DroppedBuffer  uint64 // refused by Append: MaxBufferBytes wait for the disk
	DroppedReserve uint64 // refused by Append: free space below MinFreeBytes
	DroppedWrite   uint64 // accepted by Append, then lost to a failed write
	Damaged        uint64 // damaged stretches skipped by readers or at Open
	DamagedBytes   uint64 // bytes in them
	// LowSpace is set while the filesystem is below MinFreeBytes.
	LowSpace bool
}

// Spool is a crash-safe, append-only queue of records on disk.
type Spool struct {
	opt  Config
	dir  string
	log  *slog.Logger
	met  *metrics
	kick chan struct{} // wakes the writer before its interval
	// wake restarts the writer's ticker, which it stops while sleeping:
	// nothing buffered and nothing unsynced. An idle sinkhole then costs
	// no wake-up a FlushInterval; the first Append after wakes it.
	wake     chan struct{}
	sleeping atomic.Bool
	stop     chan struct{} // stops the writer
	done     chan struct{} // closed by Close; wakes waiting readers
	wg       sync.WaitGroup

	// mu guards the buffer and the list of segments. Append holds it only
	// to copy a record into the buffer.
	mu       sync.Mutex
	closed   bool
	cur      *chunk   // the buffer being filled
	full     []*chunk // buffers waiting for the writer, oldest first
	free     []*chunk // written buffers for reuse
	liveSize int64    // size of the live segment, buffered bytes included
	pending  int64    // bytes buffered, segment headers to write included
	disk     int64    // bytes in segment files
	segs     []segInfo
	lastSeq  uint64        // newest segment created
	notify   chan struct{} // closed when segments grow or change

	appended       atomic.Uint64
	droppedFull    atomic.Uint64
	droppedBuffer  atomic.Uint64
	droppedWrite   atomic.Uint64
	droppedReserve atomic.Uint64
	damaged        atomic.Uint64
	damagedBytes   atomic.Uint64

	id ID
	// lowSpace is set while the filesystem has less than MinFreeBytes
	// free; spaceAt is when that was last looked up (unix ns).
	lowSpace atomic.Bool
	spaceAt  atomic.Int64

	// wmu serialises the writer: the live file and its sync state.
	wmu      sync.Mutex
	f        *os.File // live segment; nil after a write error
	dirty    bool     // written since the last fsync
	lastSync time.Time
	errLog   time.Time // last write error logged (one a second)
	// writeErr is the error of the last write or fsync, nil once one
	// succeeds after it.
	writeErr error
}

// segInfo describes a segment file.
type segInfo struct {
	seq    uint64
	size   int64 // bytes written to the file
	sealed bool  // no more writes; size is final
}

// chunk is a buffer of encoded records.
type chunk struct {
	b    []byte
	n    int  // records in b
	roll bool // b starts a new segment
}

// Open opens the spool in o.Dir, creating the directory if needed. The
// segments found there are kept for readers (a torn or damaged one
// included: readers skip the damage); appends go to a new segment.
func Open(o Config) (*Spool, error) {
	if o.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	o.SegmentBytes = max(min(o.SegmentBytes, o.MaxBytes/4), 4096)
	if o.MaxBufferBytes <= 0 {
		o.MaxBufferBytes = DefaultMaxBufferBytes
	}
	if o.FlushInterval < 0 {
		o.writeThrough = true
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	s := &Spool{
		opt:    o,
		dir:    o.Dir,
		log:    o.Logger,
		kick:   make(chan struct{}, 1),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		notify: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := s.scan(); err != nil {
		return nil, err
	}
	id, err := loadID(o.Dir, len(s.segs) == 0)
	if err != nil {
		return nil, err
	}
	s.id = id
	s.checkSpace()
	// Appends always go to a new segment: the last one of the previous run
	// may end in a torn record.
	s.wmu.Lock()
	err = s.roll()
	s.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	s.liveSize = headerLen
	if err := s.dropEmpty(); err != nil {
		s.f.Close()
		return nil, err
	}
	met, err := newMetrics(s, o.Registerer)
	if err != nil {
		s.f.Close()
		return nil, err
	}
	s.met = met
	s.wg.Add(1)
	go s.writer()
	s.log.Debug("spool opened", "dir", o.Dir, "segments", len(s.segs), "bytes", s.disk)
	return s, nil
}

// scan lists the segments in the directory.
func (s *Spool) scan() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, e := range ents {
		seq, ok := parseSegmentName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		size, err := checkSegment(path, seq)
		if errors.Is(err, errVersion) {
			return fmt.Errorf("spool: %s: %w", path, err)
		}
		s.lastSeq = max(s.lastSeq, seq) // numbers are never reused
		if size < headerLen {
			// Created, but the crash came before its header was written:
			// it holds no record.
			if size > 0 {
				s.reportDamage(Damage{File: path, Length: size})
			}
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			continue
		}
		// A damaged header is reported by the reader, with the records.
		s.segs = append(s.segs, segInfo{seq: seq, size: size, sealed: true})
		s.disk += size
	}
	slices.SortFunc(s.segs, func(a, b segInfo) int { return compareSeq(a.seq, b.seq) })
	return nil
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkSegment returns the size of a segment file and whether its header
// is well-formed.
func checkSegment(path string, seq uint64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	var h [headerLen]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return fi.Size(), err
	}
	got, err := parseSegmentHeader(h[:])
	if err == nil && got != seq {
		err = fmt.Errorf("header names segment %d", got)
	}
	return fi.Size(), err
}

// dropEmpty removes old segments that hold nothing but their header (left
// by runs that appended nothing). The live segment, newer, keeps the
// numbering going.
func (s *Spool) dropEmpty() error {
	s.mu.Lock()
	var del []segInfo
	s.segs = slices.DeleteFunc(s.segs, func(g segInfo) bool {
		if g.sealed && g.size <= headerLen {
			del = append(del, g)
			s.disk -= g.size
			return true
		}
		return false
	})
	s.mu.Unlock()
	return s.remove(del)
}

// Append adds a copy of rec to the buffer; it is written to the file
// within FlushInterval. It never waits for the disk: when the spool or
// the buffer is full the record is dropped, counted, and ErrFull
// returned. Append is safe for concurrent use.
func (s *Spool) Append(rec []byte) error {
	if len(rec) > MaxRecordBytes {
		return ErrTooLarge
	}
	h := recordHeader(rec) // the CRC, outside the lock
	sz := int64(recHeaderLen + len(rec))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.disk+s.pending+sz > s.opt.MaxBytes {
		s.mu.Unlock()
		s.droppedFull.Add(1)
		return ErrFull
	}
	if s.pending+sz > s.opt.MaxBufferBytes {
		s.mu.Unlock()
		s.droppedBuffer.Add(1)
		return ErrFull
	}
	if s.lowSpace.Load() && !s.recheckSpace() {
		s.mu.Unlock()
		s.droppedReserve.Add(1)
		return ErrNoSpace
	}
	if s.liveSize+sz > s.opt.SegmentBytes && s.liveSize > headerLen {
		if s.cur != nil {
			s.full = append(s.full, s.cur)
		}
		s.cur = s.newChunk()
		s.cur.roll = true
		s.liveSize = headerLen
		s.pending += headerLen
	}
	c := s.cur
	if c == nil {
		c = s.newChunk()
		s.cur = c
	}
	c.b = append(append(c.b, h[:]...), rec...)
	c.n++
	s.liveSize += sz
	s.pending += sz
	wake := len(c.b) >= flushBytes
	if wake {
		s.full = append(s.full, c)
		s.cur = nil
	}
	s.mu.Unlock()
	s.appended.Add(1)
	if s.opt.writeThrough {
		return s.flush()
	}
	if wake {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	if s.sleeping.Load() && s.sleeping.CompareAndSwap(true, false) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// newChunk returns an empty buffer. s.mu is held.
func (s *Spool) newChunk() *chunk {
	if n := len(s.free); n > 0 {
		c := s.free[n-1]
		s.free = s.free[:n-1]
		return c
	}
	return &chunk{b: make([]byte, 0, flushBytes+flushBytes/4)}
}

// writer flushes the buffer every FlushInterval or when kicked.
func (s *Spool) writer() {
	defer s.wg.Done()
	t := time.NewTicker(s.opt.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		case <-s.wake:
			t.Reset(s.opt.FlushInterval)
			continue
		}
		if err := s.flush(); err != nil {
			s.logWriteError(err)
		}
		s.checkSpace()
		// Sleep while there is nothing to write or to sync. An Append
		// that comes after sleeping is set sees it and wakes the writer;
		// one that came before is seen by the second look. Below the
		// free-space reserve the writer keeps looking at the free space,
		// so that an idle spool sees the room come back.
		if s.quiet() && !s.lowSpace.Load() {
			t.Stop()
			s.sleeping.Store(true)
			if !s.quiet() && s.sleeping.CompareAndSwap(true, false) {
				t.Reset(s.opt.FlushInterval)
			}
		}
	}
}

// quiet tells whether nothing is buffered and everything written is
// synced.
func (s *Spool) quiet() bool {
	s.mu.Lock()
	buffered := s.pending > 0
	s.mu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return !buffered && !s.dirty
}

// logWriteError logs a write error, at most once a second.
func (s *Spool) logWriteError(err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if now := time.Now(); now.Sub(s.errLog) >= time.Second {
		s.errLog = now
		s.log.Error("spool write failed; records dropped", "err", err)
	}
}

// Flush writes the buffer to the file (and fsyncs it if SyncInterval is
// negative). Readers see the records once it returns.
func (s *Spool) Flush() error { return s.flush() }

// Sync writes the buffer to the file and fsyncs it.
func (s *Spool) Sync() error {
	err := s.flush()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return errors.Join(err, s.sync())
}

func (s *Spool) flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.cur != nil && s.cur.n > 0 {
		s.full = append(s.full, s.cur)
		s.cur = nil
	}
	batch := s.full
	s.full = nil
	s.mu.Unlock()
	var errs []error
	for _, c := range batch {
		if err := s.write(c); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	for _, c := range batch {
		if len(s.free) < 4 && cap(c.b) <= 2*flushBytes {
			c.b, c.n, c.roll = c.b[:0], 0, false
			s.free = append(s.free, c)
		}
	}
	s.mu.Unlock()
	if s.opt.SyncInterval < 0 || time.Since(s.lastSync) >= s.opt.SyncInterval {
		if err := s.sync(); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if err != nil || len(batch) > 0 {
		s.writeErr = err
	}
	return err
}

// WriteError returns the error of the last write or fsync of the spool's
// files if none has succeeded since: the spool cannot write (a full or
// failing disk), and what is appended is being lost.
func (s *Spool) WriteError() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeErr
}

// checkSpace looks up the free space of the spool's filesystem and sets
// lowSpace, if a reserve is kept and the last look is 100 ms old.
func (s *Spool) checkSpace() {
	if s.opt.MinFreeBytes <= 0 {
		return
	}
	now := time.Now().UnixNano()
	last := s.spaceAt.Load()
	if now-last < int64(100*time.Millisecond) || !s.spaceAt.CompareAndSwap(last, now) {
		return
	}
	free, err := FreeBytes(s.dir)
	if err != nil {
		return // not known: no reserve kept
	}
	low := free < s.opt.MinFreeBytes
	if s.lowSpace.Swap(low) != low {
		if low {
			s.log.Error("the spool's filesystem is below its free-space reserve: new events are dropped until there is room",
				"dir", s.dir, "free_bytes", free, "reserve_bytes", s.opt.MinFreeBytes)
		} else {
			s.log.Info("the spool's filesystem has room again", "dir", s.dir, "free_bytes", free)
		}
	}
}

// recheckSpace looks up the free space again, at most every 100 ms, and
// reports whether there is room now. Append calls it while below the
// reserve: the writer, with nothing to write, sleeps then.
func (s *Spool) recheckSpace() bool {
	s.checkSpace()
	return !s.lowSpace.Load()
}

// WrittenHead returns the position just after the last record written to
// the files: every record a Reader has returned up to it, and no later one,
// was appended before the call.
func (s *Spool) WrittenHead() Pos {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) == 0 {
		return Pos{}
	}
	g := s.segs[len(s.segs)-1]
	return Pos{Segment: g.seq, Offset: g.size}
}

// DiskBytesAfter returns the bytes of the segment files after p: what
// a reader at p has still to read, record headers included.
func (s *Spool) DiskBytesAfter(p Pos) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, g := range s.segs {
		switch {
		case g.seq > p.Segment:
			n += g.size - headerLen
		case g.seq == p.Segment && g.size > p.Offset:
			n += g.size - max(p.Offset, headerLen)
		}
	}
	return n
}

// write appends one buffer to the live segment, starting a new segment
// first if the buffer says so or the last write failed. s.wmu is held.
func (s *Spool) write(c *chunk) error {
	if c.roll || s.f == nil {
		err := s.roll()
		s.mu.Lock()
		if c.roll {
			s.pending -= headerLen // written now, or never
		}
		if err != nil {
			s.pending -= int64(len(c.b))
			s.mu.Unlock()
			s.droppedWrite.Add(uint64(c.n))
			return err
		}
		s.mu.Unlock()
	}
	n, err := s.f.Write(c.b)
	s.mu.Lock()
	live := &s.segs[len(s.segs)-1]
	live.size += int64(n)
	s.disk += int64(n)
	s.pending -= int64(len(c.b))
	if err != nil {
		live.sealed = true
	}
	s.wakeReaders()
	s.mu.Unlock()
	if n > 0 {
		s.dirty = true
	}
	if err != nil {
		// The file may end in a torn record: readers skip it as damage.
		// The next write starts a new segment.
		s.droppedWrite.Add(uint64(c.n - completeRecords(c.b[:n])))
		s.f.Close()
		s.f = nil
		return fmt.Errorf("spool: writing segment %d: %w", live.seq, err)
	}
	return nil
}

// completeRecords counts the whole records at the start of b.
func completeRecords(b []byte) int {
	n := 0
	for {
		_, l, st := decodeRecord(b, true)
		if st != decOK {
			return n
		}
		b, n = b[l:], n+1
	}
}

// roll seals the live segment (fsynced, closed) and creates the next one.
// s.wmu is held.
func (s *Spool) roll() error {
	if s.f != nil {
		err := s.sync()
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
		s.f = nil
		s.mu.Lock()
		s.segs[len(s.segs)-1].sealed = true
		s.wakeReaders()
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("spool: closing segment: %w", err)
		}
	}
	s.mu.Lock()
	seq := s.lastSeq + 1
	s.mu.Unlock()
	path := filepath.Join(s.dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Write(appendSegmentHeader(nil, seq)); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("spool: %w", err)
	}
	// The new file's name must survive a crash, or the numbering could
	// go back and a saved position point past the end.
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("spool: %w", err)
	}
	s.f = f
	s.dirty = true
	s.mu.Lock()
	s.segs = append(s.segs, segInfo{seq: seq, size: headerLen})
	s.lastSeq = seq
	s.disk += headerLen
	s.wakeReaders()
	s.mu.Unlock()
	return nil
}

// sync fsyncs the live segment if it was written since the last fsync.
// s.wmu is held.
func (s *Spool) sync() error {
	if s.f == nil || !s.dirty {
		s.lastSync = time.Now()
		return nil
	}
	t := time.Now()
	err := s.f.Sync()
	s.lastSync = time.Now()
	if s.met != nil {
		s.met.fsync.Observe(s.lastSync.Sub(t).Seconds())
	}
	if err != nil {
		return fmt.Errorf("spool: fsync: %w", err)
	}
	s.dirty = false
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// wakeReaders tells waiting readers that segments changed. s.mu is held.
func (s *Spool) wakeReaders() {
	close(s.notify)
	s.notify = make(chan struct{})
}

// Release tells the spool that every record up to upTo (a position
// returned by the Reader) is stored: segments wholly before it are
// deleted. The live (newest) segment is never deleted.
func (s *Spool) Release(upTo Pos) error {
	s.mu.Lock()
	var del []segInfo
	i := 0
	for ; i < len(s.segs); i++ {
		g := s.segs[i]
		// The newest segment stays, even when sealed by Close, so that
		// the numbering never goes back.
		if !g.sealed || g.seq == s.lastSeq || g.seq > upTo.Segment ||
			(g.seq == upTo.Segment && upTo.Offset < g.size) {
			break
		}
		del = append(del, g)
		s.disk -= g.size
	}
	s.segs = slices.Delete(s.segs, 0, i)
	s.mu.Unlock()
	return s.remove(del)
}

// remove deletes segment files.
func (s *Spool) remove(segs []segInfo) error {
	if len(segs) == 0 {
		return nil
	}
	var errs []error
	for _, g := range segs {
		err := os.Remove(filepath.Join(s.dir, segmentName(g.seq)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, syncDir(s.dir))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool: releasing segments: %w", err)
	}
	return nil
}

// reportDamage logs and counts a damaged stretch.
func (s *Spool) reportDamage(d Damage) {
	s.damaged.Add(1)
	s.damagedBytes.Add(uint64(d.Length))
	s.log.Warn("spool: skipped damaged bytes", "file", d.File, "offset", d.Offset, "bytes", d.Length)
	if s.opt.OnDamage != nil {
		s.opt.OnDamage(d)
	}
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st := Stats{Bytes: s.disk + s.pending, Buffered: s.pending, Segments: len(s.segs)}
	s.mu.Unlock()
	st.Appended = s.appended.Load()
	st.DroppedFull, st.DroppedBuffer = s.droppedFull.Load(), s.droppedBuffer.Load()
	st.DroppedReserve, st.DroppedWrite = s.droppedReserve.Load(), s.droppedWrite.Load()
	st.Dropped = st.DroppedFull + st.DroppedBuffer + st.DroppedReserve + st.DroppedWrite
	st.LowSpace = s.lowSpace.Load()
	st.Damaged = s.damaged.Load()
	st.DamagedBytes = s.damagedBytes.Load()
	return st
}

// Close writes the buffer, fsyncs and closes the live segment. Appends
// fail after it; readers may still read what is on disk.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	err := s.flush()
	s.wmu.Lock()
	err = errors.Join(err, s.sync())
	if s.f != nil {
		err = errors.Join(err, s.f.Close())
		s.f = nil
	}
	s.wmu.Unlock()
	s.mu.Lock()
	if n := len(s.segs); n > 0 {
		s.segs[n-1].sealed = true
	}
	s.wakeReaders()
	s.mu.Unlock()
	close(s.done)
	s.met.unregister()
	return err
}

// Newest returns the number of the newest segment: the live one, where
// Append writes.
func (s *Spool) Newest() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq
}
