package chstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/takedown-project/takedown/internal/eventstore"
)

// The rollup keeps, per UTC day, one row per infected host and family,
// network, country and city, with its events (rollup_hosts), the infected
// callbacks per hour and family (rollup_hours) and the queries per seized
// zone (rollup_zones): the tables of the DuckDB engine's rollup, with the
// same reasons (unique hosts are not additive across days, so the rollup
// keeps the hosts; a Waledac-like host calls back 36 times a day, so it
// reads 36 times fewer rows than the events).
//
// Aggregating tables filled at Refresh, not materialized views on the
// events, because a view cannot keep the promises of the contract here:
//
//   - a view sees inserts only: DeleteBefore's partial-day delete (an
//     ALTER … DELETE mutation) and a rebuilt day never reach it;
//   - an INSERT into events and its push into a view are not one atomic
//     step (ClickHouse 18.16 writes the table's part first): a push that
//     failed leaves events without their rollup rows, and the writer's
//     replay, which skips the events already stored, never pushes them
//     again;
//   - rebuilding a day beside a live view counts the events inserted
//     during the rebuild twice.
//
// Refresh instead compares, per day, the number of events and the newest
// time with what it last took in (rollup_days) and adds the new events of
// the live day as an increment (a chunk), or rebuilds a changed day into
// a staging table and swaps it in whole with REPLACE PARTITION. Every row
// carries the number of the chunk that wrote it, and rollup_days the last
// chunk that completed: a refresh cut off between its inserts and its
// bookkeeping (a crash, a lost connection) leaves rows of a newer chunk,
// which the next Refresh of a new Rollup, or the one after a failed
// Refresh, finds and rebuilds the day for.
//
// On a cluster every shard refreshes its own days, from its events_local
// into its X_local tables (a host lives on one shard, so its rows are
// whole there), and the readers count through the Distributed X tables.
//
// The dashboard asks the same questions again and again between two
// refreshes (its overview, today's map): the answers are kept until the
// next Refresh that changes the rollup, and those of the overview of all
// families and of today's map are computed by that Refresh itself, so that
// a page view reads them from memory instead of counting the distinct
// hosts of millions of rows (a Conficker-scale day is 7 million).

// rollupMigration is version 2 of the schema: the rollup's tables. On a
// cluster rollup_hosts, rollup_hours and rollup_zones are X_local on each
// shard and X, Distributed, beside them (the readers count through X);
// their staging tables (X_local_stage) and rollup_days are each shard's
// own.
var rollupMigration = migration{
	Version: 2,
	Name:    "rollup: hosts, hours and zones per day",
	SQL: func(l layout) []string {
		out := concat(
			l.table("rollup_hosts", `(
	day       Date,
	family    String,
	src_ip    UInt64,
	src_ip6   FixedString(16),
	asn       UInt32,
	as_name   String,
	country   String,
	city      String,
	latitude  Float64,
	longitude Float64,
	events    Int64,
	first_ns  Int64,
	last_ns   Int64,
	chunk     UInt32
)
ENGINE = MergeTree
PARTITION BY day
ORDER BY (family, asn, src_ip)`, "sipHash64(src_ip)"),
			l.table("rollup_hours", `(
	day     Date,
	hour_ns Int64,
	family  String,
	events  Int64,
	chunk   UInt32
)
ENGINE = MergeTree
PARTITION BY day
ORDER BY (hour_ns, family)`, "rand()"),
			l.table("rollup_zones", `(
	day     Date,
	zone    String,
	queries Int64,
	last_ns Int64,
	chunk   UInt32
)
ENGINE = MergeTree
PARTITION BY day
ORDER BY zone`, "rand()"),
			// What Refresh last took in of a day on this shard: its
			// number of events, the newest time, the last chunk
			// written whole and the increments since the day was
			// last rebuilt. The newest version counts; events -1 is
			// a day dropped.
			[]string{`CREATE TABLE IF NOT EXISTS rollup_days (
	day        Date,
	events     Int64,
	upto       Int64,
	chunk      UInt32,
	increments UInt32,
	version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY day`},
		)
		for _, t := range stagingTables {
			out = append(out, "CREATE TABLE IF NOT EXISTS "+l.local(t)+"_stage AS "+l.local(t))
		}
		return out
	},
}

// stagingTables are the tables a day is rebuilt in (X_stage, or
// X_local_stage on a cluster) before it replaces the day of X (X_local).
var stagingTables = []string{"rollup_hosts", "rollup_hours", "rollup_zones"}

// RollupConfig configures a Rollup. The zero value of every field but
// Store works.
type RollupConfig struct {
	// Store is the engine whose events the rollup counts; its database
	// holds the rollup's tables (Open creates them).
	Store *Store
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Days is how many UTC days, up to today, the rollup keeps; 32 by
	// default (the dashboard's 30-day view and a margin).
	Days int
	// MaxIncrements is how many increments a day takes before it is
	// rebuilt in one piece; 64 by default.
	MaxIncrements int
	// Lag keeps the newest events out of the rollup until they are that
	// old, so that events stored a little out of order are increments
	// rather than late events that rebuild their day; 3 s by default, a
	// negative value is none.
	Lag time.Duration
	// Busy is how long a Refresh that changes the rollup may take before
	// the next one waits (see Refresh); 1 s by default, negative never
	// waits (tests that refresh after every append).
	Busy time.Duration
	// Logger receives a line per rebuilt day; nil discards.
	Logger *slog.Logger
}

// Rollup is the daily rollup of the infected hosts of a Store's events:
// the eventstore.Rollup of the ClickHouse engine. Its methods are safe
// for concurrent use; Refresh runs one at a time. One Rollup refreshes a
// database: two would write each other's days.
type Rollup struct {
	store  *Store
	shards []shard
	days   int
	maxInc int
	lag    time.Duration
	busy   time.Duration
	now    func() time.Time
	log    *slog.Logger

	refresh  sync.Mutex // one Refresh at a time; guards the fields below
	verified bool       // no rows of an unfinished chunk since the last check
	// cost is how long the last Refresh that changed the rollup took,
	// with its warm-up, and ended when it ended (see Refresh).
	cost  time.Duration
	ended time.Time

	mu       sync.Mutex // guards the fields below
	asOf     time.Time
	lastFull time.Time
	cache    map[string]any // answers since the last change
	gen      uint64         // counts the changes: an answer is kept for its own
}

// shard is where a Refresh writes: a shard's own connection (the
// Store's) and the names of its tables (X_local on a cluster).
type shard struct {
	conn  driver.Conn
	local func(name string) string
}

func (sh shard) table(name string) string { return sh.local(name) }

var _ eventstore.Rollup = (*Rollup)(nil)

// OpenRollup returns the rollup of cfg.Store's events. It refreshes
// through the Store's connections to each shard, and lives as long as the
// Store.
func OpenRollup(ctx context.Context, cfg RollupConfig) (*Rollup, error) {
	if cfg.Store == nil {
		return nil, errors.New("chstore: rollup: no store given")
	}
	r := &Rollup{store: cfg.Store, days: cfg.Days, maxInc: cfg.MaxIncrements, lag: cfg.Lag, busy: cfg.Busy, now: cfg.Now, log: cfg.Logger}
	if r.busy == 0 {
		r.busy = time.Second
	}
	if r.days <= 0 {
		r.days = 32
	}
	if r.maxInc <= 0 {
		r.maxInc = 64
	}
	switch {
	case r.lag == 0:
		r.lag = 3 * time.Second
	case r.lag < 0:
		r.lag = 0
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, conn := range cfg.Store.shards {
		r.shards = append(r.shards, shard{conn: conn, local: cfg.Store.layout.local})
	}
	return r, nil
}

// Days returns how many days the rollup keeps.
func (r *Rollup) Days() int { return r.days }

// AsOf returns the time up to which the last Refresh took in events; zero
// before the first.
func (r *Rollup) AsOf() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asOf
}

// dayState is a day as a shard's rollup last took it in.
type dayState struct {
	events     int64
	upto       int64
	chunk      uint32
	increments uint32
}

// Refresh brings the rollup up to date with the events of its window; see
// the notes above rollupMigration. With full false only today and
// yesterday are compared, unless the last full comparison is more than a
// minute old.
//
// A Refresh that changes the rollup also computes the answers the
// dashboard asks first (warm). On a big rollup, where that took more than
// RollupConfig.Busy (about 30 s for a Conficker-scale day on two cores,
// against a default of 1 s), the next
// Refresh takes in new events only once twice that time has passed; the
// ones before return at once, with no change and AsOf as it was. So the
// rollup's work takes at most about a third of the machine however often
// the dashboard refreshes, and the answers it keeps are those of AsOf.
func (r *Rollup) Refresh(ctx context.Context, full bool) (eventstore.RefreshStats, error) {
	r.refresh.Lock()
	defer r.refresh.Unlock()
	if r.busy > 0 && r.cost > r.busy && time.Since(r.ended) < 2*r.cost {
		return eventstore.RefreshStats{}, nil
	}
	began := time.Now()
	start := r.now().UTC()
	cutoff := start.Add(-r.lag).UnixNano()
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
	// What happened to each day, over all shards.
	done := map[time.Time]string{}
	checked := map[time.Time]bool{}
	// The shards at once: each is a server of its own.
	var (
		wg   sync.WaitGroup
		tell sync.Mutex // guards done and checked
		errs = make([]error, len(r.shards))
	)
	for i, sh := range r.shards {
		wg.Go(func() {
			errs[i] = r.refreshShard(ctx, sh, full, from, oldest, cutoff, &tell, done, checked)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		r.verified = false
		return eventstore.RefreshStats{}, fmt.Errorf("chstore: rollup: %w", err)
	}
	r.verified = true
	st := eventstore.RefreshStats{Checked: len(checked)}
	if !full {
		st.Checked = 2
	}
	for _, what := range done {
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
	r.asOf = time.Unix(0, cutoff).UTC()
	if full {
		r.lastFull = start
	}
	if st.Changed() || r.cache == nil {
		r.cache = map[string]any{}
		r.gen++
	}
	r.mu.Unlock()
	if st.Changed() {
		t0 := time.Now()
		r.warm(ctx, start)
		r.log.Debug("rollup answers computed", "took", time.Since(t0))
		r.ended = time.Now()
		r.cost = r.ended.Sub(began)
	}
	return st, nil
}

// stronger orders what happened to a day on several shards: the strongest
// is reported.
var stronger = map[string]int{"": 0, "added": 1, "dropped": 2, "rebuilt": 3}

// refreshShard refreshes the days of one shard, and tells what it did in
// done and checked, under tell.
func (r *Rollup) refreshShard(ctx context.Context, sh shard, full bool, from, oldest time.Time, cutoff int64,
	tell *sync.Mutex, done map[time.Time]string, checked map[time.Time]bool) error {
	states, err := r.states(ctx, sh)
	if err != nil {
		return err
	}
	note := func(day time.Time, what string) {
		tell.Lock()
		defer tell.Unlock()
		if stronger[what] > stronger[done[day]] {
			done[day] = what
		}
	}
	// Days out of the window go first.
	if full {
		for day, st := range states {
			if day.Before(oldest) {
				if err := r.dropDay(ctx, sh, day, st); err != nil {
					return fmt.Errorf("day %s: %w", day.Format(time.DateOnly), err)
				}
				note(day, "dropped")
				delete(states, day)
			}
		}
	}
	// Rows of a chunk that did not finish: their days are rebuilt.
	dirty := map[time.Time]bool{}
	if !r.verified {
		for _, t := range stagingTables {
			rows, err := sh.conn.Query(ctx, "SELECT day, max(chunk) FROM "+sh.table(t)+" GROUP BY day")
			if err != nil {
				return fmt.Errorf("checking chunks: %w", err)
			}
			for rows.Next() {
				var day time.Time
				var chunk uint32
				if err := rows.Scan(&day, &chunk); err != nil {
					rows.Close()
					return fmt.Errorf("checking chunks: %w", err)
				}
				if chunk > states[day.UTC()].chunk {
					dirty[day.UTC()] = true
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("checking chunks: %w", err)
			}
		}
	}
	// The days whose events differ from what the rollup took in.
	cur := map[time.Time][2]int64{}
	rows, err := sh.conn.Query(ctx, "SELECT day, toInt64(count()), max(time_ns) FROM "+sh.table("events")+
		" WHERE day >= toDate('"+from.Format(time.DateOnly)+"') GROUP BY day")
	if err != nil {
		return fmt.Errorf("comparing days: %w", err)
	}
	for rows.Next() {
		var day time.Time
		var n, upto int64
		if err := rows.Scan(&day, &n, &upto); err != nil {
			rows.Close()
			return fmt.Errorf("comparing days: %w", err)
		}
		cur[day.UTC()] = [2]int64{n, upto}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("comparing days: %w", err)
	}
	var days []time.Time
	tell.Lock()
	for day, c := range cur {
		checked[day] = true
		st, known := states[day]
		if !known || st.events != c[0] || st.upto != c[1] || dirty[day] {
			days = append(days, day)
		}
	}
	for day := range states {
		if !day.Before(from) {
			checked[day] = true
			if _, ok := cur[day]; !ok {
				days = append(days, day)
			}
		}
	}
	tell.Unlock()
	for day := range dirty {
		if _, ok := cur[day]; !ok && !day.Before(oldest) && day.Before(from) {
			days = append(days, day)
		}
	}
	slices.SortFunc(days, func(a, b time.Time) int { return a.Compare(b) })
	days = slices.Compact(days)
	for _, day := range days {
		if day.Before(oldest) {
			continue
		}
		st, known := states[day]
		what, err := r.refreshDay(ctx, sh, day, st, known, dirty[day], cutoff)
		if err != nil {
			return fmt.Errorf("day %s: %w", day.Format(time.DateOnly), err)
		}
		note(day, what)
	}
	return nil
}

// states reads a shard's rollup_days: the newest version of each day that
// is not dropped.
func (r *Rollup) states(ctx context.Context, sh shard) (map[time.Time]dayState, error) {
	rows, err := sh.conn.Query(ctx, `SELECT day, argMax(events, version) AS e, argMax(upto, version), argMax(chunk, version), argMax(increments, version)
FROM rollup_days GROUP BY day`)
	if err != nil {
		return nil, fmt.Errorf("reading the days: %w", err)
	}
	defer rows.Close()
	out := map[time.Time]dayState{}
	for rows.Next() {
		var day time.Time
		var st dayState
		if err := rows.Scan(&day, &st.events, &st.upto, &st.chunk, &st.increments); err != nil {
			return nil, fmt.Errorf("reading the days: %w", err)
		}
		if st.events >= 0 {
			out[day.UTC()] = st
		}
	}
	return out, rows.Err()
}

// setState records what a shard's rollup now holds of day.
func (r *Rollup) setState(ctx context.Context, sh shard, day time.Time, st dayState) error {
	// INSERT … SELECT: an INSERT … VALUES through Exec waits for a data
	// block that clickhouse-go never sends to 18.16.
	return sh.conn.Exec(ctx, "INSERT INTO rollup_days (day, events, upto, chunk, increments, version) SELECT "+
		dateLit(day)+", "+strconv.FormatInt(st.events, 10)+", "+strconv.FormatInt(st.upto, 10)+", "+
		strconv.FormatUint(uint64(st.chunk), 10)+", "+strconv.FormatUint(uint64(st.increments), 10)+", "+
		"toUInt64("+strconv.FormatInt(time.Now().UnixNano(), 10)+")")
}

// dropDay removes a day from a shard's rollup.
func (r *Rollup) dropDay(ctx context.Context, sh shard, day time.Time, st dayState) error {
	for _, t := range stagingTables {
		if err := sh.conn.Exec(ctx, "ALTER TABLE "+sh.table(t)+" DROP PARTITION "+partLit(day)); err != nil {
			return fmt.Errorf("dropping %s: %w", t, err)
		}
	}
	return r.setState(ctx, sh, day, dayState{events: -1, chunk: st.chunk})
}

// partLit names the partition of a day.
func partLit(day time.Time) string { return "'" + day.Format(time.DateOnly) + "'" }

// The rows of the rollup's tables, selected from the events of a range
// given by %s (a WHERE clause) with the chunk number %d.
const (
	hostRows = `SELECT day, ` + familyOrUnknown + ` AS fam, src_ip, any(src_ip6), asn, max(as_name), country_code, city,
	any(latitude), any(longitude), toInt64(count()), min(time_ns), max(time_ns), toUInt32(%d)
FROM %s%s AND ` + infected + ` GROUP BY day, fam, src_ip, asn, country_code, city`
	hourRows = `SELECT day, ` + "%[2]s" + ` * toInt64(3600000000000) AS h, ` + familyOrUnknown + ` AS fam, toInt64(count()), toUInt32(%[1]d)
FROM %[3]s%[4]s AND ` + infected + ` GROUP BY day, h, fam`
	zoneRows = `SELECT day, zone, toInt64(count()), max(time_ns), toUInt32(%d) FROM %s%s AND zone != '' GROUP BY day, zone`
)

// fill inserts into the tables named base+suffix the rows of the events
// that where selects, as chunk.
func (r *Rollup) fill(ctx context.Context, sh shard, suffix string, where string, chunk uint32) error {
	ev := sh.table("events")
	for _, q := range []struct{ table, sql string }{
		{"rollup_hosts", fmt.Sprintf(hostRows, chunk, ev, where)},
		{"rollup_hours", fmt.Sprintf(hourRows, chunk, hourSQL, ev, where)},
		{"rollup_zones", fmt.Sprintf(zoneRows, chunk, ev, where)},
	} {
		if err := sh.conn.Exec(clickhouse.Context(ctx, bigQuery), "INSERT INTO "+sh.table(q.table)+suffix+" "+q.sql); err != nil {
			return fmt.Errorf("filling %s: %w", q.table, err)
		}
	}
	return nil
}

// refreshDay brings one day of a shard up to date with its events up to
// cutoff and says how: "added", "rebuilt", "dropped" or "" (nothing to do
// after all).
func (r *Rollup) refreshDay(ctx context.Context, sh shard, day time.Time, st dayState, known, dirty bool, cutoff int64) (string, error) {
	dayStart := day.UnixNano()
	if cutoff < dayStart {
		return "", nil // a day of the future
	}
	ev := sh.table("events")
	inDay := " WHERE day = " + dateLit(day)
	var before, total, upto int64
	if err := sh.conn.QueryRow(ctx, "SELECT toInt64(countIf(time_ns <= ?)), toInt64(countIf(time_ns <= ?)), max(time_ns * (time_ns <= ?)) FROM "+ev+inDay,
		st.upto, cutoff, cutoff).Scan(&before, &total, &upto); err != nil {
		return "", err
	}
	if !known {
		before = 0
	}
	switch {
	case total == 0:
		if !known || st.events == 0 {
			return "", nil
		}
		if err := r.dropDay(ctx, sh, day, st); err != nil {
			return "", err
		}
		return "dropped", nil
	case known && !dirty && before == st.events && total > before && int(st.increments) < r.maxInc:
		// Only new events after the last one taken in: add them.
		chunk := st.chunk + 1
		where := inDay + " AND time_ns > " + strconv.FormatInt(st.upto, 10) + " AND time_ns <= " + strconv.FormatInt(cutoff, 10)
		if err := r.fill(ctx, sh, "", where, chunk); err != nil {
			return "", err
		}
		if err := r.setState(ctx, sh, day, dayState{events: total, upto: upto, chunk: chunk, increments: st.increments + 1}); err != nil {
			return "", err
		}
		return "added", nil
	case known && !dirty && before == st.events && total == before:
		return "", nil // the same events (the comparison raced with an append)
	}
	// Rebuild: into the staging tables, then each swapped in whole.
	t0 := time.Now()
	chunk := st.chunk + 1
	for _, t := range stagingTables {
		if err := sh.conn.Exec(ctx, "ALTER TABLE "+sh.table(t)+"_stage DROP PARTITION "+partLit(day)); err != nil {
			return "", fmt.Errorf("clearing %s_stage: %w", t, err)
		}
	}
	if err := r.fill(ctx, sh, "_stage", inDay+" AND time_ns <= "+strconv.FormatInt(cutoff, 10), chunk); err != nil {
		return "", err
	}
	for _, t := range stagingTables {
		if err := sh.conn.Exec(ctx, "ALTER TABLE "+sh.table(t)+" REPLACE PARTITION "+partLit(day)+" FROM "+sh.table(t)+"_stage"); err != nil {
			return "", fmt.Errorf("swapping in %s: %w", t, err)
		}
	}
	if err := r.setState(ctx, sh, day, dayState{events: total, upto: upto, chunk: chunk}); err != nil {
		return "", err
	}
	r.log.Debug("rollup day rebuilt", "day", day.Format(time.DateOnly), "events", total, "took", time.Since(t0))
	return "rebuilt", nil
}

// cached returns the answer kept for key since the last change, or
// computes and keeps it. Each caller gets a copy of its own.
func cached[S ~[]E, E any](r *Rollup, key string, fn func() (S, error)) (S, error) {
	r.mu.Lock()
	v, ok := r.cache[key]
	gen := r.gen
	r.mu.Unlock()
	if ok {
		return clone(v.(S)), nil
	}
	out, err := fn()
	if err != nil {
		return out, err
	}
	r.mu.Lock()
	// Not if a Refresh changed the rollup meanwhile: out may be of
	// before.
	if r.cache != nil && r.gen == gen && len(r.cache) < maxCached {
		r.cache[key] = clone(out)
	}
	r.mu.Unlock()
	return out, nil
}

// clone copies a slice of answers, and the counts of a SpanCount.
func clone[S ~[]E, E any](s S) S {
	out := slices.Clone(s)
	if spans, ok := any(out).([]eventstore.SpanCount); ok {
		for i := range spans {
			spans[i].IPs = slices.Clone(spans[i].IPs)
		}
	}
	return out
}

// maxCached bounds the answers kept between two changes.
const maxCached = 512

// warm computes the answers the dashboard's overview of all families and
// today's map (of all families and of each) ask first, so that they are
// read from memory.
func (r *Rollup) warm(ctx context.Context, now time.Time) {
	today := now.Truncate(24 * time.Hour)
	tomorrow := today.AddDate(0, 0, 1)
	r.Families(ctx)
	r.RollupDays(ctx)
	r.Spans(ctx, now, []int{1, 7, 30}, "")
	for _, span := range []int{1, 7, 30} {
		from := tomorrow.AddDate(0, 0, -span)
		for _, dim := range []eventstore.Dimension{eventstore.DimASN, eventstore.DimCountry} {
			r.Hosts(ctx, eventstore.HostQuery{From: from, To: tomorrow, GroupBy: []eventstore.Dimension{dim}, Limit: 20})
		}
	}
	// Today's map, of all families and of each (the dashboard's filter).
	fams, _ := r.Families(ctx)
	for _, f := range append([]string{""}, fams...) {
		r.Hosts(ctx, eventstore.HostQuery{From: today, To: tomorrow, Family: f, GroupBy: []eventstore.Dimension{eventstore.DimCountry}})
		r.Cities(ctx, eventstore.CityQuery{From: today, To: tomorrow, Family: f, Limit: 300})
	}
}

// rollupDays adds the terms of whole days: From's day included, To's day
// included unless To is midnight.
func (w *where) rollupDays(from, to time.Time) {
	if !from.IsZero() {
		w.add("day >= " + dateLit(dayOf(from)))
	}
	if !to.IsZero() {
		if d := ceilDay(to); !d.After(lastDay) {
			w.add("day < " + dateLit(dayOf(d)))
		}
	}
}

func (w *where) rollupFilters(family string, asn uint32, country string) {
	if family != "" {
		w.add("family = ?", family)
	}
	if asn != 0 {
		w.add("asn = ?", asn)
	}
	if country != "" {
		w.add("country = ?", country)
	}
}

// ceilDay returns t if it is midnight UTC, else the next midnight.
func ceilDay(t time.Time) time.Time {
	d := t.UTC().Truncate(24 * time.Hour)
	if d.Equal(t.UTC()) {
		return d
	}
	return d.AddDate(0, 0, 1)
}

// normDays is the key of whole days of a query.
func normDays(from, to time.Time) string {
	var f, t string
	if !from.IsZero() {
		f = from.UTC().Truncate(24 * time.Hour).Format(time.DateOnly)
	}
	if !to.IsZero() {
		t = ceilDay(to).Format(time.DateOnly)
	}
	return f + ".." + t
}

// Hosts counts distinct infected addresses and their events as
// UniqueHosts with Infected does, over whole days; Bots is 0, and a host
// with a case and no family counts as UnknownFamily.
func (r *Rollup) Hosts(ctx context.Context, q eventstore.HostQuery) ([]eventstore.HostCount, error) {
	by, err := groupDims(q.GroupBy)
	if err != nil {
		return nil, fmt.Errorf("chstore: rollup hosts: %w", err)
	}
	key := fmt.Sprintf("hosts|%s|%+v|%s|%d|%s|%d", normDays(q.From, q.To), by, q.Family, q.ASN, q.Country, q.Limit)
	return cached(r, key, func() ([]eventstore.HostCount, error) {
		keys, sel := by.columns("toInt64(toUInt16(day))", "family", "max(as_name)", "country")
		sel = append(sel, "toInt64(uniqExact(src_ip)) AS ips", "toInt64(0)", "toInt64(sum(events))")
		var w where
		w.rollupDays(q.From, q.To)
		w.rollupFilters(q.Family, q.ASN, q.Country)
		query := "SELECT " + strings.Join(sel, ", ") + " FROM rollup_hosts" + w.sql()
		if len(keys) > 0 {
			query += " GROUP BY " + strings.Join(keys, ", ")
		}
		query += " ORDER BY " + strings.Join(append([]string{"ips DESC"}, keys...), ", ")
		if q.Limit > 0 {
			query += " LIMIT " + strconv.Itoa(q.Limit)
		}
		out, err := r.store.hostCounts(ctx, by, query, w.args)
		if err != nil {
			return nil, fmt.Errorf("chstore: rollup hosts: %w", err)
		}
		if len(keys) == 0 && len(out) == 0 {
			out = []eventstore.HostCount{{}}
		}
		return out, nil
	})
}

// Spans counts, per family (by name, after the row of all families
// together, Family ""), the distinct infected addresses of the spans of
// days that end with the UTC day of end. family, if set, keeps only that
// family.
func (r *Rollup) Spans(ctx context.Context, end time.Time, spans []int, family string) ([]eventstore.SpanCount, error) {
	if len(spans) == 0 {
		return nil, nil
	}
	last := end.UTC().Truncate(24 * time.Hour)
	longest := 0
	var counts []string
	for _, n := range spans {
		if n < 1 {
			return nil, fmt.Errorf("chstore: rollup spans: span of %d days", n)
		}
		longest = max(longest, n)
		counts = append(counts, "toInt64(countIf(last >= "+dateLit(last.AddDate(0, 0, 1-n))+"))")
	}
	key := fmt.Sprintf("spans|%s|%v|%s", last.Format(time.DateOnly), spans, family)
	return cached(r, key, func() ([]eventstore.SpanCount, error) {
		var w where
		w.add("day >= " + dateLit(last.AddDate(0, 0, 1-longest)))
		w.add("day <= " + dateLit(last))
		if family != "" {
			w.add("family = ?", family)
		}
		// A host is in the span of n days if the last day it was seen is
		// in it: one grouping per host rather than a distinct count per
		// span.
		sel := strings.Join(counts, ", ")
		query := `SELECT toUInt8(1) AS total, '' AS f, ` + sel + ` FROM (SELECT src_ip, max(day) AS last FROM rollup_hosts` + w.sql() + ` GROUP BY src_ip)
UNION ALL
SELECT toUInt8(0) AS total, family AS f, ` + sel + ` FROM (SELECT family, src_ip, max(day) AS last FROM rollup_hosts` + w.sql() + ` GROUP BY family, src_ip) GROUP BY f`
		args := append(slices.Clone(w.args), w.args...)
		rows, err := r.store.conn.Query(clickhouse.Context(ctx, bigQuery), "SELECT * FROM ("+query+") ORDER BY total DESC, f", args...)
		if err != nil {
			return nil, fmt.Errorf("chstore: rollup spans: %w", err)
		}
		defer rows.Close()
		var out []eventstore.SpanCount
		for rows.Next() {
			var total uint8
			c := eventstore.SpanCount{IPs: make([]int64, len(spans))}
			dest := []any{&total, &c.Family}
			for i := range c.IPs {
				dest = append(dest, &c.IPs[i])
			}
			if err := rows.Scan(dest...); err != nil {
				return nil, fmt.Errorf("chstore: rollup spans: %w", err)
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("chstore: rollup spans: %w", err)
		}
		if len(out) == 0 || out[0].Family != "" {
			out = append([]eventstore.SpanCount{{IPs: make([]int64, len(spans))}}, out...)
		}
		return out, nil
	})
}

// Hours returns the callbacks of infected hosts per UTC hour of [From,
// To) (whole hours), in time order; IPs is 0. Hours without callbacks are
// left out.
func (r *Rollup) Hours(ctx context.Context, q eventstore.HourQuery) ([]eventstore.HourCount, error) {
	var w where
	if !q.From.IsZero() {
		from := q.From.UTC().Truncate(time.Hour)
		w.add("day >= " + dateLit(dayOf(from)))
		w.add("hour_ns >= ?", from.UnixNano())
	}
	if !q.To.IsZero() {
		w.add("hour_ns < ?", q.To.UnixNano())
	}
	if q.Family != "" {
		w.add("family = ?", q.Family)
	}
	key := fmt.Sprintf("hours|%v|%s", w.args, strings.Join(w.terms, " AND "))
	return cached(r, key, func() ([]eventstore.HourCount, error) {
		rows, err := r.store.conn.Query(ctx, "SELECT hour_ns, toInt64(sum(events)) FROM rollup_hours"+w.sql()+" GROUP BY hour_ns ORDER BY hour_ns", w.args...)
		if err != nil {
			return nil, fmt.Errorf("chstore: rollup hours: %w", err)
		}
		defer rows.Close()
		var out []eventstore.HourCount
		for rows.Next() {
			var h int64
			var c eventstore.HourCount
			if err := rows.Scan(&h, &c.Events); err != nil {
				return nil, fmt.Errorf("chstore: rollup hours: %w", err)
			}
			c.Hour = time.Unix(0, h).UTC()
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("chstore: rollup hours: %w", err)
		}
		return out, nil
	})
}

// Cities is HostsPerCity over whole days.
func (r *Rollup) Cities(ctx context.Context, q eventstore.CityQuery) ([]eventstore.CityCount, error) {
	key := fmt.Sprintf("cities|%s|%s|%s|%d", normDays(q.From, q.To), q.Family, q.Country, q.Limit)
	return cached(r, key, func() ([]eventstore.CityCount, error) {
		var w where
		w.rollupDays(q.From, q.To)
		w.rollupFilters(q.Family, 0, q.Country)
		w.add("city != ''")
		query := `SELECT country AS cc, city AS ci, any(latitude), any(longitude), toInt64(uniqExact(src_ip)) AS ips
FROM rollup_hosts` + w.sql() + ` GROUP BY cc, ci ORDER BY ips DESC, cc, ci`
		if q.Limit > 0 {
			query += " LIMIT " + strconv.Itoa(q.Limit)
		}
		return queryCities(ctx, r.store.conn, query, w.args)
	})
}

// RollupDays returns the UTC days the rollup holds, oldest first: those of
// any shard.
// The map asks at every request: kept until the next change.
func (r *Rollup) RollupDays(ctx context.Context) ([]time.Time, error) {
	return cached(r, "days", func() ([]time.Time, error) {
		var out []time.Time
		for _, sh := range r.shards {
			states, err := r.states(ctx, sh)
			if err != nil {
				return nil, fmt.Errorf("chstore: rollup days: %w", err)
			}
			for day, st := range states {
				if st.events > 0 {
					out = append(out, day)
				}
			}
		}
		slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
		return slices.Compact(out), nil
	})
}

// Families returns the families of the rollup's hosts, by name.
func (r *Rollup) Families(ctx context.Context) ([]string, error) {
	return cached(r, "families", func() ([]string, error) {
		rows, err := r.store.conn.Query(ctx, `SELECT DISTINCT family FROM rollup_hosts ORDER BY family`)
		if err != nil {
			return nil, fmt.Errorf("chstore: rollup families: %w", err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var f string
			if err := rows.Scan(&f); err != nil {
				return nil, fmt.Errorf("chstore: rollup families: %w", err)
			}
			out = append(out, f)
		}
		return out, rows.Err()
	})
}

// DailyByASN is DailyHosts of the networks asns, one list per network
// with hosts, over whole days.
func (r *Rollup) DailyByASN(ctx context.Context, from, to time.Time, asns []uint32) (map[uint32][]eventstore.DailyHosts, error) {
	out := map[uint32][]eventstore.DailyHosts{}
	if len(asns) == 0 {
		return out, nil
	}
	var w where
	w.rollupDays(from, to)
	list := make([]string, len(asns))
	for i, a := range asns {
		list[i] = strconv.FormatUint(uint64(a), 10)
	}
	w.add("asn IN (" + strings.Join(list, ", ") + ")")
	rows, err := r.store.conn.Query(ctx, `SELECT asn, toInt64(toUInt16(day)) AS d, toInt64(uniqExact(src_ip)) FROM rollup_hosts`+w.sql()+
		` GROUP BY asn, d ORDER BY asn, d`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("chstore: rollup daily by network: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var asn uint32
		var d int64
		var h eventstore.DailyHosts
		if err := rows.Scan(&asn, &d, &h.IPs); err != nil {
			return nil, fmt.Errorf("chstore: rollup daily by network: %w", err)
		}
		h.Day = dayTime(d)
		out[asn] = append(out[asn], h)
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
	ph := make([]string, len(zones))
	args := make([]any, len(zones))
	for i, z := range zones {
		ph[i], args[i] = "?", z
	}
	rows, err := r.store.conn.Query(ctx, `SELECT zone, max(last_ns), toInt64(sum(queries)) FROM rollup_zones
WHERE zone IN (`+strings.Join(ph, ", ")+`) GROUP BY zone`, args...)
	if err != nil {
		return nil, fmt.Errorf("chstore: rollup zones: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var z string
		var last int64
		var a eventstore.ZoneActivity
		if err := rows.Scan(&z, &last, &a.Queries); err != nil {
			return nil, fmt.Errorf("chstore: rollup zones: %w", err)
		}
		a.Last = time.Unix(0, last).UTC()
		out[z] = a
	}
	return out, rows.Err()
}

// HostList returns infected addresses of q, most events first: one row
// per address, family, network and country.
func (r *Rollup) HostList(ctx context.Context, q eventstore.HostListQuery) ([]eventstore.RollupHost, error) {
	var w where
	w.rollupDays(q.From, q.To)
	w.rollupFilters(q.Family, q.ASN, q.Country)
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := r.store.conn.Query(ctx, `SELECT src_ip, any(src_ip6), family, asn, max(as_name), country, any(city),
	toInt64(sum(events)) AS n, min(first_ns), max(last_ns) FROM rollup_hosts`+w.sql()+`
GROUP BY src_ip, family, asn, country ORDER BY n DESC, src_ip, family LIMIT `+strconv.Itoa(limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("chstore: rollup host list: %w", err)
	}
	defer rows.Close()
	var out []eventstore.RollupHost
	for rows.Next() {
		var h eventstore.RollupHost
		var ip uint64
		var ip6 string
		var first, last int64
		if err := rows.Scan(&ip, &ip6, &h.Family, &h.ASN, &h.ASName, &h.Country, &h.City, &h.Events, &first, &last); err != nil {
			return nil, fmt.Errorf("chstore: rollup host list: %w", err)
		}
		if h.IP, err = srcAddr(ip6); err != nil {
			return nil, fmt.Errorf("chstore: rollup host list: %w", err)
		}
		h.FirstSeen, h.LastSeen = time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
		out = append(out, h)
	}
	return out, rows.Err()
}
