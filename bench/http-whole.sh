#!/usr/bin/env bash
# http-whole.sh - the whole CPU cost of a request: wrk (one thread, Connection:
# close unless LOAD=ka) against buffered nginx, then against `takedown serve`
# (bench/http-ours.sh), each server's CPU taken from /proc before the load and,
# for takedown, after the store has caught up with the spool: what storing every
# request costs is counted whole, wherever the store writer did it. Each line
# gives the CPU a request and its user and kernel parts; the servers take
# turns going first from one run to the next.
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
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT
W=(-t1 -d"${DURATION}s" -H "Host: conficker-c2-001.example" -H "User-Agent: Mozilla/5.0")
if [ "$LOAD" = ka ]; then W+=(-c100); else W+=(-c50 -H "Connection: close"); fi

# ticks PID... prints the user and the system clock ticks of the processes.
ticks() {
	local u=0 k=0 p a b
	for p in "$@"; do
		read -r a b < <(awk '{ print $14, $15 }' "/proc/$p/stat")
		u=$((u + a)) k=$((k + b))
	done
	echo "$u $k"
}
requests() { awk '/requests in/ { print $1 }'; }
# report WHO REQUESTS "USER0 SYS0" "USER1 SYS1"
report() {
	local u0 k0 u1 k1
	read -r u0 k0 <<<"$3"
	read -r u1 k1 <<<"$4"
	awk -v n="$2" -v u=$((u1 - u0)) -v k=$((k1 - k0)) -v hz="$HZ" -v who="$1" -v run="$run" -v out="$RESULTS" 'BEGIN {
		us = (u + k) / hz / n * 1e6
		printf "%-10s %9d requests  %7.2f s CPU  %5.1f µs/request (user %4.1f, kernel %4.1f)\n",
			who, n, (u + k) / hz, us, u / hz / n * 1e6, k / hz / n * 1e6
		printf "%s %s %.3f\n", run, who, us >> out }'
}

# summary prints each server's median cost and the median of takedown's
# per-run ratios to the others: on a noisy host a single run says little.
summary() {
	awk '
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ cost[$1, $2] = $3; runs[$1] = 1; who[$2] = 1; n[$2]++; all[$2, n[$2]] = $3 }
	END {
		printf "\nmedian over %d run(s):", length(runs)
		for (w in who) { delete a; for (i = 1; i <= n[w]; i++) a[i] = all[w, i]; printf "  %s %.1f µs", w, median(a, n[w]) }
		printf "\n"
		for (w in who) {
			if (w == "takedown") continue
			delete a; k = 0
			for (r in runs) if ((r, w) in cost && (r, "takedown") in cost) a[++k] = cost[r, "takedown"] / cost[r, w]
			if (k) printf "takedown / %s, median of the per-run ratios: %.2f\n", w, median(a, k)
		}
	}' "$RESULTS"
}

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
	report "$2" "$n" "$a" "$b"
}
if [ "$DEFERRED" = 1 ]; then
	NGINX_DEF=${NGINX_CONF%.conf}-deferred.conf
	sed 's/backlog=4096;/backlog=4096 deferred;/' "$NGINX_CONF" > "$NGINX_DEF"
	grep -q ' deferred;' "$NGINX_DEF" || { echo "no listen line to defer in $NGINX_CONF" >&2; exit 1; }
fi

# takedown_run measures `takedown serve` (port 18090) and reports it.
takedown_run() {
	local pid a b n
	"$HERE/bench/http-ours.sh" start >/dev/null
	pid=$(cat "$DIR/serve.pid")
	sleep 2
	a=$(ticks "$pid")
	n=$(wrk "${W[@]}" http://127.0.0.1:18090/ | requests)
	"$HERE/bench/http-ours.sh" wait
	b=$(ticks "$pid")
	"$HERE/bench/http-ours.sh" stop >/dev/null
	report takedown "$n" "$a" "$b"
}

# The servers take turns going first, so that a host growing busier over a
# series does not always weigh on the same one.
servers=(nginx takedown)
[ "$DEFERRED" = 1 ] && servers=(nginx nginx-def takedown)
for run in $(seq "$RUNS"); do
	k=$(((run - 1) % ${#servers[@]}))
	for who in "${servers[@]:k}" "${servers[@]:0:k}"; do
		case $who in
		nginx) nginx_run "$NGINX_CONF" nginx ;;
		nginx-def) nginx_run "$NGINX_DEF" nginx-def ;;
		takedown) takedown_run ;;
		esac
	done
	[ "$run" = "$RUNS" ] || { echo; sleep 2; }
done
summary
