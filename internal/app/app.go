// Package app wires takedown's capability packages together: it opens the
// database file, the registry and the event store from the configuration, and
// runs the server. It is the only package that knows them all.
package app

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/config"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/dnssec"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/spool"
)

// Local is the database opened in this process.
type Local struct {
	// DB is the DuckDB file: the registry, the audit log, the users and
	// the subscribers, and the events when store.engine is duckdb.
	DB       *sql.DB
	Registry *registry.Registry
	// Store is the event store of store.engine.
	Store EventStore
	// Keys are the DNSSEC keys of the cases (KeyDir, and the database).
	Keys *dnssec.Store
}

// Open opens (creating if needed) the database file that cfg names, with its
// registry, and the event store of store.engine.
func Open(ctx context.Context, cfg config.Config) (*Local, error) {
	return open(ctx, cfg, nil)
}

// open is Open with the logger of the event store's engine (nil
// discards).
func open(ctx context.Context, cfg config.Config, log *slog.Logger) (*Local, error) {
	if dir := filepath.Dir(cfg.Store.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
	}
	db, err := dbfile.Open(ctx, cfg.Store.Path)
	if err != nil {
		return nil, err
	}
	if mb := cfg.Store.MemoryLimitMB; mb > 0 {
		if _, err := db.ExecContext(ctx, fmt.Sprintf("SET memory_limit = '%dMiB'", mb)); err != nil {
			db.Close()
			return nil, fmt.Errorf("store.memory_limit_mb: %w", err)
		}
	}
	// The registry tells our DS records from stale ones with the keys,
	// which are opened after it (ourDS).
	var ds ourDS
	reg, err := registry.New(ctx, registry.Config{DB: db, OurDS: ds.of})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening registry: %w", err)
	}
	keys, err := dnssec.Open(ctx, dnssec.Config{DB: db, Dir: KeyDir(cfg)})
	if err != nil {
		db.Close()
		return nil, err
	}
	ds.keys = &Keys{Cfg: cfg, Store: keys, Registry: reg}
	st, err := openEvents(ctx, cfg, db, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Local{DB: db, Registry: reg, Store: st, Keys: keys}, nil
}

// Close closes the store and the database.
func (l *Local) Close() error {
	return errors.Join(l.Store.Close(), l.DB.Close())
}

// EnsureToken returns the API token in path, creating the file with a new
// random token (mode 0600) when it does not exist.
func EnsureToken(path string) (string, error) {
	if tok, err := ReadToken(path); err == nil {
		return tok, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("creating token directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("creating API token file: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("writing API token file: %w", err)
	}
	return tok, f.Close()
}

// ReadToken reads the API token file.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("API token file %s is empty", path)
	}
	return tok, nil
}

// recorder is what the sinks record through (sink.Recorder).
type recorder interface{ Record(e *event.Event) }

// pipeRecorder adapts the pipeline to the sinks' Recorder.
type pipeRecorder struct{ p *pipeline.Pipeline }

func (r pipeRecorder) Record(e *event.Event) { r.p.Record(e) }

// spoolConfig is the spool's Config from cfg.
func spoolConfig(cfg config.Config, log *slog.Logger, reg prometheus.Registerer) spool.Config {
	o := spool.Config{
		Dir: cfg.Pipeline.SpoolDir, MaxBytes: int64(cfg.Pipeline.SpoolMaxMB) << 20,
		SyncInterval:  syncInterval(cfg.Pipeline.SyncMS),
		FlushInterval: time.Duration(cfg.Pipeline.SpoolFlushMS) * time.Millisecond,
		Logger:        log, Registerer: reg,
	}
	if cfg.Pipeline.DiskReserveMB > 0 {
		o.MinFreeBytes = int64(cfg.Pipeline.DiskReserveMB) << 20
	}
	return o
}

// syncInterval turns pipeline.sync_ms into the spool's SyncInterval: -1
// means every write.
func syncInterval(ms int) time.Duration {
	if ms < 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

// retention is what runRetention needs of the event store.
type retention interface {
	DeleteBefore(ctx context.Context, cutoff time.Time) (int64, error)
}

// runRetention deletes events older than days, at start and then hourly,
// and with prune (when not nil) the evidence log's data of their batches.
func runRetention(ctx context.Context, st retention, prune func(context.Context, time.Time) (int64, error), days int, log *slog.Logger) {
	if days <= 0 {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		cutoff := time.Now().UTC().AddDate(0, 0, -days)
		n, err := st.DeleteBefore(ctx, cutoff)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("deleting old events", "err", err)
		case n > 0:
			log.Info("deleted old events", "events", n, "before", cutoff.Format(time.DateOnly))
		}
		if prune != nil {
			switch n, err := prune(ctx, cutoff); {
			case err != nil && ctx.Err() == nil:
				log.Error("pruning the evidence log's old batches", "err", err)
			case n > 0:
				log.Info("pruned the evidence log's old batches (their hashes stay)", "leaves", n, "before", cutoff.Format(time.DateOnly))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
