#!/usr/bin/env bash
# The performance table: the app's hot paths side by side with the limits a
# bare responder reaches on the same machine, in one run, so that the ratio
# (app / limit) is what is read, not the absolute figures of a shared box.
#
#   limit read   bench/limit_read.c: a bare libfcgi responder, one prepared
#                primary-key SELECT per request
#   app read     GET /api/live-help-hour, signed in (bench/live_help.lua)
#   limit body   the read limit padded to as many bytes as the app read's
#                answer, to tell the cost of the body from the app's work
#   limit write  bench/limit_write.c: one prepared INSERT … ON DUPLICATE KEY
#                UPDATE of the request body under a new key + COMMIT, the
#                server flushing at commit
#   app webhook  POST /api/stripe/webhook, a new correctly signed event per
#                request (bench/webhook.lua; events signed just before each run)
#
# The script builds the limit responders with cc and the app's libraries,
# runs each with spawn-fcgi + multiwatch and as many children as the stack's
# families (CD_CHILDREN, 4 when this starts the stack), and reloads the
# stack's own nginx with two more upstreams and locations (/bench/limit-read,
# -write) in the same shape as the app's: every target goes through the same
# nginx.  (One nginx only: the FastCGI keep-alive is sized for the workers of
# the one nginx in front of the children.)  The stack's nginx.conf is put
# back and reloaded at the end.  wrk -t2 -c64 -d10s per target, CD_PERF_ROUNDS rounds (2),
# medians; 127.0.0.1 only; about 25 s per target and round.
#
# Settings: those of bench/common.sh (CD_STATE_DIR, CD_BENCH_*), and
# CD_PERF_ROUNDS (1-5), CD_BENCH_EVENTS_N (events signed per webhook run,
# 150000: more than the fastest machine sends in 10 s), CD_PERF_KEEPALIVE=0
# (no FastCGI connections kept, to measure that lever), CD_PERF_RECORD=DIR (perf record -a -g of each target's run into
# DIR/<target>-<round>.data, to see where the difference is spent; needs
# Debian's linux-perf, which deps.sh does not install).  The
# bench database creditdesk_bench (two tables) is created with
# the stack's root account and dropped at the end.
set -euo pipefail
BENCH_NAME=perf
export CD_CHILDREN=${CD_CHILDREN:-4}
export CD_BENCH_CONNECTIONS=${CD_BENCH_CONNECTIONS:-64}
ROUNDS=${CD_PERF_ROUNDS:-2}
EVENTS_N=${CD_BENCH_EVENTS_N:-150000}
NOKEEP=$([[ ${CD_PERF_KEEPALIVE:-1} == 0 ]] && echo 1 || true)
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $ROUNDS =~ ^[1-5]$ ]] || die "CD_PERF_ROUNDS must be 1 to 5"
NGINX_CONF=$CD_STATE_DIR/nginx.conf
NGINX_PID=$(cat "$CD_STATE_DIR/nginx/nginx.pid")

ROOT_SQL=(mariadb --defaults-file="$CD_STATE_DIR/root.cnf")
BIN=$CD_STATE_DIR/bench	# reachable by the service users, unlike $WORK
LIMITS=(limit-read limit-write)
PIDS=()

# Whatever this script started, by the PIDs it recorded; then common.sh's.
perf_cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	if [[ -r $WORK/nginx.conf.orig ]]; then
		cp "$WORK/nginx.conf.orig" "$NGINX_CONF"
		kill -HUP "$NGINX_PID" 2>/dev/null || true
	fi
	sleep 1
	"${ROOT_SQL[@]}" -e "DROP DATABASE IF EXISTS creditdesk_bench" 2>/dev/null || true
	revoke_db
	rm -rf "$BIN"
	cleanup
}
trap perf_cleanup EXIT

# A dropped database keeps its grants: the app's account gets its back, or
# it would hold a database-wide grant (test_least_privilege).
revoke_db() {
	local h
	for h in $("${ROOT_SQL[@]}" -N -e "SELECT host FROM mysql.user WHERE user = '$CD_DB_USER'"); do
		"${ROOT_SQL[@]}" -e "REVOKE ALL PRIVILEGES ON creditdesk_bench.* FROM '$CD_DB_USER'@'$h'" \
			2>/dev/null || true
	done
}

# The bench database: 1,000 rows to read, an empty table to write, and the
# app's account allowed to use both.
setup_db() {
	local hosts h
	"${ROOT_SQL[@]}" <<-'EOF'
		DROP DATABASE IF EXISTS creditdesk_bench;
		CREATE DATABASE creditdesk_bench;
		CREATE TABLE creditdesk_bench.kv (k BIGINT PRIMARY KEY, v BIGINT NOT NULL,
		  note VARCHAR(200) NOT NULL) ENGINE=InnoDB;
		CREATE TABLE creditdesk_bench.kv_log (k BIGINT PRIMARY KEY, body MEDIUMTEXT NOT NULL,
		  n INT NOT NULL DEFAULT 0) ENGINE=InnoDB;
		USE creditdesk_bench;
		INSERT INTO kv SELECT seq, seq * 7, CONCAT('row ', seq)
		  FROM seq_1_to_1000;
	EOF
	hosts=$("${ROOT_SQL[@]}" -N -e "SELECT host FROM mysql.user WHERE user = '$CD_DB_USER'")
	for h in $hosts; do
		"${ROOT_SQL[@]}" -e "GRANT SELECT, INSERT, UPDATE ON creditdesk_bench.* TO '$CD_DB_USER'@'$h'"
	done
}

# Builds the limit responders with the libraries the app links.
build_limits() {
	local cflags libs name
	cflags=$(pkg-config --cflags libmariadb 2>/dev/null || mariadb_config --cflags)
	libs=$(pkg-config --libs libmariadb 2>/dev/null || mariadb_config --libs)
	mkdir -p "$BIN"
	for name in "${LIMITS[@]}"; do
		# shellcheck disable=SC2086
		cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra $cflags -o "$BIN/$name" \
			"$REPO/bench/${name/-/_}.c" -lfcgi $libs
	done
	chmod -R a+rX "$BIN"
}

# One limit: spawn-fcgi binds its socket (as the stack does for a family)
# and execs multiwatch with CD_CHILDREN children.
spawn_limit() {
	local name=$1 sock=$CD_RUN_DIR/$1.sock opts=(-n -M 0660) i
	opts+=(-s "$sock")
	((EUID != 0)) || opts+=(-u nobody -g nogroup -U nobody -G www-data)
	rm -f "$sock"
	setsid env -i PATH=/usr/bin:/bin CD_DB_SOCKET="$CD_DB_SOCKET" CD_DB_USER="$CD_DB_USER" \
		CD_DB_PASSWORD="$CD_DB_PASSWORD" spawn-fcgi "${opts[@]}" -- \
		/usr/bin/multiwatch -f "$CD_CHILDREN" -- "$BIN/$name" \
		</dev/null >>"$CD_LOG_DIR/$name.log" 2>&1 &
	PIDS+=($!)
	for ((i = 0; i < 50; i++)); do
		[[ -S $sock ]] && return 0
		sleep 0.1
	done
	tail "$CD_LOG_DIR/$name.log" >&2
	die "$name did not start"
}

# The stack's nginx.conf plus the limits' upstreams (copies of the credits
# family's) and locations (the read one like /api/live-help-hour's, the
# write one like the webhook's).
render_nginx() {
	local conf=$NGINX_CONF up
	up=$(grep -E '^\s*upstream cd_credits ' "$conf") || die "no cd_credits upstream in $conf"
	awk -v nokeep="$NOKEEP" -v up="$up" -v run="$CD_RUN_DIR" '
		nokeep && /^\s*upstream / { sub(/ keepalive [0-9]+;/, "") }
		{ print }
		/^\s*upstream cd_pages / {
			for (n = 1; n <= 2; n++) {
				name = n == 1 ? "limit_read" : "limit_write"
				u = up
				gsub(/cd_credits/, "cd_" name, u)
				gsub(/[^ ]*credits\.sock/, "unix:" run "/" (n == 1 ? "limit-read" : "limit-write") ".sock", u)
				print u
			}
		}
		/^\s*server_name _;/ {
			print "\t\tlocation = /bench/limit-read { fastcgi_pass cd_limit_read; }"
			print "\t\tlocation = /bench/limit-write {"
			print "\t\t\tclient_max_body_size 1m;"
			print "\t\t\tfastcgi_request_buffering on;"
			print "\t\t\tfastcgi_pass cd_limit_write;"
			print "\t\t}"
		}' "$conf" >"$WORK/nginx.conf"
}

# Reloads the stack's nginx with the bench's configuration (put back by
# perf_cleanup); waits until the new workers answer.
reload_nginx() {
	local i code
	nginx -p "$CD_STATE_DIR/nginx/" -c "$WORK/nginx.conf" -t -q || die "nginx rejected $WORK/nginx.conf"
	cp "$NGINX_CONF" "$WORK/nginx.conf.orig"
	cp "$WORK/nginx.conf" "$NGINX_CONF"
	kill -HUP "$NGINX_PID"
	for ((i = 0; i < 100; i++)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$CD_BASE_URL/bench/limit-read")
		[[ $code == 200 ]] && return 0
		sleep 0.1
	done
	die "nginx answers $code for /bench/limit-read after the reload"
}

helper() { (cd "$REPO" && PYTHONPATH=$REPO "$PY" "$REPO/bench/bench_setup.py" "$@"); }

# p99 as wrk prints it (850.00us, 14.21ms, 1.02s) in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) printf "%.2f", v / 1000; else if (v ~ /ms$/) printf "%.2f", v + 0;
		else if (v ~ /m$/) printf "%.2f", v * 60000; else printf "%.2f", v * 1000 }'
}

# CPU clock ticks (user + system) the processes named spent so far.
cpu_ticks() {
	local p
	for p in "$@"; do
		awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true
	done | awk '{ s += $1 } END { print s + 0 }'
}

# The processes a target runs on: the database server, nginx's workers and
# the target's responder children (program path $1).
parts() {
	local db nginx_workers children
	db=$(cat "$CD_STATE_DIR/mysqld/mysqld.pid")
	nginx_workers=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
	children=$(pgrep -f "^$1\$" | tr '\n' ' ')
	echo "$db|$nginx_workers|$children"
}

# A system-wide profile of the middle of a target's run (CD_PERF_RECORD).
record() {
	sleep 2
	perf record -q -a -g -o "$CD_PERF_RECORD/$1-$round.data" -- sleep 5 >/dev/null 2>&1 ||
		echo "perf: warning: perf record failed for $1" >&2
}

# measure NAME LUA PATH PROGRAM: run_wrk, and the CPU each part spent per
# request (microseconds: database, nginx, responders) in $WORK/NAME.cpu.
measure() {
	local name=$1 program=$4 p before=() after=() total i rec
	IFS='|' read -r -a p <<<"$(parts "$program")"
	for i in 0 1 2; do
		# shellcheck disable=SC2086
		before[i]=$(cpu_ticks ${p[i]})
	done
	rec=
	[[ -z ${CD_PERF_RECORD:-} ]] || { record "$name" & rec=$!; }
	run_wrk "$name" "$2" "$3"
	[[ -z $rec ]] || wait "$rec"
	for i in 0 1 2; do
		# shellcheck disable=SC2086
		after[i]=$(cpu_ticks ${p[i]})
	done
	read -r _ _ total <"$WORK/$name.res"
	awk -v hz="$(getconf CLK_TCK)" -v n="$total" -v d0=$((after[0] - before[0])) \
		-v d1=$((after[1] - before[1])) -v d2=$((after[2] - before[2])) \
		'BEGIN { f = 1e6 / hz / n; printf "%.0f %.0f %.0f\n", d0 * f, d1 * f, d2 * f }' \
		>>"$WORK/$name.cpu"
}

# One round: each target once; results appended to $WORK/<target>.all as
# "<rps> <p99 ms>".
run_round() {
	local round=$1 prefix rps p99 total stored t app=$CD_STATE_DIR/app/bin
	measure limit-read "$REPO/bench/get.lua" /bench/limit-read "$BIN/limit-read"
	measure app-read "$REPO/bench/live_help.lua" /api/live-help-hour "$app/creditdesk-credits"
	measure limit-body "$REPO/bench/get.lua" "/bench/limit-read?bytes=$APP_BYTES" "$BIN/limit-read"
	prefix=perf$(date +%s)x$$x${round}x
	helper events "$WORK/events.tsv" "$EVENTS_N" "$prefix"
	CD_BENCH_POST_PATH=/bench/limit-write measure limit-write "$REPO/bench/webhook.lua" \
		/bench/limit-write "$BIN/limit-write"
	measure app-webhook "$REPO/bench/webhook.lua" /api/stripe/webhook "$app/creditdesk-webhook"
	for t in limit-read app-read limit-body limit-write app-webhook; do
		# A target that answered errors measured something else.
		! grep -q "Non-2xx or 3xx responses" "$WORK/$t.txt" ||
			die "$t answered errors in round $round; its figures are not valid"
		read -r rps p99 total <"$WORK/$t.res"
		echo "$rps $(to_ms "$p99")" >>"$WORK/$t.all"
		printf 'perf: round %d  %-12s %10s req/s  p99 %s  CPU us/request db, nginx, responders: %s\n' \
			"$round" "$t" "$rps" "$p99" "$(tail -1 "$WORK/$t.cpu")"
	done
	read -r _ _ total <"$WORK/app-webhook.res"
	stored=$(helper count "$prefix")
	((total <= EVENTS_N)) || echo "perf: warning: more webhook requests than signed events" >&2
	((stored >= total)) ||
		echo "perf: warning: $total webhook requests but $stored events stored and processed" >&2
}

# The median of column $2 of file $1.
median() {
	sort -g -k"$2,$2" "$1" | awk -v c="$2" '{ v[NR] = $c }
		END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# "min–max" of column $2 of file $1.
spread() {
	sort -g -k"$2,$2" "$1" | awk -v c="$2" 'NR == 1 { lo = $c } { hi = $c } END { printf "%.0f–%.0f", lo, hi }'
}

print_table() {
	local t label limit rps p99 lrps cpu
	echo
	echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$THREADS -c$CONNS" \
		"-d$DURATION, $CD_CHILDREN children per target, $ROUNDS rounds, medians," \
		"FastCGI keep-alive $([[ -n $NOKEEP ]] && echo off || echo on)"
	printf '| %-66s | %9s | %9s | %5s | %-17s | %-24s |\n' target "req/s" "p99 ms" ratio \
		"req/s per round" "CPU µs/req: db/nginx/app"
	printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..68})" ----------- ----------- \
		------- ------------------- --------------------------
	for t in limit-read app-read limit-body limit-write app-webhook; do
		case $t in
		limit-read) label="bare responder, one prepared PK SELECT (read limit)" limit=limit-read ;;
		app-read) label="GET /api/live-help-hour, signed in ($APP_BYTES-byte answer)" limit=limit-read ;;
		limit-body) label="read limit answering $APP_BYTES bytes too" limit=limit-read ;;
		limit-write) label="bare responder, INSERT ... ON DUPLICATE KEY + COMMIT (write limit)" limit=limit-write ;;
		app-webhook) label="POST /api/stripe/webhook, a new signed event each" limit=limit-write ;;
		esac
		rps=$(median "$WORK/$t.all" 1)
		p99=$(median "$WORK/$t.all" 2)
		lrps=$(median "$WORK/$limit.all" 1)
		cpu=$(printf "%.0f / %.0f / %.0f" "$(median "$WORK/$t.cpu" 1)" "$(median "$WORK/$t.cpu" 2)" "$(median "$WORK/$t.cpu" 3)")
		printf '| %-66s | %9.0f | %9s | %5s | %-17s | %-24s |\n' "$label" "$rps" "$p99" \
			"$(awk -v a="$rps" -v b="$lrps" 'BEGIN { printf "%.2f", a / b }')" \
			"$(spread "$WORK/$t.all" 1)" "$cpu"
	done
	echo
	echo "The app read against the read limit answering as many bytes: $(awk \
		-v a="$(median "$WORK/app-read.all" 1)" -v b="$(median "$WORK/limit-body.all" 1)" \
		'BEGIN { printf "%.2f", a / b }')"
}

stack_children=$(grep -o "CD_CHILDREN='[0-9]*'" "$CD_STATE_DIR/env" | tr -dc 0-9)
[[ $stack_children == "$CD_CHILDREN" ]] ||
	die "the stack runs $stack_children children per family, not $CD_CHILDREN; restart it with CD_CHILDREN=$CD_CHILDREN"
echo "perf: building and starting the limit responders"
setup_db
build_limits
for name in "${LIMITS[@]}"; do
	spawn_limit "$name"
done
render_nginx
reload_nginx
echo "perf: preparing a user with purchased Live Help hours"
helper user "$WORK/cookie"
export CD_BENCH_COOKIE CD_BENCH_EVENTS=$WORK/events.tsv CD_BENCH_THREADS=$THREADS
CD_BENCH_COOKIE=$(<"$WORK/cookie")
APP_BYTES=$(curl -s --max-time 5 -H "Cookie: cd_session=$CD_BENCH_COOKIE" "$CD_BASE_URL/api/live-help-hour" | wc -c)
((APP_BYTES > 0)) || die "GET /api/live-help-hour answered nothing"
for ((round = 1; round <= ROUNDS; round++)); do
	run_round "$round"
done
print_table
