package chstore

import (
	"context"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// The protocols and transports as the small numbers that HostRows packs
// into one value per event; 0 is none.
var (
	protoCodes = []event.Protocol{"", event.ProtoDNS, event.ProtoHTTP, event.ProtoHTTPS, event.ProtoSMTP, event.ProtoTCP, event.ProtoUDP}
	transCodes = []event.Transport{"", event.TransportTCP, event.TransportUDP}
)

// lastPacked packs the last callback's source and destination ports,
// protocol and transport into one UInt64, so that one argMax keeps them
// together.
const lastPacked = `bitOr(bitOr(bitShiftLeft(toUInt64(src_port), 32), bitShiftLeft(toUInt64(dst_port), 16)),
	bitOr(bitShiftLeft(toUInt64(multiIf(protocol = 'dns', 1, protocol = 'http', 2, protocol = 'https', 3, protocol = 'smtp', 4, protocol = 'tcp', 5, protocol = 'udp', 6, 0)), 8),
		toUInt64(multiIf(transport = 'tcp', 1, transport = 'udp', 2, 0))))`

// bigQuery are the settings of the queries that aggregate or sort every
// host of a range: past a gigabyte ClickHouse spills to its tmp_path
// rather than failing on max_memory_usage (a Conficker-scale day is 7
// million hosts).
var bigQuery = clickhouse.WithSettings(clickhouse.Settings{
	"max_bytes_before_external_group_by": 1 << 30,
	"max_bytes_before_external_sort":     1 << 30,
})

// HostRows calls fn with one HostRow per source address and family of the
// events of q that belong to an infected host (a family or a case), in the
// order of the address: IPv4 numerically, then IPv6 numerically, and by
// family for one address. The row and its DstPorts are reused between
// calls: fn must copy what it keeps. HostRows stops at the first error of
// fn and returns it as it is.
//
// The hosts come from one query, so they are of one snapshot of the
// events (ClickHouse chooses the parts a query reads when it starts); q's
// PartitionEvents is ignored: where DuckDB cuts a day into address ranges
// to stay within its memory, ClickHouse spills its aggregation to disk
// (bigQuery). The aggregation runs in two steps: per address, family and
// bot id first, then per address and family, so that the distinct bot ids
// are a count of rows, not a hash set per host. The most called ports come
// from a query before it; an event stored between the two can at worst
// leave a port of the list out of the names, flagged as another port.
func (s *Store) HostRows(ctx context.Context, q eventstore.HostRowQuery, fn func(*eventstore.HostRow) error) error {
	var w where
	w.timeRange(q.From, q.To)
	w.add(infected)
	ports, err := s.topPorts(ctx, &w)
	if err != nil {
		return fmt.Errorf("chstore: host rows: %w", err)
	}
	// A port's bit is its place in the list; bit 63 is any other port.
	portBit := "toUInt64(9223372036854775808)"
	if len(ports) > 0 {
		list := make([]string, len(ports))
		for i, p := range ports {
			list[i] = strconv.Itoa(int(p))
		}
		arr := "CAST([" + strings.Join(list, ",") + "] AS Array(UInt16))"
		portBit = "toUInt64(bitShiftLeft(toUInt64(1), if(indexOf(" + arr + ", dst_port) = 0, 63, indexOf(" + arr + ", dst_port) - 1)))"
	}
	query := `SELECT src_ip, any(ip6) AS a6, fam, min(t0), max(t1), toInt64(sum(n)), toInt64(countIf(bot_id != '')), groupBitOr(ports),
	argMax(lst, t1), tupleElement(argMin(fst, t0), 1), tupleElement(argMin(fst, t0), 2), tupleElement(argMin(fst, t0), 3),
	tupleElement(argMin(place, t0), 1), tupleElement(argMin(place, t0), 2), tupleElement(argMin(place, t0), 3),
	tupleElement(argMin(place, t0), 4), tupleElement(argMin(place, t0), 5), tupleElement(argMin(place, t0), 6), tupleElement(argMin(place, t0), 7)
FROM (
	SELECT src_ip, any(src_ip6) AS ip6, ` + familyOrUnknown + ` AS fam, bot_id, min(time_ns) AS t0, max(time_ns) AS t1, count() AS n,
		groupBitOr(` + portBit + `) AS ports, argMax(` + lastPacked + `, time_ns) AS lst,
		argMin((domain, case_name, tag), time_ns) AS fst,
		argMin((asn, as_name, country_code, region, city, latitude, longitude), time_ns) AS place
	FROM events` + w.sql() + `
	GROUP BY src_ip, fam, bot_id
)
GROUP BY src_ip, fam
ORDER BY src_ip >= 9223372036854775808, a6, fam`
	rows, err := s.conn.Query(clickhouse.Context(ctx, bigQuery), query, w.args...)
	if err != nil {
		return fmt.Errorf("chstore: host rows: %w", err)
	}
	defer rows.Close()
	var (
		row        eventstore.HostRow
		src        uint64
		a6, fam    string
		first, lst int64
		mask, last uint64
	)
	dest := []any{&src, &a6, &fam, &first, &lst, &row.Events, &row.BotIDs, &mask, &last,
		&row.Domain, &row.Case, &row.Tag,
		&row.ASN, &row.ASName, &row.Country, &row.Region, &row.City, &row.Latitude, &row.Longitude}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("chstore: host rows: %w", err)
		}
		if row.IP, err = srcAddr(a6); err != nil {
			return fmt.Errorf("chstore: host rows: %w", err)
		}
		row.Family = fam
		row.FirstSeen, row.LastSeen = time.Unix(0, first).UTC(), time.Unix(0, lst).UTC()
		row.DstPorts = row.DstPorts[:0]
		for m := mask &^ (1 << 63); m != 0; m &= m - 1 {
			row.DstPorts = append(row.DstPorts, ports[bits.TrailingZeros64(m)])
		}
		slices.Sort(row.DstPorts)
		row.OtherPorts = mask&(1<<63) != 0
		row.SrcPort, row.DstPort = uint16(last>>32), uint16(last>>16)
		row.Protocol = protoCodes[min(int(last>>8&0xff), len(protoCodes)-1)]
		row.Transport = transCodes[min(int(last&0xff), len(transCodes)-1)]
		if err := fn(&row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chstore: host rows: %w", err)
	}
	return nil
}

// topPorts returns the MaxPorts most called destination ports of w's
// events, most called first.
func (s *Store) topPorts(ctx context.Context, w *where) ([]uint16, error) {
	rows, err := s.conn.Query(ctx, `SELECT dst_port FROM events`+w.sql()+
		` GROUP BY dst_port ORDER BY count() DESC, dst_port LIMIT `+strconv.Itoa(eventstore.MaxPorts), w.args...)
	if err != nil {
		return nil, fmt.Errorf("ports: %w", err)
	}
	defer rows.Close()
	var ports []uint16
	for rows.Next() {
		var p uint16
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("ports: %w", err)
		}
		ports = append(ports, p)
	}
	return ports, rows.Err()
}

// filter adds the term of f: a host of one of its networks, countries or
// address blocks. The zero filter selects nothing. A block is a range of
// src_ip6, which holds IPv4 as ::ffff:a.b.c.d, so IPv4 and IPv6 blocks
// are the same comparison of 16 bytes.
func (w *where) filter(f eventstore.HostFilter) {
	var terms []string
	if len(f.ASNs) > 0 {
		list := make([]string, len(f.ASNs))
		for i, a := range f.ASNs {
			list[i] = strconv.FormatUint(uint64(a), 10)
		}
		terms = append(terms, "asn IN ("+strings.Join(list, ", ")+")")
	}
	if len(f.Countries) > 0 {
		ph := make([]string, len(f.Countries))
		for i, c := range f.Countries {
			ph[i] = "?"
			w.args = append(w.args, c)
		}
		terms = append(terms, "country_code IN ("+strings.Join(ph, ", ")+")")
	}
	for _, p := range f.Prefixes {
		if !p.IsValid() {
			continue
		}
		lo, hi, v6 := prefixBounds(p)
		term := "src_ip6 >= unhex('" + lo + "') AND src_ip6 <= unhex('" + hi + "')"
		if v6 {
			// An IPv6 block that covers ::ffff:0:0/96 holds no IPv4 host.
			term += " AND src_ip >= 9223372036854775808"
		}
		terms = append(terms, "("+term+")")
	}
	if len(terms) == 0 {
		w.terms = append(w.terms, "0")
		return
	}
	w.terms = append(w.terms, "("+strings.Join(terms, " OR ")+")")
}

// prefixBounds returns the first and last address of p as the hex of
// their 16 bytes, IPv4 mapped, and whether p is of IPv6.
func prefixBounds(p netip.Prefix) (lo, hi string, v6 bool) {
	p = p.Masked()
	n := p.Bits()
	if p.Addr().Is4() {
		n += 96
	}
	first := p.Addr().As16()
	last := first
	for i := n; i < 128; i++ {
		last[i/8] |= 0x80 >> (i % 8)
	}
	return fmt.Sprintf("%x", first[:]), fmt.Sprintf("%x", last[:]), !p.Addr().Is4()
}

// DailyHosts counts the distinct addresses of infected hosts (a family or
// a case) that q.Filter selects, per UTC day, and per network if asked.
// Days without hosts are left out.
func (s *Store) DailyHosts(ctx context.Context, q eventstore.DailyHostQuery) ([]eventstore.DailyHosts, error) {
	var w where
	w.timeRange(q.From, q.To)
	w.add(infected)
	w.filter(q.Filter)
	query := `SELECT ` + daySQL + ` AS d, toUInt8(1) AS total, toUInt32(0) AS a, '' AS n, toInt64(uniqExact(src_ip)) AS ips
FROM events` + w.sql() + ` GROUP BY d`
	args := w.args
	if q.ByASN {
		query += ` UNION ALL SELECT ` + daySQL + ` AS d, toUInt8(0) AS total, asn AS a, max(as_name) AS n, toInt64(uniqExact(src_ip)) AS ips
FROM events` + w.sql() + ` GROUP BY d, a`
		args = append(slices.Clone(args), args...)
	}
	query = `SELECT d, total, a, n, ips FROM (` + query + `) ORDER BY d, total DESC, ips DESC, a`
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("chstore: daily hosts: %w", err)
	}
	defer rows.Close()
	var out []eventstore.DailyHosts
	for rows.Next() {
		var d int64
		var total uint8
		var h eventstore.ASNHosts
		if err := rows.Scan(&d, &total, &h.ASN, &h.ASName, &h.IPs); err != nil {
			return nil, fmt.Errorf("chstore: daily hosts: %w", err)
		}
		day := dayTime(d)
		if total != 0 {
			out = append(out, eventstore.DailyHosts{Day: day, IPs: h.IPs})
			continue
		}
		if len(out) == 0 || !out[len(out)-1].Day.Equal(day) {
			return nil, fmt.Errorf("chstore: daily hosts: network row of %s before its total", day.Format(time.DateOnly))
		}
		o := &out[len(out)-1]
		o.ByASN = append(o.ByASN, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: daily hosts: %w", err)
	}
	return out, nil
}
