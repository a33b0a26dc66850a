#!/usr/bin/env bash
# Benchmarks chat push through nginx (nchan), on 127.0.0.1 only: the
# delivery time of a message from one participant's POST to the other's
# EventSource (p50, p90, max over CD_BENCH_CHAT_MESSAGES, 200), and the CPU
# that CD_BENCH_CHAT_ROOMS (1000) open, idle room streams cost nginx and
# the responders over CD_BENCH_CHAT_IDLE seconds (60; measured first with
# no stream open), as a share of one core.  The goal is under 5 %.
# bench/bench_chat.py does the work; the rooms are consultations bought
# through Checkout and the emulator, each given a mechanic by the admin's
# API (out of the mechanics' queue); they stay in the stack's database.
#
# Stack settings: see bench/common.sh.
set -euo pipefail
BENCH_NAME=bench-chat
MESSAGES=${CD_BENCH_CHAT_MESSAGES:-200}
ROOMS=${CD_BENCH_CHAT_ROOMS:-1000}
IDLE=${CD_BENCH_CHAT_IDLE:-60}
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $MESSAGES =~ ^[0-9]+$ && $MESSAGES -ge 10 && $MESSAGES -le 5000 ]] ||
	die "CD_BENCH_CHAT_MESSAGES must be 10 to 5000"
[[ $ROOMS =~ ^[0-9]+$ && $ROOMS -ge 1 && $ROOMS -le 3000 ]] ||
	die "CD_BENCH_CHAT_ROOMS must be 1 to 3000"
[[ $IDLE =~ ^[0-9]+$ && $IDLE -ge 5 && $IDLE -le 300 ]] ||
	die "CD_BENCH_CHAT_IDLE must be 5 to 300 seconds"
ulimit -n "$((ROOMS + 1024))" 2>/dev/null || die "cannot open $ROOMS streams (ulimit -n)"

rc=0
(cd "$REPO" && PYTHONPATH=$REPO timeout $((IDLE * 2 + ROOMS / 2 + MESSAGES + 300)) \
	"$PY" "$REPO/bench/bench_chat.py" "$MESSAGES" "$ROOMS" "$IDLE") >"$WORK/chat.txt" || rc=$?
grep -v '^RESULT ' "$WORK/chat.txt" || true
((rc == 0)) || die "bench_chat.py failed (exit $rc)"
result() { awk -v k="$1" '$1 == "RESULT" && $2 == k { print $3 }' "$WORK/chat.txt"; }

echo
echo "delivery, POST to the other participant's EventSource ($MESSAGES messages):"
echo "  p50 $(result delivery_p50_ms) ms, p90 $(result delivery_p90_ms) ms, max $(result delivery_max_ms) ms"
echo "CPU of nginx and the responders over ${IDLE} s (share of one core):"
echo "  no stream open:           $(result baseline_cpu_pct) %"
echo "  $ROOMS idle rooms open:   $(result idle_cpu_pct) %   (streams closed meanwhile: $(result idle_streams_closed))"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
