#!/usr/bin/env bash
# dnssec.sh - what signing costs: DNS throughput with the DO bit set, takedown
# signed and unsigned beside NSD (zones signed by dnssec-signzone) and Knot
# (knotd's automatic signing), each signed and unsigned, all serving the same
# seized zones, interleaved in every run. Then the size of the largest signed
# answers against their queries (amplification with RRL off) and the RRL
# reflection bound with DO queries to signed zones (internal/dnssink's tests).
#
#   bench/dnssec.sh [RUNS]          # default 3; about 3 minutes a run
#
# The data: ../shared/bench/gen-zones.sh's 276 seized zones and 200,000-query
# file (A 70 %, AAAA 20 %, TXT 10 %, ~5 % names not served), sent with
# `dnsperf -D`. The zone files the peers serve are takedown's own zones as its
# AXFR gives them (apex SOA, NS, A, AAAA, MX, TXT; *.ZONE A, AAAA, MX, TXT), so
# all three answer the same records. Signed: ECDSA P-256 (algorithm 13), one
# combined key (flags 257) a zone, NSEC, signatures valid 14 days.
#
# Env: WORK (default /tmp/td-dnssec), DURATION (10 s), WARMUP (3 s), CLIENTS (4),
# OUTSTANDING (100), SERVERS (default: all six; "takedown-signed" is measured only
# when the build signs), PORT_BASE (15311: NSD, Knot, takedown DNS, takedown
# AXFR, takedown API on PORT_BASE..+4), RRL_TEST (1: run the Go reflection tests).
# Output: a table on stdout; raw.csv, summary.txt and each dnsperf output under
# $WORK/results/<time>/. Every process is started here and stopped by PID;
# all traffic stays on 127.0.0.1; every loop is bounded.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=$HERE/../shared/bench
[ -f "$SHARED/lib.sh" ] || SHARED=/work/shared/bench
. "$SHARED/lib.sh"

RUNS=${1:-3}
WORK=${WORK:-/tmp/td-dnssec}
DURATION=${DURATION:-10} WARMUP=${WARMUP:-3} CLIENTS=${CLIENTS:-4} OUTSTANDING=${OUTSTANDING:-100}
SERVERS=${SERVERS:-nsd nsd-signed knot knot-signed takedown takedown-signed}
PORT_BASE=${PORT_BASE:-15311}
NSD_PORT=$PORT_BASE KNOT_PORT=$((PORT_BASE + 1)) TD_PORT=$((PORT_BASE + 2))
XFR_PORT=$((PORT_BASE + 3)) API_PORT=$((PORT_BASE + 4))
for t in dnsperf dig nsd knotd dnssec-keygen dnssec-signzone dnssec-verify ss; do
	command -v $t >/dev/null || { echo "missing $t (apt-get install nsd knot dnsperf bind9-dnsutils bind9-utils)" >&2; exit 1; }
done
for p in $NSD_PORT $KNOT_PORT $TD_PORT $XFR_PORT $API_PORT; do
	[ -z "$(port_owner "$p")" ] || { echo "port $p is busy: $(port_owner "$p" | head -1)" >&2; exit 1; }
done

STARTED=() # PIDs started here and not stopped yet
cleanup() { [ ${#STARTED[@]} -gt 0 ] && stop_pids "${STARTED[@]}"; STARTED=(); }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- data: zones, queries, takedown's two data directories ----
mkdir -p "$WORK"
[ -f "$WORK/data/queries.txt" ] || bash "$SHARED/gen-zones.sh" "$WORK/data" >&2
DOMAINS=$WORK/data/domains.txt
. "$WORK/data/params.env" # SINKHOLE_IP
SINKHOLE_IP6=2001:db8::1
TD=$WORK/bin/takedown
log "building takedown ($(git -C "$HERE" rev-parse --short HEAD))"
(cd "$HERE" && go build -o "$TD" ./cmd/takedown)
COMMIT=$(git -C "$HERE" rev-parse --short HEAD)$(git -C "$HERE" diff --quiet HEAD -- . ':!bench' || echo +dirty)

# takedown_setup NAME DNSSEC_YAML: a data directory with the 276 zones seized under
# case "bench"; DNSSEC_YAML goes under dns: (empty: unsigned).
takedown_setup() {
	local d=$WORK/$1 cfg=$WORK/$1/takedown.yaml
	rm -rf "$d" && mkdir -p "$d"
	cat > "$cfg" <<CFG
data_dir: $d/data
sensor: bench
operator: Benchmark
log: {level: warn}
api: {listen: 127.0.0.1:$API_PORT}
dns:
  listen: ["127.0.0.1:$TD_PORT"]
  a: [$SINKHOLE_IP]
  aaaa: ["$SINKHOLE_IP6"]
  rrl: {responses_per_second: -1}
$2
transfer: {listen: ["127.0.0.1:$XFR_PORT"], allow_from: [127.0.0.0/8], allow_unsigned: [127.0.0.1/32]}
pipeline: {flush_ms: 500, background_cpus: 1}
listen: {http: [], https: [], smtp: []}
CFG
	"$TD" -c "$cfg" --actor bench cases add bench --court "Bench Court" --docket 0 >/dev/null
	"$TD" -c "$cfg" --actor bench domains import --case bench "$DOMAINS" >/dev/null
	"$TD" -c "$cfg" --actor bench domains set-state --state restrained --case bench --from-state listed >/dev/null
	cp -a "$d/data" "$d/data.init" # each run starts from it, as the peers start from their files
}
# The signed instance: `dns.dnssec` of internal/config (D1's keys, D2's signing).
TD_DNSSEC_YAML=${TD_DNSSEC_YAML:-"  dnssec: {cases: [bench], algorithm: ecdsap256sha256}"}
takedown_setup takedown ""
if ! takedown_setup takedown-signed "$TD_DNSSEC_YAML" 2> "$WORK/takedown-signed.err"; then
	log "takedown does not take the signing configuration ($(head -c 300 "$WORK/takedown-signed.err")): takedown-signed left out"
	SERVERS=$(echo "$SERVERS" | tr ' ' '\n' | grep -vx takedown-signed | tr '\n' ' ')
fi

q() { dig +norec +tries=1 +time=2 -p "$2" @"$1" "${@:3}"; }
wait_ready() { # PORT
	local i
	for i in $(seq 1 150); do
		q 127.0.0.1 "$1" "$(head -1 "$DOMAINS")" SOA +short 2>/dev/null | grep -q . && return 0
		sleep 0.2
	done
	return 1
}

SRV_PID="" PORT=""
start() { # NAME -> SRV_PID PORT
	local s=$1 out=$WORK/logs/$1.out
	mkdir -p "$WORK/logs"
	case $s in
		nsd*) PORT=$NSD_PORT; nsd -d -c "$WORK/$s/nsd.conf" > "$out" 2>&1 < /dev/null & ;;
		knot*) PORT=$KNOT_PORT; knotd -c "$WORK/$s/knot.conf" > "$out" 2>&1 < /dev/null & ;;
		takedown*) PORT=$TD_PORT; rm -rf "${WORK:?}/$s/data" && cp -a "$WORK/$s/data.init" "$WORK/$s/data"
			"$TD" -c "$WORK/$s/takedown.yaml" serve > "$out" 2>&1 < /dev/null & ;;
	esac
	SRV_PID=$!; STARTED+=("$SRV_PID")
	wait_ready "$PORT" || { log "$s did not answer on $PORT (see $out)"; return 1; }
}
stop() { # NAME [nowait]: takedown first stores what it was sent (the store writer's backlog, up to 5 minutes)
	local i b
	if [ "${1#takedown}" != "$1" ] && [ "${2:-}" != nowait ]; then
		for i in $(seq 1 300); do
			b=$("$TD" -c "$WORK/$1/takedown.yaml" status --json 2>/dev/null | sed -n 's/.*"backlog": *\([0-9]*\).*/\1/p' | head -1)
			[ "$b" = 0 ] && break
			sleep 1
		done
	fi
	stop_tree "$SRV_PID"
	local keep=() p; for p in "${STARTED[@]}"; do [ "$p" = "$SRV_PID" ] || keep+=("$p"); done; STARTED=("${keep[@]}")
}

# ---- the peers' zones: takedown's own, by AXFR ----
# One zone by AXFR; the others are the same records under their own names
# (the zones of one case answer alike).
log "zone files from takedown's AXFR"
rm -rf "$WORK/zones" && mkdir -p "$WORK/zones"
start takedown
z=$(head -1 "$DOMAINS")
q 127.0.0.1 "$XFR_PORT" "$z" AXFR +nocmd +nostats +nocomments | sed '$d' > "$WORK/zones/template" # sed: the closing SOA
stop takedown
[ "$(grep -c "SOA" "$WORK/zones/template")" = 1 ] && [ "$(grep -c "^\*\.$z\." "$WORK/zones/template")" = 4 ] ||
	{ echo "AXFR of $z from takedown failed: $WORK/zones/template" >&2; exit 1; }
while read -r d; do awk -v z="$z." -v d="$d." '{ gsub(z, d) } 1' "$WORK/zones/template" > "$WORK/zones/$d.zone"; done < "$DOMAINS"

# ---- NSD's signed zones: dnssec-keygen + dnssec-signzone (2 workers) ----
# Made again when the records (serial aside) change or the signatures are past half
# their validity; about a minute on an idle machine, several on a loaded one.
sum=$( (grep -v SOA "$WORK/zones/template"; cat "$DOMAINS") | sha256sum | cut -c1-16)
if [ "$(cat "$WORK/signed/source" 2>/dev/null)" = "$sum" ] && [ -z "$(find "$WORK/signed/source" -mtime +7)" ]; then
	log "NSD's signed zones of $(date -r "$WORK/signed/source" '+%F %H:%M') are still good"
else
	log "signing $(wc -l < "$DOMAINS") zones with dnssec-signzone (ECDSA P-256, one CSK a zone, NSEC)"
	rm -rf "$WORK/signed" && mkdir -p "$WORK/signed/keys"
	export WORK
	xargs -P 2 -I{} sh -ec '
		dnssec-keygen -q -a ECDSAP256SHA256 -f KSK -K "$WORK/signed/keys" -n ZONE "{}" >/dev/null
		dnssec-signzone -q -z -S -K "$WORK/signed/keys" -d "$WORK/signed/keys" -o "{}" -e now+1209600 -s now-3600 \
			-f "$WORK/signed/{}.zone" "$WORK/zones/{}.zone" >/dev/null' < "$DOMAINS"
	z=$(head -1 "$DOMAINS")
	dnssec-verify -q -z -o "$z" "$WORK/signed/$z.zone" >&2 || { echo "dnssec-verify rejects $WORK/signed/$z.zone" >&2; exit 1; }
	echo "$sum" > "$WORK/signed/source"
fi

# ---- NSD and Knot configurations, unsigned and signed ----
nsd_conf() { # ZONESDIR
	cat <<EOF
server:
    ip-address: 127.0.0.1@$NSD_PORT
    do-ip6: no
    server-count: $(nproc)
    reuseport: yes
    username: ""
    chroot: ""
    database: ""
    zonesdir: "$1"
    zonelistfile: "$WORK/$2/zone.list"
    xfrdfile: "$WORK/$2/xfrd.state"
    xfrdir: "$WORK/$2"
    pidfile: "$WORK/$2/nsd.pid"
    logfile: "$WORK/logs/$2.log"
    verbosity: 0
    hide-version: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
EOF
	while read -r z; do printf 'zone:\n    name: "%s"\n    zonefile: "%s.zone"\n' "$z" "$z"; done < "$DOMAINS"
}
knot_conf() { # NAME SIGNED(yes/no)
	cat <<EOF
server:
    rundir: "$WORK/$1/run"
    listen: 127.0.0.1@$KNOT_PORT
    udp-workers: $(nproc)
    tcp-workers: 1
    background-workers: 1
    identity: ""
    version: ""
database:
    storage: "$WORK/$1/db"
log:
  - target: "$WORK/logs/$1.log"
    any: warning
policy:
  - id: csk
    algorithm: ecdsap256sha256
    single-type-signing: on
    nsec3: off
    rrsig-lifetime: 14d
    rrsig-refresh: 7d
template:
  - id: default
    storage: "$WORK/zones"
    file: "%s.zone"
    semantic-checks: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: $([ "$2" = yes ] && echo changes || echo none)
    dnssec-signing: $([ "$2" = yes ] && echo on || echo off)
    dnssec-policy: csk
zone:
EOF
	while read -r z; do printf '  - domain: %s\n' "$z"; done < "$DOMAINS"
}
for s in nsd nsd-signed knot knot-signed; do rm -rf "${WORK:?}/$s" && mkdir -p "$WORK/$s/run" "$WORK/$s/db"; done
nsd_conf "$WORK/zones" nsd > "$WORK/nsd/nsd.conf"
nsd_conf "$WORK/signed" nsd-signed > "$WORK/nsd-signed/nsd.conf"
knot_conf knot no > "$WORK/knot/knot.conf"
knot_conf knot-signed yes > "$WORK/knot-signed/knot.conf"

# ---- checks: the same records from all, RRSIGs from the signed ones ----
D1=$(sed -n 1p "$DOMAINS") U1=$(sed -n 1p "$WORK/data/unserved.txt")
checks() { # NAME PORT -> "ok" or the failed checks
	local p=$2 f="" w="zz$RANDOM.c2.$D1"
	q 127.0.0.1 "$p" "$w" A +short | grep -qx "$SINKHOLE_IP" || f="$f,wildA"
	q 127.0.0.1 "$p" "$w" AAAA +short | grep -qx "$SINKHOLE_IP6" || f="$f,wildAAAA"
	q 127.0.0.1 "$p" "$w" TXT +short | grep -q sinkholed || f="$f,wildTXT"
	q 127.0.0.1 "$p" "www.$U1" A | grep -q 'status: REFUSED' || f="$f,unserved-REFUSED"
	if [ "${1%-signed}" != "$1" ]; then
		q 127.0.0.1 "$p" "$w" A +dnssec | grep -Eq 'RRSIG[[:space:]]+A 13 2 ' || f="$f,wildRRSIG"
		q 127.0.0.1 "$p" "$w" A +dnssec | grep -Eq '[[:space:]]NSEC[[:space:]]' || f="$f,wildNSEC"
		q 127.0.0.1 "$p" "$D1" DNSKEY +dnssec | grep -Eq 'DNSKEY[[:space:]]+257 3 13 ' || f="$f,DNSKEY"
	else
		q 127.0.0.1 "$p" "$w" A +dnssec | grep -q RRSIG && f="$f,unsigned-has-RRSIG"
	fi
	echo "${f:+FAIL${f}}${f:-ok}"
}

# ---- amplification with RRL off: the largest signed answers against their query ----
# amp NAME PORT: "qtype query_bytes answer_bytes" for DO queries, 4096-byte buffer
amp() {
	local t qn
	for t in A TXT MX ANY DNSKEY NSEC; do
		qn=$D1; [ "$t" = A ] || [ "$t" = TXT ] || [ "$t" = MX ] && qn=zz1.$D1
		q 127.0.0.1 "$2" "$qn" "$t" +qr +dnssec +bufsize=4096 +nocookie +ignore |
			awk -v s="$1" -v t="$t" '/QUERY SIZE/ { i = $NF } /MSG SIZE/ { o = $NF } END { print s, t, i, o }'
	done
}

OUT=$WORK/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
CSV=$OUT/raw.csv
echo "run,server,qps,avg_ms,lost,req_bytes,resp_bytes,srv_cpu,cli_cpu,rest_cpu,rss_mb,pre_busy,calib_ms,checks" > "$CSV"
: > "$OUT/amp.txt"
num() { awk -v k="$1" 'index($0, k) { sub(/^.*: */, ""); print $1 + 0; exit }' "$2"; }
measure() { # RUN NAME (running on PORT as SRV_PID)
	local tag=$1-$2 chk pre cal pids s0 s1 b0 b1 el cu cs cl ws
	local dp=(dnsperf -D -s 127.0.0.1 -p "$PORT" -d "$WORK/data/queries.txt" -c "$CLIENTS" -q "$OUTSTANDING")
	chk=$(checks "$2" "$PORT")
	[ "$1" = 1 ] && amp "$2" "$PORT" >> "$OUT/amp.txt"
	pre=$(wait_quiet); cal=$(calib_ms)
	"${dp[@]}" -l "$WARMUP" > "$OUT/$tag.warmup" 2>&1 || true
	pids=$(tree_pids "$SRV_PID" | tr '\n' ' ')
	b0=$(busy_ticks); s0=$(cpu_ticks $pids)
	local TIMEFORMAT='%R %U %S'
	{ time "${dp[@]}" -l "$DURATION" > "$OUT/$tag.dnsperf" 2>&1; } 2> "$OUT/$tag.time" || true
	s1=$(cpu_ticks $pids); b1=$(busy_ticks)
	read -r el cu cs < "$OUT/$tag.time"
	cl=$(awk -v u="$cu" -v s="$cs" -v t="$CLK_TCK" 'BEGIN { printf "%d", (u + s) * t }')
	ws=$(awk -v e="$el" -v t="$CLK_TCK" 'BEGIN { print e * t }')
	local f=$OUT/$tag.dnsperf qps avg sz
	qps=$(num 'Queries per second' "$f")
	avg=$(awk '/Average Latency/ { printf "%.3f", $4 * 1000 }' "$f")
	sz=$(awk '/Average packet size/ { gsub(/,/, ""); print $5 "," $7 }' "$f")
	echo "$1,$2,$qps,$avg,$(num 'Queries lost' "$f"),${sz:-,},$(pct $((s1 - s0)) "$ws"),$(pct "$cl" "$ws"),$(pct $(((b1 - b0) - (s1 - s0) - cl)) "$ws"),$(($(rss_kb $pids) / 1024)),$pre,$cal,$chk" >> "$CSV"
	log "$tag: $qps qps, packets ${sz/,/ B in, } B out, srv $(pct $((s1 - s0)) "$ws")%, checks $chk"
}

# takedown-signed only when this build signs
case " $SERVERS " in *" takedown-signed "*) start takedown-signed; c=$(checks takedown-signed "$TD_PORT"); stop takedown-signed ;; *) c=ok ;; esac
if [ "$c" != ok ]; then
	log "this build of takedown does not sign ($c): takedown-signed left out"
	SERVERS=$(echo "$SERVERS" | tr ' ' '\n' | grep -vx takedown-signed | tr '\n' ' ')
fi

log "results in $OUT; $RUNS runs x ${DURATION}s, dnsperf -D -c $CLIENTS -q $OUTSTANDING; commit $COMMIT; load $(cat /proc/loadavg)"
for run in $(seq 1 "$RUNS"); do
	order=$SERVERS
	[ $((run % 2)) = 0 ] && order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ') # drift falls on both ends
	for s in $order; do
		if start "$s"; then
			measure "$run" "$s"; stop "$s"
		else
			echo "$run,$s,,,,,,,,,,,,start-failed" >> "$CSV"; stop "$s" nowait
		fi
	done
done

# ---- summary: medians [min..max]; ratios per run, then their median [range] ----
{
	echo "DNSSEC cost on $(hostname -s 2>/dev/null || echo host), $(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), takedown $COMMIT"
	echo "$RUNS run(s) x ${DURATION}s, dnsperf -D -c $CLIENTS -q $OUTSTANDING, $(wc -l < "$WORK/data/queries.txt") queries, $(wc -l < "$DOMAINS") zones"
	printf '%-16s %8s %-17s %6s %6s %6s %8s %7s %6s %s\n' server qps "[min..max]" req_B resp_B srv% "µs/query" cal_ms rest% checks
	for s in $SERVERS; do
		sel() { awk -F, -v s="$s" -v c="$1" 'NR > 1 && $2 == s && $3 != "" { print $c }' "$CSV"; }
		us=$(awk -F, -v s="$s" 'NR > 1 && $2 == s && $3 > 0 { print $8 / 100 / $3 * 1e6 }' "$CSV" | median)
		printf '%-16s %8.0f %-17s %6s %6s %6s %8.1f %7s %6s %s\n' "$s" "$(sel 3 | median)" \
			"[$(sel 3 | minimum | cut -d. -f1)..$(sel 3 | maximum | cut -d. -f1)]" "$(sel 6 | median)" \
			"$(sel 7 | median)" "$(sel 8 | median)" "$us" "$(sel 13 | median)" "$(sel 10 | median)" "$(sel 14 | sort -u | tr '\n' ' ')"
	done
	echo
	echo "ratios of qps, per run paired, median [min..max]:"
	for pair in nsd-signed/nsd knot-signed/knot takedown/nsd takedown/knot takedown-signed/takedown \
		takedown-signed/nsd-signed takedown-signed/knot-signed; do
		a=${pair%/*} b=${pair#*/}
		r=$(awk -F, -v a="$a" -v b="$b" 'NR > 1 && $3 > 0 { v[$1, $2] = $3; runs[$1] }
			END { for (r in runs) if (v[r, a] && v[r, b]) print v[r, a] / v[r, b] }' "$CSV")
		[ -n "$r" ] && printf '  %-28s %5.2f [%s..%s] (%d runs)\n' "$pair" "$(echo "$r" | median)" \
			"$(echo "$r" | minimum | xargs printf '%.2f')" "$(echo "$r" | maximum | xargs printf '%.2f')" "$(echo "$r" | wc -l)"
	done
	echo
	echo "bytes out / bytes in of one DO query (4096-byte buffer, no cookie, RRL off):"
	awk '{ printf "  %-16s %-7s %4d B in %5d B out  %5.2f\n", $1, $2, $3, $4, ($3 ? $4 / $3 : 0) }' "$OUT/amp.txt"
} | tee "$OUT/summary.txt"

if [ "${RRL_TEST:-1}" = 1 ]; then
	echo
	echo "RRL reflection bound (internal/dnssink, one source, 4096-byte buffers, DO set when signed):"
	(cd "$HERE" && go test ./internal/dnssink -run 'TestRRLReflectionBound' -count 1 -v 2>&1) |
		grep -E 'flood|amplification|^(ok|FAIL|---)' | tee -a "$OUT/summary.txt"
fi
echo "raw: $CSV"
