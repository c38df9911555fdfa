package storegen

import (
	"fmt"
	"strings"
	"time"
)

// ConfickerDay describes one day of a Conficker-like botnet, generated in
// SQL inside the DuckDB engine's events table (internal/store) without
// passing the rows through Go: host i has the address 11.0.0.0 +
// (i·2654435761 mod 2²⁸) (distinct for i < 2²⁸), its /24 belongs to a
// network (the first ASNs /24s one each, then log-uniformly, so that a few
// networks hold most hosts), each network to a country (log-uniformly); a
// host calls back 1 to 5 times over HTTP to one of 50,000 DGA names, and
// every 33rd address hides two bots (NAT). Other engines are filled by
// copying the rows (chstore/chbench.Fill), so that all hold the same.
type ConfickerDay struct {
	// Hosts is the number of infected addresses.
	Hosts int
	// ASNs is the number of networks they are spread over.
	ASNs int
}

// The two sizes of the benchmarks: ConfickerFull is Conficker's scale
// (7 M unique addresses over 30,000 networks, about 21 M callbacks).
var (
	ConfickerSmall = ConfickerDay{Hosts: 30_000, ASNs: 600}
	ConfickerFull  = ConfickerDay{Hosts: 7_000_000, ASNs: 30_000}
)

// ConfickerScaled returns ConfickerFull scaled to hosts addresses (the
// networks in proportion, 600 at least), and the number of subscribers in
// the same proportion of the benchmarks' 10,000 (300 at least).
func ConfickerScaled(hosts int) (ConfickerDay, int) {
	f := float64(hosts) / float64(ConfickerFull.Hosts)
	return ConfickerDay{Hosts: hosts, ASNs: max(600, int(f*float64(ConfickerFull.ASNs)))}, max(300, int(f*10_000))
}

// ConfickerDate is the day ConfickerDay generates.
var ConfickerDate = time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC)

// ConfickerCountries are the countries of the synthetic day, the most
// infected first (drawn log-uniformly, so the first hold the most
// networks).
var ConfickerCountries = strings.Fields(`US CN IN BR RU VN ID TR MX TH DE GB FR IT ES PL UA KR JP PH EG PK IR AR CO RO TW MY SA ZA
CA AU NL BD VE CL PE MA DZ KZ HU CZ GR PT BG RS IL AE BY SE BE AT CH NG KE TN IQ SY JO LB EC BO PY UY GT HN SV NI CR PA
DO CU PR JM TT HR SI SK LT LV EE FI NO DK IE IS LU MT CY AL MK BA ME MD GE AM AZ UZ TM KG TJ MN NP LK MM KH LA SG HK MO
NZ FJ PG GH CI SN CM UG TZ ET SD LY AO MZ ZM ZW BW NA MG MU RW BJ TG BF ML NE TD GA CG CD QA KW BH OM YE AF BT MV BN TL`)

// DuckDBStatements returns the statements that fill the events table of
// the DuckDB engine with the day, in order; the last is a CHECKPOINT.
func (d ConfickerDay) DuckDBStatements() []string {
	cc := "['" + strings.Join(ConfickerCountries, "','") + "']"
	return []string{
		fmt.Sprintf(`CREATE TEMP TABLE gen_hosts AS
SELECT i, ip, (CASE WHEN b < %[2]d THEN b ELSE least(%[2]d, floor(exp((hash(b) %% 1000000) / 1e6 * ln(%[2]d)))::BIGINT) - 1 END) AS a
FROM (SELECT i, 184549376 + ((i * 2654435761) %% 268435456) AS ip, ((i * 2654435761) %% 268435456) >> 8 AS b FROM range(%[1]d) t(i))`, d.Hosts, d.ASNs),
		fmt.Sprintf(`INSERT INTO events (time, sensor, protocol, transport, src_ip, src_port, dst_ip, dst_port, domain, zone,
	case_name, family, tag, bot_id, bytes, asn, as_name, country_code, region, city, latitude, longitude)
SELECT TIMESTAMP_NS '%[2]s' + to_microseconds((hash(i, k) %% 86400000000)::BIGINT),
	'sink-1', 'http', 'tcp', ip::UBIGINT, (1024 + hash(i, k, 1) %% 60000)::USMALLINT,
	(281470681743360 + 3221225985 + (i %% 4))::UHUGEINT, CASE WHEN i %% 10 = 0 THEN 8080 ELSE 80 END,
	'c' || (hash(i, k, 2) %% 50000) || '.info', 'c' || (hash(i, k, 2) %% 50000) || '.info', 'conficker-2009', 'conficker',
	CASE i %% 3 WHEN 0 THEN 'A' WHEN 1 THEN 'B' ELSE 'C' END,
	CASE WHEN i %% 33 = 0 THEN 'b' || i || '-' || (k %% 2) ELSE 'b' || i END, 300,
	(64512 + a)::UINTEGER, 'AS' || (64512 + a) || ' Example Networks ' || a,
	%[1]s[1 + least(%[3]d, floor(exp((hash(a) %% 1000000) / 1e6 * ln(%[3]d)))::BIGINT) - 1],
	'Region ' || (a %% 7), 'City ' || (a %% 13),
	round(((hash(a, 1) %% 120000)::BIGINT - 60000) / 1000.0 + (i %% 100) / 10000.0, 4),
	round(((hash(a, 2) %% 360000)::BIGINT - 180000) / 1000.0, 4)
FROM (SELECT *, unnest(range((1 + hash(i) %% 5)::BIGINT)) AS k FROM gen_hosts)`, cc, ConfickerDate.Format(time.DateOnly), len(ConfickerCountries)),
		`DROP TABLE gen_hosts`,
		`CHECKPOINT`,
	}
}
