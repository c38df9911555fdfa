#!/usr/bin/env bash
# fleet.sh - takedown as sensors and a central (issue 19) on this machine, on
# the 276-zone data set of ../shared/bench/gen-zones.sh, with the DNS settings
# of bench/dns-ours.sh (rrl off, every query stored as an event): a
# three-node NATS JetStream cluster (nats-server processes, TLS, a credential
# per user; started by `natsgen cluster`), a central that holds the seized
# domains and the store, and N sensors (s1 answers DNS on 127.0.0.1:$PORT,
# s2 on $PORT+1), so that ../shared/bench/dns-peers.sh can measure a sensor
# beside NSD and Knot, and bench/events-rate.sh the events the central stores:
#
#   bench/fleet.sh start [N]     # builds takedown and natsgen, starts NATS, the central, N sensors (default 1)
#   ../shared/bench/dns-peers.sh --also 127.0.0.1:5300 --label sensor --pid "$(cat /tmp/takedown-fleet/s1.pid)"
#   bench/fleet.sh status        # the central's status (sensors, events stored)
#   bench/fleet.sh stop          # waits until the central stored what the sensors sent, stops everything
#
# Env: WORK (default /tmp/sinkhole-bench, the data set), DIR (default
# /tmp/takedown-fleet), PORT (default 5300), FLUSH_MS (pipeline.flush_ms,
# default 500), BACKGROUND_CPUS (pipeline.background_cpus, default 1),
# REPLICAS (nats.replicas, default 3), IDLE (1: NATS and the central run
# in the idle CPU class, as if on machines of their own, taking only the CPU
# the sensors leave; default 0). Ports: NATS from internal/freeport, then the
# APIs on the first free ports from 18481 (central, then the sensors; in
# DIR/NAME.api). nats-server: Debian's
# (/usr/sbin/nats-server) or $TAKEDOWN_NATS_SERVER.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${WORK:-/tmp/sinkhole-bench}
DIR=${DIR:-/tmp/takedown-fleet}
PORT=${PORT:-5300}
BIN=$DIR/takedown
SHARED=$HERE/../shared/bench
IDLECLASS=(env)
[ "${IDLE:-0}" = 1 ] && IDLECLASS=(chrt --idle 0)
[ -d "$SHARED" ] || SHARED=/work/shared/bench

# conf NAME ROLE API DNS-LISTEN EXTRA: a serve's configuration.
conf() {
	local name=$1 role=$2 api=$3 dns=$4 extra=$5 user=$1
	[ "$role" = central ] && user=central
	cat > "$DIR/$name.yaml" <<CFG
data_dir: $DIR/$name
role: $role
sensor: $name
operator: Benchmark
log: {level: warn}
api: {listen: 127.0.0.1:$api}
dns:
  listen: [$dns]
  a: [$SINKHOLE_IP]
  aaaa: []
  rrl: {responses_per_second: -1}
transfer: {listen: []}
pipeline: {flush_ms: ${FLUSH_MS:-500}, background_cpus: ${BACKGROUND_CPUS:-1}}
listen: {http: [], https: [], smtp: []}
nats:
  servers: ["$(echo "$NATS_SERVERS" | sed 's/,/", "/g')"]
  credentials: $(eval echo "\$NATS_CREDS_$user")
  tls: {ca_file: $NATS_CA}
  replicas: ${REPLICAS:-3}
  max_stream_mb: 1024
$extra
CFG
}

# apiport NAME: the first TCP port from 18481 that nothing listens on and
# no other serve of the fleet was given, written to DIR/NAME.api.
apiport() {
	local p=18481
	while ss -Hltn "sport = :$p" | grep -q . || grep -qx "$p" "$DIR"/*.api 2>/dev/null; do p=$((p + 1)); done
	echo "$p" > "$DIR/$1.api"
	echo "$p"
}

# serve NAME: starts `takedown serve` with NAME.yaml, pid in NAME.pid.
serve() {
	local cls=()
	[ "$1" = central ] && cls=("${IDLECLASS[@]}")
	"${cls[@]}" "$BIN" -c "$DIR/$1.yaml" serve > "$DIR/$1.log" 2>&1 </dev/null &
	echo $! > "$DIR/$1.pid"
}

# json NAME EXPR: a number from NAME's `status --json` (python3 EXPR on s).
json() {
	"$BIN" -c "$DIR/$1.yaml" status --json 2>/dev/null | python3 -c "import json,sys; s=json.load(sys.stdin); print($2)" 2>/dev/null || echo -1
}

start() {
	local n=${1:-1} ids="" i
	[ -f "$WORK/domains.txt" ] || bash "$SHARED/gen-zones.sh" "$WORK"
	. "$WORK/params.env"
	[ -e "$DIR" ] && { [ -f "$DIR/nats.pid" ] && kill -0 "$(cat "$DIR/nats.pid")" 2>/dev/null && { echo "a fleet runs in $DIR: bench/fleet.sh stop first" >&2; exit 1; }; rm -rf "$DIR"; }
	mkdir -p "$DIR"
	trap 'echo "fleet.sh: start failed, stopping what it started" >&2; halt' EXIT
	(cd "$HERE" && go build -o "$BIN" ./cmd/takedown && go build -o "$DIR/natsgen" ./internal/natsrun/internal/natsgen)
	for i in $(seq "$n"); do ids="$ids s$i"; done
	echo "$n" > "$DIR/sensors"
	"${IDLECLASS[@]}" "$DIR/natsgen" cluster -dir "$DIR/nats" $ids > "$DIR/nats.log" 2>&1 </dev/null &
	echo $! > "$DIR/nats.pid"
	for _ in $(seq 600); do [ -f "$DIR/nats/env" ] && break; kill -0 "$(cat "$DIR/nats.pid")" 2>/dev/null || break; sleep 0.1; done
	[ -f "$DIR/nats/env" ] || { echo "NATS did not start; see $DIR/nats.log" >&2; cat "$DIR/nats.log" >&2; exit 1; }
	. "$DIR/nats/env"
	conf central central "$(apiport central)" "" "central: {sensors: [$(echo $ids | sed 's/ /, /g')]}"
	local c=("$BIN" -c "$DIR/central.yaml" --actor bench)
	"${c[@]}" cases add bench --court "Bench Court" --docket 0 >/dev/null
	"${c[@]}" domains import --case bench "$WORK/domains.txt" >/dev/null
	"${c[@]}" domains set-state --state restrained --case bench --from-state listed >/dev/null
	serve central
	# Its API's /readyz, not `status`: the CLI opens the store itself while
	# no serve runs, and would hold the lock the starting serve needs.
	local ready=http://127.0.0.1:$(cat "$DIR/central.api")/readyz
	for _ in $(seq 300); do curl -sf -o /dev/null "$ready" && break; sleep 0.2; done
	curl -sf -o /dev/null "$ready" || { echo "the central did not start; see $DIR/central.log" >&2; exit 1; }
	for i in $(seq "$n"); do
		conf "s$i" sensor "$(apiport "s$i")" "127.0.0.1:$((PORT + i - 1))" ""
		serve "s$i"
	done
	for i in $(seq "$n"); do
		local p=$((PORT + i - 1)) ok=0
		for _ in $(seq 600); do
			dig +short +time=1 +tries=1 @127.0.0.1 -p "$p" "www.$(head -1 "$WORK/domains.txt")" A | grep -q . && { ok=1; break; }
			sleep 0.1
		done
		[ $ok = 1 ] || { echo "sensor s$i did not answer on $p; see $DIR/s$i.log" >&2; exit 1; }
		echo "sensor s$i serving on 127.0.0.1:$p (pid $(cat "$DIR/s$i.pid"))"
	done
	echo "central pid $(cat "$DIR/central.pid"), NATS $NATS_SERVERS (natsgen pid $(cat "$DIR/nats.pid"))"
	trap - EXIT
}

# stored: the events in the central's store.
stored() { json central "s['store']['events']"; }

# sent: the events the sensors recorded since they started.
sent() {
	local n i t=0 v
	n=$(cat "$DIR/sensors")
	for i in $(seq "$n"); do v=$(json "s$i" "s['pipeline']['recorded']"); t=$((t + v)); done
	echo $t
}

stop() {
	# Every event a sensor recorded goes through its spool and the stream
	# to the central's store: wait until the store stopped growing and
	# holds at least what the sensors recorded.
	local t0=$SECONDS want have last=-1 same=0
	want=$(sent)
	while :; do
		have=$(stored)
		[ "$have" -ge "$want" ] && break
		if [ "$have" = "$last" ]; then same=$((same + 1)); else same=0; fi
		[ $same -ge 30 ] && { echo "the store stays at $have events, the sensors recorded $want" >&2; break; }
		[ $((SECONDS - t0)) -gt 900 ] && { echo "store at $have of $want events after 900 s" >&2; break; }
		last=$have
		sleep 1
	done
	echo "central stored $have events, sensors recorded $want; caught up $((SECONDS - t0)) s after the load"
	halt
}

# halt: stops the sensors, the central and NATS, in that order.
halt() {
	local p
	for p in $(ls "$DIR"/s*.pid 2>/dev/null) "$DIR/central.pid" "$DIR/nats.pid"; do
		[ -f "$p" ] || continue
		kill -INT "$(cat "$p")" 2>/dev/null || true
		for _ in $(seq 300); do kill -0 "$(cat "$p")" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$(cat "$p")" 2>/dev/null && { echo "$(basename "$p" .pid) did not stop in 30 s: killed" >&2; kill -KILL "$(cat "$p")" 2>/dev/null || true; }
		rm -f "$p"
	done
}

case ${1:-} in
	start) start "${2:-1}" ;;
	stop) stop ;;
	status) "$BIN" -c "$DIR/central.yaml" status ;;
	stored) stored ;;
	sent) sent ;;
	*) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
