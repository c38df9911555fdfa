// Package backup copies takedown's database file while `takedown serve`
// writes it, and brings such a copy back.
//
// Copying the file under a writing serve can give a torn copy: DuckDB
// writes new row groups into the file before their commit, checkpoints the
// WAL into it from time to time, and a copy taken with cp may hold half of
// one and half of the other. What DuckDB does guarantee is snapshot
// isolation: a transaction reads the database as of its start, whatever
// other connections commit meanwhile. Snapshot therefore attaches a new,
// empty DuckDB file and, inside one transaction, counts the rows of every
// table and runs COPY FROM DATABASE into it: schema (tables with their keys,
// indexes, macros) and data, all of the same instant. The registry, the
// audit log, users, subscribers, the evidence log and the events (when
// store.engine is duckdb) are in that file; the copy is an ordinary
// takedown database file, which DuckDB and takedown open as they open the
// original. Writers are not held up: appends go on during the copy and are
// simply not in it.
//
// A ClickHouse deployment keeps its events in ClickHouse: those tables are
// backed up with ClickHouse's own tools (BACKUP … TO Disk, or
// clickhouse-backup), ideally at the same time; the DuckDB file holds the
// rest.
package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Counts maps each table of the database (schema main) to its rows.
type Counts map[string]int64

// Tables returns the table names in order.
func (c Counts) Tables() []string {
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Equal reports whether c and d have the same tables and rows.
func (c Counts) Equal(d Counts) bool {
	if len(c) != len(d) {
		return false
	}
	for k, v := range c {
		if w, ok := d[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Diff names the tables whose rows differ between c (expected) and d.
func (c Counts) Diff(d Counts) string {
	var out []string
	for _, k := range c.Tables() {
		if w, ok := d[k]; !ok {
			out = append(out, fmt.Sprintf("%s: %d rows expected, table missing", k, c[k]))
		} else if w != c[k] {
			out = append(out, fmt.Sprintf("%s: %d rows expected, %d found", k, c[k], w))
		}
	}
	for _, k := range d.Tables() {
		if _, ok := c[k]; !ok {
			out = append(out, fmt.Sprintf("%s: unexpected table", k))
		}
	}
	return strings.Join(out, "; ")
}

// querier is what count needs: a *sql.DB, *sql.Conn or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// count counts the rows of every base table of schema main in catalog.
func count(ctx context.Context, q querier, catalog string) (Counts, error) {
	rows, err := q.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_catalog = ? AND table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name`, catalog)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	c := make(Counts, len(names))
	for _, n := range names {
		var k int64
		if err := q.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.main.%s`, ident(catalog), ident(n))).Scan(&k); err != nil {
			return nil, fmt.Errorf("counting %s: %w", n, err)
		}
		c[n] = k
	}
	return c, nil
}

// ident quotes a DuckDB identifier.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// literal quotes a DuckDB string literal.
func literal(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// Snapshot writes a consistent copy of the database open in db to a new
// file at path (which must not exist; it is created mode 0600) and returns
// the rows of every table in the copy, counted in the same transaction. On
// failure it removes what it wrote.
//
// between, if not nil, runs its function while no batch of events is
// being stored (the DuckDB store's Hold): the copy's transaction begins
// there, so that it holds whole batches, and no evidence leaf whose batch
// was still being committed (the log commits a batch's leaf just before
// the batch).
func Snapshot(ctx context.Context, db *sql.DB, path string, between func(func() error) error) (c Counts, err error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("backup %s: the file exists already", path)
	}
	// DuckDB creates the file with the process's umask; make it private
	// before the first byte is written.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating backup: %w", err)
	}
	f.Close()
	os.Remove(path) // DuckDB refuses an empty file; the name was free and is ours to take
	defer func() {
		if err != nil {
			os.Remove(path)
			os.Remove(path + ".wal")
		}
	}()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var catalog string
	if err := conn.QueryRowContext(ctx, `SELECT current_database()`).Scan(&catalog); err != nil {
		return nil, fmt.Errorf("reading the database's name: %w", err)
	}
	const alias = "takedown_backup"
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`ATTACH %s AS %s`, literal(path), alias)); err != nil {
		return nil, fmt.Errorf("creating backup %s: %w", path, err)
	}
	detached := false
	defer func() {
		if !detached {
			conn.ExecContext(context.WithoutCancel(ctx), `DETACH `+alias)
		}
	}()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("backup %s: %w", path, err)
	}
	if between == nil {
		between = func(fn func() error) error { return fn() }
	}
	begun, committed := false, false
	defer func() {
		if begun && !committed {
			conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
		}
	}()
	// The counts and the copy read the same snapshot: the transaction's,
	// fixed by its first read.
	err = between(func() error {
		if _, err := conn.ExecContext(ctx, `BEGIN TRANSACTION`); err != nil {
			return err
		}
		begun = true
		c, err = count(ctx, conn, catalog)
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`COPY FROM DATABASE %s TO %s`, ident(catalog), alias)); err != nil {
		return nil, fmt.Errorf("copying the database into %s: %w", path, err)
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return nil, fmt.Errorf("committing the copy into %s: %w", path, err)
	}
	committed = true
	if _, err := conn.ExecContext(ctx, `DETACH `+alias); err != nil {
		return nil, fmt.Errorf("closing backup %s: %w", path, err)
	}
	detached = true
	if err := syncFile(path); err != nil {
		return nil, err
	}
	return c, nil
}

// TempPattern is the name (os.CreateTemp's pattern) of the copy that a
// server writes beside its database before it sends it to the client;
// DuckDB keeps the copy's WAL beside it, under the name with ".wal".
const TempPattern = ".backup-*.duckdb"

// RemoveStale removes from dir the copies of backups that did not end
// (the process was killed while it wrote or sent one) and their WALs, and
// returns the names it removed. The caller holds the database of dir
// open, so that no backup of another process is under way there.
func RemoveStale(dir string) ([]string, error) {
	var removed []string
	var errs []error
	for _, pattern := range []string{TempPattern, TempPattern + ".wal"} {
		names, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing an unfinished backup: %w", err))
				continue
			}
			removed = append(removed, filepath.Base(n))
		}
	}
	return removed, errors.Join(errs...)
}

// CountFile counts the rows of every table of the DuckDB file at path,
// opened read-only.
func CountFile(ctx context.Context, path string) (Counts, error) {
	db, err := sql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	var catalog string
	if err := db.QueryRowContext(ctx, `SELECT current_database()`).Scan(&catalog); err != nil {
		return nil, fmt.Errorf("%s: not a DuckDB database: %w", path, err)
	}
	return count(ctx, db, catalog)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return nil
}
