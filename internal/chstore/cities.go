package chstore

import (
	"context"
	"fmt"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/takedown-project/takedown/internal/eventstore"
)

// HostsPerCity counts the distinct source addresses of infected hosts (a
// family or a case) per country and city, most first, then by country and
// city. Events of no known city are left out.
func (s *Store) HostsPerCity(ctx context.Context, q eventstore.CityQuery) ([]eventstore.CityCount, error) {
	var w where
	w.timeRange(q.From, q.To)
	w.add(infected)
	w.add("city != ''")
	if q.Family != "" {
		w.add(familyOrUnknown+" = ?", q.Family)
	}
	if q.Country != "" {
		w.add("country_code = ?", q.Country)
	}
	query := `SELECT country_code AS cc, city AS ci, any(latitude), any(longitude), toInt64(uniqExact(src_ip)) AS ips
FROM events` + w.sql() + ` GROUP BY cc, ci ORDER BY ips DESC, cc, ci`
	if q.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(q.Limit)
	}
	return queryCities(ctx, s.conn, query, w.args)
}

// queryCities runs a query of HostsPerCity's or Rollup.Cities' columns.
func queryCities(ctx context.Context, conn driver.Conn, query string, args []any) ([]eventstore.CityCount, error) {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("chstore: hosts per city: %w", err)
	}
	defer rows.Close()
	var out []eventstore.CityCount
	for rows.Next() {
		var c eventstore.CityCount
		if err := rows.Scan(&c.Country, &c.City, &c.Latitude, &c.Longitude, &c.IPs); err != nil {
			return nil, fmt.Errorf("chstore: hosts per city: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: hosts per city: %w", err)
	}
	return out, nil
}
