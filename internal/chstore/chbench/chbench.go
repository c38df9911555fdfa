// Package chbench helps the benchmarks that compare the ClickHouse engine
// (internal/chstore) with the DuckDB engine on the same events: it says
// which engines to run (TAKEDOWN_BENCH_ENGINES), fills the servers of
// internal/chtest with a copy of the DuckDB engine's events (loaded by
// clickhouse-client), and reads the servers' CPU time and memory from
// /proc, so that a benchmark can say what the server spent beside what
// the Go process did. It does not import the engines themselves (only
// the composition does, TestLayering): the benchmarks open them.
package chbench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/takedown-project/takedown/internal/chtest"
)

// exportColumns are the columns of the DuckDB engine's events that
// DuckDBExport writes, as DuckDB expressions, in the order of
// stagingColumns: those the generators of the benchmarks fill
// (storegen's Waledac and ConfickerDay); the others stay empty (” and
// 0). Addresses go as 32 hex digits.
var exportColumns = []string{
	"epoch_ns(time)", "src_ip",
	"printf('%016x%016x', (coalesce(src_ip6, src_ip::UHUGEINT + 281470681743360) >> 64)::UBIGINT, (coalesce(src_ip6, src_ip::UHUGEINT + 281470681743360) & 18446744073709551615)::UBIGINT)",
	"src_port",
	"printf('%016x%016x', (coalesce(dst_ip, 0) >> 64)::UBIGINT, (coalesce(dst_ip, 0) & 18446744073709551615)::UBIGINT)",
	"dst_port", "bytes", "asn", "latitude", "longitude",
	"coalesce(sensor, '')", "coalesce(protocol, '')", "coalesce(transport, '')", "coalesce(domain, '')",
	"coalesce(zone, '')", "coalesce(case_name, '')", "coalesce(family, '')", "coalesce(tag, '')", "coalesce(bot_id, '')",
	"coalesce(http_method, '')", "coalesce(http_path, '')", "coalesce(http_user_agent, '')",
	"coalesce(as_name, '')", "coalesce(country_code, '')", "coalesce(region, '')", "coalesce(city, '')",
}

// stagingColumns is the table the export is loaded into, and how each
// column goes into events.
var stagingColumns = []struct{ name, typ, value string }{
	{"time_ns", "Int64", "time_ns"}, {"src_ip", "UInt64", "src_ip"},
	{"src_ip6", "String", "toFixedString(unhex(src_ip6), 16)"}, {"src_port", "UInt16", "src_port"},
	{"dst_ip", "String", "toFixedString(unhex(dst_ip), 16)"}, {"dst_port", "UInt16", "dst_port"},
	{"bytes", "Int64", "bytes"}, {"asn", "UInt32", "asn"}, {"latitude", "Float64", "latitude"}, {"longitude", "Float64", "longitude"},
	{"sensor", "String", "sensor"}, {"protocol", "String", "protocol"}, {"transport", "String", "transport"},
	{"domain", "String", "domain"}, {"zone", "String", "zone"}, {"case_name", "String", "case_name"},
	{"family", "String", "family"}, {"tag", "String", "tag"}, {"bot_id", "String", "bot_id"},
	{"http_method", "String", "http_method"}, {"http_path", "String", "http_path"}, {"http_user_agent", "String", "http_user_agent"},
	{"as_name", "String", "as_name"}, {"country_code", "String", "country_code"}, {"region", "String", "region"}, {"city", "String", "city"},
}

// DuckDBExport returns the statement that writes the events of the
// DuckDB engine (internal/store) to path as CSV, for Fill: the columns
// that storegen's generators fill. (Not TSV: DuckDB writes an empty
// string as "", which ClickHouse's CSV reads back as empty and its TSV
// as two quotes.)
func DuckDBExport(path string) string {
	return "COPY (SELECT " + strings.Join(exportColumns, ", ") + " FROM events) TO '" +
		strings.ReplaceAll(path, "'", "''") + "' (FORMAT csv, HEADER false)"
}

// Database is the database of the benchmarks' ClickHouse engine
// (chstore's default).
const Database = "takedown"

// Fill loads the events of another engine into the events table of
// Database on c, which the engine (chstore.Open) has made, unless it
// already holds want events: export writes them to a file (DuckDBExport), which
// clickhouse-client loads into a staging table of the first server; an
// INSERT … SELECT moves them into events (spread over the shards on a
// cluster), and every shard's parts are merged (OPTIMIZE … FINAL), so
// that the benchmark does not race the server's background merges. It
// returns the number of events loaded. A store that holds another number
// of events (a load cut off) is an error that says so.
func Fill(ctx context.Context, c *chtest.Cluster, want int64, export func(path string) error) (int64, error) {
	conn, err := c.Open(0)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	count := func() (int64, error) {
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM "+Database+".events").Scan(&n)
		return int64(n), err
	}
	have, err := count()
	if err != nil {
		return 0, err
	}
	switch have {
	case want:
		return 0, nil
	case 0:
	default:
		return 0, fmt.Errorf("chbench: the ClickHouse store holds %d events, the source %d: remove the servers' directory to load again", have, want)
	}
	dir, err := os.MkdirTemp("", "chbench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "events.csv")
	if err := export(path); err != nil {
		return 0, fmt.Errorf("chbench: exporting the events: %w", err)
	}
	var defs, names, values []string
	for _, c := range stagingColumns {
		defs = append(defs, c.name+" "+c.typ)
		names = append(names, c.name)
		values = append(values, c.value)
	}
	const staging = Database + ".fill_staging"
	if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+staging); err != nil {
		return 0, err
	}
	if err := conn.Exec(ctx, "CREATE TABLE "+staging+" ("+strings.Join(defs, ", ")+") ENGINE = Log"); err != nil {
		return 0, err
	}
	if err := Client(ctx, c, path, "", "INSERT INTO "+staging+" FORMAT CSV"); err != nil {
		return 0, err
	}
	sctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	insert := "INSERT INTO " + Database + ".events (day, " + strings.Join(names, ", ") + ") SELECT toDate(toDateTime(intDiv(time_ns, 1000000000))), " +
		strings.Join(values, ", ") + " FROM " + staging
	if err := conn.Exec(sctx, insert); err != nil {
		return 0, fmt.Errorf("chbench: moving the events from the staging table: %w", err)
	}
	if err := conn.Exec(ctx, "DROP TABLE "+staging); err != nil {
		return 0, err
	}
	local := "events"
	if c.Shards() > 1 {
		local = "events_local"
	}
	for i := range c.Shards() {
		sc, err := c.Open(i)
		if err != nil {
			return 0, err
		}
		err = sc.Exec(ctx, "OPTIMIZE TABLE "+Database+"."+local+" FINAL")
		sc.Close()
		if err != nil {
			return 0, fmt.Errorf("chbench: merging the parts of shard %d: %w", i, err)
		}
	}
	if have, err = count(); err != nil {
		return 0, err
	}
	if have != want {
		return 0, fmt.Errorf("chbench: %d events loaded, want %d", have, want)
	}
	return have, nil
}

// Client runs clickhouse-client on the first server of c as its user
// with query, its standard input from the file in and its output to the
// file out when they are set.
func Client(ctx context.Context, c *chtest.Cluster, in, out, query string) error {
	host, port, _ := strings.Cut(c.Addrs()[0], ":")
	cmd := exec.CommandContext(ctx, "clickhouse-client", "--host", host, "--port", port,
		"--user", c.User(), "--password", c.Password(), "--query", query)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if in != "" {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("clickhouse-client %.60q: %w: %s", query, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

// ServerPIDs returns the process ids of c's servers, found in /proc by
// their configuration file in the command line.
func ServerPIDs(c *chtest.Cluster) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		for i := range c.Shards() {
			if bytes.Contains(cmd, []byte(c.NodeDir(i)+"/config.xml")) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// ServerCPU returns the CPU time (user and system) c's servers have used
// so far, to the clock tick (10 ms).
func ServerCPU(c *chtest.Cluster) time.Duration {
	var total time.Duration
	for _, pid := range ServerPIDs(c) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// After the command's closing parenthesis: state is field 3,
		// utime 14, stime 15.
		_, rest, _ := bytes.Cut(b, []byte(") "))
		f := strings.Fields(string(rest))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(u+s) * 10 * time.Millisecond
	}
	return total
}

// ServerPeakRSS returns the sum of the peak resident set sizes (VmHWM) of
// c's servers, in bytes, since they started or ResetServerPeakRSS.
func ServerPeakRSS(c *chtest.Cluster) int64 {
	var total int64
	for _, pid := range ServerPIDs(c) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				total += kb << 10
			}
		}
	}
	return total
}

// ResetServerPeakRSS sets the servers' VmHWM to their current RSS (Linux
// 4.0+, the servers' owner or root).
func ResetServerPeakRSS(c *chtest.Cluster) {
	for _, pid := range ServerPIDs(c) {
		os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
	}
}

// LoadAvg returns the machine's load averages over 1, 5 and 15 minutes,
// to print beside a figure: on a shared machine they say how much of it
// the benchmark had.
func LoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Engines returns the engines a benchmark compares, named in
// TAKEDOWN_BENCH_ENGINES (comma-separated): duckdb (the DuckDB engine,
// the default), clickhouse (one server) and clickhouse2 (a cluster of two
// shards). An unknown name fails the benchmark.
func Engines(tb testing.TB) []string {
	v := os.Getenv("TAKEDOWN_BENCH_ENGINES")
	if v == "" {
		return []string{"duckdb"}
	}
	var out []string
	for name := range strings.SplitSeq(v, ",") {
		switch name = strings.TrimSpace(name); name {
		case "duckdb", "clickhouse", "clickhouse2":
			out = append(out, name)
		default:
			tb.Fatalf("TAKEDOWN_BENCH_ENGINES: unknown engine %q (want duckdb, clickhouse, clickhouse2)", name)
		}
	}
	return out
}

// Shards returns the number of shards of a ClickHouse engine of Engines.
func Shards(engine string) int {
	if engine == "clickhouse2" {
		return 2
	}
	return 1
}

var maxThreadsRE = regexp.MustCompile(`\n\s*<max_threads>\d+</max_threads>`)

// SetMaxThreads sets max_threads, the threads a query may use, in the
// default profile of c's servers, from $TAKEDOWN_BENCH_CH_THREADS when
// set (else it does nothing), and waits until every server answers with
// it. 18.16 takes the number of physical cores, and counts one on this
// VM: one thread a query. The users file that chrun wrote is edited and
// each server restarted (18.16 did not apply a reloaded profile to new
// sessions here); chrun writes the file anew at each Start.
func SetMaxThreads(tb testing.TB, c *chtest.Cluster) {
	tb.Helper()
	v := os.Getenv("TAKEDOWN_BENCH_CH_THREADS")
	if v == "" {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("TAKEDOWN_BENCH_CH_THREADS=%q: want a number of threads", v)
	}
	for i := range c.Shards() {
		path := c.NodeDir(i) + "/users.xml"
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		const at = "<profiles>\n        <default>"
		if !bytes.Contains(b, []byte(at)) {
			tb.Fatalf("%s: no default profile where chrun writes it", path)
		}
		// chrun writes max_threads (the CPUs): replace it, or add it.
		b = maxThreadsRE.ReplaceAll(b, nil)
		b = bytes.Replace(b, []byte(at), []byte(at+"\n            <max_threads>"+strconv.Itoa(n)+"</max_threads>"), 1)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			tb.Fatal(err)
		}
		c.Restart(i)
	}
	ctx := context.Background()
	for i := range c.Shards() {
		deadline := time.Now().Add(time.Minute)
		for {
			conn, err := c.Open(i)
			if err != nil {
				tb.Fatal(err)
			}
			var got string
			err = conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'max_threads'").Scan(&got)
			conn.Close()
			if err != nil {
				tb.Fatal(err)
			}
			if got == strconv.Itoa(n) {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("node %d: max_threads is still %s a minute after the users file set %d", i, got, n)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
