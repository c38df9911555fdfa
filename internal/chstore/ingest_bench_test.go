package chstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/chstore/chbench"
	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storegen"
)

// centralBatch is the batch the central stores at a time
// (collect.DefaultBatchSize).
const centralBatch = 20_000

// ingestSetup is one way of storing the benchmark's events.
type ingestSetup struct {
	name string
	run  func(ctx context.Context, ib *ingestBench, db string) error
}

// ingestBench holds what every setup of BenchmarkIngest shares.
type ingestBench struct {
	b      *testing.B
	c      *chtest.Cluster
	c2     *chtest.Cluster // two shards, started when a setup needs them
	events []event.Event
	dir    string
	files  map[string]string // bulk-load format → file of the same rows
}

// BenchmarkIngest stores the same events (storegen's Waledac mix, with
// payloads) in several ways and prints events/s of each, runs interleaved:
//
//	ch-w1-B   chstore.AppendMarked, one writer, batches of B events
//	ch-w2-B   two writers in parallel (two Stores, two sources), the
//	          batches dealt out in turn
//	bulk-tsv, bulk-native
//	          clickhouse-client's own INSERT … FORMAT of the same rows,
//	          from a file written beforehand (the load alone is timed)
//	duckdb-B  the DuckDB engine (internal/store) in a file, one writer
//	ch2-wN-20000
//	          N writers into a cluster of two shards on this machine
//	          (Distributed tables, insert_distributed_sync): only when
//	          named in TAKEDOWN_BENCH_INGEST_ONLY
//
// B is 20,000 (the central's batch) and 122,880. Each setup stores into
// a database (or file) of its own, dropped afterwards; every count is
// checked. The server is one clickhouse-server of chtest on this machine.
//
// Env: TAKEDOWN_BENCH_INGEST_EVENTS (default 200,000),
// TAKEDOWN_BENCH_INGEST_RUNS (default 1), TAKEDOWN_BENCH_INGEST_ONLY (a
// comma-separated list of setup names). Run with -benchtime=1x. Besides
// events/s, each line gives the CPU time per event of this process, of
// the servers and of clickhouse-client during the setup, and the load
// average when it began.
func BenchmarkIngest(b *testing.B) {
	n := envInt(b, "TAKEDOWN_BENCH_INGEST_EVENTS", 200_000)
	runs := envInt(b, "TAKEDOWN_BENCH_INGEST_RUNS", 1)
	only := map[string]bool{}
	for name := range strings.SplitSeq(os.Getenv("TAKEDOWN_BENCH_INGEST_ONLY"), ",") {
		if name = strings.TrimSpace(name); name != "" {
			only[name] = true
		}
	}
	ctx := context.Background()
	ib := &ingestBench{b: b, c: chtest.Start(b, chtest.Options{}), dir: b.TempDir(), files: map[string]string{}}
	gen := storegen.ForEvents(n)
	gen.BatchSize = 100_000
	if err := gen.Generate(func(batch []event.Event) error {
		ib.events = append(ib.events, batch...)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	ib.events = ib.events[:min(n, len(ib.events))]

	var setups []ingestSetup
	for _, size := range []int{centralBatch, 122_880} {
		setups = append(setups,
			ingestSetup{fmt.Sprintf("ch-w1-%d", size), func(ctx context.Context, ib *ingestBench, db string) error { return ib.chstore(ctx, ib.c, db, 1, size) }},
			ingestSetup{fmt.Sprintf("ch-w2-%d", size), func(ctx context.Context, ib *ingestBench, db string) error { return ib.chstore(ctx, ib.c, db, 2, size) }},
		)
	}
	for w := 1; w <= 2; w++ {
		setups = append(setups, ingestSetup{fmt.Sprintf("ch2-w%d-%d", w, centralBatch), func(ctx context.Context, ib *ingestBench, db string) error {
			return ib.chstore(ctx, ib.c2, db, w, centralBatch)
		}})
	}
	for _, format := range []string{"TSV", "Native"} {
		setups = append(setups, ingestSetup{"bulk-" + strings.ToLower(format), func(ctx context.Context, ib *ingestBench, db string) error {
			return ib.bulk(ctx, db, format)
		}})
	}
	for _, size := range []int{centralBatch, 122_880} {
		setups = append(setups, ingestSetup{fmt.Sprintf("duckdb-%d", size), func(ctx context.Context, ib *ingestBench, db string) error {
			return ib.duckdb(ctx, db, size)
		}})
	}
	if len(only) > 0 {
		setups = slices.DeleteFunc(setups, func(s ingestSetup) bool { return !only[s.name] })
	} else {
		setups = slices.DeleteFunc(setups, func(s ingestSetup) bool { return strings.HasPrefix(s.name, "ch2-") })
	}
	if slices.ContainsFunc(setups, func(s ingestSetup) bool { return strings.HasPrefix(s.name, "ch2-") }) {
		ib.c2 = chtest.Start(b, chtest.Options{Shards: 2})
	}

	// The bulk loads' files: the rows chstore stores, dumped by the
	// server in each format (a warm-up too).
	if slices.ContainsFunc(setups, func(s ingestSetup) bool { return strings.HasPrefix(s.name, "bulk-") }) {
		if err := ib.chstore(ctx, ib.c, "ingest_src", 1, centralBatch); err != nil {
			b.Fatal(err)
		}
		for _, format := range []string{"TSV", "Native"} {
			path := filepath.Join(ib.dir, "events."+strings.ToLower(format))
			if err := ib.client(ctx, "", path, "SELECT "+ingestColumns+" FROM ingest_src.events FORMAT "+format); err != nil {
				b.Fatal(err)
			}
			ib.files[format] = path
		}
		ib.exec(ctx, ib.c, "DROP DATABASE ingest_src")
	}

	rates := map[string][]float64{}
	b.ResetTimer()
	for r := range runs {
		for _, s := range setups {
			db := fmt.Sprintf("ingest_%d_%s", r, strings.ReplaceAll(s.name, "-", "_"))
			c := ib.c
			if strings.HasPrefix(s.name, "ch2-") {
				c = ib.c2
			}
			self0, server0, client0 := selfCPU(), chbench.ServerCPU(c), childCPU()
			load := chbench.LoadAvg()
			start := time.Now()
			if err := s.run(ctx, ib, db); err != nil {
				b.Fatalf("run %d, %s: %v", r+1, s.name, err)
			}
			d := time.Since(start)
			self, server, client := selfCPU()-self0, chbench.ServerCPU(c)-server0, childCPU()-client0
			rate := float64(len(ib.events)) / d.Seconds()
			rates[s.name] = append(rates[s.name], rate)
			perEvent := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(len(ib.events)) }
			b.Logf("run %d %-14s %8.0f events/s %6.2f s  cpu µs/event: go %4.2f server %4.2f client %4.2f  load %s",
				r+1, s.name, rate, d.Seconds(), perEvent(self), perEvent(server), perEvent(client), load)
			if !strings.HasPrefix(s.name, "duckdb") {
				if got := ib.count(ctx, c, db); got != uint64(len(ib.events)) {
					b.Fatalf("run %d, %s: %d events stored, want %d", r+1, s.name, got, len(ib.events))
				}
				for i := range c.Shards() {
					ib.exec(ctx, c, "DROP DATABASE "+db, i)
				}
			}
		}
	}
	b.StopTimer()
	var sum strings.Builder
	fmt.Fprintf(&sum, "%d events, %d runs: median events/s [min–max]", len(ib.events), runs)
	for _, s := range setups {
		med, lo, hi := medianRange(rates[s.name])
		fmt.Fprintf(&sum, "\n  %-16s %9.0f [%.0f–%.0f]", s.name, med, lo, hi)
		b.ReportMetric(med, "events/s-"+s.name)
	}
	b.Log(sum.String())
}

// ingestColumns are the columns of events the bulk loads carry: all of
// them.
const ingestColumns = "day, time_ns, src_ip, src_ip6, src_port, dst_ip, dst_port, sensor, protocol, transport, domain, zone, " +
	"case_name, family, tag, bot_id, http_method, http_path, http_user_agent, http_referer, forwarded_by, content_type, " +
	"tls_version, tls_cipher, tls_fingerprint, tls_alpn, dns_qtype, dns_rcode, dns_do, dns_client_subnet, smtp_helo, " +
	"smtp_from, smtp_rcpt_domains, smtp_rcpt_count, smtp_subject, smtp_message_id, error, malformed, bytes, " +
	"payload_sha256, payload_head, asn, as_name, country_code, region, city, latitude, longitude, batch, ev_hash"

func config(c *chtest.Cluster, db string) chstore.Config {
	cfg := chstore.Config{Addrs: c.Addrs(), Database: db, Username: c.User(), Password: c.Password()}
	if c.Shards() > 1 {
		cfg.Cluster, cfg.Shards = c.Name(), c.Addrs()
	}
	return cfg
}

// chstore stores the events into database db with the given number of
// writers, each a Store of its own with its own source, in batches of
// size; with two, the batches are dealt out in turn. Opening the Stores
// is timed too: a central does it once, and it is small beside the load.
func (ib *ingestBench) chstore(ctx context.Context, c *chtest.Cluster, db string, writers, size int) error {
	stores := make([]*chstore.Store, writers)
	for w := range stores {
		s, err := chstore.Open(ctx, config(c, db))
		if err != nil {
			return err
		}
		defer s.Close()
		stores[w] = s
	}
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w, s := range stores {
		wg.Go(func() {
			source := "bench-" + strconv.Itoa(w)
			for i, k := w*size, 0; i < len(ib.events); i, k = i+writers*size, k+1 {
				batch := ib.events[i:min(i+size, len(ib.events))]
				if err := s.AppendMarked(ctx, batch, source, []byte(strconv.Itoa(k))); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// bulk creates database db (chstore's schema) and loads the file of
// format into its events with clickhouse-client.
func (ib *ingestBench) bulk(ctx context.Context, db, format string) error {
	s, err := chstore.Open(ctx, config(ib.c, db))
	if err != nil {
		return err
	}
	s.Close()
	return ib.client(ctx, ib.files[format], "", "INSERT INTO "+db+".events ("+ingestColumns+") FORMAT "+format)
}

// client runs clickhouse-client with query, stdin from in and stdout to
// out when set.
func (ib *ingestBench) client(ctx context.Context, in, out, query string) error {
	return chbench.Client(ctx, ib.c, in, out, query)
}

// duckdb stores the events with the DuckDB engine into a new file, in
// batches of size, and removes the file.
func (ib *ingestBench) duckdb(ctx context.Context, name string, size int) error {
	path := filepath.Join(ib.dir, name+".db")
	defer os.Remove(path)
	defer os.Remove(path + ".wal")
	db, err := dbfile.Open(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	s, err := store.Open(ctx, store.Config{DB: db})
	if err != nil {
		return err
	}
	defer s.Close()
	for i, k := 0, 0; i < len(ib.events); i, k = i+size, k+1 {
		if err := s.AppendMarked(ctx, ib.events[i:min(i+size, len(ib.events))], "bench", []byte(strconv.Itoa(k))); err != nil {
			return err
		}
	}
	st, err := s.Stats(ctx)
	if err != nil {
		return err
	}
	if st.Events != int64(len(ib.events)) {
		return fmt.Errorf("%d events stored, want %d", st.Events, len(ib.events))
	}
	return nil
}

// exec runs sql on node 0 of c, or on the nodes given.
func (ib *ingestBench) exec(ctx context.Context, c *chtest.Cluster, sql string, nodes ...int) {
	ib.b.Helper()
	if len(nodes) == 0 {
		nodes = []int{0}
	}
	for _, i := range nodes {
		if err := c.Conn(ib.b, i).Exec(ctx, sql); err != nil {
			ib.b.Fatalf("node %d: %s: %v", i, sql, err)
		}
	}
}

func (ib *ingestBench) count(ctx context.Context, c *chtest.Cluster, db string) uint64 {
	ib.b.Helper()
	var n uint64
	if err := c.Conn(ib.b, 0).QueryRow(ctx, "SELECT count() FROM "+db+".events").Scan(&n); err != nil {
		ib.b.Fatal(err)
	}
	return n
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func medianRange(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Sorted(slices.Values(v))
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}

// selfCPU is the user and system CPU time of this process so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childCPU is the CPU time of the clickhouse-client processes this
// benchmark ran and waited for.
func childCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
