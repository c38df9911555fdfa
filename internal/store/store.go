// Package store keeps sinkhole events in the embedded DuckDB database and
// answers the questions the reports and the dashboard ask of them: unique
// infected hosts per day, family, network and country, callbacks per hour,
// and the events themselves for export.
//
// Events are appended in batches through DuckDB's appender, one batch per
// transaction; they are kept until retention deletes them.
//
// It is an engine of the contract in internal/eventstore (Store is its
// Writer and Reader, Rollup its Rollup) and passes the conformance suite
// storetest. Only the composition imports it; readers name the types of
// eventstore.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/migrate"
)

// Config configures a Store. The zero value of every field but DB works.
type Config struct {
	// DB is the DuckDB database that holds the events, usually from
	// dbfile.Open. It is required. The caller owns it and closes it after
	// the Store.
	DB *sql.DB
	// Logger receives the store's few log lines (migrations, retention).
	// Nil discards them.
	Logger *slog.Logger
	// CheckpointAfter is the number of deleted rows from which DeleteBefore
	// runs a CHECKPOINT, so that DuckDB gives the room back to the file at
	// once rather than at its next automatic checkpoint. Zero means 100,000;
	// a negative value never checkpoints.
	CheckpointAfter int64
}

// Store is the event store. Its methods are safe for concurrent use; appends
// are serialised on one connection.
type Store struct {
	db              *sql.DB
	log             *slog.Logger
	checkpointAfter int64

	mu     sync.Mutex // guards the fields below and serialises appends
	conn   *sql.Conn
	shapes map[uint64]*shape // by the columns they fill (see shapeOf)
	row    []driver.Value    // the values of every column of one event
	box    boxes
	closed bool
}

// Store is an engine of the event store: it is the Writer and the Reader
// of package eventstore, and its Rollup the eventstore.Rollup.
var (
	_ eventstore.Writer = (*Store)(nil)
	_ eventstore.Reader = (*Store)(nil)
	_ eventstore.Rollup = (*Rollup)(nil)
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("store: closed")

// Open brings the events schema of cfg.DB up to date and returns a Store on
// it.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("store: no database given")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.CheckpointAfter == 0 {
		cfg.CheckpointAfter = 100_000
	}
	if err := migrate.Apply(ctx, cfg.DB, Component, migrations); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Store{
		db:              cfg.DB,
		log:             log,
		checkpointAfter: cfg.CheckpointAfter,
		row:             make([]driver.Value, len(columnNames)),
	}, nil
}

// Close closes the appender and its connection. It does not close the
// database. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.dropAppender()
}

// dropAppender closes the appenders and their connection; s.mu is held.
func (s *Store) dropAppender() error {
	var errs []error
	for k, sh := range s.shapes {
		if err := sh.app.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: closing appender: %w", err))
		}
		delete(s.shapes, k)
	}
	if s.conn != nil {
		if err := s.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: closing append connection: %w", err))
		}
		s.conn = nil
	}
	return errors.Join(errs...)
}

// clearAppenders throws away the rows the appenders hold; s.mu is held.
func (s *Store) clearAppenders() {
	for _, sh := range s.shapes {
		sh.app.Clear()
	}
}

// connect opens the dedicated connection of the appenders on first use;
// s.mu is held.
func (s *Store) connect(ctx context.Context) error {
	if s.conn != nil {
		return nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: opening append connection: %w", err)
	}
	s.conn = conn
	return nil
}

// Append stores a batch of events. The batch is all or nothing: every event
// is checked first, and a batch with an invalid event is refused whole with
// an error that names its index; the rows are then appended and committed in
// one transaction.
//
// Times are stored in UTC to the nanosecond; an IPv4-mapped IPv6 address is
// stored, and read back, as the IPv4 address; the zone of an address is
// dropped.
func (s *Store) Append(ctx context.Context, batch []event.Event) error {
	return s.AppendMarked(ctx, batch, "", nil)
}

// AppendMarked is Append that also sets the mark of source to mark in the
// same transaction: either the batch and the mark are both stored, or
// neither is. An empty source sets no mark. A batch may be empty, to move
// the mark alone.
func (s *Store) AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error {
	return s.AppendMarkedBefore(ctx, batch, source, mark, nil)
}

// AppendMarkedBefore is AppendMarked that, when before is not nil, calls
// it inside the transaction once the rows and the mark are written, just
// before the commit: if it fails, nothing is stored and its error is
// returned. The evidence log (package evidence) commits a batch's leaf
// there, so that the leaf is durable before the batch while hashing the
// batch overlaps appending it.
func (s *Store) AppendMarkedBefore(ctx context.Context, batch []event.Event, source string, mark []byte, before func(context.Context) error) error {
	for i := range batch {
		if err := eventstore.Check(&batch[i]); err != nil {
			return fmt.Errorf("store: appending batch: %w", &eventstore.EventError{Index: i, Err: err})
		}
	}
	if len(batch) == 0 && source == "" {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: appending batch: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.connect(ctx); err != nil {
		return transient(err)
	}
	if _, err := s.conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return transient(fmt.Errorf("store: appending batch: beginning transaction: %w", err))
	}
	if err := s.appendRows(batch); err != nil {
		// Throw away what the appenders hold, then the transaction with
		// what they flushed; start over with fresh appenders.
		s.clearAppenders()
		s.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		s.dropAppender()
		return transient(fmt.Errorf("store: appending batch: %w", err))
	}
	if source != "" {
		if _, err := s.conn.ExecContext(ctx, `INSERT OR REPLACE INTO ingest_marks VALUES (?, ?, now())`, source, mark); err != nil {
			s.clearAppenders()
			s.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			s.dropAppender()
			return transient(fmt.Errorf("store: appending batch: setting the mark of %q: %w", source, err))
		}
	}
	if before != nil {
		if err := before(ctx); err != nil {
			s.clearAppenders()
			s.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			s.dropAppender()
			return err
		}
	}
	// The commit is never interrupted: DuckDB may report an interrupted
	// COMMIT as failed after it has made the transaction durable, and the
	// caller would then store the batch a second time.
	if _, err := s.conn.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		s.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		s.dropAppender()
		return transient(fmt.Errorf("store: appending batch: committing: %w", err))
	}
	return nil
}

// Hold runs fn while no batch is being appended. A transaction that fn
// begins and reads from sees whole batches, and with the evidence log no
// batch leaf whose batch is not committed yet (a backup's snapshot).
func (s *Store) Hold(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn()
}

// Mark returns the mark of source that AppendMarked stored last, or nil
// when it has none.
func (s *Store) Mark(ctx context.Context, source string) ([]byte, error) {
	var mark []byte
	err := s.db.QueryRowContext(ctx, `SELECT mark FROM ingest_marks WHERE source = ?`, source).Scan(&mark)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading the mark of %q: %w", source, err)
	}
	return mark, nil
}

// appendRows appends the rows of batch, each through the appender of its
// shape, and flushes them; s.mu is held.
func (s *Store) appendRows(batch []event.Event) error {
	a := s.row
	for i := range batch {
		e := &batch[i]
		s.box.setRow(a, e)
		sh, err := s.shape(shapeOf(a))
		if err != nil {
			return err
		}
		if err := sh.append(a); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	for _, sh := range s.shapes {
		if err := sh.app.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// setRow sets a to the values of e's columns, in table order. A column
// whose value is unknown, or its column's default, is nil (see shapeOf).
func (b *boxes) setRow(a []driver.Value, e *event.Event) {
	a[0] = e.Time
	a[1] = b.str(e.Sensor)
	a[2] = b.str(string(e.Protocol))
	a[3] = b.str(string(e.Transport))
	a[4], a[5] = srcIPValues(e.SrcIP)
	a[6] = e.SrcPort
	a[7] = b.dstIP(e.DstIP)
	a[8] = b.port(e.DstPort)
	a[9] = str(e.Domain)
	a[10] = b.str(e.Zone)
	a[11] = b.str(e.Case)
	a[12] = b.str(e.Family)
	a[13] = b.str(e.Tag)
	a[14] = str(e.BotID)
	a[15] = b.str(e.HTTPMethod)
	a[16] = str(e.HTTPPath)
	a[17] = b.str(e.HTTPUserAgent)
	a[18] = b.str(e.TLSVersion)
	a[19] = b.str(e.TLSCipher)
	a[20] = b.str(e.TLSFingerprint)
	a[21] = b.str(e.DNSQType)
	a[22] = b.str(e.DNSRcode)
	a[23] = e.Bytes
	a[24] = str(e.PayloadSHA256)
	a[25] = nil
	if len(e.PayloadHead) > 0 {
		a[25] = e.PayloadHead
	}
	a[26] = e.ASN
	a[27] = b.str(e.ASName)
	a[28] = b.str(e.CountryCode)
	a[29] = b.str(e.Region)
	a[30] = b.str(e.City)
	a[31] = e.Latitude
	a[32] = e.Longitude
	a[colDNSDO] = flag(e.DNSDO)
	a[34] = str(e.DNSClientSubnet)
	a[colMalformed] = flag(e.Malformed)
	a[36] = str(e.HTTPReferer)
	a[37] = str(e.HTTPForwardedBy)
	a[38] = b.str(e.HTTPContentType)
	a[39] = b.str(e.TLSALPN)
	a[40] = str(e.SMTPHelo)
	a[41] = str(e.SMTPFrom)
	a[42] = str(e.SMTPRcptDomains)
	a[colRcptCount] = nil
	if e.SMTPRcptCount != 0 {
		a[colRcptCount] = e.SMTPRcptCount
	}
	a[44] = str(e.SMTPSubject)
	a[45] = str(e.SMTPMessageID)
	a[46] = b.str(e.Error)
}

// flag maps false, the default of the flag columns, to nil.
func flag(b bool) driver.Value {
	if b {
		return true
	}
	return nil
}

// The columns with a default other than NULL (schema.go), and their
// default values.
const (
	colDNSDO     = 33
	colMalformed = 35
	colRcptCount = 43
)

var columnDefaults = map[int]driver.Value{colDNSDO: false, colMalformed: false, colRcptCount: uint32(0)}

// maxShapes bounds the appenders a Store keeps; the rows of any further
// shape go through one appender of every column (fullShape).
const maxShapes = 32

// fullShape is the shape of every column.
var fullShape = uint64(1)<<len(columnNames) - 1

// A shape is an appender of the columns that an event fills: the others are
// left to their defaults, which DuckDB sets a chunk at a time. Each value
// handed to DuckDB, NULL or string, is a call through cgo, and an event
// fills about 15 of the 47 columns: an HTTP request appended through its
// shape costs a third of the calls of a full row.
type shape struct {
	app  *duckdb.Appender
	cols []int // the columns, in table order
	args []driver.Value
}

// shapeOf returns the set of columns that row fills: bit i for column i.
func shapeOf(row []driver.Value) uint64 {
	var m uint64
	for i, v := range row {
		if v != nil {
			m |= 1 << i
		}
	}
	return m
}

// shape returns the appender of the columns in m, creating it on first use;
// s.mu is held and s.conn open.
func (s *Store) shape(m uint64) (*shape, error) {
	if sh, ok := s.shapes[m]; ok {
		return sh, nil
	}
	if len(s.shapes) >= maxShapes {
		m = fullShape
		if sh, ok := s.shapes[m]; ok {
			return sh, nil
		}
	}
	sh := &shape{}
	var names []string
	for i, name := range columnNames {
		if m&(1<<i) != 0 {
			sh.cols = append(sh.cols, i)
			names = append(names, name)
		}
	}
	sh.args = make([]driver.Value, len(sh.cols))
	err := s.conn.Raw(func(dc any) error {
		var err error
		sh.app, err = duckdb.NewAppenderWithColumns(dc.(driver.Conn), "", "", "events", names)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: creating appender: %w", err)
	}
	if s.shapes == nil {
		s.shapes = make(map[uint64]*shape)
	}
	s.shapes[m] = sh
	return sh, nil
}

// append appends the values of row that sh's columns hold; a column left
// nil gets its default.
func (sh *shape) append(row []driver.Value) error {
	for j, c := range sh.cols {
		v := row[c]
		if v == nil {
			v = columnDefaults[c]
		}
		sh.args[j] = v
	}
	return sh.app.AppendRow(sh.args...)
}

// str maps "not known" to NULL.
func str(s string) driver.Value {
	if s == "" {
		return nil
	}
	return s
}

// transient wraps err in an eventstore.TransientError when it says so.
func transient(err error) error {
	if err == nil {
		return nil
	}
	var de *duckdb.Error
	if errors.As(err, &de) {
		switch de.Type {
		case duckdb.ErrorTypeIO, duckdb.ErrorTypeOutOfMemory, duckdb.ErrorTypeInterrupt, duckdb.ErrorTypeConnection,
			duckdb.ErrorTypeFatal, duckdb.ErrorTypeTransaction:
			return &eventstore.TransientError{Err: err}
		}
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EDQUOT) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &eventstore.TransientError{Err: err}
	}
	// What the engine says in words, where it gives no type.
	for _, s := range []string{"No space left on device", "Could not write", "Input/output error", "Out of Memory", "out of memory"} {
		if strings.Contains(err.Error(), s) {
			return &eventstore.TransientError{Err: err}
		}
	}
	return err
}
