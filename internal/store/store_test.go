package store_test

import (
	"context"
	"database/sql"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/migrate"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storetest"
)

var _ storetest.Backend = (*store.Store)(nil)

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

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		db := openDB(t, "")
		t.Cleanup(func() { db.Close() })
		return openStore(t, db)
	})
}

func TestConformanceFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		db := openDB(t, filepath.Join(t.TempDir(), "takedown.db"))
		t.Cleanup(func() { db.Close() })
		// A small threshold so that retention checkpoints.
		s, err := store.Open(t.Context(), store.Config{DB: db, CheckpointAfter: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func scanAll(t *testing.T, s *store.Store) []event.Event {
	t.Helper()
	var got []event.Event
	if err := s.Scan(t.Context(), store.ScanQuery{}, func(e *event.Event) error {
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

func TestAppendMarked(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "takedown.db"))
	defer db.Close()
	s := openStore(t, db)
	defer s.Close()
	fx := storetest.Fixture()
	if m, err := s.Mark(t.Context(), "spool"); err != nil || m != nil {
		t.Fatalf("mark before any: %q, %v", m, err)
	}
	if err := s.AppendMarked(t.Context(), fx[:5], "spool", []byte("at-5")); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendMarked(t.Context(), nil, "other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A batch with a bad event moves neither the events nor the mark.
	bad := append([]event.Event(nil), fx[5:8]...)
	bad[2].SrcIP = netip.Addr{}
	if err := s.AppendMarked(t.Context(), bad, "spool", []byte("at-8")); err == nil || !strings.Contains(err.Error(), "event 2") {
		t.Fatalf("bad batch: %v", err)
	}
	if m, err := s.Mark(t.Context(), "spool"); err != nil || string(m) != "at-5" {
		t.Fatalf("mark after a refused batch: %q, %v", m, err)
	}
	if got := scanAll(t, s); len(got) != 5 {
		t.Fatalf("%d events stored, want 5", len(got))
	}
	if err := s.AppendMarked(t.Context(), fx[5:8], "spool", []byte("at-8")); err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{"spool": "at-8", "other": "x"} {
		if m, err := s.Mark(t.Context(), src); err != nil || string(m) != want {
			t.Errorf("mark of %s: %q, %v; want %q", src, m, err, want)
		}
	}
	if got := scanAll(t, s); len(got) != 8 {
		t.Fatalf("%d events stored, want 8", len(got))
	}
}

// TestAppendMarkedCancelled: a batch whose context ends while it is being
// stored is either stored with its mark and reported stored, or reported
// failed and not stored at all — never stored and reported failed, which
// would make the caller store it twice. The context ends at a different
// point of each append.
func TestAppendMarkedCancelled(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "takedown.db"))
	defer db.Close()
	s := openStore(t, db)
	defer s.Close()
	var batch []event.Event
	for range 200 {
		batch = append(batch, storetest.Fixture()...)
	}
	want := 0
	var ok, failed int
	for i := range 200 {
		ctx, cancel := context.WithCancel(t.Context())
		// Spread the cancellations over an append's duration (a few
		// milliseconds).
		time.AfterFunc(time.Duration(i%50)*300*time.Microsecond, cancel)
		mark := []byte(strconv.Itoa(i))
		err := s.AppendMarked(ctx, batch, "spool", mark)
		cancel()
		if err == nil {
			want += len(batch)
			ok++
			// The mark went with the batch.
			if got, err := s.Mark(t.Context(), "spool"); err != nil || string(got) != string(mark) {
				t.Fatalf("append %d: mark %q (%v), want %q", i, got, err, mark)
			}
		} else {
			failed++
		}
		st, err := s.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n := st.Events; n != int64(want) {
			t.Fatalf("append %d: %d events stored, want %d (%d appends reported stored, %d failed)", i, n, want, ok, failed)
		}
	}
	t.Logf("%d appends stored, %d cancelled", ok, failed)
}

// TestUniqueHostsInfected: Infected leaves out the events with neither a
// family nor a case (a scanner), which the rollup and reports never count.
func TestUniqueHostsInfected(t *testing.T) {
	db := openDB(t, "")
	defer db.Close()
	s := openStore(t, db)
	defer s.Close()
	t0 := time.Date(2010, 2, 25, 10, 0, 0, 0, time.UTC)
	evs := []event.Event{
		{Time: t0, SrcIP: netip.MustParseAddr("192.0.2.1"), Protocol: event.ProtoHTTP, Family: "waledac"},
		{Time: t0, SrcIP: netip.MustParseAddr("192.0.2.2"), Protocol: event.ProtoDNS, Case: "c1", Domain: "x.seized.example"},
		{Time: t0, SrcIP: netip.MustParseAddr("192.0.2.3"), Protocol: event.ProtoTCP}, // a scanner
	}
	if err := s.Append(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		infected bool
		ips      int64
	}{{false, 3}, {true, 2}} {
		rows, err := s.UniqueHosts(t.Context(), store.HostQuery{Infected: c.infected})
		if err != nil || len(rows) != 1 || rows[0].IPs != c.ips {
			t.Errorf("Infected %v: %+v %v, want %d addresses", c.infected, rows, err, c.ips)
		}
	}
}

// TestSources: each distinct (address, family, bot id) of a range once,
// IPv6 included.
func TestSources(t *testing.T) {
	db := openDB(t, "")
	defer db.Close()
	s := openStore(t, db)
	defer s.Close()
	t0 := time.Date(2010, 2, 25, 10, 0, 0, 0, time.UTC)
	ev := func(at time.Time, ip, family, bot string) event.Event {
		return event.Event{Time: at, SrcIP: netip.MustParseAddr(ip), Protocol: event.ProtoHTTP, Family: family, BotID: bot}
	}
	evs := []event.Event{
		ev(t0, "192.0.2.1", "waledac", "a"), ev(t0.Add(time.Hour), "192.0.2.1", "waledac", "a"),
		ev(t0, "192.0.2.1", "waledac", "b"), ev(t0, "192.0.2.2", "", ""), ev(t0, "2001:db8::7", "conficker", ""),
		ev(t0.Add(-time.Hour), "192.0.2.9", "waledac", ""), // before the range
	}
	if err := s.Append(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := s.Sources(t.Context(), t0, t0.Add(24*time.Hour), func(src store.Source) error {
		got = append(got, src.IP.String()+" "+src.Family+" "+src.BotID)
		return nil
	})
	slices.Sort(got)
	if want := []string{"192.0.2.1 waledac a", "192.0.2.1 waledac b", "192.0.2.2  ", "2001:db8::7 conficker "}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Sources = %q, %v; want %q", got, err, want)
	}
}
