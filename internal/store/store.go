// Package store keeps sinkhole events in the embedded DuckDB database and
// answers the questions the reports and the dashboard ask of them: unique
// infected hosts per day, family, network and country, callbacks per hour,
// and the events themselves for export.
//
// Events are appended in batches through DuckDB's appender, one batch per
// transaction; they are kept until retention deletes them.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/takedown-project/takedown/internal/event"
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

	mu      sync.Mutex // guards the fields below and serialises appends
	conn    *sql.Conn
	app     *duckdb.Appender // every column
	dnsApp  *duckdb.Appender // the columns of a DNS query (dnsColumns)
	args    []driver.Value
	dnsArgs []driver.Value
	box     boxes
	closed  bool
}

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
		args:            make([]driver.Value, numColumns),
		dnsArgs:         make([]driver.Value, len(dnsColumnNames)),
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

// dropAppender closes the appender and its connection; s.mu is held.
func (s *Store) dropAppender() error {
	var errs []error
	for _, a := range []**duckdb.Appender{&s.app, &s.dnsApp} {
		if *a != nil {
			if err := (*a).Close(); err != nil {
				errs = append(errs, fmt.Errorf("store: closing appender: %w", err))
			}
			*a = nil
		}
	}
	if s.conn != nil {
		if err := s.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: closing append connection: %w", err))
		}
		s.conn = nil
	}
	return errors.Join(errs...)
}

// appender returns the appender, creating it and its dedicated connection on
// first use; s.mu is held.
func (s *Store) appender(ctx context.Context) (*duckdb.Appender, error) {
	if s.app != nil {
		return s.app, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: opening append connection: %w", err)
	}
	var app, dnsApp *duckdb.Appender
	err = conn.Raw(func(dc any) error {
		var err error
		if app, err = duckdb.NewAppender(dc.(driver.Conn), "", "", "events"); err != nil {
			return err
		}
		dnsApp, err = duckdb.NewAppenderWithColumns(dc.(driver.Conn), "", "", "events", dnsColumnNames)
		if err != nil {
			app.Close()
		}
		return err
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("store: creating appender: %w", err)
	}
	s.conn, s.app, s.dnsApp = conn, app, dnsApp
	return app, nil
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
	for i := range batch {
		if err := check(&batch[i]); err != nil {
			return fmt.Errorf("store: appending batch: event %d: %w", i, err)
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
	app, err := s.appender(ctx)
	if err != nil {
		return err
	}
	if _, err := s.conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("store: appending batch: beginning transaction: %w", err)
	}
	if err := s.appendRows(app, batch); err != nil {
		// Throw away what the appender holds, then the transaction with
		// what it flushed; start over with a fresh appender.
		app.Clear()
		s.dnsApp.Clear()
		s.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		s.dropAppender()
		return fmt.Errorf("store: appending batch: %w", err)
	}
	if source != "" {
		if _, err := s.conn.ExecContext(ctx, `INSERT OR REPLACE INTO ingest_marks VALUES (?, ?, now())`, source, mark); err != nil {
			app.Clear()
			s.dnsApp.Clear()
			s.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			s.dropAppender()
			return fmt.Errorf("store: appending batch: setting the mark of %q: %w", source, err)
		}
	}
	// The commit is never interrupted: DuckDB may report an interrupted
	// COMMIT as failed after it has made the transaction durable, and the
	// caller would then store the batch a second time.
	if _, err := s.conn.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		s.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		s.dropAppender()
		return fmt.Errorf("store: appending batch: committing: %w", err)
	}
	return nil
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

func (s *Store) appendRows(app *duckdb.Appender, batch []event.Event) error {
	a := s.args
	for i := range batch {
		e := &batch[i]
		if isDNSQuery(e) {
			if err := s.appendDNS(e); err != nil {
				return fmt.Errorf("event %d: %w", i, err)
			}
			continue
		}
		s.box.setLeading(a, e)
		a[15] = s.box.str(e.HTTPMethod)
		a[16] = str(e.HTTPPath)
		a[17] = s.box.str(e.HTTPUserAgent)
		a[18] = s.box.str(e.TLSVersion)
		a[19] = s.box.str(e.TLSCipher)
		a[20] = s.box.str(e.TLSFingerprint)
		a[21] = s.box.str(e.DNSQType)
		a[22] = s.box.str(e.DNSRcode)
		a[23] = e.Bytes
		a[24] = str(e.PayloadSHA256)
		if len(e.PayloadHead) > 0 {
			a[25] = e.PayloadHead
		} else {
			a[25] = nil
		}
		a[26] = e.ASN
		a[27] = s.box.str(e.ASName)
		a[28] = s.box.str(e.CountryCode)
		a[29] = s.box.str(e.Region)
		a[30] = s.box.str(e.City)
		a[31] = e.Latitude
		a[32] = e.Longitude
		a[33] = e.DNSDO
		a[34] = str(e.DNSClientSubnet)
		a[35] = e.Malformed
		a[36] = str(e.HTTPReferer)
		a[37] = str(e.HTTPForwardedBy)
		a[38] = s.box.str(e.HTTPContentType)
		a[39] = s.box.str(e.TLSALPN)
		a[40] = str(e.SMTPHelo)
		a[41] = str(e.SMTPFrom)
		a[42] = str(e.SMTPRcptDomains)
		a[43] = e.SMTPRcptCount
		a[44] = str(e.SMTPSubject)
		a[45] = str(e.SMTPMessageID)
		a[46] = s.box.str(e.Error)
		if err := app.AppendRow(a...); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	if err := s.dnsApp.Flush(); err != nil {
		return err
	}
	return app.Flush()
}

// dnsColumnNames are the columns a DNS query fills; the others are NULL
// (or their default). A row appended with only these costs about half the
// calls into DuckDB of a full one, and the sinkhole sees far more DNS
// queries than anything else.
var dnsColumnNames = []string{"time", "sensor", "protocol", "transport", "src_ip", "src_ip6", "src_port",
	"dst_ip", "dst_port", "domain", "zone", "case_name", "family", "tag", "bot_id", "dns_qtype", "dns_rcode",
	"bytes", "asn", "as_name", "country_code", "region", "city", "latitude", "longitude", "dns_do",
	"dns_client_subnet"}

// isDNSQuery reports whether e fills only dnsColumnNames.
func isDNSQuery(e *event.Event) bool {
	return e.HTTPMethod == "" && e.HTTPPath == "" && e.HTTPUserAgent == "" && e.HTTPReferer == "" &&
		e.HTTPForwardedBy == "" && e.HTTPContentType == "" && e.TLSVersion == "" && e.TLSCipher == "" &&
		e.TLSFingerprint == "" && e.TLSALPN == "" && e.PayloadSHA256 == "" && len(e.PayloadHead) == 0 &&
		!e.Malformed && e.SMTPHelo == "" && e.SMTPFrom == "" && e.SMTPRcptDomains == "" &&
		e.SMTPRcptCount == 0 && e.SMTPSubject == "" && e.SMTPMessageID == "" && e.Error == ""
}

// setLeading sets the values of the columns that both appenders start with:
// time to bot_id, the first 15 of columns and of dnsColumnNames.
func (b *boxes) setLeading(a []driver.Value, e *event.Event) {
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
}

// appendDNS appends e to the DNS appender.
func (s *Store) appendDNS(e *event.Event) error {
	a := s.dnsArgs
	s.box.setLeading(a, e)
	a[15] = s.box.str(e.DNSQType)
	a[16] = s.box.str(e.DNSRcode)
	a[17] = e.Bytes
	a[18] = e.ASN
	a[19] = s.box.str(e.ASName)
	a[20] = s.box.str(e.CountryCode)
	a[21] = s.box.str(e.Region)
	a[22] = s.box.str(e.City)
	a[23] = e.Latitude
	a[24] = e.Longitude
	a[25] = e.DNSDO
	a[26] = str(e.DNSClientSubnet)
	return s.dnsApp.AppendRow(a...)
}

// str maps "not known" to NULL.
func str(s string) driver.Value {
	if s == "" {
		return nil
	}
	return s
}

// check tells why an event cannot be stored.
func check(e *event.Event) error {
	switch {
	case e.Time.IsZero():
		return errors.New("missing time")
	case e.Time.Year() < 1678 || e.Time.Year() > 2261:
		return fmt.Errorf("time %s out of range (1678 to 2261)", e.Time.UTC().Format(time.RFC3339))
	case !e.SrcIP.IsValid():
		return errors.New("invalid source ip")
	case e.Protocol != "" && !e.Protocol.Valid():
		return fmt.Errorf("invalid protocol %q", e.Protocol)
	case e.Transport != "" && e.Transport != event.TransportTCP && e.Transport != event.TransportUDP:
		return fmt.Errorf("invalid transport %q", e.Transport)
	case e.CountryCode != "" && !isCountryCode(e.CountryCode):
		return fmt.Errorf("invalid country code %q (want two upper-case letters)", e.CountryCode)
	case e.Bytes < 0:
		return fmt.Errorf("negative size %d", e.Bytes)
	}
	return nil
}

func isCountryCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}
