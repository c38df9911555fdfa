#!/usr/bin/env bash
# events-rate.sh - events stored per second, from the first DNS query to the
# last event in the store, for the same load sent to (a) a single serve
# (bench/dns-ours.sh), (b) one sensor and (c) two sensors (half the queries
# each) of a fleet with a central (bench/fleet.sh). Every query is an event.
# Each run starts its setup afresh, sends QUERIES queries with dnsperf
# (the data set's query file, -n times; two dnsperf at once for two
# sensors), then polls `takedown status --json` (store events of the single
# serve or the central) every 0.2 s until the store holds every event the
# sinks recorded. Runs are interleaved: single, one sensor, two sensors.
#
#   bench/events-rate.sh [RUNS] [QUERIES]     # default 3 runs of 1,000,000 queries
#
# Output: one line per run and the medians, ranges and ratios to (a);
# raw CSV in $OUT (default /tmp/td-events-<time>)/events.csv.
# Env: WORK (default /tmp/sinkhole-bench), CLIENTS (dnsperf -c, 4),
# OUTSTANDING (dnsperf -q in all, 100: split between two dnsperf).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNS=${1:-3} QUERIES=${2:-1000000}
WORK=${WORK:-/tmp/sinkhole-bench}
CLIENTS=${CLIENTS:-4} OUTSTANDING=${OUTSTANDING:-100}
OUT=${OUT:-/tmp/td-events-$(date +%Y%m%d-%H%M%S)}
SDIR=/tmp/td-events-single FDIR=/tmp/td-events-fleet
mkdir -p "$OUT"
Q=$WORK/queries.txt
LINES=$(wc -l < "$Q")
[ $((QUERIES % LINES)) = 0 ] || { echo "QUERIES must be a multiple of $LINES (the query file's lines)" >&2; exit 2; }
REPS=$((QUERIES / LINES))
head -n $((LINES / 2)) "$Q" > "$OUT/q1.txt"
tail -n +$((LINES / 2 + 1)) "$Q" > "$OUT/q2.txt"
CSV=$OUT/events.csv
echo "run,setup,queries_sent,recorded,dns_s,total_s,events_per_s" > "$CSV"

# busy PORT...: fails when another process answers on one of the UDP ports.
busy() { local p; for p in "$@"; do ss -Hlun "sport = :$p" | grep -q . && { echo "port $p is busy: stop what listens there first" >&2; exit 1; }; done; return 0; }

num() { # CONFIG EXPR: a number from `takedown status --json`
	"$BIN" -c "$1" status --json 2>/dev/null | python3 -c "import json,sys; s=json.load(sys.stdin); print($2)" 2>/dev/null || echo -1
}
now() { date +%s.%N; }

measure() { # RUN SETUP
	local run=$1 setup=$2 store rec=() e0 r0=0 r1=0 t0 t1 t2 target have c
	busy 5300 5301
	case $setup in
		single) DIR=$SDIR bash "$HERE/dns-ours.sh" start >> "$OUT/log" 2>&1
			BIN=$SDIR/takedown; store=$SDIR/takedown.yaml; rec=("$store") ;;
		sensor1) DIR=$FDIR bash "$HERE/fleet.sh" start 1 >> "$OUT/log" 2>&1
			BIN=$FDIR/takedown; store=$FDIR/central.yaml; rec=("$FDIR/s1.yaml") ;;
		sensor2) DIR=$FDIR bash "$HERE/fleet.sh" start 2 >> "$OUT/log" 2>&1
			BIN=$FDIR/takedown; store=$FDIR/central.yaml; rec=("$FDIR/s1.yaml" "$FDIR/s2.yaml") ;;
	esac
	sleep 3 # the startup's own work settles
	e0=$(num "$store" "s['store']['events']")
	for c in "${rec[@]}"; do r0=$((r0 + $(num "$c" "s['pipeline']['recorded']"))); done
	t0=$(now)
	if [ "$setup" = sensor2 ]; then
		dnsperf -s 127.0.0.1 -p 5300 -d "$OUT/q1.txt" -n "$REPS" -c "$CLIENTS" -q $((OUTSTANDING / 2)) > "$OUT/$run-$setup-1.dnsperf" 2>&1 &
		local p1=$!
		dnsperf -s 127.0.0.1 -p 5301 -d "$OUT/q2.txt" -n "$REPS" -c "$CLIENTS" -q $((OUTSTANDING / 2)) > "$OUT/$run-$setup-2.dnsperf" 2>&1
		wait $p1
	else
		dnsperf -s 127.0.0.1 -p 5300 -d "$Q" -n "$REPS" -c "$CLIENTS" -q "$OUTSTANDING" > "$OUT/$run-$setup.dnsperf" 2>&1
	fi
	t1=$(now)
	sleep 0.5
	for c in "${rec[@]}"; do r1=$((r1 + $(num "$c" "s['pipeline']['recorded']"))); done
	target=$((e0 + r1 - r0))
	for _ in $(seq 4500); do # 900 s at most
		have=$(num "$store" "s['store']['events']")
		[ "$have" -ge "$target" ] && break
		sleep 0.2
	done
	t2=$(now)
	[ "$have" -ge "$target" ] || echo "run $run $setup: the store holds $((have - e0)) of $((r1 - r0)) events after 900 s" | tee -a "$OUT/log"
	local sent
	sent=$(cat "$OUT/$run-$setup"*.dnsperf | sed -n 's/.*Queries sent: *\([0-9]*\).*/\1/p' | awk '{t += $1} END {print t}')
	python3 - "$run" "$setup" "$sent" "$((r1 - r0))" "$t0" "$t1" "$t2" >> "$CSV" <<'PY'
import sys
run, setup, sent, rec, t0, t1, t2 = sys.argv[1:]
t0, t1, t2 = float(t0), float(t1), float(t2)
print(f"{run},{setup},{sent},{rec},{t1-t0:.2f},{t2-t0:.2f},{int(rec)/(t2-t0):.0f}")
PY
	tail -1 "$CSV"
	case $setup in
		single) DIR=$SDIR bash "$HERE/dns-ours.sh" stop >> "$OUT/log" 2>&1 ;;
		*) DIR=$FDIR bash "$HERE/fleet.sh" stop >> "$OUT/log" 2>&1 ;;
	esac
}

echo "events-rate: $RUNS runs of $QUERIES queries (dnsperf -c $CLIENTS -q $OUTSTANDING); results in $OUT"
head -1 "$CSV"
for run in $(seq "$RUNS"); do
	for setup in single sensor1 sensor2; do measure "$run" "$setup"; done
done
python3 - "$CSV" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in rows:
    by.setdefault(r["setup"], {})[r["run"]] = float(r["events_per_s"])
def med(v): return statistics.median(v)
print("setup     events/s stored: median (range)      ratio to single per run: median (range)")
for s in ("single", "sensor1", "sensor2"):
    v = list(by.get(s, {}).values())
    if not v: continue
    rat = [by[s][k] / by["single"][k] for k in by[s] if k in by.get("single", {})]
    print(f"{s:9} {med(v):10,.0f} ({min(v):,.0f}–{max(v):,.0f})   {med(rat):.2f} ({min(rat):.2f}–{max(rat):.2f})")
PY
