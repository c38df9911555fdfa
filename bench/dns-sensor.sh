#!/usr/bin/env bash
# dns-sensor.sh - DNS throughput of a sensor (bench/fleet.sh: NATS cluster,
# central, one sensor on 127.0.0.1:5300) against the role-less serve
# (bench/dns-ours.sh, same data, same DNS settings), interleaved: sensor,
# single, sensor, single, ... Each round runs ../shared/bench/dns-peers.sh
# with NSD (and Knot) and ours added (--also), so that each run pairs ours
# with a peer measured in the same session; the ratio sensor/single is
# taken on those ours/NSD ratios and on the qps of paired rounds.
#
#   bench/dns-sensor.sh [ROUNDS]          # default 3
#   bench/dns-ratio.py OUT                # ours/NSD per run, median and range per side
#
# Env: RUNS (3), DURATION (10 s), SERVERS ("nsd knot"), OUT (default
# /tmp/td-dns-sensor-<time>), SIDES (default "sensor single"; "sensoridle"
# is the sensor with NATS and the central in the idle CPU class, as if they
# ran on other machines: see IDLE in bench/fleet.sh).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEERS=$HERE/../../shared/bench/dns-peers.sh
[ -f "$PEERS" ] || PEERS=/work/shared/bench/dns-peers.sh
ROUNDS=${1:-3}
RUNS=${RUNS:-3} DURATION=${DURATION:-10} SERVERS=${SERVERS:-nsd knot}
OUT=${OUT:-/tmp/td-dns-sensor-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
# busy PORT...: fails when another process answers on one of the UDP ports.
busy() { local p; for p in "$@"; do ss -Hlun "sport = :$p" | grep -q . && { echo "port $p is busy: stop what listens there first" >&2; exit 1; }; done; return 0; }
for r in $(seq "$ROUNDS"); do
	for side in ${SIDES:-sensor single}; do
		busy 5300
		echo "== round $r: $side" | tee -a "$OUT/log"
		if [ $side != single ]; then
			idle=0; [ $side = sensoridle ] && idle=1
			IDLE=$idle DIR=/tmp/td-fleet bash "$HERE/fleet.sh" start 1 >> "$OUT/log" 2>&1
			pid=$(cat /tmp/td-fleet/s1.pid)
		else
			DIR=/tmp/td-single bash "$HERE/dns-ours.sh" start >> "$OUT/log" 2>&1
			pid=$(cat /tmp/td-single/serve.pid)
		fi
		bash "$PEERS" --runs "$RUNS" --duration "$DURATION" --servers "$SERVERS" --modes off \
			--also 127.0.0.1:5300 --label "$side-$r" --pid "$pid" \
			> "$OUT/$side-$r.txt" 2>&1 || echo "dns-peers failed for $side-$r" | tee -a "$OUT/log"
		res=$(sed -n 's/.*results in \([^ ]*\) ;.*/\1/p' "$OUT/$side-$r.txt" | head -1)
		[ -n "$res" ] && cp "$res/raw.csv" "$OUT/$side-$r.csv"
		if [ $side != single ]; then
			DIR=/tmp/td-fleet bash "$HERE/fleet.sh" stop >> "$OUT/log" 2>&1
		else
			DIR=/tmp/td-single bash "$HERE/dns-ours.sh" stop >> "$OUT/log" 2>&1
		fi
	done
done
echo "results in $OUT"
"$HERE/dns-ratio.py" "$OUT"
