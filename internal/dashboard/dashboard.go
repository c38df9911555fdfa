// Package dashboard is takedown's web dashboard: the infection world map,
// unique hosts over time per family, top networks and countries, the
// networks with their subscribers and remediation trend, cases with their
// deadlines and domains with their states, live while bots call in.
//
// It is served by `takedown serve` on the API's address under /ui/. The
// pages are plain HTML, CSS and JavaScript modules, embedded in the binary
// (web/), or read from a directory for development (Config.DevDir). The
// data comes as JSON from /ui/api/, and live updates as server-sent events
// from /ui/api/live.
//
// # Access
//
// People log in with a name and password (package users); a session is an
// HttpOnly, SameSite=Strict cookie, Secure on TLS. Every change carries the
// session's CSRF token in the X-CSRF-Token header and passes the
// cross-origin check of net/http (Sec-Fetch-Site, Origin). Logins are rate
// limited per client address and per name.
//
//	role     reads                                        changes
//	viewer   aggregates: counts, maps, trends, cases,     none
//	         domain states; never an IP address
//	analyst  everything, infected addresses included       domain states
//	admin    everything                                    domain states, users
//
// A read of infected addresses is written to the registry's audit log, as
// a change is (with the user as actor).
//
// # Numbers
//
// Counts come from the store's daily rollup (eventstore.Rollup), which the
// dashboard keeps up to date: every Config.Refresh while someone watches,
// every 15 s otherwise. Hosts are distinct source addresses of infected
// hosts (a family, or a call to a seized name), as in the reports.
package dashboard

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/users"
	"github.com/takedown-project/takedown/internal/worldmap"
)

// Registry is what the dashboard needs of the case and domain registry.
type Registry interface {
	ListCases(ctx context.Context) ([]registry.Case, error)
	Deadlines(ctx context.Context, now time.Time, within time.Duration) ([]registry.Deadline, error)
	ListDomains(ctx context.Context, f registry.DomainFilter) ([]registry.Domain, error)
	SetState(ctx context.Context, names []string, to registry.State, ch registry.Change) ([]registry.Domain, error)
	LastDelegations(ctx context.Context, names []string) (map[string]registry.DelegationCheck, error)
	ListSubscribers(ctx context.Context) ([]registry.Subscriber, error)
	RecordAccess(ctx context.Context, ch registry.Change, action, object string, detail any) error
}

// Rollup is what the dashboard needs of the store's daily rollup.
type Rollup interface {
	Refresh(ctx context.Context, full bool) (eventstore.RefreshStats, error)
	AsOf() time.Time
	Days() int
	Hosts(ctx context.Context, q eventstore.HostQuery) ([]eventstore.HostCount, error)
	Spans(ctx context.Context, end time.Time, spans []int, family string) ([]eventstore.SpanCount, error)
	Hours(ctx context.Context, q eventstore.HourQuery) ([]eventstore.HourCount, error)
	Cities(ctx context.Context, q eventstore.CityQuery) ([]eventstore.CityCount, error)
	RollupDays(ctx context.Context) ([]time.Time, error)
	Families(ctx context.Context) ([]string, error)
	DailyByASN(ctx context.Context, from, to time.Time, asns []uint32) (map[uint32][]eventstore.DailyHosts, error)
	Zones(ctx context.Context, zones []string) (map[string]eventstore.ZoneActivity, error)
	HostList(ctx context.Context, q eventstore.HostListQuery) ([]eventstore.RollupHost, error)
}

var (
	_ Registry = (*registry.Registry)(nil)
	_ Rollup   = eventstore.Rollup(nil) // every engine's rollup serves the dashboard
)

// DefaultRefresh is the default of Config.Refresh.
const DefaultRefresh = 2 * time.Second

// Config configures the dashboard. Users, Registry and Rollup are
// required; the zero value of every other field works.
type Config struct {
	Users    *users.Store
	Registry Registry
	Rollup   Rollup
	// APIToken, if set, is the API's bearer token: requests that carry it
	// may manage users (how `takedown users` works while serve runs).
	APIToken string
	// DevDir, if set, is a directory to serve the pages from instead of
	// the embedded ones.
	DevDir string
	// SecureCookie marks the session cookie Secure on plain HTTP too
	// (behind a TLS proxy).
	SecureCookie bool
	// Refresh is how often the rollup takes in new events while someone
	// watches; default 2 s (DefaultRefresh).
	Refresh time.Duration
	// Sensor and Operator name the source on maps.
	Sensor, Operator string
	// Demo says that the data is the demo world's fictional bots; the map
	// says so.
	Demo bool
	// LoginRate is how many logins a client address may try per minute
	// for one user name (after a burst of 5; 4 times as many over all
	// names); default 10. The lock is per address: failures elsewhere do
	// not lock a user out.
	LoginRate int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives the dashboard's log lines; nil discards.
	Logger *slog.Logger
}

// Dashboard is the web dashboard: an http.Handler for /ui/ and a Run loop
// that keeps the rollup fresh.
type Dashboard struct {
	cfg     Config
	files   fs.FS
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	routes  []route
	limiter *loginLimiter
	live    *hub
	// streamCheck is how often a live stream checks that its session
	// still holds (it expires without a request that would notice).
	streamCheck time.Duration
	names       map[string]string // country code → name

	// lastRequest is the unix nanoseconds of the last API request: the
	// rollup refreshes fast while someone looks.
	lastRequest atomic.Int64
	kick        chan struct{} // asks Run for a refresh now

	mapMu    sync.Mutex
	mapCache map[mapKey]*mapEntry
}

// New returns the dashboard.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Users == nil || cfg.Registry == nil || cfg.Rollup == nil {
		return nil, errors.New("dashboard: users, registry and rollup are required")
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.LoginRate <= 0 {
		cfg.LoginRate = 10
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger, now: cfg.Now, mux: http.NewServeMux(), kick: make(chan struct{}, 1),
		mapCache: map[mapKey]*mapEntry{}, names: map[string]string{}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if cfg.DevDir != "" {
		if _, err := os.Stat(cfg.DevDir); err != nil {
			return nil, err
		}
		d.files = os.DirFS(cfg.DevDir)
	} else {
		sub, err := fs.Sub(embedded, "web")
		if err != nil {
			return nil, err
		}
		d.files = sub
	}
	for _, c := range worldmap.Countries() {
		d.names[c.Code] = c.Name
	}
	d.limiter = newLoginLimiter(cfg.LoginRate, d.now)
	d.live = newHub()
	d.streamCheck = 30 * time.Second
	d.routes = d.routeTable()
	for _, rt := range d.routes {
		d.mux.Handle(rt.pattern, d.wrap(rt))
	}
	d.mux.HandleFunc("GET /ui/{$}", d.index)
	d.mux.HandleFunc("GET /ui/login", d.loginPage)
	d.mux.HandleFunc("GET /ui/assets/", d.asset)
	d.mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	d.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such page or endpoint")
	})
	return d, nil
}

// ServeHTTP implements http.Handler for the paths under /ui/.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	d.mux.ServeHTTP(w, r)
}

// Run keeps the rollup fresh until ctx ends: at once, then every
// Config.Refresh while someone watched in the last minute (a page open
// on the live stream, or a request), every 15 s otherwise. After each
// refresh that changed something it tells the live streams. It also ends
// expired sessions now and then.
// asOfStep is how far the rollup's as-of time moves, without new data,
// before the live streams are told.
const asOfStep = 5 * time.Second

func (d *Dashboard) Run(ctx context.Context) {
	full := true
	lastPurge := time.Time{}
	var last update // the last one published
	for {
		start := d.now()
		st, err := d.cfg.Rollup.Refresh(ctx, full)
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Error("refreshing the rollup", "err", err)
		case err == nil && (st.Changed() || full):
			last = update{AsOf: d.cfg.Rollup.AsOf()}
			if sp, err := d.cfg.Rollup.Spans(ctx, d.now(), []int{1}, ""); err == nil && len(sp) > 0 {
				last.Today = sp[0].IPs[0]
			}
			d.live.publish(last)
		case err == nil && d.cfg.Rollup.AsOf().Sub(last.AsOf) >= asOfStep:
			// Nothing new, but the counts now hold up to a later
			// time: say so, so that pages know they are current.
			last.AsOf = d.cfg.Rollup.AsOf()
			d.live.publish(last)
		}
		if full {
			d.log.Info("rollup refreshed", "days", st.Checked, "rebuilt", st.Rebuilt, "took", time.Since(start).Round(time.Millisecond))
		}
		full = false
		if time.Since(lastPurge) > 10*time.Minute {
			if n, err := d.cfg.Users.PurgeSessions(ctx); err != nil && ctx.Err() == nil {
				d.log.Error("purging sessions", "err", err)
			} else if n > 0 {
				d.log.Info("expired sessions ended", "sessions", n)
			}
			lastPurge = time.Now()
		}
		wait := 15 * time.Second
		if d.live.watchers() > 0 || time.Since(time.Unix(0, d.lastRequest.Load())) < time.Minute {
			wait = d.cfg.Refresh
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			d.live.close()
			return
		case <-t.C:
		case <-d.kick:
			t.Stop()
		}
	}
}

// refreshSoon asks Run for a refresh now (after a change of state, or
// when the first watcher comes).
func (d *Dashboard) refreshSoon() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}
