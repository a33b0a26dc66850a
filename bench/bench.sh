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
# Stack and wrk settings: see bench/common.sh.  CD_BENCH_EVENTS_N sets the
# number of pre-signed events (120000).
set -euo pipefail
BENCH_NAME=bench
EVENTS_N=${CD_BENCH_EVENTS_N:-120000}
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

helper() { (cd "$REPO" && PYTHONPATH=$REPO "$PY" "$REPO/bench/bench_setup.py" "$@"); }

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
