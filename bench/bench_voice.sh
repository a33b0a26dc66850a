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
# Stack and wrk settings: see bench/common.sh (CD_BENCH_DURATION also bounds
# the start/end loop).  CD_BENCH_VOICE_USERS sets the start/end worker
# processes, one user each (8).
set -euo pipefail
BENCH_NAME=bench-voice
VOICE_USERS=${CD_BENCH_VOICE_USERS:-8}
MINUTES=10000000
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $VOICE_USERS =~ ^[0-9]+$ && $VOICE_USERS -ge 1 && $VOICE_USERS -le 64 ]] ||
	die "CD_BENCH_VOICE_USERS must be 1 to 64"

helper() { (cd "$REPO" && PYTHONPATH=$REPO "$PY" "$REPO/bench/bench_voice.py" "$@"); }

echo "bench: preparing $VOICE_USERS firewall users with voice minutes"
helper users "$WORK/users.tsv" "$VOICE_USERS" "$MINUTES"
export CD_BENCH_COOKIE
CD_BENCH_COOKIE=$(head -n1 "$WORK/users.tsv" | cut -f2)

echo "bench: GET /api/voice-therapy/credits (wrk -t$THREADS -c$CONNS -d$DURATION)"
run_wrk credits "$REPO/bench/voice_credits.lua" /api/voice-therapy/credits
read -r cr_rps cr_p99 cr_total <"$WORK/credits.res"

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
