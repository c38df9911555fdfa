#!/usr/bin/env bash
# http-whole.sh - the whole CPU cost of a request: wrk (one thread, Connection:
# close unless LOAD=ka) against buffered nginx, then against `takedown serve`
# (bench/http-ours.sh), each server's CPU taken from /proc before the load and,
# for takedown, after the store has caught up with the spool: what storing every
# request costs is counted whole, wherever the store writer did it.
#
#   bench/http-whole.sh            # once
#   RUNS=2 DURATION=30 bench/http-whole.sh
#
# nginx's configuration is the one ../shared/bench/http-peers.sh writes
# (/tmp/sinkhole-bench/nginx/nginx-buf.conf, port 18081): run that script once
# first. With DEFERRED=1 a second nginx is measured too, the same but for
# `listen ... deferred` (TCP_DEFER_ACCEPT, which takedown's HTTP listeners
# set by default: listen.defer_accept_s). Env: RUNS (default 1), DURATION
# (s, default 30), LOAD (close or ka), DEFERRED (0 or 1).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NGINX_CONF=/tmp/sinkhole-bench/nginx/nginx-buf.conf
DIR=${DIR:-/tmp/takedown-http-bench}
RUNS=${RUNS:-1} DURATION=${DURATION:-30} LOAD=${LOAD:-close} DEFERRED=${DEFERRED:-0}
[ -f "$NGINX_CONF" ] || { echo "no $NGINX_CONF: run ../shared/bench/http-peers.sh once first" >&2; exit 1; }
HZ=$(getconf CLK_TCK)
W=(-t1 -d"${DURATION}s" -H "Host: conficker-c2-001.net" -H "User-Agent: Mozilla/5.0")
if [ "$LOAD" = ka ]; then W+=(-c100); else W+=(-c50 -H "Connection: close"); fi

ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$t"; }
requests() { awk '/requests in/ { print $1 }'; }
report() { awk -v n="$2" -v t="$3" -v hz="$HZ" -v who="$1" \
	'BEGIN { printf "%-10s %9d requests  %7.2f s CPU  %5.1f µs/request\n", who, n, t / hz, t / hz / n * 1e6 }'; }

# nginx_run CONF LABEL measures one nginx (port 18081) and reports it.
nginx_run() {
	local pids a b n
	nginx -c "$1"
	sleep 1
	mapfile -t pids < <(pgrep -f "nginx: (master|worker)")
	a=$(ticks "${pids[@]}")
	n=$(wrk "${W[@]}" http://127.0.0.1:18081/ | requests)
	sleep 1
	b=$(ticks "${pids[@]}")
	nginx -c "$1" -s stop 2>/dev/null
	sleep 1
	report "$2" "$n" $((b - a))
}
if [ "$DEFERRED" = 1 ]; then
	NGINX_DEF=${NGINX_CONF%.conf}-deferred.conf
	sed 's/backlog=4096;/backlog=4096 deferred;/' "$NGINX_CONF" > "$NGINX_DEF"
	grep -q ' deferred;' "$NGINX_DEF" || { echo "no listen line to defer in $NGINX_CONF" >&2; exit 1; }
fi

for run in $(seq "$RUNS"); do
	nginx_run "$NGINX_CONF" nginx
	[ "$DEFERRED" = 1 ] && nginx_run "$NGINX_DEF" nginx-def

	"$HERE/bench/http-ours.sh" start >/dev/null
	pid=$(cat "$DIR/serve.pid")
	sleep 2
	a=$(ticks "$pid")
	n=$(wrk "${W[@]}" http://127.0.0.1:18090/ | requests)
	"$HERE/bench/http-ours.sh" wait
	b=$(ticks "$pid")
	"$HERE/bench/http-ours.sh" stop >/dev/null
	report "takedown" "$n" $((b - a))
	[ "$run" = "$RUNS" ] || sleep 2
done
