#!/usr/bin/env bash
# dns-before-after.sh - DNS throughput of two builds of takedown (two git
# worktrees, e.g. before and after a change) beside NSD and Knot, interleaved:
# after, before, after, before, ... so that the machine's drift falls on both.
# Each round starts one tree's `bench/dns-ours.sh`, runs
# ../shared/bench/dns-peers.sh with it added (--also), and stops it.
#
#   bench/dns-before-after.sh BEFORE_TREE AFTER_TREE [ROUNDS]
#   bench/dns-before-after.sh /work/wt/before /work/wt/after 2     # issue 18's figures
#
# Then bench/dns-ratio.py OUT prints ours/NSD per paired run and per side.
# Env: RUNS (3), DURATION (10 s), SERVERS ("nsd knot"), OUT (where the logs and
# the per-round raw.csv go, default /tmp/td-before-after-<time>).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=$HERE/../shared/bench/dns-peers.sh
[ -f "$PEERS" ] || PEERS=/work/shared/bench/dns-peers.sh
BEFORE=${1:?before tree}; AFTER=${2:?after tree}; ROUNDS=${3:-2}
RUNS=${RUNS:-3} DURATION=${DURATION:-10} SERVERS=${SERVERS:-nsd knot}
OUT=${OUT:-/tmp/td-before-after-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
# busy PORT...: fails when another process answers on one of the UDP ports.
busy() { local p; for p in "$@"; do ss -Hlun "sport = :$p" | grep -q . && { echo "port $p is busy: stop what listens there first" >&2; exit 1; }; done; return 0; }
for r in $(seq "$ROUNDS"); do
	for side in after before; do
		tree=$AFTER; [ $side = before ] && tree=$BEFORE
		busy 5300
		echo "== round $r: $side ($tree at $(git -C "$tree" rev-parse --short HEAD))" | tee -a "$OUT/log"
		(cd "$tree" && DIR=/tmp/td-$side bash bench/dns-ours.sh start) >> "$OUT/log" 2>&1
		bash "$PEERS" --runs "$RUNS" --duration "$DURATION" --servers "$SERVERS" --modes off \
			--also 127.0.0.1:5300 --label "$side-$r" --pid "$(cat /tmp/td-$side/serve.pid)" \
			> "$OUT/$side-$r.txt" 2>&1 || echo "dns-peers failed for $side-$r" | tee -a "$OUT/log"
		res=$(sed -n 's/.*results in \([^ ]*\) ;.*/\1/p' "$OUT/$side-$r.txt" | head -1)
		[ -n "$res" ] && cp "$res/raw.csv" "$OUT/$side-$r.csv"
		(cd "$tree" && DIR=/tmp/td-$side bash bench/dns-ours.sh stop) >> "$OUT/log" 2>&1
	done
done
echo "results in $OUT"
