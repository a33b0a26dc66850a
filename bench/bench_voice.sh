#!/usr/bin/env bash
# Benchmarks Voice AI Therapy through nginx, on 127.0.0.1 only:
#
#   1. GET /api/voice-therapy/credits as a firewall-tier user with credits
#      (wrk, session cookie set by bench/voice_credits.lua)
#   2. POST /api/voice-therapy/start + POST /api/voice-therapy/end pairs: a
#      user may have one open session at a time and end needs the sessionId
#      start returned, so this is a Python loop (bench/bench_voice.py), one
#      process per user, each over one keep-alive connection, for the same
#      duration; every end deducts one minute and the total is checked
#      against the database afterwards
#
# and prints requests/s and p99 latency for each.  The users' minutes are
# inserted straight into voice_therapy_credits through the admin DB user.
#
# Uses the stack of $CD_STATE_DIR (default $repo/.state) when it is running;
# otherwise starts one and stops it again at the end (CD_BENCH_KEEP=1 keeps
# it).  Settings: CD_BENCH_THREADS (wrk -t, 2), CD_BENCH_CONNECTIONS (-c, 32),
# CD_BENCH_DURATION (-d, 10s; also bounds the start/end loop),
# CD_BENCH_VOICE_USERS (start/end worker processes, one user each, 8).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CD_STATE_DIR=${CD_STATE_DIR:-$REPO/.state}
STACK=$REPO/scripts/stack.sh
PY=/usr/bin/python3
THREADS=${CD_BENCH_THREADS:-2}
CONNS=${CD_BENCH_CONNECTIONS:-32}
DURATION=${CD_BENCH_DURATION:-10s}
VOICE_USERS=${CD_BENCH_VOICE_USERS:-8}
MINUTES=10000000

die() { echo "bench: error: $*" >&2; exit 1; }

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
[[ $DURATION =~ ^[0-9]+s?$ && ${DURATION%s} -ge 1 && ${DURATION%s} -le 120 ]] ||
	die "CD_BENCH_DURATION must be 1s to 120s"
[[ $VOICE_USERS =~ ^[0-9]+$ && $VOICE_USERS -ge 1 && $VOICE_USERS -le 64 ]] ||
	die "CD_BENCH_VOICE_USERS must be 1 to 64"

answers() {
	[[ -r $CD_STATE_DIR/env ]] &&
		(source "$CD_STATE_DIR/env" && [[ $(curl -s -o /dev/null -w '%{http_code}' \
			--max-time 5 "$CD_BASE_URL/api/me") == 401 ]])
}
STARTED=
if ! answers; then
	if bash "$STACK" status 2>/dev/null | grep -q '^mariadb *stopped'; then
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

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cd-bench-voice.XXXXXX")
cleanup() {
	rm -rf "$WORK"
	if [[ -n $STARTED && -z ${CD_BENCH_KEEP:-} ]]; then
		bash "$STACK" stop >/dev/null || true
	fi
}
trap cleanup EXIT

helper() { (cd "$REPO" && PYTHONPATH=$REPO "$PY" "$REPO/bench/bench_voice.py" "$@"); }

# "<requests/s> <p99> <total>" from wrk --latency output on stdin; wrk's
# error lines (non-2xx, socket errors) on stderr.
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

echo "bench: preparing $VOICE_USERS firewall users with voice minutes"
helper users "$WORK/users.tsv" "$VOICE_USERS" "$MINUTES"
export CD_BENCH_COOKIE
CD_BENCH_COOKIE=$(head -n1 "$WORK/users.tsv" | cut -f2)

echo "bench: GET /api/voice-therapy/credits (wrk -t$THREADS -c$CONNS -d$DURATION)"
if ! wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 10s --latency \
	-s "$REPO/bench/voice_credits.lua" "$CD_BASE_URL/api/voice-therapy/credits" \
	>"$WORK/credits.txt" 2>&1; then
	cat "$WORK/credits.txt" >&2
	die "wrk failed"
fi
[[ -z ${CD_BENCH_VERBOSE:-} ]] || cat "$WORK/credits.txt"
read -r cr_rps cr_p99 cr_total < <(parse_wrk <"$WORK/credits.txt")

echo "bench: POST start + POST end pairs ($VOICE_USERS users, keep-alive, ${DURATION%s}s)"
rc=0
helper startend "$WORK/users.tsv" "${DURATION%s}" >"$WORK/startend.txt" || rc=$?
grep -v '^RESULT ' "$WORK/startend.txt" || true
read -r _ _ se_rps se_p99 se_total se_pairs se_p99_start se_p99_end se_p50 \
	< <(grep '^RESULT startend ' "$WORK/startend.txt") || die "the start/end loop failed"

echo
printf '%-40s %12s %12s %10s\n' "endpoint" "requests/s" "p99" "requests"
printf '%-40s %12s %12s %10s\n' "GET /api/voice-therapy/credits" "$cr_rps" "$cr_p99" "$cr_total"
printf '%-40s %12s %12s %10s\n' "POST voice-therapy start+end (mixed)" "$se_rps" "$se_p99" "$se_total"
echo "start/end: $se_pairs pairs/s; p99 start $se_p99_start, p99 end $se_p99_end, p50 both $se_p50"
exit "$rc"
