package dashboard

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/chstore/chbench"
	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storegen"
	"github.com/takedown-project/takedown/internal/users"
)

// BenchmarkWaledacWeek answers the dashboard's requests over storegen's
// Waledac week (14.6M events, 58,000 hosts; TAKEDOWN_BENCH_EVENTS scales
// it) with "now" at noon of its last day: one op is one request, through
// the handler with its session check and JSON (the map drawn anew each
// time, not from the cache). The database file is $TAKEDOWN_BENCH_DB,
// generated when missing (about 4 minutes), else a temporary one. The
// target: overview and map under 200 ms. The engines are
// TAKEDOWN_BENCH_ENGINES, as for BenchmarkConfickerDay.
func BenchmarkWaledacWeek(b *testing.B) {
	gen := storegen.ForEvents(14_600_000)
	if v := os.Getenv("TAKEDOWN_BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		gen = storegen.ForEvents(n)
	}
	gen.BatchSize = dbfile.RowGroupSize
	gen.NoPayload = true
	path := os.Getenv("TAKEDOWN_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "week.db")
	}
	now := gen.Start.UTC().Truncate(24*time.Hour).AddDate(0, 0, gen.Days-1).Add(12 * time.Hour)
	benchDashboard(b, dashboardBench{
		path: path,
		ch:   fmt.Sprintf("waledac-%d", gen.Events()),
		now:  now,
		generate: func(ctx context.Context, _ *sql.DB, st *store.Store) error {
			return gen.Generate(func(batch []event.Event) error { return st.Append(ctx, batch) })
		},
		paths: []string{
			"/ui/api/overview", "/ui/api/overview?family=waledac&span=30",
			"/ui/api/map", "/ui/api/map?day=" + now.AddDate(0, 0, -3).Format(time.DateOnly),
			"/ui/api/countries/US", "/ui/api/networks", "/ui/api/networks/64512", "/ui/api/session",
		},
	})
}

// BenchmarkConfickerDay answers the dashboard's requests over a
// Conficker-like day (storegen.ConfickerDay: small by default, 7 M
// addresses and 21 M events with TAKEDOWN_BENCH_CONFICKER=1, N addresses
// with TAKEDOWN_BENCH_CONFICKER=N), "now" at
// noon of that day, as BenchmarkWaledacWeek does. The DuckDB file is kept
// in TAKEDOWN_BENCH_DIR when set: the same file as report's
// BenchmarkConfickerDay. The target: overview and map under 200 ms.
func BenchmarkConfickerDay(b *testing.B) {
	d := storegen.ConfickerSmall
	switch v := os.Getenv("TAKEDOWN_BENCH_CONFICKER"); v {
	case "", "0":
	case "1":
		d = storegen.ConfickerFull
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("TAKEDOWN_BENCH_CONFICKER=%q: want 1 (full scale) or a number of addresses", v)
		}
		d, _ = storegen.ConfickerScaled(n)
	}
	dir := os.Getenv("TAKEDOWN_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	now := storegen.ConfickerDate.Add(12 * time.Hour)
	benchDashboard(b, dashboardBench{
		path: filepath.Join(dir, fmt.Sprintf("conficker-%d-%d.db", d.Hosts, d.ASNs)),
		ch:   fmt.Sprintf("%d-%d", d.Hosts, d.ASNs),
		now:  now,
		generate: func(ctx context.Context, db *sql.DB, _ *store.Store) error {
			for _, stmt := range d.DuckDBStatements() {
				if _, err := db.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%.40s…: %w", stmt, err)
				}
			}
			return nil
		},
		paths: []string{
			"/ui/api/overview", "/ui/api/overview?family=conficker&span=30",
			"/ui/api/map", "/ui/api/map?day=" + now.Format(time.DateOnly),
			"/ui/api/countries/US", "/ui/api/networks", "/ui/api/networks/64512", "/ui/api/session",
		},
	})
}

// dashboardBench is the data and the requests of a dashboard benchmark.
type dashboardBench struct {
	path     string // the DuckDB file
	ch       string // names the ClickHouse servers' directory in TAKEDOWN_BENCH_DIR
	now      time.Time
	generate func(ctx context.Context, db *sql.DB, st *store.Store) error
	paths    []string
}

// benchDashboard generates the DuckDB file when missing, then, for each
// engine of TAKEDOWN_BENCH_ENGINES (duckdb when unset; clickhouse: one
// clickhouse-server on this machine; clickhouse2: two shards), refreshes
// that engine's rollup over the same events and times each request, a
// sub-benchmark engine=E/path=P. The users and the registry are in the
// DuckDB file whatever the engine.
func benchDashboard(b *testing.B, bd dashboardBench) {
	ctx := context.Background()
	_, statErr := os.Stat(bd.path)
	db, err := dbfile.Open(ctx, bd.path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	st, err := store.Open(ctx, store.Config{DB: db})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if statErr != nil {
		start := time.Now()
		if err := bd.generate(ctx, db, st); err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %s in %s", bd.path, time.Since(start).Round(time.Second))
	}
	clock := func() time.Time { return bd.now }
	reg, err := registry.New(ctx, registry.Config{DB: db})
	if err != nil {
		b.Fatal(err)
	}
	us, err := users.Open(ctx, users.Config{DB: db, Params: fast, Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := us.Get(ctx, "bench"); err != nil {
		if _, err := us.Add(ctx, "bench", users.Viewer, []byte(password)); err != nil {
			b.Fatal(err)
		}
	}
	token, _, err := us.CreateSession(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	answers := map[string][]byte{}
	for _, engine := range chbench.Engines(b) {
		b.Run("engine="+engine, func(b *testing.B) {
			var roll interface {
				Rollup
				Refresh(ctx context.Context, full bool) (eventstore.RefreshStats, error)
			}
			switch engine {
			case "duckdb":
				r, err := store.OpenRollup(ctx, store.RollupConfig{DB: db, Now: clock})
				if err != nil {
					b.Fatal(err)
				}
				roll = r
			default:
				chDir := ""
				if dir := os.Getenv("TAKEDOWN_BENCH_DIR"); dir != "" {
					chDir = filepath.Join(dir, engine+"-"+bd.ch)
				}
				ch, cs := openClickHouse(b, engine, chDir)
				stats, err := st.Stats(ctx)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				n, err := chbench.Fill(ctx, ch, stats.Events, func(path string) error {
					_, err := db.ExecContext(ctx, chbench.DuckDBExport(path))
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				if n > 0 {
					b.Logf("loaded %d events into %s in %s", n, engine, time.Since(start).Round(time.Millisecond))
				}
				r, err := chstore.OpenRollup(ctx, chstore.RollupConfig{Store: cs, Now: clock})
				if err != nil {
					b.Fatal(err)
				}
				roll = r
			}
			start := time.Now()
			if _, err := roll.Refresh(ctx, true); err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: rollup refreshed in %s; load %s", engine, time.Since(start).Round(time.Millisecond), chbench.LoadAvg())
			d, err := New(Config{Users: us, Registry: reg, Rollup: roll, Now: clock})
			if err != nil {
				b.Fatal(err)
			}
			for _, path := range bd.paths {
				// The same answer from every engine (the first's is
				// kept), checked once outside the timing; a city's
				// place is that of any of its events (CityCount), so
				// it is left out.
				body := cityPlace.ReplaceAll(get(b, d, path, token), nil)
				if first, ok := answers[path]; !ok {
					answers[path] = body
				} else if !bytes.Equal(first, body) {
					i := 0
					for i < len(body) && i < len(first) && body[i] == first[i] {
						i++
					}
					from := max(0, i-150)
					b.Errorf("%s: %s answers otherwise than the first engine from byte %d:\n%s\n%s",
						path, engine, i, body[from:min(len(body), i+150)], first[from:min(len(first), i+150)])
				}
				b.Run("path="+path, func(b *testing.B) {
					for b.Loop() {
						clear(d.mapCache)
						req := httptest.NewRequest("GET", path, nil)
						req.AddCookie(&http.Cookie{Name: "takedown_session", Value: token})
						req.Header.Set("Accept-Encoding", "gzip")
						w := httptest.NewRecorder()
						d.ServeHTTP(w, req)
						if w.Code != 200 {
							b.Fatalf("%s: %d %s", path, w.Code, w.Body)
						}
					}
				})
			}
		})
	}
}

// get returns the body of the answer to path, without compression.
func get(b *testing.B, d *Dashboard, path, token string) []byte {
	req := httptest.NewRequest("GET", path, nil)
	req.AddCookie(&http.Cookie{Name: "takedown_session", Value: token})
	w := httptest.NewRecorder()
	d.ServeHTTP(w, req)
	if w.Code != 200 {
		b.Fatalf("%s: %d %s", path, w.Code, w.Body)
	}
	return w.Body.Bytes()
}

// cityPlace matches the place of a city on the map in the answers.
var cityPlace = regexp.MustCompile(`"x":[-0-9.e]+,"y":[-0-9.e]+,`)

// openClickHouse starts engine's servers (clickhouse: one, clickhouse2: a
// cluster of two shards) with their data in dir (a temporary one when
// empty), max_threads from $TAKEDOWN_BENCH_CH_THREADS, and opens the
// engine on them; both end with the benchmark.
func openClickHouse(b *testing.B, engine, dir string) (*chtest.Cluster, *chstore.Store) {
	c := chtest.Start(b, chtest.Options{Shards: chbench.Shards(engine), Dir: dir})
	chbench.SetMaxThreads(b, c)
	cfg := chstore.Config{Addrs: c.Addrs(), Database: chbench.Database, Username: c.User(), Password: c.Password()}
	if c.Shards() > 1 {
		cfg.Cluster, cfg.Shards = c.Name(), c.Addrs()
	}
	s, err := chstore.Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return c, s
}
