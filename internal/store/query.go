package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// hostKey is the expression counted for unique hosts: see ip.go.
const hostKey = "src_ip"

// UniqueHosts counts distinct source addresses, bot ids and events, grouped
// by the dimensions of q, ordered by IPs descending and then by the keys in
// the order Day, Family, ASN, Country.
func (s *Store) UniqueHosts(ctx context.Context, q eventstore.HostQuery) ([]eventstore.HostCount, error) {
	by, err := groupDims(q.GroupBy)
	if err != nil {
		return nil, fmt.Errorf("store: unique hosts: %w", err)
	}
	// any_value rather than arg_max(as_name, time): the latest name cost a
	// third of the time of the week's query per ASN.
	keys, sel := by.columns("CAST(time AS DATE) AS day", "coalesce(family, '') AS family",
		"coalesce(any_value(as_name), '') AS as_name", "coalesce(country_code, '') AS country")
	sel = append(sel, "count(DISTINCT "+hostKey+") AS ips", "count(DISTINCT bot_id) AS bots", "count(*) AS events")

	where, args := timeRange(q.From, q.To)
	if q.Family != "" {
		where = append(where, "family = ?")
		args = append(args, q.Family)
	}
	if q.ASN != 0 {
		where = append(where, "asn = ?")
		args = append(args, q.ASN)
	}
	if q.Country != "" {
		where = append(where, "country_code = ?")
		args = append(args, q.Country)
	}
	if q.Infected {
		where = append(where, infected)
	}

	var b strings.Builder
	b.WriteString("SELECT " + strings.Join(sel, ", ") + " FROM events")
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	if len(keys) > 0 {
		b.WriteString(" GROUP BY " + strings.Join(keys, ", "))
	}
	b.WriteString(" ORDER BY " + strings.Join(append([]string{"ips DESC"}, keys...), ", "))
	if q.Limit > 0 {
		fmt.Fprintf(&b, " LIMIT %d", q.Limit)
	}

	rows, err := s.db.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("store: unique hosts: %w", err)
	}
	defer rows.Close()
	var out []eventstore.HostCount
	for rows.Next() {
		var c eventstore.HostCount
		if err := rows.Scan(append(by.dest(&c), &c.IPs, &c.Bots, &c.Events)...); err != nil {
			return nil, fmt.Errorf("store: unique hosts: %w", err)
		}
		c.Day = c.Day.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: unique hosts: %w", err)
	}
	// Totals over no events: one row of zeros, as SQL gives, is kept so that
	// "no hosts" reads as a count; grouped queries give no rows.
	return out, nil
}

// CallbacksPerHour counts events and distinct source addresses per UTC hour,
// in time order. Hours without events are left out.
func (s *Store) CallbacksPerHour(ctx context.Context, q eventstore.HourQuery) ([]eventstore.HourCount, error) {
	where, args := timeRange(q.From, q.To)
	if q.Family != "" {
		where = append(where, "family = ?")
		args = append(args, q.Family)
	}
	query := "SELECT date_trunc('hour', time) AS hour, count(*), count(DISTINCT " + hostKey + ") FROM events"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " GROUP BY hour ORDER BY hour"
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: callbacks per hour: %w", err)
	}
	defer rows.Close()
	var out []eventstore.HourCount
	for rows.Next() {
		var c eventstore.HourCount
		if err := rows.Scan(&c.Hour, &c.Events, &c.IPs); err != nil {
			return nil, fmt.Errorf("store: callbacks per hour: %w", err)
		}
		c.Hour = c.Hour.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: callbacks per hour: %w", err)
	}
	return out, nil
}

// Scan calls fn with each event of q in time order. The event is reused
// between calls: fn must copy what it keeps. Scan stops at the first error
// of fn and returns it. Times come back in UTC.
func (s *Store) Scan(ctx context.Context, q eventstore.ScanQuery, fn func(*event.Event) error) error {
	where, args := timeRange(q.From, q.To)
	query := "SELECT " + columns + " FROM events"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY time"
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("store: scanning events: %w", err)
	}
	defer rows.Close()

	var (
		e                                           event.Event
		src                                         uint64
		src6, dst                                   any
		head                                        []byte
		sensor, proto, transport, domain, zone, cas sql.NullString
		family, tag, botID, method, path, agent     sql.NullString
		tlsVer, tlsCipher, tlsFP, qtype, rcode, sha sql.NullString
		asName, country, region, city, ecs          sql.NullString
		referer, fwd, ctype, alpn, helo, from       sql.NullString
		rcpts, subject, msgID, errText              sql.NullString
	)
	dest := []any{&e.Time, &sensor, &proto, &transport, &src, &src6, &e.SrcPort, &dst, &e.DstPort,
		&domain, &zone, &cas, &family, &tag, &botID, &method, &path, &agent,
		&tlsVer, &tlsCipher, &tlsFP, &qtype, &rcode, &e.Bytes, &sha,
		&head, &e.ASN, &asName, &country, &region, &city, &e.Latitude, &e.Longitude,
		&e.DNSDO, &ecs, &e.Malformed, &referer, &fwd, &ctype, &alpn,
		&helo, &from, &rcpts, &e.SMTPRcptCount, &subject, &msgID, &errText}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("store: scanning events: %w", err)
		}
		if e.SrcIP, err = srcIPFromValues(src, src6); err != nil {
			return fmt.Errorf("store: scanning events: %w", err)
		}
		if e.DstIP, err = ipFromValue(dst); err != nil {
			return fmt.Errorf("store: scanning events: destination %w", err)
		}
		out := event.Event{
			Time:            e.Time.UTC(),
			Sensor:          sensor.String,
			Protocol:        event.Protocol(proto.String),
			Transport:       event.Transport(transport.String),
			SrcIP:           e.SrcIP,
			SrcPort:         e.SrcPort,
			DstIP:           e.DstIP,
			DstPort:         e.DstPort,
			Domain:          domain.String,
			Zone:            zone.String,
			Case:            cas.String,
			Family:          family.String,
			Tag:             tag.String,
			BotID:           botID.String,
			HTTPMethod:      method.String,
			HTTPPath:        path.String,
			HTTPUserAgent:   agent.String,
			TLSVersion:      tlsVer.String,
			TLSCipher:       tlsCipher.String,
			TLSFingerprint:  tlsFP.String,
			DNSQType:        qtype.String,
			DNSRcode:        rcode.String,
			Bytes:           e.Bytes,
			PayloadSHA256:   sha.String,
			PayloadHead:     slices.Clone(head),
			ASN:             e.ASN,
			ASName:          asName.String,
			CountryCode:     country.String,
			Region:          region.String,
			City:            city.String,
			Latitude:        e.Latitude,
			Longitude:       e.Longitude,
			DNSDO:           e.DNSDO,
			DNSClientSubnet: ecs.String,
			Malformed:       e.Malformed,
			HTTPReferer:     referer.String,
			HTTPForwardedBy: fwd.String,
			HTTPContentType: ctype.String,
			TLSALPN:         alpn.String,
			SMTPHelo:        helo.String,
			SMTPFrom:        from.String,
			SMTPRcptDomains: rcpts.String,
			SMTPRcptCount:   e.SMTPRcptCount,
			SMTPSubject:     subject.String,
			SMTPMessageID:   msgID.String,
			Error:           errText.String,
		}
		if len(out.PayloadHead) == 0 {
			out.PayloadHead = nil
		}
		if err := fn(&out); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: scanning events: %w", err)
	}
	return nil
}

// DeleteBefore deletes the events older than t and returns how many it
// deleted.
//
// DuckDB marks deleted rows at once but gives their room back to the file
// only at a checkpoint, and then only for row groups whose rows are all
// deleted (events arrive in about time order, so deleting by time empties
// whole row groups). DeleteBefore runs CHECKPOINT itself after a delete of
// Config.CheckpointAfter rows or more.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, errors.New("store: deleting events: no time given")
	}
	// Appends wait: a checkpoint cannot run beside an open transaction.
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.db.ExecContext(ctx, "DELETE FROM events WHERE time < ?", t.UTC())
	if err != nil {
		return 0, fmt.Errorf("store: deleting events before %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: deleting events: %w", err)
	}
	if s.checkpointAfter > 0 && n >= s.checkpointAfter {
		start := time.Now()
		if _, err := s.db.ExecContext(ctx, "CHECKPOINT"); err != nil {
			return n, fmt.Errorf("store: checkpoint after deleting %d events: %w", n, err)
		}
		s.log.Info("checkpoint after retention", "deleted", n, "took", time.Since(start))
	}
	return n, nil
}

// Retain keeps the events of the UTC day of now and of the days whole days
// before it, and deletes the older ones (see DeleteBefore). It returns how
// many it deleted.
func (s *Store) Retain(ctx context.Context, now time.Time, days int) (int64, error) {
	if days < 1 {
		return 0, fmt.Errorf("store: retention of %d days: want at least 1", days)
	}
	cut := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
	return s.DeleteBefore(ctx, cut)
}

// Stats returns the number of events and their time span.
func (s *Store) Stats(ctx context.Context) (eventstore.Stats, error) {
	var st eventstore.Stats
	var oldest, newest sql.NullTime
	err := s.db.QueryRowContext(ctx, "SELECT count(*), min(time), max(time) FROM events").Scan(&st.Events, &oldest, &newest)
	if err != nil {
		return eventstore.Stats{}, fmt.Errorf("store: reading stats: %w", err)
	}
	if oldest.Valid {
		st.Oldest, st.Newest = oldest.Time.UTC(), newest.Time.UTC()
	}
	return st, nil
}

// timeRange returns the WHERE terms and arguments of [from, to).
func timeRange(from, to time.Time) ([]string, []any) {
	var where []string
	var args []any
	if !from.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, from.UTC())
	}
	if !to.IsZero() {
		where = append(where, "time < ?")
		args = append(args, to.UTC())
	}
	return where, args
}

// hostDims are the dimensions a HostQuery groups by.
type hostDims struct{ day, family, asn, country bool }

// groupDims reads the dimensions of a HostQuery.
func groupDims(dims []eventstore.Dimension) (hostDims, error) {
	var by hostDims
	for _, d := range dims {
		switch d {
		case eventstore.DimDay:
			by.day = true
		case eventstore.DimFamily:
			by.family = true
		case eventstore.DimASN:
			by.asn = true
		case eventstore.DimCountry:
			by.country = true
		default:
			return by, fmt.Errorf("unknown dimension %q", d)
		}
	}
	return by, nil
}

// columns returns the GROUP BY keys (day, family, asn, country: the order
// of HostCount's fields and of the ORDER BY after the count) and the
// selected columns for them, given the expressions of day, family, the AS
// name (beside asn) and country.
func (by hostDims) columns(day, family, asName, country string) (keys, sel []string) {
	if by.day {
		keys, sel = append(keys, "day"), append(sel, day)
	}
	if by.family {
		keys, sel = append(keys, "family"), append(sel, family)
	}
	if by.asn {
		keys, sel = append(keys, "asn"), append(sel, "asn", asName)
	}
	if by.country {
		keys, sel = append(keys, "country"), append(sel, country)
	}
	return keys, sel
}

// dest returns the scan destinations of the columns in c.
func (by hostDims) dest(c *eventstore.HostCount) []any {
	dest := make([]any, 0, 8)
	if by.day {
		dest = append(dest, &c.Day)
	}
	if by.family {
		dest = append(dest, &c.Family)
	}
	if by.asn {
		dest = append(dest, &c.ASN, &c.ASName)
	}
	if by.country {
		dest = append(dest, &c.Country)
	}
	return dest
}
