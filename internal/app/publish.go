package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/tlsconf"
)

// The HTTP listeners of serve. The admin API (api.listen, loopback by
// default) serves everything: the registry API, /metrics, the feed, the
// dashboard. feed.listen and dashboard.listen publish the subscribers'
// feed and the dashboard each on an address of its own, with nothing of
// the admin API there: publicMux answers /healthz and /readyz for load
// balancers and 404 to every other path it is not given.

// httpListener is one HTTP listener to start: its config key, address,
// certificate and handler.
type httpListener struct {
	key     string // "api", "feed", "dashboard"
	addr    string
	tls     config.ListenerTLS
	handler http.Handler
}

// startHTTP listens on l.addr, with TLS when l.tls asks for it, and
// serves l.handler; the server's errors go to s.errc. The listener is
// bound when it returns, so that a port in use stops the start.
func (s *server) startHTTP(l httpListener) (*http.Server, net.Listener, error) {
	tc, err := tlsconf.New(tlsConfig(l.tls, s.log.With("component", l.key)))
	if err != nil {
		return nil, nil, fmt.Errorf("%s.tls: %w", l.key, err)
	}
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%s.listen %s: %w", l.key, l.addr, err)
	}
	srv := &http.Server{
		Handler:           l.handler,
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		var err error
		if tc != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			select {
			case s.errc <- fmt.Errorf("%s listener: %w", l.key, err):
			default:
			}
		}
	}()
	s.log.Info(l.key+" listening", "addr", ln.Addr().String(), "tls", tc != nil)
	return srv, ln, nil
}

// tlsConfig translates a listener's TLS keys.
func tlsConfig(t config.ListenerTLS, log *slog.Logger) tlsconf.Config {
	return tlsconf.Config{CertFile: t.CertFile, KeyFile: t.KeyFile, Logger: log, ACME: tlsconf.ACME{
		Domains: t.ACME.Domains, Email: t.ACME.Email, CacheDir: t.ACME.CacheDir, DirectoryURL: t.ACME.DirectoryURL,
	}}
}

// publicMux is the start of a public listener's routes: /healthz,
// /readyz (its status code, and the names of the checks that fail, not
// their messages, which may hold paths and addresses), and 404 for
// anything else.
func (s *server) publicMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writePublicJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		b := s.rd.check(r.Context())
		code := http.StatusOK
		if !b.Ready {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		writePublicJSON(w, code, struct {
			Ready    bool     `json:"ready"`
			NotReady []string `json:"not_ready"`
		}{b.Ready, b.NotReady})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writePublicJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint", "kind": "not_found"})
	})
	return mux
}

func writePublicJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}

// withoutBearer hides the Authorization header from h: the dashboard
// accepts the API token as an admin (for `takedown users`), which the
// dashboard's public listener must not.
func withoutBearer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			r2 := *r
			r2.Header = r.Header.Clone()
			r2.Header.Del("Authorization")
			r = &r2
		}
		h.ServeHTTP(w, r)
	})
}

// shutdownAll shuts the servers down in reverse order, each within 10 s.
func shutdownAll(srvs []*http.Server) error {
	var errs []error
	for i := len(srvs) - 1; i >= 0; i-- {
		errs = append(errs, within(10*time.Second, srvs[i].Shutdown)())
	}
	return errors.Join(errs...)
}
