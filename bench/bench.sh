#!/usr/bin/env bash
# Benchmarks two hot paths through nginx with wrk, on 127.0.0.1 only:
#
#   1. GET /api/live-help-hour as a signed-in user with purchased hours
#      (session cookie set by bench/live_help.lua)
#   2. POST /api/stripe/webhook with a NEW correctly signed event per request
#      (bodies and signatures pre-generated right before the run, so the
#      300 s timestamp tolerance holds; type "bench.ping", which the webhook
#      records and ignores)
#
# and prints requests/s and p99 latency for each.
#
# Uses the stack of $CD_STATE_DIR (default $repo/.state) when it is running;
# otherwise starts one and stops it again at the end (CD_BENCH_KEEP=1 keeps
# it).  Settings: CD_BENCH_THREADS (wrk -t, 2), CD_BENCH_CONNECTIONS (-c, 32),
# CD_BENCH_DURATION (-d, 10s), CD_BENCH_EVENTS_N (pre-signed events, 120000).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CD_STATE_DIR=${CD_STATE_DIR:-$REPO/.state}
STACK=$REPO/scripts/stack.sh
PY=/usr/bin/python3
THREADS=${CD_BENCH_THREADS:-2}
CONNS=${CD_BENCH_CONNECTIONS:-32}
DURATION=${CD_BENCH_DURATION:-10s}
EVENTS_N=${CD_BENCH_EVENTS_N:-120000}

die() { echo "bench: error: $*" >&2; exit 1; }

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
[[ $DURATION =~ ^[0-9]+s?$ && ${DURATION%s} -le 120 ]] ||
	die "CD_BENCH_DURATION must be at most 120s"

# A stack that answers is used as it is; otherwise one is started, and
# stopped at the end only if nothing of it was running before.
answers() {
	[[ -r $CD_STATE_DIR/env ]] &&
		(source "$CD_STATE_DIR/env" && [[ $(curl -s -o /dev/null -w '%{http_code}' \
			--max-time 5 "$CD_BASE_URL/api/me") == 401 ]])
}
STARTED=
if ! answers; then
	status=$(bash "$STACK" status 2>/dev/null || true)
	if [[ $status == *"mariadb   stopped"* && $status == *"nginx     stopped"* ]]; then
		STARTED=1
	fi
	echo "bench: no stack answering for $CD_STATE_DIR; starting one"
	bash "$STACK" start
	answers || die "the stack does not answer after start"
fi
[[ -r $CD_STATE_DIR/env ]] || die "no $CD_STATE_DIR/env"
# shellcheck source=/dev/null
source "$CD_STATE_DIR/env"
[[ $CD_BASE_URL == http://127.0.0.1:* ]] || die "refusing to benchmark $CD_BASE_URL (127.0.0.1 only)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cd-bench.XXXXXX")
cleanup() {
	rm -rf "$WORK"
	if [[ -n $STARTED && -z ${CD_BENCH_KEEP:-} ]]; then
		bash "$STACK" stop >/dev/null || true
	fi
}
trap cleanup EXIT

helper() { (cd "$REPO" && PYTHONPATH=$REPO "$PY" "$REPO/bench/bench_setup.py" "$@"); }

# Prints "<requests/s> <p99> <requests>" from wrk --latency output, and the
# error lines wrk reports (non-2xx, socket errors) on stderr.
parse_wrk() {
	awk '
		/Requests\/sec:/ { rps = $2 }
		/^ +99%/ { p99 = $2 }
		/Non-2xx or 3xx responses:/ { print "  " $0 > "/dev/stderr" }
		/Socket errors:/ { print "  " $0 > "/dev/stderr" }
		/requests in/ { total = $1 }
		END { printf "%s %s %s\n", rps, p99, total }
	'
}

# Runs wrk; leaves its output in $WORK/<name>.txt and "<rps> <p99> <total>"
# in $WORK/<name>.res.
run_wrk() {
	local name=$1 script=$2 path=$3 out
	out=$WORK/$name.txt
	if ! wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 10s --latency \
		-s "$script" "$CD_BASE_URL$path" >"$out" 2>&1; then
		cat "$out" >&2
		die "wrk failed for $name"
	fi
	[[ -z ${CD_BENCH_VERBOSE:-} ]] || cat "$out"
	parse_wrk <"$out" >"$WORK/$name.res"
}

echo "bench: preparing a user with purchased Live Help hours"
helper user "$WORK/cookie"
export CD_BENCH_COOKIE
CD_BENCH_COOKIE=$(<"$WORK/cookie")

echo "bench: GET /api/live-help-hour (wrk -t$THREADS -c$CONNS -d$DURATION)"
run_wrk live-help "$REPO/bench/live_help.lua" /api/live-help-hour
read -r lh_rps lh_p99 lh_total <"$WORK/live-help.res"

PREFIX=bench$(date +%s)x$$x
echo "bench: signing $EVENTS_N webhook events"
helper events "$WORK/events.tsv" "$EVENTS_N" "$PREFIX"
export CD_BENCH_EVENTS=$WORK/events.tsv CD_BENCH_THREADS=$THREADS
echo "bench: POST /api/stripe/webhook, a new signed event per request (wrk -t$THREADS -c$CONNS -d$DURATION)"
run_wrk webhook "$REPO/bench/webhook.lua" /api/stripe/webhook
read -r wh_rps wh_p99 wh_total <"$WORK/webhook.res"
stored=$(helper count "$PREFIX")

echo
printf '%-34s %12s %12s %10s\n' "endpoint" "requests/s" "p99" "requests"
printf '%-34s %12s %12s %10s\n' "GET /api/live-help-hour" "$lh_rps" "$lh_p99" "$lh_total"
printf '%-34s %12s %12s %10s\n' "POST /api/stripe/webhook" "$wh_rps" "$wh_p99" "$wh_total"
echo "webhook: $stored distinct events stored and processed (of $EVENTS_N pre-signed)"
if ((wh_total > EVENTS_N)); then
	echo "bench: warning: more requests than pre-signed events; repeats were duplicates" \
		"(raise CD_BENCH_EVENTS_N)" >&2
fi
