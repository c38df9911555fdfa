#!/usr/bin/env bash
# http-ours.sh - run the httpsink listener alone (no app wiring yet) for
# ../../../../../shared/bench/http-peers.sh: the package's test binary serves
# HTTP on 127.0.0.1:$PORT with the shipped rules, a zone for the benchmark's
# host, and every request encoded as a binary event (event.AppendBinary into
# a buffer, a fair stand-in for the spool).
#
#   internal/listen/httpsink/bench/http-ours.sh start
#   ../shared/bench/http-peers.sh --also 127.0.0.1:18090 --label takedown --pid "$(cat /tmp/httpsink-bench/serve.pid)"
#   internal/listen/httpsink/bench/http-ours.sh stop     # prints the events recorded
#
# Env: DIR (default /tmp/httpsink-bench), PORT (default 18090).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
DIR=${DIR:-/tmp/httpsink-bench}
PORT=${PORT:-18090}

start() {
	mkdir -p "$DIR"
	(cd "$ROOT" && go test -c -o "$DIR/httpsink.test" ./internal/listen/httpsink)
	TAKEDOWN_HTTPSINK_SERVE=127.0.0.1:$PORT "$DIR/httpsink.test" > "$DIR/serve.log" 2>&1 </dev/null &
	echo $! > "$DIR/serve.pid"
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && { echo "httpsink serving on 127.0.0.1:$PORT (pid $(cat "$DIR/serve.pid"))"; return; }
		sleep 0.1
	done
	echo "httpsink did not answer; see $DIR/serve.log" >&2
	exit 1
}

stop() {
	local pid
	pid=$(cat "$DIR/serve.pid")
	kill -TERM "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	cat "$DIR/serve.log"
}

case ${1:-} in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
