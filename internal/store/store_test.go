package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/migrate"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storetest"
)

func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := dbfile.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	return db
}

func openStore(t testing.TB, db *sql.DB) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{DB: db})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

// TestConformance runs the conformance suite on a database in memory and
// on one in a file, each rollup with no lag.
func TestConformance(t *testing.T) {
	for _, file := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "file"}[file], func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, now func() time.Time) (storetest.Engine, eventstore.Rollup) {
				path := ""
				cfg := store.Config{}
				if file {
					path = filepath.Join(t.TempDir(), "takedown.db")
					cfg.CheckpointAfter = 1 // so that retention checkpoints
				}
				db := openDB(t, path)
				t.Cleanup(func() { db.Close() })
				cfg.DB = db
				s, err := store.Open(t.Context(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				r, err := store.OpenRollup(t.Context(), store.RollupConfig{DB: db, Days: 5, Lag: time.Microsecond, Now: now})
				if err != nil {
					t.Fatal(err)
				}
				return s, r
			})
		})
	}
}

func scanAll(t *testing.T, s *store.Store) []event.Event {
	t.Helper()
	var got []event.Event
	if err := s.Scan(t.Context(), eventstore.ScanQuery{}, func(e *event.Event) error {
		got = append(got, *e)
		return nil
	}); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return got
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "takedown.db")
	fx := storetest.Fixture()

	db := openDB(t, path)
	s := openStore(t, db)
	if err := s.Append(t.Context(), fx[:10]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(t.Context(), fx[10:]); err == nil {
		t.Error("append after close: no error")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen twice: the migrations are not applied again.
	for range 2 {
		db = openDB(t, path)
		s = openStore(t, db)
		if v, err := migrate.Version(t.Context(), db, store.Component); err != nil || v != 4 {
			t.Errorf("schema version %d (%v), want 4", v, err)
		}
		var steps int
		if err := db.QueryRow(`SELECT count(*) FROM schema_migrations WHERE component = ?`, store.Component).Scan(&steps); err != nil || steps != 4 {
			t.Errorf("%d rows in schema_migrations (%v), want 4", steps, err)
		}
		if got := scanAll(t, s); !reflect.DeepEqual(got, fx[:10]) {
			t.Errorf("after reopen: %d events, want the first 10 of the fixture", len(got))
		}
		s.Close()
		db.Close()
	}

	db = openDB(t, path)
	defer db.Close()
	s = openStore(t, db)
	defer s.Close()
	if err := s.Append(t.Context(), fx[10:]); err != nil {
		t.Fatal(err)
	}
	if got := scanAll(t, s); !reflect.DeepEqual(got, fx) {
		t.Errorf("after append to reopened store: %d events, want %d", len(got), len(fx))
	}
}

func TestOpenWithoutDB(t *testing.T) {
	if _, err := store.Open(t.Context(), store.Config{}); err == nil {
		t.Error("no error")
	}
}

func TestIPText(t *testing.T) {
	db := openDB(t, "")
	defer db.Close()
	s := openStore(t, db)
	defer s.Close()
	if err := s.Append(t.Context(), storetest.Fixture()); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT DISTINCT src_ip_text(src_ip, src_ip6) AS ip FROM events UNION SELECT ip_text(dst_ip) FROM events ORDER BY ip`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var ip string
		if err := rows.Scan(&ip); err != nil {
			t.Fatal(err)
		}
		got = append(got, ip)
	}
	// src_ip_text reads the pair of source columns, ip_text a UHUGEINT.
	want := []string{"10.0.0.1", "10.0.0.2", "10.1.0.1", "10.1.0.2", "10.2.0.1", "10.3.0.1", "192.0.2.53", "2001:db8:0:0:0:0:0:1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ip_text: got %q, want %q", got, want)
	}
}
