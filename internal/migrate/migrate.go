// Package migrate applies versioned schema migrations to a SQL database.
//
// Each component of takedown (the event store, the registry, …) owns its
// tables and its list of migrations; the versions applied are kept per
// component in the table schema_migrations, so components evolve apart in one
// database file.
package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Migration is one step of a component's schema.
type Migration struct {
	// Version numbers start at 1 and grow by one.
	Version int
	// Name says what the step does, for the log and the table.
	Name string
	// SQL holds the statements of the step, run in one transaction.
	SQL string
}

const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	component  VARCHAR NOT NULL,
	version    INTEGER NOT NULL,
	name       VARCHAR NOT NULL,
	applied_at TIMESTAMP NOT NULL,
	PRIMARY KEY (component, version)
)`

// Apply brings component's schema up to the last of ms. Each migration runs in
// its own transaction together with its row in schema_migrations, so a failed
// step leaves the schema at the step before. A database whose schema is newer
// than ms knows gives an error: an older binary must not write to it.
func Apply(ctx context.Context, db *sql.DB, component string, ms []Migration) error {
	for i, m := range ms {
		if m.Version != i+1 {
			return fmt.Errorf("migrations of %s: step %d has version %d, want %d", component, i, m.Version, i+1)
		}
	}
	if _, err := db.ExecContext(ctx, createTable); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	cur, err := Version(ctx, db, component)
	if err != nil {
		return err
	}
	if cur > len(ms) {
		return fmt.Errorf("schema of %s is at version %d, newer than this binary knows (%d): use a newer takedown", component, cur, len(ms))
	}
	for _, m := range ms[cur:] {
		if err := applyOne(ctx, db, component, m); err != nil {
			return fmt.Errorf("migrating %s to version %d (%s): %w", component, m.Version, m.Name, err)
		}
	}
	return nil
}

func applyOne(ctx context.Context, db *sql.DB, component string, m Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (component, version, name, applied_at) VALUES (?, ?, ?, ?)`,
		component, m.Version, m.Name, time.Now().UTC()); err != nil {
		return err
	}
	return tx.Commit()
}

// Version returns the last version of component applied to db, 0 if none.
func Version(ctx context.Context, db *sql.DB, component string) (int, error) {
	var v sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations WHERE component = ?`, component).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("reading schema version of %s: %w", component, err)
	}
	return int(v.Int64), nil
}
