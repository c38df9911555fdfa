#!/usr/bin/env bash
# hop.sh - CPU per event of the JetStream hop (issue 19) beside the local
# spool: BenchmarkUplink (the sensor's side: spool -> stream, against a
# nats-server process of its own, so the CPU measured is the sensor's
# alone), BenchmarkCollect (the central's side: stream -> store, embedded
# server; and the same records appended to the store directly), and the
# single process's path into its spool: BenchmarkRecord (internal/pipeline)
# and BenchmarkAppend (internal/spool), both with -cpu 1 so that ns/op is
# the CPU the process spends per event (the writer goroutine included).
#
#   bench/hop.sh [COUNT]        # default -count 6; prints medians and ranges
#
# Env: NATS_SERVER (default: $TAKEDOWN_NATS_SERVER or nats-server on PATH,
# Debian 12's 2.9.10), NATS_PORT (default 14222), UPLINK_EVENTS (200000),
# OUT (default /tmp/td-hop-<time>). Raw `go test` output in OUT/*.txt.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COUNT=${1:-6}
NATS_SERVER=${NATS_SERVER:-${TAKEDOWN_NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}}
NATS_PORT=${NATS_PORT:-14222}
OUT=${OUT:-/tmp/td-hop-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/nats"
ss -Hltn "sport = :$NATS_PORT" | grep -q . && { echo "port $NATS_PORT is busy (NATS_PORT=...)" >&2; exit 1; }
"$NATS_SERVER" --version > "$OUT/nats-version.txt" 2>&1 || true
"$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$OUT/nats" > "$OUT/nats.log" 2>&1 </dev/null &
NPID=$!
trap 'kill $NPID 2>/dev/null; wait $NPID 2>/dev/null || true' EXIT
for _ in $(seq 100); do ss -Hltn "sport = :$NATS_PORT" | grep -q . && break; sleep 0.1; done
cd "$HERE"
echo "nats-server $(cat "$OUT/nats-version.txt") on 127.0.0.1:$NATS_PORT (pid $NPID); go test output in $OUT"
go test -c -o "$OUT/uplink.test" ./internal/uplink
go test -c -o "$OUT/collect.test" ./internal/collect
go test -c -o "$OUT/pipeline.test" ./internal/pipeline
go test -c -o "$OUT/spool.test" ./internal/spool
TAKEDOWN_BENCH_NATS_URL=nats://127.0.0.1:$NATS_PORT "$OUT/uplink.test" -test.run '^$' -test.bench '^BenchmarkUplink$' \
	-test.benchtime "${UPLINK_EVENTS:-200000}x" -test.count "$COUNT" | tee "$OUT/uplink.txt"
"$OUT/collect.test" -test.run '^$' -test.bench '^BenchmarkCollect$' -test.benchtime 1x -test.count "$COUNT" | tee "$OUT/collect.txt"
"$OUT/pipeline.test" -test.run '^$' -test.bench '^BenchmarkRecord$' -test.cpu 1 -test.count "$COUNT" | tee "$OUT/record.txt"
"$OUT/spool.test" -test.run '^$' -test.bench '^BenchmarkAppend$' -test.cpu 1 -test.count "$COUNT" | tee "$OUT/append.txt"
python3 "$HERE/bench/benchsum.py" "$OUT"/{uplink,collect,record,append}.txt
