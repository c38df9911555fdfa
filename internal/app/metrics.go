package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Where Prometheus scrapes: metrics.listen, a listener that serves GET
// /metrics alone and without a token, or, when it is not set, api.listen
// behind the API's bearer token. A scraper gets its own address rather
// than the token because the token is the registry's admin credential
// (it seizes names and changes their state): a metrics-only address on
// loopback or the monitoring network gives Prometheus the numbers and
// nothing else, survives a new token, and stays reachable when the API
// is kept on loopback. The series carry no caller's address, name or URL.

// metricsHandler serves the registry's metrics in Prometheus's formats.
func (s *server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})
}

// apiMetrics is what the API answers GET /metrics with (behind its
// token): the metrics while metrics.listen is not set, nil (404) once
// they have their own address.
func (s *server) apiMetrics() http.Handler {
	if s.cfg.Metrics.Listen != "" {
		return nil
	}
	return s.metricsHandler()
}

// startMetrics serves GET /metrics on metrics.listen, when it is set. It
// starts first and stops last, so that a scrape sees the start-up and the
// drain at the end.
func (s *server) startMetrics(ctx context.Context) (func() error, error) {
	if s.cfg.Metrics.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.Metrics.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w", s.cfg.Metrics.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("%s %s: only GET /metrics is served on metrics.listen", r.Method, r.URL.Path), http.StatusNotFound)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	shutdown := within(5*time.Second, srv.Shutdown)
	return func() error {
		err := shutdown()
		if serr := <-done; serr != nil && serr != http.ErrServerClosed && err == nil {
			err = serr
		}
		return err
	}, nil
}
