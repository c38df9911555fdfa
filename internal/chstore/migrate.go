package chstore

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

const createMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	component String,
	version   UInt32,
	name      String,
	applied   DateTime
)
ENGINE = MergeTree
ORDER BY (component, version)`

// migrate brings the schema of the shard at addr up to the last of
// migrations: each step's statements, then its row in schema_migrations.
// ClickHouse has no transactions: a step that fails half-way leaves its
// row out, and the next Open runs the whole step again (its statements
// are idempotent). A schema newer than this build knows is refused.
func (s *Store) migrate(ctx context.Context, conn driver.Conn, addr string) error {
	return applyMigrations(ctx, conn, addr, s.cfg.Database, s.layout, migrations, s.log)
}

func applyMigrations(ctx context.Context, conn driver.Conn, addr, db string, l layout, ms []migration, log interface {
	Info(string, ...any)
}) error {
	for i, m := range ms {
		if m.Version != uint32(i+1) {
			return fmt.Errorf("chstore: migration %d has version %d, want %d", i, m.Version, i+1)
		}
	}
	if err := conn.Exec(ctx, createMigrations); err != nil {
		return fmt.Errorf("chstore: creating schema_migrations on %s: %w", addr, err)
	}
	cur, err := schemaVersion(ctx, conn, Component)
	if err != nil {
		return fmt.Errorf("chstore: reading the schema version on %s: %w", addr, err)
	}
	if cur > uint32(len(ms)) {
		return fmt.Errorf("chstore: clickhouse database %s has %s schema version %d; this takedown knows up to %d: upgrade takedown (server %s)",
			db, Component, cur, len(ms), addr)
	}
	for _, m := range ms[cur:] {
		for _, stmt := range m.SQL(l) {
			if err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("chstore: migrating %s to version %d (%s) on %s: %w", Component, m.Version, m.Name, addr, err)
			}
		}
		if err := recordVersion(ctx, conn, m); err != nil {
			return fmt.Errorf("chstore: recording version %d of %s on %s: %w", m.Version, Component, addr, err)
		}
		log.Info("clickhouse schema migrated", "component", Component, "version", m.Version, "name", m.Name, "server", addr)
	}
	return nil
}

// schemaVersion returns the last version of component applied, 0 if none.
func schemaVersion(ctx context.Context, conn driver.Conn, component string) (uint32, error) {
	var v uint32
	err := conn.QueryRow(ctx, `SELECT max(version) FROM schema_migrations WHERE component = ?`, component).Scan(&v)
	return v, err
}

// recordVersion inserts the row of m into schema_migrations. (An INSERT
// goes as a batch: 18.16 waits for the data of an INSERT … VALUES sent as
// a plain query.)
func recordVersion(ctx context.Context, conn driver.Conn, m migration) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (component, version, name, applied)")
	if err != nil {
		return err
	}
	if err := b.Append(Component, m.Version, m.Name, time.Now().UTC().Truncate(time.Second)); err != nil {
		b.Abort()
		return err
	}
	return b.Send()
}
