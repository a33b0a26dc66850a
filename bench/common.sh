# Shared by the bench scripts (sourced, not run): settings, the stack to
# measure, a work directory cleaned up on exit, and wrk runs with their
# figures.  The caller sets BENCH_NAME before sourcing.
#
# A stack that answers is used as it is; otherwise one is started, and
# stopped at the end only if nothing of it was running before
# (CD_BENCH_KEEP=1 keeps it).  Settings: CD_STATE_DIR (default
# $repo/.state), CD_BENCH_THREADS (wrk -t, 2), CD_BENCH_CONNECTIONS (-c, 32),
# CD_BENCH_DURATION (-d, 10s, at most 120s), CD_BENCH_VERBOSE=1 (print
# wrk's own output).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CD_STATE_DIR=${CD_STATE_DIR:-$REPO/.state}
STACK=$REPO/scripts/stack.sh
PY=/usr/bin/python3
THREADS=${CD_BENCH_THREADS:-2}
CONNS=${CD_BENCH_CONNECTIONS:-32}
DURATION=${CD_BENCH_DURATION:-10s}

die() { echo "bench: error: $*" >&2; exit 1; }

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
[[ $DURATION =~ ^[0-9]+s?$ && ${DURATION%s} -ge 1 && ${DURATION%s} -le 120 ]] ||
	die "CD_BENCH_DURATION must be 1s to 120s"

answers() {
	[[ -r $CD_STATE_DIR/env ]] &&
		(source "$CD_STATE_DIR/env" && [[ $(curl -s -o /dev/null -w '%{http_code}' \
			--max-time 5 "$CD_BASE_URL/api/me") == 401 ]])
}

STARTED=
if ! answers; then
	# status exits 3 when something is stopped: read its output, not its code
	status=$(bash "$STACK" status 2>/dev/null || true)
	if grep -q '^mariadb *stopped' <<<"$status"; then
		STARTED=1
	fi
	echo "bench: no stack answering for $CD_STATE_DIR; starting one"
	bash "$STACK" start
	answers || die "the stack does not answer after start"
fi
# shellcheck source=/dev/null
source "$CD_STATE_DIR/env"
[[ $CD_BASE_URL == http://127.0.0.1:* ]] || die "refusing to benchmark $CD_BASE_URL (127.0.0.1 only)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cd-$BENCH_NAME.XXXXXX")
cleanup() {
	rm -rf "$WORK"
	if [[ -n $STARTED && -z ${CD_BENCH_KEEP:-} ]]; then
		bash "$STACK" stop >/dev/null || true
	fi
}
trap cleanup EXIT

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

# run_wrk NAME LUA_SCRIPT PATH: leaves wrk's output in $WORK/NAME.txt and
# "<rps> <p99> <total>" in $WORK/NAME.res.
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
