package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/migrate"
)

// RollupComponent is the name under which the rollup's migrations are
// recorded in schema_migrations.
const RollupComponent = "rollup"

// The rollup keeps, per UTC day, one row per infected host: per family,
// source address, network, country and city, the number of its events.
// Unique hosts are not additive across days (a host seen on Monday and
// Tuesday is one host of the two days), so the rollup keeps the hosts
// themselves, not their counts: count(DISTINCT src_ip) over its rows of 7
// or 30 days is exact, as over the events, and reads some 36 times fewer
// rows for a Waledac-like botnet (a host calls back 36 times a day).
//
// Because a host is keyed by its network, country and city too, a count
// grouped by any of them equals UniqueHosts over the events, even for a
// host whose enrichment changed during a day.
//
// The events of infected hosts are those HostRows and eventstore.DailyHosts count: a
// family, or a case (a seized name was called); their family is "unknown"
// when only the case is known.
var rollupMigrations = []migrate.Migration{{
	Version: 1,
	Name:    "hosts, hours and zones per day",
	SQL: `
CREATE TABLE rollup_hosts (
	day        DATE NOT NULL,
	family     VARCHAR NOT NULL,
	src_ip     UBIGINT NOT NULL,
	src_ip6    UHUGEINT,
	asn        UINTEGER NOT NULL,
	as_name    VARCHAR NOT NULL,
	country    VARCHAR NOT NULL,
	city       VARCHAR NOT NULL,
	latitude   DOUBLE NOT NULL,
	longitude  DOUBLE NOT NULL,
	events     BIGINT NOT NULL,
	first_seen TIMESTAMP_NS NOT NULL,
	last_seen  TIMESTAMP_NS NOT NULL
);
CREATE TABLE rollup_hours (
	hour   TIMESTAMP NOT NULL,
	family VARCHAR NOT NULL,
	events BIGINT NOT NULL
);
CREATE TABLE rollup_zones (
	day     DATE NOT NULL,
	zone    VARCHAR NOT NULL,
	queries BIGINT NOT NULL,
	last    TIMESTAMP_NS NOT NULL
);
CREATE TABLE rollup_days (
	day    DATE PRIMARY KEY,
	events BIGINT NOT NULL,
	upto   TIMESTAMP_NS NOT NULL,
	chunks INTEGER NOT NULL,
	built  TIMESTAMP NOT NULL
);`,
}}

// RollupConfig configures a Rollup. The zero value of every field but DB
// works.
type RollupConfig struct {
	// DB is the database of the events (see Config.DB).
	DB *sql.DB
	// Days is how many UTC days, up to today, the rollup keeps; 32 by
	// default (the dashboard's 30-day view and a margin).
	Days int
	// MaxChunks is how many increments a day takes before it is rebuilt
	// in one piece; 64 by default. See Refresh.
	MaxChunks int
	// Lag keeps the newest events out of the rollup until they are that
	// old, so that events recorded a little out of order (by concurrent
	// sinks, in batches) are increments rather than late events that
	// make their day rebuild; 3 s by default.
	Lag time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives a line per rebuilt day; nil discards.
	Logger *slog.Logger
}

// Rollup is the daily rollup of infected hosts of the events table. Its
// methods are safe for concurrent use; Refresh runs one at a time.
type Rollup struct {
	db        *sql.DB
	days      int
	maxChunks int
	lag       time.Duration
	now       func() time.Time
	log       *slog.Logger

	refresh  sync.Mutex // one Refresh at a time
	mu       sync.Mutex // guards the fields below
	asOf     time.Time
	lastFull time.Time
}

// OpenRollup brings the rollup's schema in cfg.DB up to date. The events
// table must exist (Open creates it).
func OpenRollup(ctx context.Context, cfg RollupConfig) (*Rollup, error) {
	if cfg.DB == nil {
		return nil, errors.New("store: rollup: no database given")
	}
	if err := migrate.Apply(ctx, cfg.DB, RollupComponent, rollupMigrations); err != nil {
		return nil, fmt.Errorf("store: rollup: %w", err)
	}
	r := &Rollup{db: cfg.DB, days: cfg.Days, maxChunks: cfg.MaxChunks, lag: cfg.Lag, now: cfg.Now, log: cfg.Logger}
	if r.lag <= 0 {
		r.lag = 3 * time.Second
	}
	if r.days <= 0 {
		r.days = 32
	}
	if r.maxChunks <= 0 {
		r.maxChunks = 64
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return r, nil
}

// Days returns how many days the rollup keeps.
func (r *Rollup) Days() int { return r.days }

// AsOf returns the time up to which the last Refresh took in events: the
// rollup holds every event of a time up to AsOf that was stored when the
// refresh began (Lag before AsOf). It is zero before the first Refresh.
func (r *Rollup) AsOf() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asOf
}

// dayState is a day as the rollup last saw it.
type dayState struct {
	events int64
	chunks int
}

// Refresh brings the rollup up to date with the events of its window.
//
// It compares each day's number of events and latest time with what the
// rollup last saw. A day whose events only grew at its end — the live day,
// as events arrive in about time order — gets an increment: the hosts of
// the new events are added as rows of their own (a host may then have
// several rows in a day; counts are of distinct hosts and sums of events,
// so they stay exact). Any other change — late events of a backfill,
// retention, a day with MaxChunks increments — rebuilds the day from its
// events. Each day changes in one transaction.
//
// With full false only today and yesterday are compared; Refresh compares
// all days anyway when the last full comparison is more than a minute old.
func (r *Rollup) Refresh(ctx context.Context, full bool) (eventstore.RefreshStats, error) {
	r.refresh.Lock()
	defer r.refresh.Unlock()
	start := r.now().UTC()
	cutoff := start.Add(-r.lag).Truncate(time.Microsecond)
	today := start.Truncate(24 * time.Hour)
	oldest := today.AddDate(0, 0, 1-r.days)
	r.mu.Lock()
	if start.Sub(r.lastFull) > time.Minute {
		full = true
	}
	r.mu.Unlock()
	from := oldest
	if !full {
		from = today.AddDate(0, 0, -1)
	}
	var st eventstore.RefreshStats

	// Days out of the window go first.
	if full {
		res, err := r.db.ExecContext(ctx, `DELETE FROM rollup_days WHERE day < ?`, oldest)
		if err != nil {
			return st, fmt.Errorf("store: rollup: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			st.Dropped += int(n)
			for _, t := range []string{"rollup_hosts", "rollup_zones"} {
				if _, err := r.db.ExecContext(ctx, `DELETE FROM `+t+` WHERE day < ?`, oldest); err != nil {
					return st, fmt.Errorf("store: rollup: %w", err)
				}
			}
			if _, err := r.db.ExecContext(ctx, `DELETE FROM rollup_hours WHERE hour < ?`, oldest); err != nil {
				return st, fmt.Errorf("store: rollup: %w", err)
			}
		}
	}

	// The days whose events differ from what the rollup saw.
	rows, err := r.db.QueryContext(ctx, `WITH cur AS (
		SELECT CAST(time AS DATE) AS day, count(*) AS n, max(time) AS upto FROM events WHERE time >= ? GROUP BY day)
	SELECT coalesce(cur.day, d.day) AS day, coalesce(cur.n, 0), d.day IS NOT NULL, coalesce(d.events, 0), coalesce(d.chunks, 0)
	FROM cur FULL OUTER JOIN (SELECT * FROM rollup_days WHERE day >= ?) d ON cur.day = d.day
	WHERE cur.day IS NULL OR d.day IS NULL OR cur.n <> d.events OR cur.upto <> d.upto
	ORDER BY day`, from, from)
	if err != nil {
		return st, fmt.Errorf("store: rollup: comparing days: %w", err)
	}
	type change struct {
		day   time.Time
		n     int64
		known bool
		state dayState
	}
	var changes []change
	for rows.Next() {
		var c change
		if err := rows.Scan(&c.day, &c.n, &c.known, &c.state.events, &c.state.chunks); err != nil {
			rows.Close()
			return st, fmt.Errorf("store: rollup: comparing days: %w", err)
		}
		c.day = c.day.UTC()
		changes = append(changes, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("store: rollup: comparing days: %w", err)
	}
	if full {
		var n int
		if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM rollup_days WHERE day >= ?`, oldest).Scan(&n); err == nil {
			st.Checked = n + len(changes)
		}
	} else {
		st.Checked = 2
	}
	for _, c := range changes {
		if c.day.Before(oldest) {
			continue
		}
		var state *dayState
		if c.known {
			state = &c.state
		}
		what, err := r.refreshDay(ctx, c.day, state, cutoff)
		if err != nil {
			return st, fmt.Errorf("store: rollup: day %s: %w", c.day.Format(time.DateOnly), err)
		}
		switch what {
		case "added":
			st.Added++
		case "rebuilt":
			st.Rebuilt++
		case "dropped":
			st.Dropped++
		}
	}
	r.mu.Lock()
	r.asOf = cutoff
	if full {
		r.lastFull = start
	}
	r.mu.Unlock()
	return st, nil
}

// The expressions of the rollup's rows.
const (
	rollupFamily     = "coalesce(family, '" + eventstore.UnknownFamily + "')"
	rollupHostSelect = `SELECT CAST(time AS DATE), ` + rollupFamily + ` AS fam, src_ip, any_value(src_ip6), asn,
	coalesce(any_value(as_name), ''), coalesce(country_code, '') AS cc, coalesce(city, '') AS ci,
	any_value(latitude), any_value(longitude), count(*), min(time), max(time) FROM events`
	rollupHostGroup  = ` GROUP BY CAST(time AS DATE), fam, src_ip, asn, cc, ci`
	rollupHourSelect = `SELECT date_trunc('hour', time) AS h, ` + rollupFamily + ` AS fam, count(*) FROM events`
	rollupZoneSelect = `SELECT CAST(time AS DATE), zone, count(*), max(time) FROM events`
)

// refreshDay brings one day up to date, with its events up to cutoff, in
// one transaction, and says how: "added", "rebuilt", "dropped" or ""
// (nothing to do after all).
func (r *Rollup) refreshDay(ctx context.Context, day time.Time, state *dayState, cutoff time.Time) (string, error) {
	end := day.AddDate(0, 0, 1)
	if cutoff.Before(day) {
		return "", nil // a day of the future
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	// Within the transaction the events hold still: counts and rows agree.
	var before, total int64
	if err := tx.QueryRowContext(ctx, `SELECT
		count(*) FILTER (WHERE time <= (SELECT upto FROM rollup_days WHERE day = ?)), count(*) FILTER (WHERE time <= ?)
		FROM events WHERE time >= ? AND time < ?`, day, cutoff, day, end).Scan(&before, &total); err != nil {
		return "", err
	}
	what := ""
	switch {
	case total == 0:
		if state == nil || state.events == 0 {
			return "", nil
		}
		if err := deleteDay(ctx, tx, day, end); err != nil {
			return "", err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rollup_days WHERE day = ?`, day); err != nil {
			return "", err
		}
		what = "dropped"
	case state != nil && before == state.events && total > before && state.chunks < r.maxChunks:
		// Only new events after the last one seen: add them.
		rng := ` WHERE time > (SELECT upto FROM rollup_days WHERE day = ?) AND time < ? AND time <= ?`
		args := []any{day, end, cutoff}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rollup_hosts `+rollupHostSelect+rng+` AND `+infected+rollupHostGroup, args...); err != nil {
			return "", fmt.Errorf("adding hosts: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rollup_hours `+rollupHourSelect+rng+` AND `+infected+` GROUP BY h, fam`, args...); err != nil {
			return "", fmt.Errorf("adding hours: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rollup_zones `+rollupZoneSelect+rng+` AND zone IS NOT NULL GROUP BY ALL`, args...); err != nil {
			return "", fmt.Errorf("adding zones: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rollup_days SET events = ?, chunks = chunks + 1,
			upto = (SELECT max(time) FROM events WHERE time >= ? AND time < ? AND time <= ?) WHERE day = ?`, total, day, end, cutoff, day); err != nil {
			return "", err
		}
		what = "added"
	case state != nil && before == state.events && total == before:
		// The same events (the comparison raced with an append).
		return "", nil
	default:
		t0 := time.Now()
		if err := deleteDay(ctx, tx, day, end); err != nil {
			return "", err
		}
		rng := ` WHERE time >= ? AND time < ? AND time <= ?`
		args := []any{day, end, cutoff}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rollup_hosts `+rollupHostSelect+rng+` AND `+infected+rollupHostGroup, args...); err != nil {
			return "", fmt.Errorf("building hosts: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rollup_hours `+rollupHourSelect+rng+` AND `+infected+` GROUP BY h, fam`, args...); err != nil {
			return "", fmt.Errorf("building hours: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rollup_zones `+rollupZoneSelect+rng+` AND zone IS NOT NULL GROUP BY ALL`, args...); err != nil {
			return "", fmt.Errorf("building zones: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO rollup_days
			SELECT ?, ?, max(time), 1, now() FROM events WHERE time >= ? AND time < ? AND time <= ?`, day, total, day, end, cutoff); err != nil {
			return "", err
		}
		r.log.Debug("rollup day rebuilt", "day", day.Format(time.DateOnly), "events", total, "took", time.Since(t0))
		what = "rebuilt"
	}
	return what, tx.Commit()
}

func deleteDay(ctx context.Context, tx *sql.Tx, day, end time.Time) error {
	for _, q := range []string{`DELETE FROM rollup_hosts WHERE day = ?`, `DELETE FROM rollup_zones WHERE day = ?`} {
		if _, err := tx.ExecContext(ctx, q, day); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM rollup_hours WHERE hour >= ? AND hour < ?`, day, end)
	return err
}

// rollupWhere returns the WHERE terms of a eventstore.HostQuery over rollup_hosts:
// its From and To are cut to whole UTC days (From's day included, To's
// day included unless To is midnight).
func rollupWhere(from, to time.Time, family string, asn uint32, country string) ([]string, []any) {
	var where []string
	var args []any
	if !from.IsZero() {
		where, args = append(where, "day >= ?"), append(args, from.UTC().Truncate(24*time.Hour))
	}
	if !to.IsZero() {
		where, args = append(where, "day < ?"), append(args, ceilDay(to))
	}
	if family != "" {
		where, args = append(where, "family = ?"), append(args, family)
	}
	if asn != 0 {
		where, args = append(where, "asn = ?"), append(args, asn)
	}
	if country != "" {
		where, args = append(where, "country = ?"), append(args, country)
	}
	return where, args
}

// ceilDay returns t if it is midnight UTC, else the next midnight.
func ceilDay(t time.Time) time.Time {
	d := t.UTC().Truncate(24 * time.Hour)
	if d.Equal(t.UTC()) {
		return d
	}
	return d.AddDate(0, 0, 1)
}

func whereSQL(where []string) string {
	if len(where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(where, " AND ")
}

// Hosts counts the distinct infected addresses and their events as
// UniqueHosts does, over whole days of the rollup (see rollupWhere), for
// infected hosts only; Bots is not counted (0). Family "" in a row is
// never returned: unclassified events with a case count as
// eventstore.UnknownFamily.
func (r *Rollup) Hosts(ctx context.Context, q eventstore.HostQuery) ([]eventstore.HostCount, error) {
	by, err := groupDims(q.GroupBy)
	if err != nil {
		return nil, fmt.Errorf("store: rollup hosts: %w", err)
	}
	keys, sel := by.columns("day", "family", "any_value(as_name)", "country")
	sel = append(sel, "count(DISTINCT src_ip) AS ips", "sum(events)::BIGINT")
	where, args := rollupWhere(q.From, q.To, q.Family, q.ASN, q.Country)
	query := "SELECT " + strings.Join(sel, ", ") + " FROM rollup_hosts" + whereSQL(where)
	if len(keys) > 0 {
		query += " GROUP BY " + strings.Join(keys, ", ")
	}
	query += " ORDER BY " + strings.Join(append([]string{"ips DESC"}, keys...), ", ")
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := r.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: rollup hosts: %w", err)
	}
	defer rows.Close()
	var out []eventstore.HostCount
	for rows.Next() {
		var c eventstore.HostCount
		var events sql.NullInt64
		if err := rows.Scan(append(by.dest(&c), &c.IPs, &events)...); err != nil {
			return nil, fmt.Errorf("store: rollup hosts: %w", err)
		}
		c.Day = c.Day.UTC()
		c.Events = events.Int64
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: rollup hosts: %w", err)
	}
	return out, nil
}

// Spans counts, per family and for all families together, the distinct
// infected addresses of the spans of days that end with the UTC day of
// end: spans {1, 7, 30} gives today, the last 7 days and the last 30
// days. The row of all families comes first, then the families by name.
// family, if set, keeps only that family.
func (r *Rollup) Spans(ctx context.Context, end time.Time, spans []int, family string) ([]eventstore.SpanCount, error) {
	if len(spans) == 0 {
		return nil, nil
	}
	last := end.UTC().Truncate(24 * time.Hour)
	longest := 0
	var counts []string
	var cargs []any
	for _, n := range spans {
		if n < 1 {
			return nil, fmt.Errorf("store: rollup spans: span of %d days", n)
		}
		longest = max(longest, n)
		counts = append(counts, "count(*) FILTER (WHERE last >= ?)")
		cargs = append(cargs, last.AddDate(0, 0, 1-n))
	}
	where := "day >= ? AND day <= ?"
	args := []any{last.AddDate(0, 0, 1-longest), last}
	if family != "" {
		where += " AND family = ?"
		args = append(args, family)
	}
	// A host is in the span of n days if the last day it was seen is in
	// it: one grouping per host rather than a distinct count per span.
	args = append(args, cargs...)
	args = append(args, cargs...)
	sel := strings.Join(counts, ", ")
	rows, err := r.db.QueryContext(ctx, `WITH h AS (SELECT family, src_ip, max(day) AS last FROM rollup_hosts WHERE `+where+` GROUP BY family, src_ip),
		t AS (SELECT src_ip, max(last) AS last FROM h GROUP BY src_ip)
	SELECT 1 AS total, '' AS family, `+sel+` FROM t
	UNION ALL
	SELECT 0 AS total, family, `+sel+` FROM h GROUP BY family
	ORDER BY total DESC, family`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: rollup spans: %w", err)
	}
	defer rows.Close()
	var out []eventstore.SpanCount
	for rows.Next() {
		var total int64
		c := eventstore.SpanCount{IPs: make([]int64, len(spans))}
		dest := []any{&total, &c.Family}
		for i := range c.IPs {
			dest = append(dest, &c.IPs[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("store: rollup spans: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: rollup spans: %w", err)
	}
	if len(out) == 0 || out[0].Family != "" {
		// No hosts at all: the row of all families, of zeros.
		out = append([]eventstore.SpanCount{{IPs: make([]int64, len(spans))}}, out...)
	}
	return out, nil
}

// Hours returns the callbacks of infected hosts per UTC hour of [From,
// To) (whole hours), in time order; IPs is not counted (0). Hours without
// callbacks are left out.
func (r *Rollup) Hours(ctx context.Context, q eventstore.HourQuery) ([]eventstore.HourCount, error) {
	var where []string
	var args []any
	if !q.From.IsZero() {
		where, args = append(where, "hour >= ?"), append(args, q.From.UTC().Truncate(time.Hour))
	}
	if !q.To.IsZero() {
		where, args = append(where, "hour < ?"), append(args, q.To.UTC())
	}
	if q.Family != "" {
		where, args = append(where, "family = ?"), append(args, q.Family)
	}
	rows, err := r.db.QueryContext(ctx, `SELECT hour, sum(events)::BIGINT FROM rollup_hours`+whereSQL(where)+` GROUP BY hour ORDER BY hour`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: rollup hours: %w", err)
	}
	defer rows.Close()
	var out []eventstore.HourCount
	for rows.Next() {
		var c eventstore.HourCount
		if err := rows.Scan(&c.Hour, &c.Events); err != nil {
			return nil, fmt.Errorf("store: rollup hours: %w", err)
		}
		c.Hour = c.Hour.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: rollup hours: %w", err)
	}
	return out, nil
}

// Cities counts the distinct infected addresses per city, most first, as
// HostsPerCity does over the events.
func (r *Rollup) Cities(ctx context.Context, q eventstore.CityQuery) ([]eventstore.CityCount, error) {
	where, args := rollupWhere(q.From, q.To, q.Family, 0, q.Country)
	where = append(where, "city <> ''")
	query := `SELECT country, city, any_value(latitude), any_value(longitude), count(DISTINCT src_ip) AS ips
		FROM rollup_hosts` + whereSQL(where) + ` GROUP BY country, city ORDER BY ips DESC, country, city`
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	return queryCities(ctx, r.db, query, args)
}

// RollupDays returns the UTC days the rollup holds, oldest first.
func (r *Rollup) RollupDays(ctx context.Context) ([]time.Time, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT day FROM rollup_days ORDER BY day`)
	if err != nil {
		return nil, fmt.Errorf("store: rollup days: %w", err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var d time.Time
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("store: rollup days: %w", err)
		}
		out = append(out, d.UTC())
	}
	return out, rows.Err()
}

// Families returns the families of the rollup's hosts, by name.
func (r *Rollup) Families(ctx context.Context) ([]string, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT DISTINCT family FROM rollup_hosts ORDER BY family`)
	if err != nil {
		return nil, fmt.Errorf("store: rollup families: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			return nil, fmt.Errorf("store: rollup families: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// DailyByASN counts the distinct infected addresses per UTC day and
// network of the networks asns, over [from, to) in whole days, as
// eventstore.DailyHosts with ByASN does over the events. The map has a row per day
// with hosts, in day order.
func (r *Rollup) DailyByASN(ctx context.Context, from, to time.Time, asns []uint32) (map[uint32][]eventstore.DailyHosts, error) {
	out := map[uint32][]eventstore.DailyHosts{}
	if len(asns) == 0 {
		return out, nil
	}
	where, args := rollupWhere(from, to, "", 0, "")
	list := make([]any, len(asns))
	ph := make([]string, len(asns))
	for i, a := range asns {
		list[i], ph[i] = a, "?"
	}
	where = append(where, "asn IN ("+strings.Join(ph, ", ")+")")
	args = append(args, list...)
	rows, err := r.db.QueryContext(ctx, `SELECT asn, day, count(DISTINCT src_ip) FROM rollup_hosts`+whereSQL(where)+
		` GROUP BY asn, day ORDER BY asn, day`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: rollup daily by network: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var asn uint32
		var d eventstore.DailyHosts
		if err := rows.Scan(&asn, &d.Day, &d.IPs); err != nil {
			return nil, fmt.Errorf("store: rollup daily by network: %w", err)
		}
		d.Day = d.Day.UTC()
		out[asn] = append(out[asn], d)
	}
	return out, rows.Err()
}

// Zones returns, for each of zones that had events in the rollup's days,
// the time of its newest event and the number of its events.
func (r *Rollup) Zones(ctx context.Context, zones []string) (map[string]eventstore.ZoneActivity, error) {
	out := map[string]eventstore.ZoneActivity{}
	if len(zones) == 0 {
		return out, nil
	}
	rows, err := r.db.QueryContext(ctx, `SELECT zone, max(last), sum(queries)::BIGINT FROM rollup_zones
		WHERE zone IN (SELECT unnest(?::VARCHAR[])) GROUP BY zone`, zones)
	if err != nil {
		return nil, fmt.Errorf("store: rollup zones: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var z string
		var a eventstore.ZoneActivity
		if err := rows.Scan(&z, &a.Last, &a.Queries); err != nil {
			return nil, fmt.Errorf("store: rollup zones: %w", err)
		}
		a.Last = a.Last.UTC()
		out[z] = a
	}
	return out, rows.Err()
}

// HostList returns infected addresses of q, most events first: one row
// per address, family, network and country.
func (r *Rollup) HostList(ctx context.Context, q eventstore.HostListQuery) ([]eventstore.RollupHost, error) {
	where, args := rollupWhere(q.From, q.To, q.Family, q.ASN, q.Country)
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := r.db.QueryContext(ctx, `SELECT src_ip, any_value(src_ip6), family, asn, any_value(as_name), country, any_value(city),
		sum(events)::BIGINT AS n, min(first_seen), max(last_seen) FROM rollup_hosts`+whereSQL(where)+`
		GROUP BY src_ip, family, asn, country ORDER BY n DESC, src_ip, family LIMIT `+fmt.Sprint(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("store: rollup host list: %w", err)
	}
	defer rows.Close()
	var out []eventstore.RollupHost
	for rows.Next() {
		var h eventstore.RollupHost
		var ip uint64
		var ip6 any
		if err := rows.Scan(&ip, &ip6, &h.Family, &h.ASN, &h.ASName, &h.Country, &h.City, &h.Events, &h.FirstSeen, &h.LastSeen); err != nil {
			return nil, fmt.Errorf("store: rollup host list: %w", err)
		}
		if h.IP, err = srcIPFromValues(ip, ip6); err != nil {
			return nil, fmt.Errorf("store: rollup host list: %w", err)
		}
		h.FirstSeen, h.LastSeen = h.FirstSeen.UTC(), h.LastSeen.UTC()
		out = append(out, h)
	}
	return out, rows.Err()
}
