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
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/store"
)

// Local is the database opened in this process.
type Local struct {
	DB       *sql.DB
	Registry *registry.Registry
	Store    *store.Store
}

// Open opens (creating if needed) the database file that cfg names, with its
// registry and event store.
func Open(ctx context.Context, cfg config.Config) (*Local, error) {
	if dir := filepath.Dir(cfg.Store.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
	}
	db, err := dbfile.Open(ctx, cfg.Store.Path)
	if err != nil {
		return nil, err
	}
	reg, err := registry.New(ctx, registry.Config{DB: db})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening registry: %w", err)
	}
	st, err := store.Open(ctx, store.Config{DB: db})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening event store: %w", err)
	}
	return &Local{DB: db, Registry: reg, Store: st}, nil
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
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
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

// Serve runs `takedown serve` until ctx is cancelled: it opens the database,
// serves the API, keeps the retention, and shuts down in reverse order,
// logging how long each step took. ready, if not nil, is called with the API
// address once the server accepts requests.
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(addr string)) error {
	start := time.Now()
	step := func(what string, t0 time.Time) { log.Info(what, "took", time.Since(t0).Round(time.Microsecond)) }

	t0 := time.Now()
	local, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	step("database open", t0)
	defer func() {
		t0 := time.Now()
		if err := local.Close(); err != nil {
			log.Error("closing database", "err", err)
		}
		step("database closed", t0)
	}()

	token, err := EnsureToken(cfg.API.TokenFile)
	if err != nil {
		return err
	}
	handler := api.New(api.Config{
		Registry: local.Registry, Events: local.Store, Token: token,
		Logger: log.With("component", "api"),
	})
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen %s: %w", cfg.API.Listen, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("api listening", "addr", ln.Addr().String(), "db", cfg.Store.Path)

	retCtx, stopRetention := context.WithCancel(ctx)
	retDone := make(chan struct{})
	go func() {
		defer close(retDone)
		runRetention(retCtx, local.Store, cfg.Store.RetentionDays, log.With("component", "retention"))
	}()
	log.Info("takedown serving", "startup", time.Since(start).Round(time.Microsecond))
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		stopRetention()
		<-retDone
		return fmt.Errorf("api server: %w", err)
	}
	log.Info("shutting down")
	t0 = time.Now()
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("api shutdown", "err", err)
	}
	step("api stopped", t0)
	t0 = time.Now()
	stopRetention()
	<-retDone
	step("retention stopped", t0)
	return nil
}

// runRetention deletes events older than days, at start and then hourly.
func runRetention(ctx context.Context, st *store.Store, days int, log *slog.Logger) {
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
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
