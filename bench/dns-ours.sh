#!/usr/bin/env bash
# dns-ours.sh - run `takedown serve` on the 276-zone data set of
# ../shared/bench/gen-zones.sh, with every query stored as an event, so that
# ../shared/bench/dns-peers.sh can measure it beside NSD, Knot and CoreDNS:
#
#   bench/dns-ours.sh start            # builds takedown, loads the zones, serves on 127.0.0.1:5300
#   ../shared/bench/dns-peers.sh --also 127.0.0.1:5300 --label takedown --pid "$(cat /tmp/takedown-bench/serve.pid)"
#   bench/dns-ours.sh stop             # stops it and prints how many events were stored
#
# Env: WORK (default /tmp/sinkhole-bench, the data set), CPUPROFILE (a file:
# serve writes its CPU profile there on stop), DIR (default
# /tmp/takedown-bench), PORT (default 5300), FLUSH_MS (pipeline.flush_ms, default 500),
# BACKGROUND_CPUS (pipeline.background_cpus, default 1: a dedicated sinkhole's setting).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${WORK:-/tmp/sinkhole-bench}
DIR=${DIR:-/tmp/takedown-bench}
PORT=${PORT:-5300}
BIN=$DIR/takedown
CFG=$DIR/takedown.yaml

start() {
	[ -f "$WORK/domains.txt" ] || bash "$HERE/../shared/bench/gen-zones.sh" "$WORK"
	. "$WORK/params.env"
	rm -rf "$DIR" && mkdir -p "$DIR"
	(cd "$HERE" && go build -o "$BIN" ./cmd/takedown)
	cat > "$CFG" <<CFG
data_dir: $DIR/data
sensor: bench
operator: Benchmark
log: {level: warn}
api: {listen: 127.0.0.1:18480}
dns:
  listen: ["127.0.0.1:$PORT"]
  a: [$SINKHOLE_IP]
  aaaa: []
  rrl: {responses_per_second: -1}
transfer: {listen: []}
pipeline: {flush_ms: ${FLUSH_MS:-500}, background_cpus: ${BACKGROUND_CPUS:-1}}
listen: {http: [], https: [], smtp: []}
CFG
	"$BIN" -c "$CFG" --actor bench cases add bench --court "Bench Court" --docket 0 >/dev/null
	"$BIN" -c "$CFG" --actor bench domains import --case bench "$WORK/domains.txt" >/dev/null
	"$BIN" -c "$CFG" --actor bench domains set-state --state restrained --case bench --from-state listed >/dev/null
	"$BIN" -c "$CFG" serve ${CPUPROFILE:+--cpuprofile "$CPUPROFILE"} > "$DIR/serve.log" 2>&1 </dev/null &
	echo $! > "$DIR/serve.pid"
	for _ in $(seq 100); do
		dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" "www.$(head -1 "$WORK/domains.txt")" A | grep -q . && { echo "takedown serving on 127.0.0.1:$PORT (pid $(cat "$DIR/serve.pid"))"; return; }
		sleep 0.1
	done
	echo "takedown did not answer; see $DIR/serve.log" >&2
	exit 1
}

stop() {
	# Every query went to the spool first; wait until the store has caught
	# up with it, and say how long that took.
	local t0=$SECONDS backlog
	while :; do
		backlog=$("$BIN" -c "$CFG" status --json | sed -n 's/.*"backlog": \([0-9]*\).*/\1/p')
		[ "${backlog:-0}" = 0 ] && break
		[ $((SECONDS - t0)) -gt 900 ] && { echo "store still $backlog events behind after 900 s" >&2; break; }
		sleep 1
	done
	echo "store caught up with the spool $((SECONDS - t0)) s after the load"
	"$BIN" -c "$CFG" status | sed -n '/^pipeline/,/^last store/p'
	kill -INT "$(cat "$DIR/serve.pid")" 2>/dev/null || true
	while kill -0 "$(cat "$DIR/serve.pid")" 2>/dev/null; do sleep 0.2; done
	grep -E "pipeline|stopped" "$DIR/serve.log" || true
	"$BIN" -c "$CFG" stats hosts --from 2000-01-01 --to 2100-01-01
}

case ${1:-} in
	start) start ;;
	stop) stop ;;
	*) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
