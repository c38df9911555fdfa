package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/takedown-project/takedown/internal/eventstore"
)

// HostsPerCity counts the distinct source addresses of infected hosts (a
// family or a case, as DailyHosts) per country and city, most first, then
// by country and city. Events of no known city are left out.
func (s *Store) HostsPerCity(ctx context.Context, q eventstore.CityQuery) ([]eventstore.CityCount, error) {
	where, args := timeRange(q.From, q.To)
	where = append(where, infected, "city IS NOT NULL")
	if q.Family != "" {
		where = append(where, "coalesce(family, '"+eventstore.UnknownFamily+"') = ?")
		args = append(args, q.Family)
	}
	if q.Country != "" {
		where = append(where, "country_code = ?")
		args = append(args, q.Country)
	}
	query := `SELECT coalesce(country_code, '') AS cc, city, any_value(latitude), any_value(longitude), count(DISTINCT ` + hostKey + `) AS ips
		FROM events WHERE ` + strings.Join(where, " AND ") + ` GROUP BY cc, city ORDER BY ips DESC, cc, city`
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	return queryCities(ctx, s.db, query, args)
}

func queryCities(ctx context.Context, db *sql.DB, query string, args []any) ([]eventstore.CityCount, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: hosts per city: %w", err)
	}
	defer rows.Close()
	var out []eventstore.CityCount
	for rows.Next() {
		var c eventstore.CityCount
		if err := rows.Scan(&c.Country, &c.City, &c.Latitude, &c.Longitude, &c.IPs); err != nil {
			return nil, fmt.Errorf("store: hosts per city: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: hosts per city: %w", err)
	}
	return out, nil
}
