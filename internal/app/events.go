package app

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/store"
)

// EventStore is the event store of the roles that keep events (single and
// central; a sensor keeps none): the engine that store.engine names, the
// DuckDB file or ClickHouse. The composition hands it to the pipeline, the
// collector, the API, the feed, the reports and retention, each of which
// names only the methods it calls; the registry, the audit log, the users
// and the subscribers stay in the DuckDB file whatever the engine.
type EventStore interface {
	eventstore.Writer
	eventstore.Reader
	// DeleteBefore deletes the events older than cutoff and returns how
	// many.
	DeleteBefore(ctx context.Context, cutoff time.Time) (int64, error)
	// Retain keeps the events of the UTC day of now and of the days
	// whole days before it, and deletes the older ones.
	Retain(ctx context.Context, now time.Time, days int) (int64, error)
	// Close releases the engine; it is idempotent.
	Close() error
	// Ping tells whether the engine answers: readyz's store check. Its
	// error names the engine and where it is.
	Ping(ctx context.Context) error
	// OpenRollup opens the daily rollup of the events, which the
	// dashboard reads.
	OpenRollup(ctx context.Context, log *slog.Logger) (eventstore.Rollup, error)
	// Where names the engine and where it keeps the events, for status.
	Where() StoreWhere
}

// StoreWhere names an event store engine and where it keeps the events.
type StoreWhere struct {
	// Engine is config.EngineDuckDB or config.EngineClickHouse.
	Engine string
	// Address is where a server engine keeps them: the ClickHouse
	// servers and database ("127.0.0.1:9000/takedown"); "" for the
	// DuckDB file (store.path).
	Address string
}

var _ EventStore = duckEvents{}

// duckEvents is the DuckDB engine in the database file.
type duckEvents struct {
	*store.Store
	db *sql.DB
}

func (d duckEvents) Ping(ctx context.Context) error { return d.db.PingContext(ctx) }

func (d duckEvents) OpenRollup(ctx context.Context, log *slog.Logger) (eventstore.Rollup, error) {
	return store.OpenRollup(ctx, store.RollupConfig{DB: d.db, Logger: log})
}

func (d duckEvents) Where() StoreWhere { return StoreWhere{Engine: config.EngineDuckDB} }

// openEvents opens the event store of cfg.Store.Engine; db is the DuckDB
// file.
func openEvents(ctx context.Context, cfg config.Config, db *sql.DB, log *slog.Logger) (EventStore, error) {
	switch cfg.Store.Engine {
	case config.EngineClickHouse:
		return openClickHouse(ctx, cfg.Store.ClickHouse, log)
	case config.EngineDuckDB, "":
	default:
		return nil, fmt.Errorf("store.engine: %q is not one of duckdb, clickhouse", cfg.Store.Engine)
	}
	st, err := store.Open(ctx, store.Config{DB: db})
	if err != nil {
		return nil, fmt.Errorf("opening event store: %w", err)
	}
	return duckEvents{Store: st, db: db}, nil
}
