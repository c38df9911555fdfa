package chstore

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/takedown-project/takedown/internal/eventstore"
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
// A Conficker-sized day is 7 million hosts and 21 million events, and one
// GROUP BY over all of them is what 18.16 does worst: its state passes the
// memory limit and spills, and argMin over tuples of strings keeps a
// variant per host. So, as the DuckDB engine does:
//
//   - the day is cut into ranges of addresses of about q.PartitionEvents
//     events each (hostKey, from sampled quantiles), one query a range, so
//     each aggregation stays in memory;
//   - every string is aggregated as its cityHash64, and read back through
//     dictionaries that small queries build first (families, the first
//     callback's name, case and tag, and the network and place without the
//     coordinates, which are often of the host); a hash a dictionary lacks
//     (an event stored after it was built) is looked up alone;
//   - the aggregation runs in two steps, per address, family and bot id
//     first, then per address and family, so that the distinct bot ids are
//     a count of rows, not a hash set per host. Every key and state is of
//     fixed size.
//
// Each host's row comes from one query, so it is of one snapshot of the
// events (ClickHouse chooses the parts a query reads when it starts); two
// ranges may be of different snapshots. The most called ports come from a
// query before them; an event stored between the two can at worst leave a
// port of the list out of the names, flagged as another port.
func (s *Store) HostRows(ctx context.Context, q eventstore.HostRowQuery, fn func(*eventstore.HostRow) error) error {
	var w where
	w.timeRange(q.From, q.To)
	w.add(infected)
	err := s.hostRows(ctx, &w, q.PartitionEvents, fn)
	if stop, ok := err.(errStop); ok {
		return stop.err
	}
	if err != nil {
		return fmt.Errorf("chstore: host rows: %w", err)
	}
	return nil
}

// hostKey orders hosts as HostRows does, as one UInt64 that ranges of
// hosts are cut on: an IPv4 address is its number (src_ip), an IPv6
// address (src_ip has its top bit set) the top bit and the first 63 bits of
// its address. Addresses that share the key are in the same range.
const hostKey = `if(src_ip < 9223372036854775808, src_ip,
	bitOr(toUInt64(9223372036854775808), bitShiftRight(reinterpretAsUInt64(reverse(substring(src_ip6, 1, 8))), 1)))`

// The hashes HostRows aggregates instead of strings.
const (
	famHash   = "cityHash64(" + familyOrUnknown + ")"
	firstHash = "cityHash64(domain, case_name, tag)"
	placeHash = "cityHash64(asn, as_name, country_code, region, city)"
)

// defaultPartition is the events of one range of hosts when the query does
// not say: about 1.4 million hosts of a Conficker-like day, whose states
// stay well under the gigabyte bigQuery spills at.
const defaultPartition = 1 << 22

type firstEntry struct{ domain, caseName, tag string }

type placeEntry struct {
	asn                      uint32
	asName, cc, region, city string
}

func (s *Store) hostRows(ctx context.Context, w *where, per int64, fn func(*eventstore.HostRow) error) error {
	if per <= 0 {
		per = defaultPartition
	}
	ports, err := s.topPorts(ctx, w)
	if err != nil {
		return err
	}
	bounds, err := s.hostRanges(ctx, w, per)
	if err != nil || bounds == nil {
		return err
	}
	d := hostDicts{s: s, w: w}
	if err := d.load(ctx); err != nil {
		return err
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
	sel := `SELECT a6, any(ip) AS addr, fh, min(t0), max(t1), toInt64(sum(n)), toInt64(countIf(bh != cityHash64(''))), groupBitOr(ports),
	argMax(lst, t1), argMin(fst, t0), argMin(place, t0), argMin(lat, t0), argMin(lon, t0)
FROM (
	SELECT src_ip6 AS a6, any(src_ip) AS ip, ` + famHash + ` AS fh, cityHash64(bot_id) AS bh, min(time_ns) AS t0, max(time_ns) AS t1,
		count() AS n, groupBitOr(` + portBit + `) AS ports, argMax(` + lastPacked + `, time_ns) AS lst,
		argMin(` + firstHash + `, time_ns) AS fst, argMin(` + placeHash + `, time_ns) AS place,
		argMin(latitude, time_ns) AS lat, argMin(longitude, time_ns) AS lon
	FROM events%s
	GROUP BY a6, fh, bh
)
GROUP BY a6, fh
ORDER BY addr >= 9223372036854775808, a6`

	// The rows of one address, sorted by family before fn sees them; their
	// DstPorts are kept from address to address.
	var (
		group        []eventstore.HostRow
		n            int
		prev, a6     string
		src, fh      uint64
		first, lst   int64
		events, bots int64
		mask, last   uint64
		fstH, placeH uint64
		lat, lon     float64
		stopped      error
	)
	flush := func() error {
		g := group[:n]
		n = 0
		if len(g) > 1 {
			slices.SortFunc(g, func(a, b eventstore.HostRow) int { return strings.Compare(a.Family, b.Family) })
		}
		for i := range g {
			if err := fn(&g[i]); err != nil {
				stopped = err
				return err
			}
		}
		return nil
	}
	dest := []any{&a6, &src, &fh, &first, &lst, &events, &bots, &mask, &last, &fstH, &placeH, &lat, &lon}
	for _, r := range bounds {
		cw := w.clone()
		cw.keyRange(r)
		err := func() error {
			rs, err := s.conn.Query(clickhouse.Context(ctx, bigQuery), fmt.Sprintf(sel, cw.sql()), cw.args...)
			if err != nil {
				return err
			}
			defer rs.Close()
			for rs.Next() {
				if err := rs.Scan(dest...); err != nil {
					return err
				}
				if a6 != prev && n > 0 {
					if err := flush(); err != nil {
						return err
					}
				}
				prev = a6
				if n == len(group) {
					group = append(group, eventstore.HostRow{})
				}
				row := &group[n]
				n++
				if row.IP, err = srcAddr(a6); err != nil {
					return err
				}
				if row.Family, err = d.family(ctx, fh); err != nil {
					return err
				}
				fe, err := d.first(ctx, fstH)
				if err != nil {
					return err
				}
				pe, err := d.place(ctx, placeH)
				if err != nil {
					return err
				}
				row.FirstSeen, row.LastSeen = time.Unix(0, first).UTC(), time.Unix(0, lst).UTC()
				row.Events, row.BotIDs = events, bots
				row.Unpack(ports, mask, last)
				row.Domain, row.Case, row.Tag = fe.domain, fe.caseName, fe.tag
				row.ASN, row.ASName, row.Country, row.Region, row.City = pe.asn, pe.asName, pe.cc, pe.region, pe.city
				row.Latitude, row.Longitude = lat, lon
			}
			return rs.Err()
		}()
		if stopped != nil {
			return errStop{stopped}
		}
		if err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return errStop{err}
	}
	return nil
}

// errStop carries fn's error out of HostRows as it is.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// hostRanges returns the ranges of hostKey that HostRows queries one by
// one, about per events each, in order; nil if w has no events.
func (s *Store) hostRanges(ctx context.Context, w *where, per int64) ([]keyRange, error) {
	var count uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM events"+w.sql(), w.args...).Scan(&count); err != nil {
		return nil, fmt.Errorf("ranges: %w", err)
	}
	if count == 0 {
		return nil, nil
	}
	parts := (int64(count) + per - 1) / per
	if parts <= 1 {
		return []keyRange{{}}, nil
	}
	levels := make([]string, parts-1)
	for i := range levels {
		levels[i] = strconv.FormatFloat(float64(i+1)/float64(parts), 'f', -1, 64)
	}
	var cuts []uint64
	query := "SELECT quantiles(" + strings.Join(levels, ", ") + ")(" + hostKey + ") FROM events" + w.sql()
	if err := s.conn.QueryRow(ctx, query, w.args...).Scan(&cuts); err != nil {
		return nil, fmt.Errorf("ranges: %w", err)
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	out := make([]keyRange, 0, len(cuts)+1)
	var lo uint64
	for _, c := range cuts {
		if c == 0 {
			continue
		}
		out = append(out, keyRange{lo: lo, hi: c, bounded: true})
		lo = c
	}
	return append(out, keyRange{lo: lo}), nil
}

// keyRange is [lo, hi) of hostKey, or [lo, ∞) if not bounded.
type keyRange struct {
	lo, hi  uint64
	bounded bool
}

// keyRange adds the terms of r. A range of IPv4 hosts only is a range of
// src_ip, which ClickHouse reads alone before the other columns.
func (w *where) keyRange(r keyRange) {
	const top = uint64(1) << 63
	switch {
	case r.bounded && r.hi <= top:
		w.add("src_ip >= ?", r.lo)
		w.add("src_ip < ?", r.hi)
	case r.bounded:
		w.add(hostKey+" >= ?", r.lo)
		w.add(hostKey+" < ?", r.hi)
	case r.lo > 0:
		w.add(hostKey+" >= ?", r.lo)
	}
}

// clone returns a copy of w that terms can be added to.
func (w *where) clone() *where {
	return &where{terms: slices.Clone(w.terms), args: slices.Clone(w.args)}
}

// hostDicts reads back the hashes HostRows aggregates.
type hostDicts struct {
	s        *Store
	w        *where
	families map[uint64]string
	firsts   map[uint64]firstEntry
	places   map[uint64]placeEntry
}

// load builds the dictionaries of the events of w.
func (d *hostDicts) load(ctx context.Context) error {
	d.families, d.firsts, d.places = map[uint64]string{}, map[uint64]firstEntry{}, map[uint64]placeEntry{}
	if err := d.query(ctx, "", famHash); err != nil {
		return err
	}
	if err := d.query(ctx, "", firstHash); err != nil {
		return err
	}
	return d.query(ctx, "", placeHash)
}

// query adds to the dictionary of hash the entries of w's events, or of
// the one hash h when term is set ("= ?").
func (d *hostDicts) query(ctx context.Context, term string, hash string, h ...any) error {
	w := d.w.clone()
	if term != "" {
		w.add(hash+term, h...)
	}
	var cols string
	switch hash {
	case famHash:
		cols = "any(" + familyOrUnknown + ")"
	case firstHash:
		cols = "any(domain), any(case_name), any(tag)"
	default:
		cols = "any(asn), any(as_name), any(country_code), any(region), any(city)"
	}
	rows, err := d.s.conn.Query(ctx, "SELECT "+hash+" AS h, "+cols+" FROM events"+w.sql()+" GROUP BY h", w.args...)
	if err != nil {
		return fmt.Errorf("dictionary: %w", err)
	}
	defer rows.Close()
	var (
		k  uint64
		f  string
		fe firstEntry
		pe placeEntry
	)
	for rows.Next() {
		switch hash {
		case famHash:
			err = rows.Scan(&k, &f)
			d.families[k] = f
		case firstHash:
			err = rows.Scan(&k, &fe.domain, &fe.caseName, &fe.tag)
			d.firsts[k] = fe
		default:
			err = rows.Scan(&k, &pe.asn, &pe.asName, &pe.cc, &pe.region, &pe.city)
			d.places[k] = pe
		}
		if err != nil {
			return fmt.Errorf("dictionary: %w", err)
		}
	}
	return rows.Err()
}

// miss looks up a hash that the dictionary of hash lacks: one of an event
// stored after the dictionaries were built.
func (d *hostDicts) miss(ctx context.Context, hash string, h uint64) error {
	if err := d.query(ctx, " = ?", hash, h); err != nil {
		return err
	}
	var ok bool
	switch hash {
	case famHash:
		_, ok = d.families[h]
	case firstHash:
		_, ok = d.firsts[h]
	default:
		_, ok = d.places[h]
	}
	if !ok {
		return fmt.Errorf("dictionary: no event has the hash %d of %s", h, hash)
	}
	return nil
}

func (d *hostDicts) family(ctx context.Context, h uint64) (string, error) {
	if f, ok := d.families[h]; ok {
		return f, nil
	}
	if err := d.miss(ctx, famHash, h); err != nil {
		return "", err
	}
	return d.families[h], nil
}

func (d *hostDicts) first(ctx context.Context, h uint64) (firstEntry, error) {
	if e, ok := d.firsts[h]; ok {
		return e, nil
	}
	if err := d.miss(ctx, firstHash, h); err != nil {
		return firstEntry{}, err
	}
	return d.firsts[h], nil
}

func (d *hostDicts) place(ctx context.Context, h uint64) (placeEntry, error) {
	if e, ok := d.places[h]; ok {
		return e, nil
	}
	if err := d.miss(ctx, placeHash, h); err != nil {
		return placeEntry{}, err
	}
	return d.places[h], nil
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
