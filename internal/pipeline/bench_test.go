package pipeline

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/enrich"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storegen"
	"github.com/takedown-project/takedown/internal/uniq"
)

// BenchmarkWaledacWeek is issue 5's end-to-end benchmark: a Waledac week
// (14.6 M HTTP events of 58,000 hosts; TAKEDOWN_BENCH_EVENTS scales it)
// recorded into the spool as fast as the generator makes them, and carried
// by the pipeline through enrichment (the demo world database, a real
// MMDB), the live unique counters and the store. It reports events per
// second from the first record to the last one stored, the peak resident
// memory of the process, and the unique hosts counted. Run it with
// -benchtime=1x.
func BenchmarkWaledacWeek(b *testing.B) {
	n := 14_600_000
	if v := os.Getenv("TAKEDOWN_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("TAKEDOWN_BENCH_EVENTS=%q", v)
		}
	}
	world, err := demoworld.New()
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		worldDB := filepath.Join(dir, "world.mmdb")
		if err := world.WriteFile(worldDB); err != nil {
			b.Fatal(err)
		}
		enr, err := enrich.New(enrich.Config{Databases: []string{worldDB}})
		if err != nil {
			b.Fatal(err)
		}
		sp, err := spool.Open(spool.Config{Dir: filepath.Join(dir, "spool"), MaxBytes: 16 << 30})
		if err != nil {
			b.Fatal(err)
		}
		db, err := dbfile.Open(context.Background(), filepath.Join(dir, "takedown.duckdb"))
		if err != nil {
			b.Fatal(err)
		}
		// As serve does by default (store.memory_limit_mb).
		if _, err := db.Exec(`SET memory_limit = '1024MB'`); err != nil {
			b.Fatal(err)
		}
		st, err := store.Open(context.Background(), store.Config{DB: db})
		if err != nil {
			b.Fatal(err)
		}
		hosts := uniq.New(uniq.Config{})
		p, err := New(Config{Spool: sp, Store: st, Enricher: enr, Observer: hosts})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx, time.Minute) }()

		gen := storegen.ForEvents(n)
		gen.BatchSize = 4096
		b.ResetTimer()
		start := time.Now()
		err = gen.Generate(func(batch []event.Event) error {
			for j := range batch {
				e := &batch[j]
				// The demo world knows 127.0.0.0/8: give each generated
				// host an address there, and let the enricher find its
				// network again.
				a4 := e.SrcIP.As4()
				e.SrcIP = world.Addr(uint64(a4[0])<<24 | uint64(a4[1])<<16 | uint64(a4[2])<<8 | uint64(a4[3]))
				e.ASN, e.ASName, e.CountryCode, e.Region, e.City, e.Latitude, e.Longitude = 0, "", "", "", "", 0, 0
				for !p.Record(e) {
					time.Sleep(time.Millisecond) // spool full: not expected at 16 GiB
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		recorded := time.Since(start)
		for p.Stats().Stored < uint64(n) {
			time.Sleep(50 * time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n)/took.Seconds(), "events/s")
		b.ReportMetric(float64(n)/recorded.Seconds(), "recorded/s")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
		var unique uint64
		for _, c := range hosts.Range(time.Time{}, time.Now().AddDate(100, 0, 0)) {
			unique += c.Hosts
		}
		b.ReportMetric(float64(unique), "unique-hosts")
		st.Close()
		db.Close()
		sp.Close()
		enr.Close()
	}
}

// peakRSS returns the process's peak resident set (VmHWM) in bytes.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
