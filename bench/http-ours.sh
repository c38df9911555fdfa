#!/usr/bin/env bash
# http-ours.sh - run `takedown serve` with its HTTP listener on 127.0.0.1:$PORT,
# every request recorded as an event (spool, then the store), for
# ../shared/bench/http-peers.sh to measure beside nginx:
#
#   bench/http-ours.sh start
#   ../shared/bench/http-peers.sh --also 127.0.0.1:18090 --label takedown --pid "$(cat /tmp/takedown-http-bench/serve.pid)"
#   bench/http-ours.sh stop      # waits for the store to catch up, prints serve's CPU and what was stored
#   bench/http-ours.sh wait      # only waits for the store to catch up
#
# The benchmark's host (conficker-c2-001.example) is imported and restrained, so
# requests are attributed to a seized zone and classified by the shipped rules.
# Env: DIR (default /tmp/takedown-http-bench), PORT (default 18090), HTTP_LOOPS
# (listen.http_loops, default 0: one per two CPUs), STORE_MB (store.memory_limit_mb,
# default 0: the default, which also sets the pipeline's batch size; 1024 gives
# whole row-group batches), SERVE_FLAGS (more flags for serve, e.g.
# "--cpuprofile /tmp/cpu.out --memprofile /tmp/mem.out").
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${DIR:-/tmp/takedown-http-bench}
PORT=${PORT:-18090}
BIN=$DIR/takedown
CFG=$DIR/takedown.yaml

start() {
	rm -rf "$DIR" && mkdir -p "$DIR"
	(cd "$HERE" && go build -o "$BIN" ./cmd/takedown)
	cat > "$CFG" <<CFG
data_dir: $DIR/data
sensor: bench
log: {level: warn}
api: {listen: 127.0.0.1:18481}
dns: {listen: ["127.0.0.1:0"]}
transfer: {listen: []}
listen: {http: ["127.0.0.1:$PORT"], https: [], smtp: [], max_conns_per_ip: -1, http_loops: ${HTTP_LOOPS:-0}}
store: {memory_limit_mb: ${STORE_MB:-0}}
CFG
	"$BIN" -c "$CFG" --actor bench cases add bench --court "Bench Court" --docket 0 --family conficker >/dev/null
	echo conficker-c2-001.example > "$DIR/domains.txt"
	"$BIN" -c "$CFG" --actor bench domains import --case bench "$DIR/domains.txt" >/dev/null
	"$BIN" -c "$CFG" --actor bench domains set-state --state restrained --case bench --from-state listed >/dev/null
	# shellcheck disable=SC2086 # SERVE_FLAGS are words
	# time(1) reports serve's CPU after it has exited, its shutdown included.
	/usr/bin/time -f "%U %S" -o "$DIR/serve.time" "$BIN" -c "$CFG" serve ${SERVE_FLAGS:-} > "$DIR/serve.log" 2>&1 </dev/null &
	echo $! > "$DIR/time.pid"
	for _ in $(seq 50); do
		pgrep -P "$(cat "$DIR/time.pid")" > "$DIR/serve.pid" && break
		sleep 0.1
	done
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && {
			cputicks > "$DIR/cpu0"
			echo "takedown serving HTTP on 127.0.0.1:$PORT (pid $(cat "$DIR/serve.pid"))"
			return
		}
		sleep 0.1
	done
	echo "takedown did not answer; see $DIR/serve.log" >&2
	exit 1
}

# cputicks prints the user and system CPU ticks serve has used.
cputicks() {
	awk '{ print $14 + $15 }' "/proc/$(cat "$DIR/serve.pid")/stat"
}

# caughtup waits until the store holds everything in the spool (at most
# 900 s).
caughtup() {
	local t0=$SECONDS backlog
	while :; do
		backlog=$("$BIN" -c "$CFG" status --json | sed -n 's/.*"backlog": \([0-9]*\).*/\1/p')
		[ "${backlog:-0}" = 0 ] && return
		[ $((SECONDS - t0)) -gt 900 ] && { echo "store still $backlog events behind after 900 s" >&2; return; }
		sleep 0.5
	done
}

stop() {
	local t0=$SECONDS
	caughtup
	echo "store caught up with the spool $((SECONDS - t0)) s after the load"
	# Everything serve did since it answered, storing included: with the
	# count of stored requests below it gives the whole CPU cost of one.
	awk -v a="$(cat "$DIR/cpu0")" -v b="$(cputicks)" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "serve used %.2f s of CPU from its first answer until the store caught up\n", (b - a) / hz }'
	kill -INT "$(cat "$DIR/serve.pid")" 2>/dev/null || true
	while kill -0 "$(cat "$DIR/time.pid")" 2>/dev/null; do sleep 0.2; done
	awk '{ printf "serve used %.2f s of CPU in all, its shutdown (the store'"'"'s last checkpoint) included\n", $1 + $2 }' "$DIR/serve.time"
	"$BIN" -c "$CFG" stats hosts --by family --from 2000-01-01 --to 2100-01-01
}

case ${1:-} in
	start) start ;;
	stop) stop ;;
	wait) caughtup ;;
	*) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
