package report

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/scope"
	"github.com/takedown-project/takedown/internal/store"
)

// confickerDay sizes the synthetic day of BenchmarkConfickerDay.
type confickerDay struct {
	Hosts, ASNs, Subscribers int
}

// benchDay is the small default, or the Conficker-scale day with
// TAKEDOWN_BENCH_CONFICKER=1: 7 M unique addresses over 30,000 networks,
// about 21 M callbacks, for 10,000 subscribers.
func benchDay() confickerDay {
	if os.Getenv("TAKEDOWN_BENCH_CONFICKER") == "1" {
		return confickerDay{Hosts: 7_000_000, ASNs: 30_000, Subscribers: 10_000}
	}
	return confickerDay{Hosts: 30_000, ASNs: 600, Subscribers: 300}
}

var benchDate = time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC)

// countryCodes are the countries of the synthetic day, the most infected
// first (drawn log-uniformly, so the first hold the most networks).
var benchCountries = strings.Fields(`US CN IN BR RU VN ID TR MX TH DE GB FR IT ES PL UA KR JP PH EG PK IR AR CO RO TW MY SA ZA
CA AU NL BD VE CL PE MA DZ KZ HU CZ GR PT BG RS IL AE BY SE BE AT CH NG KE TN IQ SY JO LB EC BO PY UY GT HN SV NI CR PA
DO CU PR JM TT HR SI SK LT LV EE FI NO DK IE IS LU MT CY AL MK BA ME MD GE AM AZ UZ TM KG TJ MN NP LK MM KH LA SG HK MO
NZ FJ PG GH CI SN CM UG TZ ET SD LY AO MZ ZM ZW BW NA MG MU RW BJ TG BF ML NE TD GA CG CD QA KW BH OM YE AF BT MV BN TL`)

// generateDay fills the events table with a Conficker-like day in SQL,
// without passing the rows through Go: host i has the address
// 11.0.0.0 + (i·2654435761 mod 2²⁸) (distinct for i < 2²⁸), its /24 belongs
// to a network (the first ASNs /24s one each, then log-uniformly, so that
// a few networks hold most hosts), each network to a country
// (log-uniformly); a host calls back 1 to 5 times over HTTP to one of
// 50,000 DGA names, and every 33rd address hides two bots (NAT).
func generateDay(ctx context.Context, db *sql.DB, d confickerDay) error {
	cc := "['" + strings.Join(benchCountries, "','") + "']"
	stmts := []string{
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
FROM (SELECT *, unnest(range((1 + hash(i) %% 5)::BIGINT)) AS k FROM gen_hosts)`, cc, benchDate.Format(time.DateOnly), len(benchCountries)),
		`DROP TABLE gen_hosts`,
		`CHECKPOINT`,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%.40s…: %w", s, err)
		}
	}
	return nil
}

// benchSubscribers makes n subscribers as a real registry has them: 90 %
// one network each, 8 % an address block, 1.5 % a few networks, and the
// national CERTs of the 40 most infected countries (at full size).
func benchSubscribers(d confickerDay) []Subscriber {
	r := rand.New(rand.NewPCG(1, 2))
	subs := make([]Subscriber, 0, d.Subscribers)
	certs := min(40, d.Subscribers/100+1)
	for i := range certs {
		subs = append(subs, Subscriber{Name: "cert-" + strings.ToLower(benchCountries[i]), TLP: "AMBER",
			Scope: scope.Scope{Countries: []string{benchCountries[i]}}})
	}
	asn := func() uint32 { return uint32(64512 + r.IntN(d.ASNs)) }
	for len(subs) < d.Subscribers {
		i := len(subs)
		s := Subscriber{Name: "sub-" + strconv.Itoa(i), TLP: "GREEN"}
		switch k := i % 200; {
		case k < 16: // an address block of the generated space, /16 to /24
			bits := 16 + r.IntN(9)
			p, _ := netip.AddrFrom4([4]byte{byte(11 + r.IntN(16)), byte(r.IntN(256)), byte(r.IntN(256)), 0}).Prefix(bits)
			s.Scope.Prefixes = []netip.Prefix{p}
		case k < 19: // a few networks
			for range 2 + r.IntN(8) {
				s.Scope.ASNs = append(s.Scope.ASNs, asn())
			}
		default: // one network: every third, so that the big ones are taken
			s.Scope.ASNs = []uint32{uint32(64512 + (i*3)%d.ASNs)}
		}
		subs = append(subs, s)
	}
	return subs
}

// peakRSS returns VmHWM, the peak resident set size, in bytes.
func peakRSS() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// resetPeakRSS sets VmHWM to the current RSS (Linux 4.0+).
func resetPeakRSS() {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// BenchmarkConfickerDay builds every subscriber's report of one day and
// writes each as CSV (to io.Discard, on GOMAXPROCS goroutines), from a DuckDB file of a synthetic
// day: small by default, Conficker-scale (7 M addresses, 30,000 networks,
// 10,000 subscribers) with TAKEDOWN_BENCH_CONFICKER=1. DuckDB's memory
// limit is TAKEDOWN_BENCH_DUCKDB_MB (512 by default). The generated file
// is kept in TAKEDOWN_BENCH_DIR when set, and reused. Run with
// -benchtime=1x; peak RSS is VmHWM from the start of the reports.
//
// Metrics: s/reports (Build and every CSV), s/build, s/csv, and s/scan —
// the store's HostRows alone, the floor a report generator on the store
// cannot go below; MiB/peak-rss, MiB/go-heap (the Go heap's share of it:
// the rest is DuckDB's), and rows/csv (rows written).
func BenchmarkConfickerDay(b *testing.B) {
	d := benchDay()
	ctx := context.Background()
	dir := os.Getenv("TAKEDOWN_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("conficker-%d-%d.db", d.Hosts, d.ASNs))
	memMB := 512
	if v := os.Getenv("TAKEDOWN_BENCH_DUCKDB_MB"); v != "" {
		var err error
		if memMB, err = strconv.Atoi(v); err != nil {
			b.Fatalf("TAKEDOWN_BENCH_DUCKDB_MB=%q: %v", v, err)
		}
	}
	open := func() (*sql.DB, *store.Store) {
		db, err := dbfile.Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf("SET memory_limit = '%dMB'", memMB)); err != nil {
			b.Fatal(err)
		}
		s, err := store.Open(ctx, store.Config{DB: db})
		if err != nil {
			b.Fatal(err)
		}
		return db, s
	}
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		db, s := open()
		if err := generateDay(ctx, db, d); err != nil {
			b.Fatal(err)
		}
		s.Close()
		db.Close()
		b.Logf("generated %s in %s", path, time.Since(start).Round(time.Millisecond))
	}
	subs := benchSubscribers(d)
	from, to := Day(benchDate)

	for range b.N {
		b.StopTimer()
		db, s := open()
		runtime.GC()
		debug.FreeOSMemory()
		// The floor: the store's aggregation alone.
		start := time.Now()
		scanned := 0
		if err := s.HostRows(ctx, eventstore.HostRowQuery{From: from, To: to}, func(*eventstore.HostRow) error { scanned++; return nil }); err != nil {
			b.Fatal(err)
		}
		scan := time.Since(start)
		s.Close()
		db.Close()
		runtime.GC()
		debug.FreeOSMemory()

		db, s = open()
		resetPeakRSS()
		b.StartTimer()
		start = time.Now()
		set, err := Build(ctx, s, subs, from, to)
		if err != nil {
			b.Fatal(err)
		}
		build := time.Since(start)
		// Every report, on as many goroutines as there are cores: the
		// Set is safe for concurrent reading.
		var (
			next    atomic.Int64
			written atomic.Int64
			wg      sync.WaitGroup
		)
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < set.Len(); i = int(next.Add(1) - 1) {
					r := set.Report(i)
					if err := (CSV{}).Write(io.Discard, r); err != nil {
						b.Error(err)
						return
					}
					written.Add(int64(r.Len()))
				}
			})
		}
		wg.Wait()
		total := time.Since(start)
		b.StopTimer()
		peak := peakRSS()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(total.Seconds(), "s/reports")
		b.ReportMetric(build.Seconds(), "s/build")
		b.ReportMetric((total - build).Seconds(), "s/csv")
		b.ReportMetric(scan.Seconds(), "s/scan")
		b.ReportMetric(float64(peak)/(1<<20), "MiB/peak-rss")
		b.ReportMetric(float64(ms.HeapSys)/(1<<20), "MiB/go-heap")
		b.ReportMetric(float64(written.Load()), "rows/csv")
		b.Logf("%d hosts (%d scanned), %d kept, %d subscribers, %d CSV rows; DuckDB memory_limit %d MB",
			set.Hosts, scanned, set.Kept, set.Len(), written.Load(), memMB)
		s.Close()
		db.Close()
		b.StartTimer()
	}
}

// BenchmarkCSV writes one report of 100,000 rows.
func BenchmarkCSV(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	rows := make([]eventstore.HostRow, 100_000)
	for i := range rows {
		rows[i] = randomRow(r)
	}
	rep, err := NewReport(Subscriber{Name: "all", Scope: scope.Scope{Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}},
		fxDay, fxDay.AddDate(0, 0, 1), rows)
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range Formats() {
		b.Run("format="+f, func(b *testing.B) {
			w, _ := NewWriter(f, fixtureOptions())
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := w.Write(&buf, rep); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rep.Len())*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
