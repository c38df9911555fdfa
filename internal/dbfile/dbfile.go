// Package dbfile opens takedown's embedded database: one DuckDB file that
// holds the registry and the events, with no server.
//
// The file and its WAL are created mode 0600 (Open tightens the process's
// umask): they hold infected hosts' addresses, users and sessions.
//
// It tells apart the cases a user meets: a new file, a takedown database, a
// file that is not a DuckDB database at all, a DuckDB database of another
// program, and a file that another process (usually a running
// `takedown serve`) holds open.
package dbfile

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" driver

	"github.com/takedown-project/takedown/internal/idle"
)

// Application is the value of takedown_meta.application in every takedown
// database.
const Application = "takedown"

// ErrLocked reports that another process has the database file open for
// writing.
var ErrLocked = errors.New("database file is in use by another process")

// ErrForeign reports a file that is not a takedown database.
var ErrForeign = errors.New("not a takedown database")

// duckMagic is found at offset 8 of every DuckDB database file.
var duckMagic = []byte("DUCK")

// RowGroupSize is the number of rows in one of DuckDB's row groups, the
// unit it compresses and writes. A transaction that appends a multiple of it
// writes whole, compressed row groups straight to the file at its commit.
// Any other size leaves a partly filled row group behind each commit, which
// the next checkpoint reads back, merges and compresses a second time:
// appending 983,040 events in batches of 131,072 took 60 % more CPU than in
// batches of 122,880 and made a file twice the size (BENCHMARKS.md).
const RowGroupSize = 122_880

// Open opens or creates the database file at path. An empty path opens an
// in-memory database, for tests.
//
// The file holds infected hosts' addresses, users and their sessions: it is
// created mode 0600, and so is its WAL. For that Open adds 077 to the
// process's umask, for good: whatever the process creates after it (the
// spool, reports, exports) is its owner's only too.
//
// An append of RowGroupSize rows, or a multiple of it, is the cheapest a
// row costs: see RowGroupSize.
func Open(ctx context.Context, path string) (*sql.DB, error) {
	if path != "" {
		privateFiles()
		if err := checkHeader(path); err != nil {
			return nil, err
		}
	}
	// DuckDB starts its worker threads when it opens the file, and they
	// inherit the opening thread's CPU class: queries and appends make
	// progress on their calling threads, and the help of the workers
	// comes from CPU time that the sinks leave (package idle).
	var db *sql.DB
	var err error
	idle.Run(func() { db, err = sql.Open("duckdb", path) })
	if err != nil {
		return nil, explain(path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, explain(path, err)
	}
	// DuckDB checkpoints the WAL into the file every 16 MB by default, which
	// under bulk appends means every ~50,000 events and halves the append
	// rate (BENCHMARKS.md). A larger WAL costs only replay time after a
	// crash.
	if _, err := db.ExecContext(ctx, `SET checkpoint_threshold = '256MB'`); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: setting checkpoint_threshold: %w", path, err)
	}
	if err := claim(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	return db, nil
}

// checkHeader refuses a file that exists but is not DuckDB's, before DuckDB
// gets to it.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening database: %w", err)
	}
	defer f.Close()
	head := make([]byte, 12)
	n, err := io.ReadFull(f, head)
	if n == 0 && (err == io.EOF) {
		return fmt.Errorf("database %s: the file is empty: %w", path, ErrForeign)
	}
	if err != nil || !bytes.Equal(head[8:12], duckMagic) {
		return fmt.Errorf("database %s: the file is not a DuckDB database: %w", path, ErrForeign)
	}
	return nil
}

func explain(path string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Could not set lock") || strings.Contains(msg, "Conflicting lock"):
		return fmt.Errorf("database %s: %w (is `takedown serve` running? point the CLI at its API): %v", path, ErrLocked, err)
	case strings.Contains(msg, "not a valid DuckDB database") || strings.Contains(msg, "Serialization Error") || strings.Contains(msg, "corrupt"):
		return fmt.Errorf("database %s: the file is damaged or not a takedown database: %w: %v", path, ErrForeign, err)
	}
	return fmt.Errorf("opening database %s: %w", path, err)
}

// claim marks a new database as takedown's and refuses one of another
// program.
func claim(ctx context.Context, db *sql.DB) error {
	var tables int
	if err := db.QueryRowContext(ctx,
		`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main'`).Scan(&tables); err != nil {
		return fmt.Errorf("reading tables: %w", err)
	}
	var hasMeta int
	if err := db.QueryRowContext(ctx,
		`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = 'takedown_meta'`).Scan(&hasMeta); err != nil {
		return fmt.Errorf("reading tables: %w", err)
	}
	if hasMeta == 0 {
		if tables > 0 {
			return fmt.Errorf("it holds %d tables of another program and no takedown_meta: %w", tables, ErrForeign)
		}
		if _, err := db.ExecContext(ctx, `CREATE TABLE takedown_meta (application VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)`); err != nil {
			return fmt.Errorf("creating takedown_meta: %w", err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO takedown_meta (application) VALUES (?)`, Application); err != nil {
			return fmt.Errorf("writing takedown_meta: %w", err)
		}
		return nil
	}
	var app string
	if err := db.QueryRowContext(ctx, `SELECT application FROM takedown_meta LIMIT 1`).Scan(&app); err != nil {
		return fmt.Errorf("reading takedown_meta: %w", err)
	}
	if app != Application {
		return fmt.Errorf("takedown_meta names application %q: %w", app, ErrForeign)
	}
	return nil
}
