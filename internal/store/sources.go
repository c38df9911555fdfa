package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
)

// Sources calls fn with each distinct source (address, family, bot id) of
// the events of [from, to), in no order, and stops at fn's first error.
// The live unique-host counters (package uniq) start from them after a
// restart: they count hosts as sets, so what they take in twice counts
// once.
func (s *Store) Sources(ctx context.Context, from, to time.Time, fn func(eventstore.Source) error) error {
	where, args := timeRange(from, to)
	query := "SELECT DISTINCT src_ip, src_ip6, family, bot_id FROM events"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("store: sources: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			src         uint64
			src6        any
			family, bot sql.NullString
		)
		if err := rows.Scan(&src, &src6, &family, &bot); err != nil {
			return fmt.Errorf("store: sources: %w", err)
		}
		ip, err := srcIPFromValues(src, src6)
		if err != nil {
			return fmt.Errorf("store: sources: %w", err)
		}
		if err := fn(eventstore.Source{IP: ip, Family: family.String, BotID: bot.String}); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: sources: %w", err)
	}
	return nil
}
