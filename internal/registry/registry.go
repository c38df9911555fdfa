// Package registry keeps the cases, court orders and seized domains of
// takedown, with each domain's lifecycle and an append-only, hash-chained
// audit log of every change.
//
// # Storage
//
// The registry lives in the takedown DuckDB database (tables registry_*).
// No method updates or deletes a row: a domain's state is its latest row in
// the append-only table registry_transitions, and every change is one row of
// registry_audit. Each write runs in one transaction together with its audit
// entries, so a rejected or failed operation changes nothing.
//
// # Lifecycle
//
//	listed ──▶ restrained ──▶ sinkholed ──▶ transferred
//	   │            │              │              │
//	   └────────────┴──────┬───────┴──────────────┘
//	                       ▼
//	                   released (final)
//
// The lifecycle is strict: one step forward, or released from any state but
// released. A domain cannot skip restrained even when, as in the Waledac
// case, the restraining order made the registries redirect at once: the
// record then shows both steps with the same time. Advance moves a list of
// domains through several states in one transaction for that case, and
// SetState moves any number of domains at once.
//
// # Names
//
// A domain name belongs to one case; it is stored as lower-case A-labels
// (see NormalizeName).
package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/migrate"

	"github.com/takedown-project/takedown/internal/event"
)

// Config configures a Registry.
type Config struct {
	// DB is the open takedown database; the registry creates its tables.
	DB *sql.DB
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
	// OurDS returns the DS records of our published keys for a seized
	// zone (a domain name without trailing dot); none when its case does
	// not sign. Nil means no case signs. It decides between DSSigned and
	// DSStale, and the registry packages carry its records.
	OurDS func(zone string) []*dns.DS
}

// Registry is the case and domain registry over a database.
type Registry struct {
	db    *sql.DB
	now   func() time.Time
	ourDS func(zone string) []*dns.DS
	// mu serialises writes, so that audit sequence numbers and the hash
	// chain grow in one line.
	mu sync.Mutex
}

// migrations is the registry's schema. Nothing is ever updated in place, so
// primary keys sit on columns that never change.
var migrations = []migrate.Migration{{
	Version: 1,
	Name:    "cases, orders, domains, transitions, audit",
	SQL: `
CREATE TABLE registry_cases (
	name   VARCHAR PRIMARY KEY,
	title  VARCHAR NOT NULL,
	court  VARCHAR NOT NULL,
	docket VARCHAR NOT NULL,
	notes  VARCHAR NOT NULL,
	added  TIMESTAMP NOT NULL
);
CREATE TABLE registry_orders (
	id                 BIGINT PRIMARY KEY,
	case_name          VARCHAR NOT NULL,
	type               VARCHAR NOT NULL,
	reference          VARCHAR NOT NULL,
	issued             TIMESTAMP NOT NULL,
	objection_deadline TIMESTAMP,
	expires            TIMESTAMP,
	notes              VARCHAR NOT NULL,
	added              TIMESTAMP NOT NULL
);
CREATE TABLE registry_domains (
	name      VARCHAR PRIMARY KEY,
	case_name VARCHAR NOT NULL,
	tld       VARCHAR NOT NULL,
	registrar VARCHAR NOT NULL,
	registry  VARCHAR NOT NULL,
	family    VARCHAR NOT NULL,
	added     TIMESTAMP NOT NULL
);
CREATE TABLE registry_transitions (
	audit_seq  BIGINT NOT NULL,
	domain     VARCHAR NOT NULL,
	from_state VARCHAR NOT NULL,
	to_state   VARCHAR NOT NULL,
	changed_at TIMESTAMP NOT NULL,
	actor      VARCHAR NOT NULL,
	reason     VARCHAR NOT NULL
);
CREATE TABLE registry_audit (
	seq    BIGINT PRIMARY KEY,
	logged_at TIMESTAMP NOT NULL,
	actor  VARCHAR NOT NULL,
	action VARCHAR NOT NULL,
	object VARCHAR NOT NULL,
	detail VARCHAR NOT NULL,
	reason VARCHAR NOT NULL,
	hash   VARCHAR NOT NULL
);`,
}, {
	Version: 2,
	Name:    "delegation checks",
	SQL: `
CREATE TABLE registry_delegation (
	audit_seq  BIGINT NOT NULL,
	domain     VARCHAR NOT NULL,
	checked_at TIMESTAMP NOT NULL,
	verified   BOOLEAN NOT NULL,
	ns         VARCHAR NOT NULL,
	addrs      VARCHAR NOT NULL,
	problem    VARCHAR NOT NULL
);`,
}, {
	Version: 3,
	Name:    "case family",
	SQL:     `ALTER TABLE registry_cases ADD COLUMN family VARCHAR DEFAULT '';`,
}, {
	Version: 4,
	Name:    "subscribers and their API keys",
	SQL:     subscribersSchema,
}, {
	Version: 5,
	Name:    "DS records at the parent, with each delegation check",
	SQL: `ALTER TABLE registry_delegation ADD COLUMN ds_state VARCHAR DEFAULT '';
ALTER TABLE registry_delegation ADD COLUMN ds VARCHAR DEFAULT '';
ALTER TABLE registry_delegation ADD COLUMN ds_problem VARCHAR DEFAULT '';`,
}}

// New opens the registry in cfg.DB, migrating its schema.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	if cfg.DB == nil {
		return nil, errors.New("registry: no database")
	}
	if err := migrate.Apply(ctx, cfg.DB, "registry", migrations); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	ourDS := cfg.OurDS
	if ourDS == nil {
		ourDS = func(string) []*dns.DS { return nil }
	}
	return &Registry{db: cfg.DB, now: now, ourDS: ourDS}, nil
}

// clock returns the current time as stored: UTC, whole microseconds.
func (r *Registry) clock() time.Time {
	return r.now().UTC().Truncate(time.Microsecond)
}

var caseNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// checkCaseName validates a case handle: lower case letters, digits, '-',
// '_' and '.', 1–64 characters, beginning with a letter or digit.
func checkCaseName(name string) error {
	if !caseNameRE.MatchString(name) {
		return fmt.Errorf("case name %q: want 1–64 lower case letters, digits, '-', '_' or '.', beginning with a letter or digit, e.g. \"waledac-2010\": %w",
			cut(name, 80), ErrInvalid)
	}
	return nil
}

// checkText refuses invalid UTF-8, control characters (but newline and tab
// if multiline) and values longer than max bytes.
func checkText(field, v string, max int, multiline bool) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s %q: not valid UTF-8: %w", field, cut(v, 80), ErrInvalid)
	}
	if len(v) > max {
		return fmt.Errorf("%s %q: %d bytes long, more than %d: %w", field, cut(v, 80), len(v), max, ErrInvalid)
	}
	for _, c := range v {
		if unicode.IsControl(c) && !(multiline && (c == '\n' || c == '\t')) {
			return fmt.Errorf("%s %q: has the control character %U: %w", field, cut(v, 80), c, ErrInvalid)
		}
	}
	return nil
}

// AddCase adds a new case.
func (r *Registry) AddCase(ctx context.Context, c NewCase, ch Change) (Case, error) {
	c.Name = strings.TrimSpace(c.Name)
	c.Title = strings.TrimSpace(c.Title)
	c.Court = strings.TrimSpace(c.Court)
	c.Docket = strings.TrimSpace(c.Docket)
	c.Notes = strings.TrimSpace(c.Notes)
	c.Family = strings.ToLower(strings.TrimSpace(c.Family))
	if err := checkCaseName(c.Name); err != nil {
		return Case{}, err
	}
	if c.Court == "" {
		return Case{}, fmt.Errorf("case %s: court is empty: %w", c.Name, ErrInvalid)
	}
	if c.Docket == "" {
		return Case{}, fmt.Errorf("case %s: docket number is empty: %w", c.Name, ErrInvalid)
	}
	if c.Family != "" && !event.ValidFamily(c.Family) {
		return Case{}, fmt.Errorf("case %s: family %q: want %s: %w", c.Name, cut(c.Family, 80), event.FamilyRule, ErrInvalid)
	}
	for _, f := range []struct {
		name, v string
		max     int
		multi   bool
	}{{"title", c.Title, 500, false}, {"court", c.Court, 500, false}, {"docket", c.Docket, 200, false}, {"notes", c.Notes, 10000, true}} {
		if err := checkText(f.name, f.v, f.max, f.multi); err != nil {
			return Case{}, fmt.Errorf("case %s: %w", c.Name, err)
		}
	}
	var out Case
	err := r.write(ctx, ch, func(w *writeTx) error {
		var n int
		if err := w.tx.QueryRowContext(ctx, `SELECT count(*) FROM registry_cases WHERE name = ?`, c.Name).Scan(&n); err != nil {
			return fmt.Errorf("case %s: %w", c.Name, err)
		}
		if n > 0 {
			return fmt.Errorf("case %s: %w", c.Name, ErrExists)
		}
		if _, err := w.tx.ExecContext(ctx, `INSERT INTO registry_cases (name, title, court, docket, notes, added, family) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			c.Name, c.Title, c.Court, c.Docket, c.Notes, w.at, c.Family); err != nil {
			return fmt.Errorf("adding case %s: %w", c.Name, err)
		}
		out = Case{Name: c.Name, Title: c.Title, Court: c.Court, Docket: c.Docket, Notes: c.Notes, Family: c.Family, Added: w.at, Orders: []Order{}}
		_, err := w.record(actionCaseAdd, "case:"+c.Name, c)
		return err
	})
	if err != nil {
		return Case{}, err
	}
	return out, nil
}

// ListCases returns all cases, by name.
func (r *Registry) ListCases(ctx context.Context) ([]Case, error) {
	return r.cases(ctx, "")
}

// GetCase returns one case with its orders and domain counts.
func (r *Registry) GetCase(ctx context.Context, name string) (Case, error) {
	name = strings.TrimSpace(name)
	cs, err := r.cases(ctx, name)
	if err != nil {
		return Case{}, err
	}
	if len(cs) == 0 {
		return Case{}, fmt.Errorf("case %q: %w", name, ErrNotFound)
	}
	return cs[0], nil
}

// cases reads the case called only, or all cases if only is "".
func (r *Registry) cases(ctx context.Context, only string) ([]Case, error) {
	var names []string
	args := []any{}
	if only != "" {
		names, args = []string{only}, []any{only}
	}
	out, err := r.casesNamed(ctx, names)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	idx := map[string]int{}
	for i := range out {
		out[i].Orders = []Order{}
		idx[out[i].Name] = i
	}
	orders, err := r.orders(ctx, only)
	if err != nil {
		return nil, err
	}
	for _, o := range orders {
		if i, ok := idx[o.Case]; ok {
			out[i].Orders = append(out[i].Orders, o)
		}
	}
	condD := ""
	if only != "" {
		condD = ` WHERE d.case_name = ?`
	}
	rows, err := r.db.QueryContext(ctx, `WITH cur AS (`+currentStateSQL("")+`)
		SELECT d.case_name, cur.state, count(*) FROM registry_domains d JOIN cur ON cur.domain = d.name`+condD+`
		GROUP BY d.case_name, cur.state`, args...)
	if err != nil {
		return nil, fmt.Errorf("counting domains: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var st State
		var n int
		if err := rows.Scan(&name, &st, &n); err != nil {
			return nil, fmt.Errorf("counting domains: %w", err)
		}
		if i, ok := idx[name]; ok {
			if out[i].Domains == nil {
				out[i].Domains = map[State]int{}
			}
			out[i].Domains[st] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting domains: %w", err)
	}
	return out, nil
}

// orders reads the orders of case only, or of all cases, oldest first.
func (r *Registry) orders(ctx context.Context, only string) ([]Order, error) {
	cond, args := "", []any{}
	if only != "" {
		cond, args = ` WHERE case_name = ?`, []any{only}
	}
	rows, err := r.db.QueryContext(ctx, `SELECT id, case_name, type, reference, issued, objection_deadline, expires, notes
		FROM registry_orders`+cond+` ORDER BY issued, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading orders: %w", err)
	}
	defer rows.Close()
	var out []Order
	for rows.Next() {
		var o Order
		var obj, exp sql.NullTime
		if err := rows.Scan(&o.ID, &o.Case, &o.Type, &o.Reference, &o.Issued, &obj, &exp, &o.Notes); err != nil {
			return nil, fmt.Errorf("reading orders: %w", err)
		}
		o.Issued = o.Issued.UTC()
		if obj.Valid {
			o.ObjectionDeadline = obj.Time.UTC()
		}
		if exp.Valid {
			o.Expires = exp.Time.UTC()
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading orders: %w", err)
	}
	return out, nil
}

// day returns the UTC day of t, at midnight.
func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// AddOrder adds a court order to a case.
//
// The dates are kept as days: each is cut to UTC midnight. Issued is
// required and may not be later than the day after today; the objection
// deadline and the expiry, if set, may not be before Issued. The type may
// also be given by one of the aliases ParseOrderType accepts.
func (r *Registry) AddOrder(ctx context.Context, caseName string, o NewOrder, ch Change) (Order, error) {
	caseName = strings.TrimSpace(caseName)
	t, err := ParseOrderType(string(o.Type))
	if err != nil {
		return Order{}, fmt.Errorf("order of case %s: %w", caseName, err)
	}
	o.Type = t
	o.Reference = strings.TrimSpace(o.Reference)
	o.Notes = strings.TrimSpace(o.Notes)
	what := fmt.Sprintf("%s order of case %s", o.Type, caseName)
	if err := checkText("reference", o.Reference, 200, false); err != nil {
		return Order{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkText("notes", o.Notes, 10000, true); err != nil {
		return Order{}, fmt.Errorf("%s: %w", what, err)
	}
	if o.Issued.IsZero() {
		return Order{}, fmt.Errorf("%s: issued date is missing: %w", what, ErrInvalid)
	}
	o.Issued = day(o.Issued)
	if !o.ObjectionDeadline.IsZero() {
		o.ObjectionDeadline = day(o.ObjectionDeadline)
		if o.ObjectionDeadline.Before(o.Issued) {
			return Order{}, fmt.Errorf("%s: objection deadline %s is before the issue date %s: %w",
				what, o.ObjectionDeadline.Format(time.DateOnly), o.Issued.Format(time.DateOnly), ErrInvalid)
		}
	}
	if !o.Expires.IsZero() {
		o.Expires = day(o.Expires)
		if o.Expires.Before(o.Issued) {
			return Order{}, fmt.Errorf("%s: expiry %s is before the issue date %s: %w",
				what, o.Expires.Format(time.DateOnly), o.Issued.Format(time.DateOnly), ErrInvalid)
		}
	}
	var out Order
	err = r.write(ctx, ch, func(w *writeTx) error {
		if o.Issued.After(day(w.at).AddDate(0, 0, 1)) {
			return fmt.Errorf("%s: issued date %s is in the future: %w", what, o.Issued.Format(time.DateOnly), ErrInvalid)
		}
		if err := w.caseExists(caseName); err != nil {
			return err
		}
		var id int64
		if err := w.tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) + 1 FROM registry_orders`).Scan(&id); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, err := w.tx.ExecContext(ctx, `INSERT INTO registry_orders (id, case_name, type, reference, issued, objection_deadline, expires, notes, added)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, caseName, string(o.Type), o.Reference, o.Issued, nullTime(o.ObjectionDeadline), nullTime(o.Expires), o.Notes, w.at); err != nil {
			return fmt.Errorf("adding %s: %w", what, err)
		}
		out = Order{ID: id, Case: caseName, Type: o.Type, Reference: o.Reference, Issued: o.Issued,
			ObjectionDeadline: o.ObjectionDeadline, Expires: o.Expires, Notes: o.Notes}
		_, err := w.record(actionOrderAdd, fmt.Sprintf("order:%d", id), out)
		return err
	})
	if err != nil {
		return Order{}, err
	}
	return out, nil
}

func nullTime(t time.Time) sql.NullTime {
	return sql.NullTime{Time: t, Valid: !t.IsZero()}
}

// caseExists returns ErrNotFound naming the case if there is none.
func (w *writeTx) caseExists(name string) error {
	if err := checkCaseName(name); err != nil {
		return err
	}
	var n int
	if err := w.tx.QueryRowContext(w.ctx, `SELECT count(*) FROM registry_cases WHERE name = ?`, name).Scan(&n); err != nil {
		return fmt.Errorf("case %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("case %q: %w", name, ErrNotFound)
	}
	return nil
}
