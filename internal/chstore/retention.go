package chstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DeleteBefore deletes the events older than t and returns how many. The
// days before t's UTC day go as whole partitions (on every shard); the
// events of t's own day before t, if any, by a mutation (ALTER TABLE …
// DELETE), which DeleteBefore waits for. A t at midnight, as Retain's,
// needs no mutation.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	day := dayOf(t)
	ns := t.UnixNano()
	var n uint64
	err := s.conn.QueryRow(ctx, "SELECT count() FROM events WHERE day <= "+dateLit(day)+" AND time_ns < ?", ns).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("chstore: counting the events before %s: %w", t.UTC().Format(time.RFC3339Nano), err)
	}
	if n == 0 {
		return 0, nil
	}
	table := s.layout.local("events")
	for i, conn := range s.shards {
		addr := s.shardAddr(i)
		parts, err := partitionsBefore(ctx, conn, s.cfg.Database, table, day)
		if err != nil {
			return 0, fmt.Errorf("chstore: listing the partitions of %s on %s: %w", table, addr, err)
		}
		for _, p := range parts {
			if err := conn.Exec(ctx, "ALTER TABLE "+table+" DROP PARTITION "+p); err != nil {
				return 0, fmt.Errorf("chstore: dropping partition %s of %s on %s: %w", p, table, addr, err)
			}
		}
		var m uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+table+" WHERE day = "+dateLit(day)+" AND time_ns < ?", ns).Scan(&m); err != nil {
			return 0, fmt.Errorf("chstore: counting the events of %s on %s: %w", day.Format(time.DateOnly), addr, err)
		}
		if m == 0 {
			continue
		}
		// 18.16 has no mutations_sync: the mutation runs in the
		// background, and its end is read from system.mutations.
		if err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DELETE WHERE day = %s AND time_ns < %d", table, dateLit(day), ns)); err != nil {
			return 0, fmt.Errorf("chstore: deleting the events of %s before %s on %s: %w", day.Format(time.DateOnly), t.UTC().Format(time.RFC3339Nano), addr, err)
		}
		if err := waitMutations(ctx, conn, s.cfg.Database, table); err != nil {
			return 0, fmt.Errorf("chstore: waiting for the deletion on %s: %w", addr, err)
		}
	}
	s.log.Info("clickhouse retention", "before", t.UTC().Format(time.RFC3339Nano), "deleted", n)
	return int64(n), nil
}

// Retain keeps the events of the UTC day of now and of the days whole days
// before it, and deletes the older ones; days < 1 is an error.
func (s *Store) Retain(ctx context.Context, now time.Time, days int) (int64, error) {
	if days < 1 {
		return 0, fmt.Errorf("chstore: retention of %d days: want at least 1", days)
	}
	return s.DeleteBefore(ctx, now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -days))
}

func (s *Store) shardAddr(i int) string {
	if s.cfg.Cluster == "" {
		return s.cfg.Addrs[0]
	}
	return s.cfg.Shards[i]
}

// partitionsBefore returns the partitions of table older than day, as SQL
// literals for DROP PARTITION.
func partitionsBefore(ctx context.Context, conn driver.Conn, db, table string, day time.Time) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT DISTINCT partition FROM system.parts
WHERE database = ? AND table = ? AND active AND max_date < `+dateLit(day), db, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		// The partition of a Date key prints as the day, unquoted.
		d, err := time.Parse(time.DateOnly, strings.Trim(p, "'"))
		if err != nil {
			return nil, fmt.Errorf("partition %q is not a day", p)
		}
		out = append(out, "'"+d.Format(time.DateOnly)+"'")
	}
	return out, rows.Err()
}

// waitMutations waits until table has no mutation left to do.
func waitMutations(ctx context.Context, conn driver.Conn, db, table string) error {
	for {
		var n uint64
		if err := conn.QueryRow(ctx, `SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0`, db, table).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dateLit returns the SQL literal of day's date, 'YYYY-MM-DD'. (Dates go
// into the SQL as literals: the driver binds a time.Time as a DateTime.)
func dateLit(day time.Time) string { return "toDate('" + day.UTC().Format(time.DateOnly) + "')" }
