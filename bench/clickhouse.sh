#!/usr/bin/env bash
# clickhouse.sh - the ClickHouse engine's benchmarks (issue 20), each
# against the DuckDB engine on the same events, on clickhouse-server
# processes that the benchmarks start on this machine (internal/chtest):
#
#   ingest     BenchmarkIngest (internal/chstore): events/s through
#              AppendMarked, one and two writers, batches of 20,000 and
#              122,880, against clickhouse-client's bulk load of the same
#              rows (TSV, Native) and the DuckDB engine; runs interleaved,
#              median and range printed by the benchmark
#   reports    BenchmarkConfickerDay (internal/report): every subscriber's
#              report of a Conficker-scale day (7 M addresses, 21 M events,
#              10,000 subscribers) on duckdb, clickhouse (one node) and
#              clickhouse2 (two shards)
#   dashboard  BenchmarkConfickerDay (internal/dashboard): the dashboard's
#              requests over the same day, on the same three engines (10
#              requests each, ns/op their mean)
#
#   bench/clickhouse.sh ingest [EVENTS] [RUNS]   # default 1,000,000 events, 3 runs
#   bench/clickhouse.sh reports|dashboard
#   bench/clickhouse.sh all
#
# Env: DIR (default /tmp/td-clickhouse-bench) keeps the generated day (a
# DuckDB file) and each engine's servers with their data between runs:
# the first run generates and loads (several minutes), the next reuse
# them. ENGINES (default duckdb,clickhouse,clickhouse2), INGEST_ONLY
# (setup names, see BenchmarkIngest; default every ch-, bulk- and
# duckdb-122880), SCALE (TAKEDOWN_BENCH_CONFICKER: 1 the full day, 0 the
# small one, N > 1 the day scaled to N addresses; default 1), THREADS
# (TAKEDOWN_BENCH_CH_THREADS: the servers' max_threads; 18.16 takes one
# on this VM).
# OUT (default /tmp/td-clickhouse-<time>) gets the raw `go test` output
# of each, headed by the commit, the machine and the load.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHAT=${1:-all}
DIR=${DIR:-/tmp/td-clickhouse-bench}
ENGINES=${ENGINES:-duckdb,clickhouse,clickhouse2}
OUT=${OUT:-/tmp/td-clickhouse-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$DIR" "$OUT"
cd "$HERE"
CONFICKER=${SCALE:-1}
ONLY=${INGEST_ONLY:-ch-w1-20000,ch-w2-20000,ch-w1-122880,ch-w2-122880,bulk-tsv,bulk-native,duckdb-122880}

header() { # NAME: what the figures in OUT/NAME.txt were taken on
	{
		echo "# $1 $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "# commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo ' (with uncommitted changes)')"
		echo "# $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
		echo "# $(free -g | awk '/^Mem:/ {print $2 " GB RAM"}'), $(clickhouse-client --version 2>/dev/null | head -1)"
		echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"
	} > "$OUT/$1.txt"
}

run() { # NAME PACKAGE BENCH BENCHTIME [ENV...]
	local name=$1 pkg=$2 bench=$3 times=$4
	shift 4
	header "$name"
	echo "$name: go test -bench '$bench' $pkg → $OUT/$name.txt"
	env "$@" go test -v -run '^$' -bench "$bench" -benchtime="$times" -timeout 120m "$pkg" 2>&1 | tee -a "$OUT/$name.txt"
	echo "# load after $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/$name.txt"
}

case $WHAT in
ingest | all)
	run ingest ./internal/chstore '^BenchmarkIngest$' 1x \
		TAKEDOWN_BENCH_INGEST_EVENTS="${2:-1000000}" TAKEDOWN_BENCH_INGEST_RUNS="${3:-3}" \
		TAKEDOWN_BENCH_INGEST_ONLY="$ONLY"
	;;&
reports | all)
	run reports ./internal/report '^BenchmarkConfickerDay$' 1x \
		TAKEDOWN_BENCH_DIR="$DIR" TAKEDOWN_BENCH_CONFICKER="$CONFICKER" TAKEDOWN_BENCH_ENGINES="$ENGINES" TAKEDOWN_BENCH_CH_THREADS="${THREADS:-}"
	;;&
dashboard | all)
	run dashboard ./internal/dashboard '^BenchmarkConfickerDay$' 10x \
		TAKEDOWN_BENCH_DIR="$DIR" TAKEDOWN_BENCH_CONFICKER="$CONFICKER" TAKEDOWN_BENCH_ENGINES="$ENGINES" TAKEDOWN_BENCH_CH_THREADS="${THREADS:-}"
	;;
ingest | reports) ;;
*)
	echo "usage: bench/clickhouse.sh ingest [EVENTS] [RUNS] | reports | dashboard | all" >&2
	exit 2
	;;
esac
echo "output in $OUT"
