package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
)

// infected selects the events of infected hosts: those the classifier
// named a family for, and those that called a seized name (they have a
// case). What has neither — a scanner knocking on the sinkhole's address —
// is nobody's infection.
const infected = "(family IS NOT NULL OR case_name IS NOT NULL)"

// HostRows calls fn with one HostRow per source address and family of the
// events of q that belong to an infected host (a family or a case), in the
// order of the address: IPv4 numerically, then IPv6 numerically, and by
// family for one address. The row and its DstPorts are reused between
// calls: fn must copy what it keeps. HostRows stops at the first error of
// fn and returns it.
//
// DuckDB aggregates; Go sees one row per host. So that DuckDB's memory
// stays within its limit on a day of millions of hosts, the aggregation
// runs over ranges of addresses of about q.PartitionEvents events each,
// and strings are aggregated as 64-bit hashes, resolved through small
// dictionaries that DuckDB builds first (two distinct strings sharing a
// hash is a chance of n²/2⁶⁵ for n distinct values).
func (s *Store) HostRows(ctx context.Context, q eventstore.HostRowQuery, fn func(*eventstore.HostRow) error) error {
	where, args := timeRange(q.From, q.To)
	where = append(where, infected)
	cond := strings.Join(where, " AND ")
	per := q.PartitionEvents
	if per <= 0 {
		per = 1 << 22
	}

	// One transaction, so that the dictionaries, the partitions and the
	// aggregation see the same events while the pipeline appends more.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: host rows: %w", err)
	}
	defer tx.Rollback()
	ports, err := topPorts(ctx, tx, cond, args)
	if err != nil {
		return fmt.Errorf("store: host rows: %w", err)
	}
	parts, err := partitions(ctx, tx, cond, args, per)
	if err != nil {
		return fmt.Errorf("store: host rows: %w", err)
	}
	if len(parts) == 0 {
		return nil
	}
	firsts, err := firstDict(ctx, tx, cond, args)
	if err != nil {
		return fmt.Errorf("store: host rows: %w", err)
	}
	places, err := placeDict(ctx, tx, cond, args)
	if err != nil {
		return fmt.Errorf("store: host rows: %w", err)
	}

	var portList strings.Builder
	portList.WriteByte('[')
	for i, p := range ports {
		if i > 0 {
			portList.WriteByte(',')
		}
		portList.WriteString(strconv.Itoa(int(p)))
	}
	portList.WriteByte(']')
	// A port's bit is its place in the list; bit 63 is any other port.
	portBit := "1::UBIGINT << coalesce(list_position(" + portList.String() + "::USMALLINT[], dst_port)::UBIGINT - 1, 63)"
	if len(ports) == 0 {
		portBit = "1::UBIGINT << 63"
	}
	sel := `SELECT src_ip, any_value(src_ip6) AS ip6, coalesce(family, '` + eventstore.UnknownFamily + `') AS fam,
	min(time), max(time), count(*), count(DISTINCT bot_id),
	bit_or(` + portBit + `),
	arg_max((src_port::UBIGINT << 32) | (dst_port::UBIGINT << 16) |
		((CASE protocol WHEN 'dns' THEN 1 WHEN 'http' THEN 2 WHEN 'https' THEN 3 WHEN 'smtp' THEN 4 WHEN 'tcp' THEN 5 WHEN 'udp' THEN 6 ELSE 0 END)::UBIGINT << 8) |
		(CASE transport WHEN 'tcp' THEN 1 WHEN 'udp' THEN 2 ELSE 0 END)::UBIGINT, time),
	arg_min(` + firstHash + `, time), any_value(` + placeHash + `), any_value(latitude), any_value(longitude)
FROM events WHERE ` + cond

	// Scanning into any skips database/sql's reflection: a quarter of the
	// Go time of a day of millions of hosts.
	var (
		row    eventstore.HostRow
		pl     *placeEntry
		lastPH uint64
		vals   [13]any
		dest   = make([]any, len(vals))
	)
	for i := range vals {
		dest[i] = &vals[i]
	}
	for _, p := range parts {
		query := sel + " AND " + p.cond + " GROUP BY src_ip, fam ORDER BY " + p.order + ", fam"
		err := func() error {
			rows, err := tx.QueryContext(ctx, query, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				if err := rows.Scan(dest...); err != nil {
					return err
				}
				var c conv
				src, src6 := c.uint(vals[0]), vals[1]
				row.Family = c.str(vals[2])
				first, lastT := c.time(vals[3]), c.time(vals[4])
				row.Events, row.BotIDs = c.int(vals[5]), c.int(vals[6])
				mask, last, fh, ph := c.uint(vals[7]), c.uint(vals[8]), c.uint(vals[9]), c.uint(vals[10])
				row.Latitude, row.Longitude = c.float(vals[11]), c.float(vals[12])
				if c.err != nil {
					return c.err
				}
				if row.IP, err = srcIPFromValues(src, src6); err != nil {
					return err
				}
				row.FirstSeen, row.LastSeen = first.UTC(), lastT.UTC()
				row.Unpack(ports, mask, last)
				f := &firsts.entries[firsts.index[fh]]
				row.Domain, row.Case, row.Tag = f.domain, f.caseName, f.tag
				if ph != lastPH || pl == nil { // neighbouring addresses are mostly in one network
					pl, lastPH = &places.entries[places.index[ph]], ph
				}
				row.ASN, row.ASName, row.Country, row.Region, row.City = pl.asn, pl.asName, pl.country, pl.region, pl.city
				if err := fn(&row); err != nil {
					return errStopped{err}
				}
			}
			return rows.Err()
		}()
		if stop, ok := err.(errStopped); ok {
			return stop.err
		}
		if err != nil {
			return fmt.Errorf("store: host rows: %w", err)
		}
	}
	return nil
}

// errStopped carries the error of the caller's function through HostRows
// unwrapped.
type errStopped struct{ err error }

func (e errStopped) Error() string { return e.err.Error() }

// The hashes HostRows aggregates in place of strings.
const (
	firstHash = "hash(domain, case_name, tag)"
	placeHash = "hash(asn, as_name, country_code, region, city)"
)

type firstEntry struct{ domain, caseName, tag string }

type placeEntry struct {
	asn                           uint32
	asName, country, region, city string
}

// dict maps the hashes of HostRows to their values. The map holds small
// indexes rather than the values, so that it stays in the cache: it is
// looked up twice per host.
type dict[E any] struct {
	index   map[uint64]uint32
	entries []E // entries[0] is the zero value, for a hash not found
}

func newDict[E any]() *dict[E] {
	return &dict[E]{index: map[uint64]uint32{}, entries: make([]E, 1)}
}

func (d *dict[E]) add(h uint64, e E) {
	d.index[h] = uint32(len(d.entries))
	d.entries = append(d.entries, e)
}

// firstDict maps firstHash to its strings.
func firstDict(ctx context.Context, tx *sql.Tx, cond string, args []any) (*dict[firstEntry], error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+firstHash+` AS h, any_value(domain), any_value(case_name), any_value(tag)
FROM events WHERE `+cond+` GROUP BY h`, args...)
	if err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	defer rows.Close()
	d := newDict[firstEntry]()
	for rows.Next() {
		var h uint64
		var dom, c, t sql.NullString
		if err := rows.Scan(&h, &dom, &c, &t); err != nil {
			return nil, fmt.Errorf("domains: %w", err)
		}
		d.add(h, firstEntry{dom.String, c.String, t.String})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	return d, nil
}

// placeDict maps placeHash to its values.
func placeDict(ctx context.Context, tx *sql.Tx, cond string, args []any) (*dict[placeEntry], error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+placeHash+` AS h, any_value(asn), any_value(as_name), any_value(country_code), any_value(region), any_value(city)
FROM events WHERE `+cond+` GROUP BY h`, args...)
	if err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	defer rows.Close()
	d := newDict[placeEntry]()
	for rows.Next() {
		var h uint64
		var p placeEntry
		var name, cc, region, city sql.NullString
		if err := rows.Scan(&h, &p.asn, &name, &cc, &region, &city); err != nil {
			return nil, fmt.Errorf("networks: %w", err)
		}
		p.asName, p.country, p.region, p.city = name.String, cc.String, region.String, city.String
		d.add(h, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	return d, nil
}

// conv reads the values the driver gives, keeping the first surprise.
type conv struct{ err error }

func (c *conv) fail(want string, v any) {
	if c.err == nil {
		c.err = fmt.Errorf("got %T, want %s", v, want)
	}
}

func (c *conv) uint(v any) uint64 {
	switch x := v.(type) {
	case uint64:
		return x
	case int64:
		return uint64(x)
	case nil:
		return 0
	}
	c.fail("an unsigned integer", v)
	return 0
}

func (c *conv) int(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case nil:
		return 0
	}
	c.fail("an integer", v)
	return 0
}

func (c *conv) float(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case nil:
		return 0
	}
	c.fail("a number", v)
	return 0
}

func (c *conv) str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	}
	c.fail("a string", v)
	return ""
}

func (c *conv) time(v any) time.Time {
	if t, ok := v.(time.Time); ok {
		return t
	}
	c.fail("a time", v)
	return time.Time{}
}

// topPorts returns the MaxPorts most called destination ports, most
// called first.
func topPorts(ctx context.Context, tx *sql.Tx, cond string, args []any) ([]uint16, error) {
	rows, err := tx.QueryContext(ctx, fmt.Sprintf(`SELECT dst_port FROM events WHERE %s
GROUP BY dst_port ORDER BY count(*) DESC, dst_port LIMIT %d`, cond, eventstore.MaxPorts), args...)
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

// partition is a range of addresses that HostRows aggregates in one query.
type partition struct {
	cond  string // the WHERE term
	order string // the ORDER BY key of the address
}

// partitions cuts the addresses of the events of cond into ranges of about
// per events each, at approximate quantiles: IPv4 (src_ip below 2³²) and
// IPv6 (src_ip6) apart, so that both come out in address order.
func partitions(ctx context.Context, tx *sql.Tx, cond string, args []any, per int64) ([]partition, error) {
	// Quantiles at every 1/64 are enough to cut up to 64 ranges per family.
	const steps = 64
	fracs := make([]string, steps-1)
	for i := range fracs {
		fracs[i] = strconv.FormatFloat(float64(i+1)/steps, 'f', -1, 64)
	}
	list := "[" + strings.Join(fracs, ",") + "]"
	var n4, n6 int64
	var q4, q6 any
	err := tx.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE src_ip6 IS NULL), count(*) FILTER (WHERE src_ip6 IS NOT NULL),
	approx_quantile(src_ip, `+list+`) FILTER (WHERE src_ip6 IS NULL),
	approx_quantile(src_ip6, `+list+`) FILTER (WHERE src_ip6 IS NOT NULL)
FROM events WHERE `+cond, args...).Scan(&n4, &n6, &q4, &q6)
	if err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	var parts []partition
	if n4 > 0 {
		cuts := pickCuts(quantileInts(q4), n4, per, steps)
		lo := "0"
		for i := 0; i <= len(cuts); i++ {
			hi := "4294967296"
			if i < len(cuts) {
				hi = cuts[i].String()
			}
			parts = append(parts, partition{cond: "src_ip >= " + lo + " AND src_ip < " + hi, order: "src_ip"})
			lo = hi
		}
	}
	if n6 > 0 {
		cuts := pickCuts(quantileInts(q6), n6, per, steps)
		lo := ""
		for i := 0; i <= len(cuts); i++ {
			c := "src_ip >= 9223372036854775808" // IPv6: bit 63 of src_ip is set
			if lo != "" {
				c += " AND src_ip6 >= '" + lo + "'::UHUGEINT"
			}
			if i < len(cuts) {
				hi := cuts[i].String()
				c += " AND src_ip6 < '" + hi + "'::UHUGEINT"
				lo = hi
			}
			parts = append(parts, partition{cond: c, order: "ip6"})
		}
	}
	return parts, nil
}

// quantileInts reads the list approx_quantile returns: integers for
// UBIGINT, floating point numbers for UHUGEINT.
func quantileInts(v any) []*big.Int {
	list, _ := v.([]any)
	out := make([]*big.Int, 0, len(list))
	for _, x := range list {
		switch x := x.(type) {
		case uint64:
			out = append(out, new(big.Int).SetUint64(x))
		case int64:
			out = append(out, big.NewInt(x))
		case *big.Int:
			out = append(out, x)
		case float64:
			if x >= 0 && !math.IsInf(x, 0) && !math.IsNaN(x) {
				b, _ := new(big.Float).SetFloat64(x).Int(nil)
				out = append(out, b)
			}
		}
	}
	return out
}

// pickCuts chooses from the quantiles at every 1/steps the boundaries of
// about n/per ranges, strictly increasing.
func pickCuts(qs []*big.Int, n, per int64, steps int) []*big.Int {
	k := int((n + per - 1) / per)
	if k <= 1 || len(qs) != steps-1 {
		return nil
	}
	k = min(k, steps)
	var cuts []*big.Int
	for i := 1; i < k; i++ {
		c := qs[i*steps/k-1]
		if len(cuts) > 0 && c.Cmp(cuts[len(cuts)-1]) <= 0 {
			continue
		}
		if c.Sign() <= 0 {
			continue
		}
		cuts = append(cuts, c)
	}
	return cuts
}

// filterSQL returns the WHERE term of f and its arguments.
func filterSQL(f eventstore.HostFilter) (string, []any) {
	var terms []string
	var args []any
	if len(f.ASNs) > 0 {
		ph := make([]string, len(f.ASNs))
		for i, a := range f.ASNs {
			ph[i] = "?"
			args = append(args, a)
		}
		terms = append(terms, "asn IN ("+strings.Join(ph, ", ")+")")
	}
	if len(f.Countries) > 0 {
		ph := make([]string, len(f.Countries))
		for i, c := range f.Countries {
			ph[i] = "?"
			args = append(args, c)
		}
		terms = append(terms, "country_code IN ("+strings.Join(ph, ", ")+")")
	}
	for _, p := range f.Prefixes {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		lo, hi := prefixBounds(p)
		if p.Addr().Unmap().Is4() {
			terms = append(terms, "(src_ip BETWEEN "+lo.String()+" AND "+hi.String()+")")
		} else {
			terms = append(terms, "(src_ip >= 9223372036854775808 AND src_ip6 BETWEEN '"+lo.String()+"'::UHUGEINT AND '"+hi.String()+"'::UHUGEINT)")
		}
	}
	if len(terms) == 0 {
		return "false", nil
	}
	return "(" + strings.Join(terms, " OR ") + ")", args
}

// prefixBounds returns the first and last address of p as numbers: 32-bit
// for IPv4 (as src_ip holds them), 128-bit for IPv6.
func prefixBounds(p netip.Prefix) (lo, hi *big.Int) {
	a := p.Addr().Unmap()
	n := a.BitLen()
	var b []byte
	if a.Is4() {
		x := a.As4()
		b = x[:]
	} else {
		x := a.As16()
		b = x[:]
	}
	lo = new(big.Int).SetBytes(b)
	host := new(big.Int).Lsh(big.NewInt(1), uint(n-min(p.Bits(), n)))
	hi = new(big.Int).Add(lo, host.Sub(host, big.NewInt(1)))
	return lo, hi
}

// DailyHosts counts the distinct addresses of infected hosts (the events
// HostRows reports: a family or a case) that q.Filter selects, per UTC
// day, and per network if asked. Days without hosts are left out.
func (s *Store) DailyHosts(ctx context.Context, q eventstore.DailyHostQuery) ([]eventstore.DailyHosts, error) {
	where, args := timeRange(q.From, q.To)
	where = append(where, infected)
	f, fargs := filterSQL(q.Filter)
	where = append(where, f)
	args = append(args, fargs...)
	query := `SELECT CAST(time AS DATE) AS day, 1 AS total, 0 AS asn, '', count(DISTINCT ` + hostKey + `) AS ips
FROM events WHERE ` + strings.Join(where, " AND ") + ` GROUP BY day ORDER BY day`
	if q.ByASN {
		query = `SELECT CAST(time AS DATE) AS day, GROUPING(asn) AS total, coalesce(asn, 0), coalesce(any_value(as_name), ''), count(DISTINCT ` + hostKey + `) AS ips
FROM events WHERE ` + strings.Join(where, " AND ") + `
GROUP BY GROUPING SETS ((day), (day, asn)) ORDER BY day, total DESC, ips DESC, asn`
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: daily hosts: %w", err)
	}
	defer rows.Close()
	var out []eventstore.DailyHosts
	for rows.Next() {
		var day time.Time
		var total int64
		var h eventstore.ASNHosts
		if err := rows.Scan(&day, &total, &h.ASN, &h.ASName, &h.IPs); err != nil {
			return nil, fmt.Errorf("store: daily hosts: %w", err)
		}
		day = day.UTC()
		if total != 0 || !q.ByASN {
			out = append(out, eventstore.DailyHosts{Day: day, IPs: h.IPs})
			continue
		}
		if len(out) == 0 || !out[len(out)-1].Day.Equal(day) {
			return nil, fmt.Errorf("store: daily hosts: network row of %s before its total", day.Format(time.DateOnly))
		}
		d := &out[len(out)-1]
		d.ByASN = append(d.ByASN, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: daily hosts: %w", err)
	}
	return out, nil
}
