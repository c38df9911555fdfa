package chstore

import (
	"context"
	"fmt"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
)

// Sources calls fn with each distinct source (address, family, bot id) of
// the events of [from, to), in no order, and stops at fn's first error,
// which it returns as it is. The live unique-host counters start from them
// after a restart.
func (s *Store) Sources(ctx context.Context, from, to time.Time, fn func(eventstore.Source) error) error {
	var w where
	w.timeRange(from, to)
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT src_ip6, family, bot_id FROM events"+w.sql(), w.args...)
	if err != nil {
		return fmt.Errorf("chstore: sources: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ip6, family, bot string
		if err := rows.Scan(&ip6, &family, &bot); err != nil {
			return fmt.Errorf("chstore: sources: %w", err)
		}
		ip, err := srcAddr(ip6)
		if err != nil {
			return fmt.Errorf("chstore: sources: %w", err)
		}
		if err := fn(eventstore.Source{IP: ip, Family: family, BotID: bot}); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chstore: sources: %w", err)
	}
	return nil
}
