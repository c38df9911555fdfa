#!/usr/bin/env bash
# system.sh - the whole system on this machine: `takedown serve` (DNS sinkhole,
# HTTP/SMTP listeners, pipeline, DuckDB store, demo-world enrichment) fed by
# `takedown simulate`, every callback enriched and stored.
#
#   bench/system.sh week            # a simulated Waledac week (58,000 hosts x 36 callbacks
#                                   # x 7 days = 14.6 M callbacks) through /v1/ingest:
#                                   # time until all is stored, peak RSS
#   bench/system.sh live [SPEED]    # live callbacks over real sockets for DURATION (default
#                                   # 60 s) at SPEED (default 2000): the callbacks/s the bots
#                                   # got answered, the store's rate, the backlog left, peak RSS
#
# Env: DIR (default /tmp/takedown-system), BOTS (default 58000), DAYS (week, default 7),
# DURATION (live, default 60s).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${DIR:-/tmp/takedown-system}
BOTS=${BOTS:-58000}
BIN=$DIR/takedown
CFG=$DIR/takedown.yaml
API=127.0.0.1:18580

setup() {
	rm -rf "$DIR" && mkdir -p "$DIR"
	(cd "$HERE" && go build -o "$BIN" ./cmd/takedown)
	"$BIN" demo-world --out "$DIR" >/dev/null
	cat > "$CFG" <<CFG
data_dir: $DIR/data
sensor: bench
log: {level: warn}
api: {listen: $API}
dns:
  listen: ["127.0.0.1:18553"]
  rrl: {responses_per_second: -1}
transfer: {listen: []}
listen: {http: ["127.0.0.1:18581"], https: [], smtp: ["127.0.0.1:18525"], tcp: [], udp: []}
enrich: {databases: [$DIR/takedown-demo-world.mmdb]}
CFG
	"$BIN" -c "$CFG" --actor bench cases add waledac --court "Bench Court" --docket 0 --family waledac >/dev/null
	"$BIN" -c "$CFG" --actor bench domains import --case waledac "$HERE/internal/cli/demodata/waledac-domains.csv" >/dev/null
	"$BIN" -c "$CFG" --actor bench domains set-state --state restrained --case waledac --from-state listed >/dev/null
	"$BIN" -c "$CFG" serve > "$DIR/serve.log" 2>&1 </dev/null &
	echo $! > "$DIR/serve.pid"
	for _ in $(seq 200); do
		curl -fsS "http://$API/readyz" >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "serve did not get ready; see $DIR/serve.log" >&2
	exit 1
}

# caught_up waits until the store holds every recorded event; prints seconds.
caught_up() {
	local t0=$SECONDS backlog
	while :; do
		backlog=$("$BIN" -c "$CFG" status --json | sed -n 's/.*"backlog": \([0-9]*\).*/\1/p')
		[ "${backlog:-1}" = 0 ] && break
		[ $((SECONDS - t0)) -gt 3600 ] && { echo "store still $backlog events behind after an hour" >&2; break; }
		sleep 1
	done
	echo $((SECONDS - t0))
}

finish() {
	local pid
	pid=$(cat "$DIR/serve.pid")
	echo "serve peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$pid/status")"
	"$BIN" -c "$CFG" status | sed -n '/^pipeline/,/^last store/p'
	"$BIN" -c "$CFG" stats hosts --by family --from 2000-01-01 --to 2100-01-01
	kill -INT "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
}

week() {
	setup
	local days=${DAYS:-7} t0 sent
	echo "== a simulated Waledac week: $BOTS hosts, $days days, through /v1/ingest"
	t0=$(date +%s.%N)
	/usr/bin/time -f "simulate: %e s, CPU %U s user %S s sys, peak RSS %M KiB" "$BIN" -c "$CFG" simulate --bots "$BOTS" --families waledac=1 \
		--backfill "${days}d" --live=false --churn 0 --truth "$DIR/truth.json" 2>&1 >/dev/null | grep -v '^backfill:' || true
	sent=$(date +%s.%N)
	echo "sent in $(echo "$sent - $t0" | bc) s; store caught up $(caught_up) s later"
	echo "ingested in $(echo "$(date +%s.%N) - $t0" | bc) s"
	grep -m1 '"callbacks"' "$DIR/truth.json"
	finish
}

live() {
	setup
	local speed=${1:-2000} dur=${DURATION:-60s} t0
	echo "== live: $BOTS bots at speed $speed for $dur"
	/usr/bin/time -f "simulate: %e s, CPU %U s user %S s sys, peak RSS %M KiB" "$BIN" -c "$CFG" simulate --bots "$BOTS" --speed "$speed" \
		--duration "$dur" --churn 0 2>&1 | grep -E 'callbacks|simulate:|lag' | tail -6 || true
	"$BIN" -c "$CFG" status | grep -E '^(recorded|stored|backlog|rates?)' || true
	echo "store caught up $(caught_up) s after the bots stopped"
	finish
}

case ${1:-} in
	week) week ;;
	live) shift; live "$@" ;;
	*) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
