package chstore

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// The readers answer as the DuckDB engine does (internal/store), with
// ClickHouse's spelling of the same SQL:
//
//   - unknown strings are '' here where DuckDB has NULL, so "has a family"
//     is family != '' and count(DISTINCT bot_id) is uniqExactIf(bot_id,
//     bot_id != '');
//   - distinct hosts are uniqExact(src_ip): exact, and a host lives on one
//     shard, so the shards' sets merge without overlap;
//   - days and hours are computed from time_ns (floor division, also
//     before 1970), not read from the day column, which serves only to
//     skip partitions (dayBounds);
//   - an address comes back from src_ip6, which holds all 16 bytes (IPv4
//     as ::ffff:a.b.c.d); src_ip, the 64-bit number of the counts, never
//     has to be turned back into an address.

// Nanoseconds of a day and of an hour.
const (
	nsDay  = int64(24 * time.Hour)
	nsHour = int64(time.Hour)
)

// floorDiv returns the SQL of floor(time_ns / unit) as an Int64: intDiv
// rounds towards zero, which is one too many before 1970. (unit is an
// Int64: a literal that large is a UInt64, and the quotient would be too.)
func floorDiv(unit int64) string {
	u := "toInt64(" + strconv.FormatInt(unit, 10) + ")"
	return "(intDiv(time_ns, " + u + ") - (time_ns % " + u + " < 0))"
}

// daySQL and hourSQL are the UTC day and hour of an event, as numbers
// since 1970.
var (
	daySQL  = floorDiv(nsDay)
	hourSQL = floorDiv(nsHour)
)

// infected selects the events of infected hosts: a family, or a seized
// name's case (eventstore/doc.go).
const infected = "(family != '' OR case_name != '')"

// familyOrUnknown is the family of an infected host's event: its own, or
// eventstore.UnknownFamily when it has only a case.
const familyOrUnknown = "if(family = '', '" + eventstore.UnknownFamily + "', family)"

// where collects the terms of a WHERE clause and their arguments.
type where struct {
	terms []string
	args  []any
}

func (w *where) add(term string, args ...any) {
	w.terms = append(w.terms, term)
	w.args = append(w.args, args...)
}

// sql returns " WHERE …", or "" without terms.
func (w *where) sql() string {
	if len(w.terms) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.terms, " AND ")
}

// timeRange adds the terms of [from, to): on time_ns, and on day so that
// ClickHouse reads only the partitions (days) of the range. The writer
// clamps the day of an event to the days a Date holds (dayOf), so day
// grows with time_ns everywhere and the bound on day keeps every row that
// the bound on time_ns keeps.
func (w *where) timeRange(from, to time.Time) {
	if !from.IsZero() {
		w.add("day >= " + dateLit(dayOf(from)))
		w.add("time_ns >= ?", from.UnixNano())
	}
	if !to.IsZero() {
		w.add("day <= " + dateLit(dayOf(to)))
		w.add("time_ns < ?", to.UnixNano())
	}
}

// dayTime is midnight UTC of a day number.
func dayTime(n int64) time.Time { return time.Unix(n*86400, 0).UTC() }

// srcAddr reads back src_ip6: 16 bytes, IPv4 mapped. Unlike dst_ip
// (addrFrom16), all zero bytes are an address, ::.
func srcAddr(b string) (netip.Addr, error) {
	if len(b) != 16 {
		return netip.Addr{}, fmt.Errorf("address of %d bytes, want 16", len(b))
	}
	var a [16]byte
	copy(a[:], b)
	return netip.AddrFrom16(a).Unmap(), nil
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

// columns returns the GROUP BY keys (in the order day, family, asn,
// country, as HostCount's fields and the ORDER BY after the count) and the
// selected columns, given the expressions of the day number, family, AS
// name (an aggregate) and country.
func (by hostDims) columns(day, family, asName, country string) (keys, sel []string) {
	if by.day {
		keys, sel = append(keys, "d"), append(sel, day+" AS d")
	}
	if by.family {
		keys, sel = append(keys, "f"), append(sel, family+" AS f")
	}
	if by.asn {
		keys, sel = append(keys, "asn"), append(sel, "asn", asName+" AS n")
	}
	if by.country {
		keys, sel = append(keys, "c"), append(sel, country+" AS c")
	}
	return keys, sel
}

// hostCountRow is where a row of UniqueHosts or Rollup.Hosts is scanned.
type hostCountRow struct {
	day    int64
	family string
	asn    uint32
	asName string
	cc     string
	c      eventstore.HostCount
}

func (by hostDims) dest(r *hostCountRow) []any {
	dest := make([]any, 0, 8)
	if by.day {
		dest = append(dest, &r.day)
	}
	if by.family {
		dest = append(dest, &r.family)
	}
	if by.asn {
		dest = append(dest, &r.asn, &r.asName)
	}
	if by.country {
		dest = append(dest, &r.cc)
	}
	return dest
}

func (by hostDims) count(r *hostCountRow) eventstore.HostCount {
	c := r.c
	if by.day {
		c.Day = dayTime(r.day)
	}
	c.Family, c.ASN, c.ASName, c.Country = r.family, r.asn, r.asName, r.cc
	return c
}

// UniqueHosts counts distinct source addresses, bot ids and events,
// grouped by the dimensions of q, ordered by IPs descending and then by
// the keys in the order Day, Family, ASN, Country. Totals over no events
// are one row of zeros; grouped queries over none give no rows.
func (s *Store) UniqueHosts(ctx context.Context, q eventstore.HostQuery) ([]eventstore.HostCount, error) {
	by, err := groupDims(q.GroupBy)
	if err != nil {
		return nil, fmt.Errorf("chstore: unique hosts: %w", err)
	}
	// max(as_name) rather than any: one of the names, the same on every
	// run and shard layout, and a known name over an unknown ''.
	keys, sel := by.columns(daySQL, "family", "max(as_name)", "country_code")
	sel = append(sel, "toInt64(uniqExact(src_ip)) AS ips", "toInt64(uniqExactIf(bot_id, bot_id != ''))", "toInt64(count())")
	var w where
	w.timeRange(q.From, q.To)
	if q.Family != "" {
		w.add("family = ?", q.Family)
	}
	if q.ASN != 0 {
		w.add("asn = ?", q.ASN)
	}
	if q.Country != "" {
		w.add("country_code = ?", q.Country)
	}
	if q.Infected {
		w.add(infected)
	}
	query := "SELECT " + strings.Join(sel, ", ") + " FROM events" + w.sql()
	if len(keys) > 0 {
		query += " GROUP BY " + strings.Join(keys, ", ")
	}
	query += " ORDER BY " + strings.Join(append([]string{"ips DESC"}, keys...), ", ")
	if q.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(q.Limit)
	}
	out, err := s.hostCounts(ctx, by, query, w.args)
	if err != nil {
		return nil, fmt.Errorf("chstore: unique hosts: %w", err)
	}
	if len(keys) == 0 && len(out) == 0 {
		out = []eventstore.HostCount{{}}
	}
	return out, nil
}

// hostCounts runs a query of UniqueHosts' or Rollup.Hosts' columns.
func (s *Store) hostCounts(ctx context.Context, by hostDims, query string, args []any) ([]eventstore.HostCount, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []eventstore.HostCount
	var r hostCountRow
	dest := append(by.dest(&r), &r.c.IPs, &r.c.Bots, &r.c.Events)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, by.count(&r))
	}
	return out, rows.Err()
}

// CallbacksPerHour counts events and distinct source addresses per UTC
// hour, in time order. Hours without events are left out.
func (s *Store) CallbacksPerHour(ctx context.Context, q eventstore.HourQuery) ([]eventstore.HourCount, error) {
	var w where
	w.timeRange(q.From, q.To)
	if q.Family != "" {
		w.add("family = ?", q.Family)
	}
	rows, err := s.conn.Query(ctx, "SELECT "+hourSQL+" AS h, toInt64(count()), toInt64(uniqExact(src_ip)) FROM events"+w.sql()+
		" GROUP BY h ORDER BY h", w.args...)
	if err != nil {
		return nil, fmt.Errorf("chstore: callbacks per hour: %w", err)
	}
	defer rows.Close()
	var out []eventstore.HourCount
	for rows.Next() {
		var h int64
		var c eventstore.HourCount
		if err := rows.Scan(&h, &c.Events, &c.IPs); err != nil {
			return nil, fmt.Errorf("chstore: callbacks per hour: %w", err)
		}
		c.Hour = time.Unix(h*3600, 0).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: callbacks per hour: %w", err)
	}
	return out, nil
}

// scanColumns are the columns Scan reads, in the order of its
// destinations.
const scanColumns = `time_ns, sensor, protocol, transport, src_ip6, src_port, dst_ip, dst_port,
	domain, zone, case_name, family, tag, bot_id, http_method, http_path, http_user_agent,
	tls_version, tls_cipher, tls_fingerprint, dns_qtype, dns_rcode, bytes, payload_sha256,
	payload_head, asn, as_name, country_code, region, city, latitude, longitude,
	dns_do, dns_client_subnet, malformed, http_referer, forwarded_by, content_type, tls_alpn,
	smtp_helo, smtp_from, smtp_rcpt_domains, smtp_rcpt_count, smtp_subject, smtp_message_id, error`

// Scan calls fn with each event of q in time order. The event is reused
// between calls: fn must copy what it keeps. Scan stops at the first error
// of fn and returns it as it is. Times come back in UTC.
func (s *Store) Scan(ctx context.Context, q eventstore.ScanQuery, fn func(*event.Event) error) error {
	var w where
	w.timeRange(q.From, q.To)
	query := "SELECT " + scanColumns + " FROM events" + w.sql() + " ORDER BY time_ns"
	if q.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(q.Limit)
	}
	rows, err := s.conn.Query(ctx, query, w.args...)
	if err != nil {
		return fmt.Errorf("chstore: scanning events: %w", err)
	}
	defer rows.Close()
	var (
		e                event.Event
		ns               int64
		proto, transport string
		src, dst, head   string
		dnsDO, malformed uint8
	)
	dest := []any{&ns, &e.Sensor, &proto, &transport, &src, &e.SrcPort, &dst, &e.DstPort,
		&e.Domain, &e.Zone, &e.Case, &e.Family, &e.Tag, &e.BotID, &e.HTTPMethod, &e.HTTPPath, &e.HTTPUserAgent,
		&e.TLSVersion, &e.TLSCipher, &e.TLSFingerprint, &e.DNSQType, &e.DNSRcode, &e.Bytes, &e.PayloadSHA256,
		&head, &e.ASN, &e.ASName, &e.CountryCode, &e.Region, &e.City, &e.Latitude, &e.Longitude,
		&dnsDO, &e.DNSClientSubnet, &malformed, &e.HTTPReferer, &e.HTTPForwardedBy, &e.HTTPContentType, &e.TLSALPN,
		&e.SMTPHelo, &e.SMTPFrom, &e.SMTPRcptDomains, &e.SMTPRcptCount, &e.SMTPSubject, &e.SMTPMessageID, &e.Error}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("chstore: scanning events: %w", err)
		}
		e.Time = time.Unix(0, ns).UTC()
		e.Protocol, e.Transport = event.Protocol(proto), event.Transport(transport)
		if e.SrcIP, err = srcAddr(src); err != nil {
			return fmt.Errorf("chstore: scanning events: source %w", err)
		}
		if e.DstIP, err = addrFrom16(dst); err != nil {
			return fmt.Errorf("chstore: scanning events: destination %w", err)
		}
		e.PayloadHead = nil
		if head != "" {
			e.PayloadHead = []byte(head)
		}
		e.DNSDO, e.Malformed = dnsDO != 0, malformed != 0
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chstore: scanning events: %w", err)
	}
	return nil
}

// Stats returns the number of events and their time span.
func (s *Store) Stats(ctx context.Context) (eventstore.Stats, error) {
	var n, oldest, newest int64
	err := s.conn.QueryRow(ctx, "SELECT toInt64(count()), min(time_ns), max(time_ns) FROM events").Scan(&n, &oldest, &newest)
	if err != nil {
		return eventstore.Stats{}, fmt.Errorf("chstore: reading stats: %w", err)
	}
	st := eventstore.Stats{Events: n}
	if n > 0 {
		st.Oldest, st.Newest = time.Unix(0, oldest).UTC(), time.Unix(0, newest).UTC()
	}
	return st, nil
}
