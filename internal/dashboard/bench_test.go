package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
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
// target: overview and map under 200 ms.
func BenchmarkWaledacWeek(b *testing.B) {
	ctx := context.Background()
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
	_, statErr := os.Stat(path)
	db, err := dbfile.Open(ctx, path)
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
		if err := gen.Generate(func(batch []event.Event) error { return st.Append(ctx, batch) }); err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %d events in %s", gen.Events(), time.Since(start).Round(time.Second))
	}
	now := gen.Start.UTC().Truncate(24*time.Hour).AddDate(0, 0, gen.Days-1).Add(12 * time.Hour)
	clock := func() time.Time { return now }
	roll, err := store.OpenRollup(ctx, store.RollupConfig{DB: db, Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := roll.Refresh(ctx, true); err != nil {
		b.Fatal(err)
	}
	b.Logf("rollup refreshed in %s", time.Since(start).Round(time.Millisecond))
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
	d, err := New(Config{Users: us, Registry: reg, Rollup: roll, Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{
		"/ui/api/overview", "/ui/api/overview?family=waledac&span=30",
		"/ui/api/map", "/ui/api/map?day=" + now.AddDate(0, 0, -3).Format(time.DateOnly),
		"/ui/api/countries/US", "/ui/api/networks", "/ui/api/networks/64512", "/ui/api/session",
	} {
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
}
