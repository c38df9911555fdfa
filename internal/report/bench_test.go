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

	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/chstore/chbench"
	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/scope"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storegen"
)

// benchDay is the small default, or the Conficker-scale day with
// TAKEDOWN_BENCH_CONFICKER=1: 7 M unique addresses over 30,000 networks,
// about 21 M callbacks, for 10,000 subscribers; another number N > 1 is
// that day scaled to N addresses (storegen.ConfickerScaled).
func benchDay(b *testing.B) (storegen.ConfickerDay, int) {
	switch v := os.Getenv("TAKEDOWN_BENCH_CONFICKER"); v {
	case "", "0":
		return storegen.ConfickerSmall, 300
	case "1":
		return storegen.ConfickerFull, 10_000
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("TAKEDOWN_BENCH_CONFICKER=%q: want 1 (full scale) or a number of addresses", v)
		}
		return storegen.ConfickerScaled(n)
	}
}

var (
	benchDate      = storegen.ConfickerDate
	benchCountries = storegen.ConfickerCountries
)

// benchSubscribers makes n subscribers as a real registry has them: 90 %
// one network each, 8 % an address block, 1.5 % a few networks, and the
// national CERTs of the 40 most infected countries (at full size).
func benchSubscribers(d storegen.ConfickerDay, n int) []Subscriber {
	r := rand.New(rand.NewPCG(1, 2))
	subs := make([]Subscriber, 0, n)
	certs := min(40, n/100+1)
	for i := range certs {
		subs = append(subs, Subscriber{Name: "cert-" + strings.ToLower(benchCountries[i]), TLP: "AMBER",
			Scope: scope.Scope{Countries: []string{benchCountries[i]}}})
	}
	asn := func() uint32 { return uint32(64512 + r.IntN(d.ASNs)) }
	for len(subs) < n {
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
// writes each as CSV (to io.Discard, on GOMAXPROCS goroutines), from a
// synthetic day (storegen.ConfickerDay) in each engine of the event store:
// small by default, Conficker-scale (7 M addresses, 30,000 networks,
// 10,000 subscribers) with TAKEDOWN_BENCH_CONFICKER=1. Run with
// -benchtime=1x.
//
// The engines are TAKEDOWN_BENCH_ENGINES, a comma-separated list of
// duckdb (the default), clickhouse (one clickhouse-server on this
// machine) and clickhouse2 (two shards of a cluster on this machine), one
// sub-benchmark each (engine=NAME), all over the same events: the day is
// generated in a DuckDB file, and ClickHouse's events are loaded from it
// (chbench.Fill). The file and the servers' data are kept in
// TAKEDOWN_BENCH_DIR when set, and reused. DuckDB's memory limit is
// TAKEDOWN_BENCH_DUCKDB_MB (512 by default).
//
// Metrics: s/reports (Build and every CSV), s/build, s/csv, and s/scan —
// the store's HostRows alone, the floor a report generator on the store
// cannot go below; MiB/peak-rss (VmHWM of this process from the start of
// the reports), MiB/go-heap (the Go heap's share of it: the rest is
// DuckDB's), rows/csv (rows written), and for ClickHouse
// MiB/server-peak-rss and s/server-cpu (the servers' peak memory and CPU
// time during the reports).
func BenchmarkConfickerDay(b *testing.B) {
	d, nsubs := benchDay(b)
	ctx := context.Background()
	dir := os.Getenv("TAKEDOWN_BENCH_DIR")
	keep := dir != ""
	if !keep {
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
	openDuckDB := func() (*sql.DB, *store.Store) {
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
		db, s := openDuckDB()
		for _, stmt := range d.DuckDBStatements() {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				b.Fatalf("%.40s…: %v", stmt, err)
			}
		}
		s.Close()
		db.Close()
		b.Logf("generated %s in %s", path, time.Since(start).Round(time.Millisecond))
	}
	subs := benchSubscribers(d, nsubs)
	from, to := Day(benchDate)

	for _, engine := range chbench.Engines(b) {
		b.Run("engine="+engine, func(b *testing.B) {
			// open returns the engine's reader, and what closes it.
			var (
				open func() (Source, func())
				ch   *chtest.Cluster
			)
			switch engine {
			case "duckdb":
				open = func() (Source, func()) {
					db, s := openDuckDB()
					return s, func() { s.Close(); db.Close() }
				}
			default:
				chDir := ""
				if keep {
					chDir = filepath.Join(dir, fmt.Sprintf("%s-%d-%d", engine, d.Hosts, d.ASNs))
				}
				var cs *chstore.Store
				ch, cs = openClickHouse(b, engine, chDir)
				db, s := openDuckDB()
				st, err := s.Stats(ctx)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				n, err := chbench.Fill(ctx, ch, st.Events, func(path string) error {
					_, err := db.ExecContext(ctx, chbench.DuckDBExport(path))
					return err
				})
				s.Close()
				db.Close()
				if err != nil {
					b.Fatal(err)
				}
				if n > 0 {
					b.Logf("loaded %d events into %s in %s", n, engine, time.Since(start).Round(time.Millisecond))
				}
				open = func() (Source, func()) { return cs, func() {} }
			}
			for range b.N {
				b.StopTimer()
				src, closeSrc := open()
				runtime.GC()
				debug.FreeOSMemory()
				// The floor: the store's aggregation alone.
				start := time.Now()
				scanned := 0
				if err := src.HostRows(ctx, eventstore.HostRowQuery{From: from, To: to}, func(*eventstore.HostRow) error { scanned++; return nil }); err != nil {
					b.Fatal(err)
				}
				scan := time.Since(start)
				closeSrc()
				runtime.GC()
				debug.FreeOSMemory()

				src, closeSrc = open()
				resetPeakRSS()
				var serverCPU time.Duration
				if ch != nil {
					chbench.ResetServerPeakRSS(ch)
					serverCPU = -chbench.ServerCPU(ch)
				}
				b.StartTimer()
				start = time.Now()
				set, err := Build(ctx, src, subs, from, to)
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
				if ch != nil {
					serverCPU += chbench.ServerCPU(ch)
					b.ReportMetric(float64(chbench.ServerPeakRSS(ch))/(1<<20), "MiB/server-peak-rss")
					b.ReportMetric(serverCPU.Seconds(), "s/server-cpu")
				}
				b.Logf("%s: %d hosts (%d scanned), %d kept, %d subscribers, %d CSV rows; DuckDB memory_limit %d MB; load %s",
					engine, set.Hosts, scanned, set.Kept, set.Len(), written.Load(), memMB, chbench.LoadAvg())
				closeSrc()
				b.StartTimer()
			}
		})
	}
}

// openClickHouse starts engine's servers (clickhouse: one, clickhouse2: a
// cluster of two shards) with their data in dir (a temporary one when
// empty), max_threads from $TAKEDOWN_BENCH_CH_THREADS, and opens the
// engine on them; both end with the benchmark.
func openClickHouse(b *testing.B, engine, dir string) (*chtest.Cluster, *chstore.Store) {
	c := chtest.Start(b, chtest.Options{Shards: chbench.Shards(engine), Dir: dir})
	chbench.SetMaxThreads(b, c)
	cfg := chstore.Config{Addrs: c.Addrs(), Database: chbench.Database, Username: c.User(), Password: c.Password()}
	if c.Shards() > 1 {
		cfg.Cluster, cfg.Shards = c.Name(), c.Addrs()
	}
	s, err := chstore.Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return c, s
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
