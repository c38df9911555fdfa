package chstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cespare/xxhash/v2"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// writeTimeout bounds a batch's INSERTs and mark once they have begun:
// they no longer heed the caller's context (see AppendMarked).
const writeTimeout = 2 * time.Minute

// sourceState is what the writer knows of one source of marked batches.
type sourceState struct {
	known   bool   // mark and version were read from the database
	mark    []byte // the mark the source stands at: the next batch follows it
	version uint64 // of the newest row of ingest_marks written for it
	// check says that a write of this source failed after its first
	// INSERT began: before the next one, the rows of the half-stored
	// batch are looked up again.
	check bool
	// carried are the ev_hash of stored rows of earlier half-stored
	// batches that no replayed event has matched yet, with their number;
	// every row of ingest_marks keeps them (left), so that a crash
	// during a replay does not forget them.
	carried map[uint64]int
	// current are those of the stored rows of the batch that follows
	// mark (batch id batchID(source, mark)), read after a crash or a
	// failure; currentDays are the days where such rows may be: those of
	// every attempt at this batch.
	current     map[uint64]int
	currentDays []time.Time
}

// Append stores a batch of events, all or nothing: every event is checked
// first (eventstore.Check), and a batch with an invalid event is refused
// whole with an *eventstore.EventError naming its index. A batch that
// spans several UTC days is several INSERTs, one a day: should the engine
// fail between two, the days before stay stored and the error is an
// *eventstore.TransientError; only AppendMarked completes such a batch
// exactly (see the package documentation).
func (s *Store) Append(ctx context.Context, batch []event.Event) error {
	return s.AppendMarked(ctx, batch, "", nil)
}

// AppendMarked is Append that also sets the mark of source to mark: the
// events are inserted, then the mark. A batch that a crash or an error
// left inserted and unmarked is completed, not doubled, by the next
// AppendMarked of the same source from the same mark, however its events
// are grouped. An empty source sets no mark; a batch may be empty, to move
// the mark alone.
//
// The context is heeded until the first INSERT begins: a batch cancelled
// before is not stored and reported failed; once begun, the batch's
// INSERTs and mark run to their end (bounded by two minutes), so that a
// batch is never stored and reported failed because its context ended.
func (s *Store) AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error {
	for i := range batch {
		if err := eventstore.Check(&batch[i]); err != nil {
			return fmt.Errorf("chstore: appending batch: %w", &eventstore.EventError{Index: i, Err: err})
		}
	}
	if len(batch) == 0 && source == "" {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return &eventstore.TransientError{Err: fmt.Errorf("chstore: appending batch: %w", err)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	var (
		st *sourceState
		id uint64
	)
	if source != "" {
		var err error
		if st, err = s.state(ctx, source); err != nil {
			return transient(err)
		}
		id = batchID(source, st.mark)
	}

	// The rows: each event's hash, less those a half-stored batch
	// already holds.
	left := st.leftovers()
	rows := make([]row, 0, len(batch))
	var buf []byte
	for i := range batch {
		buf = event.AppendBinary(buf[:0], &batch[i])
		h := xxhash.Sum64(buf)
		if n := left[h]; n > 0 {
			if n == 1 {
				delete(left, h)
			} else {
				left[h] = n - 1
			}
			continue
		}
		rows = append(rows, row{e: &batch[i], day: dayOf(batch[i].Time), hash: h})
	}
	skipped := len(batch) - len(rows)

	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if s.cfg.Cluster != "" {
		// Into the Distributed tables, synchronously: the INSERT
		// returns once every shard has its rows.
		wctx = clickhouse.Context(wctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	}
	err := s.write(wctx, st, source, mark, id, rows, left)
	if err != nil {
		if st != nil {
			st.check = true
		}
		return transient(fmt.Errorf("chstore: appending batch of %d events: %w", len(batch), err))
	}
	if st != nil {
		st.mark = bytes.Clone(mark)
		st.carried, st.current, st.currentDays = left, nil, nil
		if skipped > 0 {
			s.log.Info("clickhouse: events already stored by a half-stored batch skipped", "source", source, "skipped", skipped, "stored", len(rows))
		}
	}
	return nil
}

// row is one event to insert.
type row struct {
	e    *event.Event
	day  time.Time
	hash uint64
}

// write inserts rows, one INSERT a day, between a row of ingest_marks that
// lists the days where the batch's rows may be (pending) and one that sets
// the mark; left is what remains of the leftovers once the batch is
// stored. st is nil for unmarked batches. s.mu is held.
func (s *Store) write(ctx context.Context, st *sourceState, source string, mark []byte, id uint64, rows []row, left map[uint64]int) error {
	var days []time.Time
	for _, r := range rows {
		days = addDay(days, r.day)
	}
	if st != nil && len(rows) > 0 {
		for _, d := range days {
			st.currentDays = addDay(st.currentDays, d)
		}
		if err := s.writeMark(ctx, st, source, st.mark, st.currentDays, st.carried); err != nil {
			return err
		}
	}
	for _, day := range days {
		if err := s.insertDay(ctx, rows, day, id); err != nil {
			return fmt.Errorf("inserting the events of %s: %w", day.Format(time.DateOnly), err)
		}
	}
	if st == nil {
		return nil
	}
	if s.afterInsert != nil {
		s.afterInsert()
	}
	return s.writeMark(ctx, st, source, mark, nil, left)
}

// addDay adds day to the sorted set days.
func addDay(days []time.Time, day time.Time) []time.Time {
	i, found := slices.BinarySearchFunc(days, day, time.Time.Compare)
	if found {
		return days
	}
	return slices.Insert(days, i, day)
}

// writeMark inserts a row of ingest_marks for source, with a version newer
// than any before it.
func (s *Store) writeMark(ctx context.Context, st *sourceState, source string, mark []byte, pending []time.Time, left map[uint64]int) error {
	st.version = max(uint64(time.Now().UnixNano()), st.version+1)
	if pending == nil {
		pending = []time.Time{}
	}
	hashes := []uint64{}
	for h, n := range left {
		for range n {
			hashes = append(hashes, h)
		}
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO ingest_marks (source, mark, version, pending, left)")
	if err != nil {
		return fmt.Errorf("setting the mark of %q: %w", source, err)
	}
	if err := b.Append(source, string(mark), st.version, pending, hashes); err != nil {
		b.Abort()
		return fmt.Errorf("setting the mark of %q: %w", source, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("setting the mark of %q: %w", source, err)
	}
	return nil
}

// insertDay inserts the rows of day as one INSERT: one part, all or
// nothing.
func (s *Store) insertDay(ctx context.Context, rows []row, day time.Time, id uint64) error {
	c := &s.cols
	c.reset()
	for _, r := range rows {
		if r.day.Equal(day) {
			c.add(r.e, r.day, id, r.hash)
		}
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO events ("+insertColumns+")")
	if err != nil {
		return err
	}
	if err := c.appendTo(b); err != nil {
		b.Abort()
		return err
	}
	return b.Send()
}

// Mark returns the mark of source that AppendMarked stored last, or nil
// when it has none.
func (s *Store) Mark(ctx context.Context, source string) ([]byte, error) {
	st, err := readMark(ctx, s.conn, source)
	if err != nil {
		return nil, fmt.Errorf("chstore: reading the mark of %q: %w", source, err)
	}
	if !st.found {
		return nil, nil
	}
	return st.mark, nil
}

type markRow struct {
	found   bool
	mark    []byte
	version uint64
	pending []time.Time
	left    []uint64
}

// readMark reads the newest row of ingest_marks of source.
func readMark(ctx context.Context, conn driver.Conn, source string) (markRow, error) {
	var (
		m       markRow
		mark    string
		n       uint64
		pending []time.Time
		left    []uint64
	)
	err := conn.QueryRow(ctx, `SELECT argMax(mark, version), argMax(pending, version), argMax(left, version), max(version), count()
FROM ingest_marks WHERE source = ?`, source).Scan(&mark, &pending, &left, &m.version, &n)
	if err != nil {
		return markRow{}, err
	}
	if n == 0 {
		return markRow{}, nil
	}
	m.found, m.mark, m.pending, m.left = true, []byte(mark), pending, left
	return m, nil
}

// state returns what the writer knows of source, reading it from the
// database on the first append after Open and after a failed one. When
// rows of the batch that follows the mark may have been stored (the
// newest row of the source lists pending days, or a write failed), their
// hashes are read, and the next events that match them are not stored
// again. s.mu is held.
func (s *Store) state(ctx context.Context, source string) (*sourceState, error) {
	st := s.sources[source]
	if st == nil {
		st = &sourceState{}
		s.sources[source] = st
	}
	if st.known && !st.check {
		return st, nil
	}
	m, err := readMark(ctx, s.conn, source)
	if err != nil {
		return nil, fmt.Errorf("chstore: reading the mark of %q: %w", source, err)
	}
	st.version = max(st.version, m.version)
	if !st.known {
		// After Open: the database is all there is.
		st.mark, st.currentDays = m.mark, m.pending
		st.carried = map[uint64]int{}
		for _, h := range m.left {
			st.carried[h]++
		}
	} else if bytes.Equal(m.mark, st.mark) {
		// After a failure, its mark not stored: the days of its pending
		// row too, if that went in. (The leftovers in memory are those
		// of before the failed batch, as in its pending row.)
		for _, d := range m.pending {
			st.currentDays = addDay(st.currentDays, d)
		}
	}
	// Otherwise the failed batch's mark was stored after all (its answer
	// was lost): every row of it is in st.currentDays, and the caller
	// will replay it from st.mark.
	st.current = nil
	if len(st.currentDays) > 0 {
		cur, err := s.batchHashes(ctx, batchID(source, st.mark), st.currentDays)
		if err != nil {
			return nil, fmt.Errorf("chstore: reading the half-stored batch of %q: %w", source, err)
		}
		if n := count(cur); n > 0 {
			st.current = cur
			s.log.Warn("clickhouse: a batch was left inserted and not marked; its events will not be stored twice",
				"source", source, "events", n)
		}
	}
	st.known, st.check = true, false
	return st, nil
}

// batchHashes returns the ev_hash of the rows of batch id in days, with
// their number.
func (s *Store) batchHashes(ctx context.Context, id uint64, days []time.Time) (map[uint64]int, error) {
	lits := make([]string, len(days))
	for i, d := range days {
		lits[i] = dateLit(d)
	}
	rows, err := s.conn.Query(ctx, "SELECT ev_hash FROM events WHERE day IN ("+strings.Join(lits, ", ")+") AND batch = "+strconv.FormatUint(id, 10))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[uint64]int{}
	for rows.Next() {
		var h uint64
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out[h]++
	}
	return out, rows.Err()
}

func count(m map[uint64]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// leftovers returns the hashes a batch may skip, carried and current
// together, as a new map that the batch consumes: it becomes st.carried
// once the batch is stored. Nil for a nil st.
func (st *sourceState) leftovers() map[uint64]int {
	if st == nil {
		return nil
	}
	out := maps.Clone(st.carried)
	if out == nil {
		out = map[uint64]int{}
	}
	for h, n := range st.current {
		out[h] += n
	}
	return out
}

// batchID is the id of the batch of source that follows mark: the same
// for every replay of that batch. Never 0, the id of unmarked batches.
func batchID(source string, mark []byte) uint64 {
	d := xxhash.New()
	var n [binary.MaxVarintLen64]byte
	d.Write(n[:binary.PutUvarint(n[:], uint64(len(source)))])
	d.WriteString(source)
	d.Write(mark)
	return max(d.Sum64(), 1)
}

// The days a Date column holds on every release (18.16 counts to 2105):
// an event outside is kept in the partition of the nearest one, and its
// time_ns is exact.
var (
	firstDay = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	lastDay  = time.Date(2105, 12, 31, 0, 0, 0, 0, time.UTC)
)

// dayOf returns the value of the day column for an event of time t: its
// UTC day, within firstDay and lastDay. Readers that bound a range by day
// (partition pruning) take it from here too.
func dayOf(t time.Time) time.Time {
	d := t.UTC().Truncate(24 * time.Hour)
	if t.Before(firstDay) {
		return firstDay
	}
	if d.After(lastDay) {
		return lastDay
	}
	return d
}

// transient wraps err in an *eventstore.TransientError. Every event was
// checked before ClickHouse saw it, so what ClickHouse or the network
// refuses after that is the engine's state (down, a full disk, memory, a
// timeout), never an event's fault: the same batch may be taken later.
func transient(err error) error {
	if err == nil {
		return nil
	}
	var te *eventstore.TransientError
	if errors.As(err, &te) {
		return err
	}
	return &eventstore.TransientError{Err: err}
}

// isConnError reports whether err says the server could not be reached or
// went away.
func isConnError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
