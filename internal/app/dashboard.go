package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/dashboard"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/idle"
	"github.com/takedown-project/takedown/internal/users"
)

// startDashboard opens the users and the store's rollup, and starts the
// web dashboard's refresh loop; stop ends it (and its live streams, so
// that the API's shutdown does not wait for them). A dashboard turned off
// in the config gives a nil handler.
func startDashboard(ctx context.Context, cfg config.Config, local *Local, token string, log *slog.Logger) (h http.Handler, stop func() error, err error) {
	if cfg.Dashboard.Disabled {
		return nil, nil, nil
	}
	us, err := users.Open(ctx, users.Config{DB: local.DB,
		SessionTTL:  time.Duration(cfg.Dashboard.SessionHours) * time.Hour,
		IdleTimeout: time.Duration(cfg.Dashboard.IdleMinutes) * time.Minute})
	if err != nil {
		return nil, nil, fmt.Errorf("dashboard: %w", err)
	}
	roll, err := local.Store.OpenRollup(ctx, log)
	if err != nil {
		return nil, nil, fmt.Errorf("dashboard: %w", err)
	}
	demo := false
	for _, db := range cfg.Enrich.Databases {
		demo = demo || filepath.Base(db) == demoworld.FileName
	}
	d, err := dashboard.New(dashboard.Config{
		Users: us, Registry: local.Registry, Rollup: roll, APIToken: token,
		DevDir: cfg.Dashboard.DevDir, SecureCookie: cfg.Dashboard.SecureCookie,
		Refresh: time.Duration(cfg.Dashboard.RefreshMS) * time.Millisecond,
		Sensor:  cfg.Sensor, Operator: cfg.Operator, Demo: demo, Logger: log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("dashboard: %w", err)
	}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	// The rollup's refresh scans the day's events: it runs in the idle
	// CPU class, on what the sinks leave.
	go func() { defer close(done); idle.Run(func() { d.Run(dctx) }) }()
	return d, func() error { cancel(); <-done; return nil }, nil
}
