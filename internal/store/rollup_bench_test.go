package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storegen"
)

// waledacWeekDB opens the database file $TAKEDOWN_BENCH_DB, generating
// storegen's Waledac week into it first (14.6M events; about 6 minutes on
// 2 cores) when it does not exist, so that later runs reuse it. Without
// the variable it generates into a temporary file.
func waledacWeekDB(b *testing.B) (*sql.DB, *store.Store, storegen.Waledac) {
	gen := storegen.ForEvents(benchEvents(b, 14_600_000))
	gen.BatchSize = dbfile.RowGroupSize
	gen.NoPayload = true
	path := os.Getenv("TAKEDOWN_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "week.db")
	}
	_, statErr := os.Stat(path)
	db := openDB(b, path)
	s := openStore(b, db)
	if statErr == nil {
		return db, s, gen
	}
	ctx := context.Background()
	start := time.Now()
	if err := gen.Generate(func(batch []event.Event) error { return s.Append(ctx, batch) }); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d events into %s in %s", gen.Events(), path, time.Since(start).Round(time.Second))
	return db, s, gen
}

// BenchmarkRollupWaledacWeek builds the rollup of a Waledac week (see
// waledacWeekDB) and times the dashboard's queries on it, with "now" at
// noon of the week's last day: build is the first Refresh (every day
// rebuilt), refresh-idle a Refresh with nothing new, and the others one
// query each. Run it with -benchtime=1x for the build, more for the
// queries.
func BenchmarkRollupWaledacWeek(b *testing.B) {
	db, s, gen := waledacWeekDB(b)
	defer db.Close()
	defer s.Close()
	ctx := context.Background()
	last := gen.Start.UTC().Truncate(24*time.Hour).AddDate(0, 0, gen.Days-1)
	now := last.Add(12 * time.Hour)
	r, err := store.OpenRollup(ctx, store.RollupConfig{DB: db, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	// Build it whole, as on the first start of a serve with this store.
	if _, err := db.ExecContext(ctx, "DELETE FROM rollup_days"); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	st, err := r.Refresh(ctx, true)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("refresh: %+v in %s", st, time.Since(start).Round(time.Millisecond))
	var rows int64
	db.QueryRowContext(ctx, "SELECT count(*) FROM rollup_hosts").Scan(&rows)
	b.Logf("rollup_hosts: %d rows", rows)

	week := eventstore.HostQuery{From: last.AddDate(0, 0, -6), To: last.AddDate(0, 0, 1), Limit: 20}
	day := eventstore.HostQuery{From: last, To: last.AddDate(0, 0, 1)}
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"refresh-idle", func() error { _, err := r.Refresh(ctx, true); return err }},
		{"spans", func() error { _, err := r.Spans(ctx, now, []int{1, 7, 30}, ""); return err }},
		{"top-asn-week", func() error {
			q := week
			q.GroupBy = []eventstore.Dimension{eventstore.DimASN}
			_, err := r.Hosts(ctx, q)
			return err
		}},
		{"top-country-week", func() error {
			q := week
			q.GroupBy = []eventstore.Dimension{eventstore.DimCountry}
			_, err := r.Hosts(ctx, q)
			return err
		}},
		{"hours-48h", func() error { _, err := r.Hours(ctx, eventstore.HourQuery{From: now.Add(-48 * time.Hour)}); return err }},
		{"country-day", func() error {
			q := day
			q.GroupBy = []eventstore.Dimension{eventstore.DimCountry}
			_, err := r.Hosts(ctx, q)
			return err
		}},
		{"cities-day", func() error { _, err := r.Cities(ctx, eventstore.CityQuery{From: day.From, To: day.To}); return err }},
		{"events/country-day", func() error {
			q := day
			q.GroupBy = []eventstore.Dimension{eventstore.DimCountry}
			_, err := s.UniqueHosts(ctx, q)
			return err
		}},
		{"events/asn-week", func() error {
			q := week
			q.GroupBy = []eventstore.Dimension{eventstore.DimASN}
			_, err := s.UniqueHosts(ctx, q)
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
