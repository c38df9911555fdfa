package registry

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
)

// testClock is a settable clock for Config.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	alice   = Change{Actor: "alice", Reason: "test"}
	waledac = NewCase{Name: "waledac-2010", Title: "Microsoft v. John Does 1-27", Court: "U.S. District Court, E.D. Virginia", Docket: "1:10-cv-00156"}
	dateTRO = time.Date(2010, 2, 22, 0, 0, 0, 0, time.UTC)
	t0      = time.Date(2010, 2, 24, 9, 30, 0, 0, time.UTC)
	ctxBack = context.Background()
)

// newTestRegistry opens a registry on an in-memory database, with a clock
// that starts at t0.
func newTestRegistry(t testing.TB) (*Registry, *sql.DB, *testClock) {
	t.Helper()
	db, err := dbfile.Open(ctxBack, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &testClock{t: t0}
	r, err := New(ctxBack, Config{DB: db, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return r, db, clk
}

// mustCase adds the Waledac case with a TRO.
func mustCase(t testing.TB, r *Registry) {
	t.Helper()
	if _, err := r.AddCase(ctxBack, waledac, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddOrder(ctxBack, waledac.Name, NewOrder{Type: OrderTRO, Reference: "Dkt. 12", Issued: dateTRO,
		ObjectionDeadline: dateTRO.AddDate(0, 0, 14), Expires: dateTRO.AddDate(0, 0, 28)}, alice); err != nil {
		t.Fatal(err)
	}
}

// snapshot counts the rows of every registry table.
type snapshot struct{ cases, orders, domains, transitions, audit int }

func takeSnapshot(t testing.TB, db *sql.DB) snapshot {
	t.Helper()
	var s snapshot
	for _, q := range []struct {
		table string
		n     *int
	}{{"registry_cases", &s.cases}, {"registry_orders", &s.orders}, {"registry_domains", &s.domains},
		{"registry_transitions", &s.transitions}, {"registry_audit", &s.audit}} {
		if err := db.QueryRow(`SELECT count(*) FROM ` + q.table).Scan(q.n); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// unchanged fails if the store changed since before.
func unchanged(t testing.TB, db *sql.DB, before snapshot, what string) {
	t.Helper()
	if after := takeSnapshot(t, db); after != before {
		t.Errorf("%s changed the store: before %+v, after %+v", what, before, after)
	}
}
