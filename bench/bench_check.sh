#!/usr/bin/env bash
# Times creditdesk-check on a large, consistent book: a scratch database
# (creditdesk_bench, on the running stack's MariaDB) built from the
# migrations, with CD_BENCH_USERS users (100,000) and ten ledger rows each
# (1,000,000), one paid Live Help purchase per user (checkout row, purchase,
# totals, audit row), a redemption each into shared slots, and one voice
# credit with one ended session each.  The data is generated inside MariaDB
# (the Sequence engine), so setting up takes seconds, not hours.
#
# Runs the check once to warm the buffer pool, then CD_BENCH_RUNS times (5)
# and prints the last run's table and every wall time with the machine's
# load average; fails if the check finds anything (the data is consistent by
# construction) or any timed run takes longer than CD_BENCH_CHECK_LIMIT
# seconds (10).  CD_BENCH_KEEP=1 keeps the database.
#
# The book is about 340 MB of rows and indexes, so for the bench the
# server's buffer pool is grown to CD_BENCH_POOL_MB (512) and put back
# afterwards: with the development stack's 128 MB every run would read most
# pages again from the operating system, which times the pool, not the
# check (a production server is sized to hold its working set).
#
# Needs a stack started by scripts/stack.sh (its root option file in
# $CD_STATE_DIR, default $repo/.state) and a built creditdesk-check.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CD_STATE_DIR=${CD_STATE_DIR:-$REPO/.state}
USERS=${CD_BENCH_USERS:-100000}
LIMIT=${CD_BENCH_CHECK_LIMIT:-10}
RUNS=${CD_BENCH_RUNS:-5}
POOL_MB=${CD_BENCH_POOL_MB:-512}
BENCH_DB=creditdesk_bench

die() { echo "bench: error: $*" >&2; exit 1; }

[[ -r $CD_STATE_DIR/env && -r $CD_STATE_DIR/root.cnf ]] ||
	die "no stack in $CD_STATE_DIR (bash scripts/stack.sh start)"
[[ -x $REPO/creditdesk-check ]] || die "build first (bash scripts/build.sh)"
[[ $USERS =~ ^[0-9]+$ && $USERS -ge 1 && $USERS -le 1000000 ]] ||
	die "CD_BENCH_USERS must be 1 to 1000000"
# shellcheck source=/dev/null
source "$CD_STATE_DIR/env"
ROOT=(mariadb --defaults-file="$CD_STATE_DIR/root.cnf")

OLD_POOL=$("${ROOT[@]}" -N -e "SELECT @@innodb_buffer_pool_size")

cleanup() {
	"${ROOT[@]}" -e "SET GLOBAL innodb_buffer_pool_size = $OLD_POOL" || true
	# a dropped database keeps its grants: take the app user's back too
	[[ -z ${CD_BENCH_KEEP:-} ]] || return 0
	"${ROOT[@]}" -e "DROP DATABASE IF EXISTS $BENCH_DB" || true
	"${ROOT[@]}" -e "REVOKE ALL PRIVILEGES ON $BENCH_DB.* FROM '$CD_DB_USER'@'localhost'" \
		2>/dev/null || true
}
trap cleanup EXIT

create_db() {
	"${ROOT[@]}" -e "DROP DATABASE IF EXISTS $BENCH_DB;
		CREATE DATABASE $BENCH_DB CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
		GRANT SELECT, INSERT, UPDATE, DELETE ON $BENCH_DB.* TO '$CD_DB_USER'@'localhost';"
	CD_DB_NAME=$BENCH_DB CD_DB_SOCKET='' CD_DB_HOST='' CD_DB_PORT='' CD_DB_USER='' \
		CD_DB_PASSWORD='' "$REPO/db/migrate.sh" \
		--defaults-extra-file="$CD_STATE_DIR/root.cnf" >/dev/null
}

# Row k of every user's ledger, one INSERT per k so that each user's rows
# get increasing ids without sorting a million rows: odd rows allocate 300,
# even rows spend 100, so before = 300 * (k DIV 2) - 100 * ((k - 1) DIV 2)
# and the final balance is 1,000 with 1,500 earned and 500 spent.
ledger_rows() {
	local k before delta type
	for k in {1..10}; do
		before=$((300 * (k / 2) - 100 * ((k - 1) / 2)))
		if ((k % 2)); then delta=300 type=allocation; else delta=-100 type=consumption; fi
		echo "INSERT INTO credit_transactions (user_id, credits_delta, balance_before,"
		echo "    balance_after, transaction_type, activity_type, description, metadata)"
		echo "  SELECT seq, $delta, $before, $((before + delta)), '$type', 'bench', 'bench', '{}'"
		echo "  FROM seq_1_to_$USERS;"
	done
}

generate() {
	"${ROOT[@]}" "$BENCH_DB" <<-EOF
		SET SESSION foreign_key_checks = 0, unique_checks = 0;
		INSERT INTO users (id, email, name, password_hash)
		  SELECT seq, CONCAT('bench', seq, '@bench.test'), 'Bench', 'x' FROM seq_1_to_$USERS;
$(ledger_rows)
		INSERT INTO user_credits (user_id, balance, total_earned, total_spent)
		  SELECT seq, 1000, 1500, 500 FROM seq_1_to_$USERS;
		INSERT INTO checkout_sessions (stripe_session_id, user_id, product, item_code, quantity,
		    amount_cents, status, fulfilled_at)
		  SELECT CONCAT('cs_bench_', seq), seq, 'live_help', 'live_help', 2, 9800, 'fulfilled',
		    UTC_TIMESTAMP(6) FROM seq_1_to_$USERS;
		INSERT INTO live_help_purchases (user_id, stripe_session_id, hours, amount_cents)
		  SELECT seq, CONCAT('cs_bench_', seq), 2, 9800 FROM seq_1_to_$USERS;
		INSERT INTO audit_log (action, entity_type, entity_id, user_id, details)
		  SELECT 'PAYMENT_FULFILLED', 'checkout_session', CONCAT('cs_bench_', seq), seq, '{}'
		  FROM seq_1_to_$USERS;
		INSERT INTO live_help_slots (id, starts_at, ends_at, capacity, booked)
		  SELECT seq, UTC_TIMESTAMP() + INTERVAL seq HOUR,
		    UTC_TIMESTAMP() + INTERVAL seq + 1 HOUR, 100, 100 FROM seq_1_to_$(((USERS + 99) / 100));
		UPDATE live_help_slots SET booked = $USERS - 100 * (id - 1) WHERE id = $(((USERS + 99) / 100));
		INSERT INTO live_help_redemptions (user_id, slot_id)
		  SELECT seq, (seq + 99) DIV 100 FROM seq_1_to_$USERS;
		INSERT INTO user_live_help_totals (user_id, hours_total, hours_used)
		  SELECT seq, 2, 1 FROM seq_1_to_$USERS;
		INSERT INTO checkout_sessions (stripe_session_id, user_id, product, item_code, quantity,
		    amount_cents, status, fulfilled_at)
		  SELECT CONCAT('cs_benchv_', seq), seq, 'voice_therapy', 'voice_therapy', 1, 999,
		    'fulfilled', UTC_TIMESTAMP(6) FROM seq_1_to_$USERS;
		INSERT INTO audit_log (action, entity_type, entity_id, user_id, details)
		  SELECT 'PAYMENT_FULFILLED', 'checkout_session', CONCAT('cs_benchv_', seq), seq, '{}'
		  FROM seq_1_to_$USERS;
		INSERT INTO voice_therapy_credits (id, user_id, stripe_session_id, minutes_purchased,
		    minutes_remaining, amount_cents, expires_at)
		  SELECT seq, seq, CONCAT('cs_benchv_', seq), 15, 12, 999,
		    UTC_TIMESTAMP(6) + INTERVAL 30 DAY FROM seq_1_to_$USERS;
		INSERT INTO voice_therapy_sessions (id, user_id, status, open_slot, available_minutes,
		    seconds_used, minutes_requested, minutes_deducted, ended_at)
		  SELECT seq, seq, 'ended', NULL, 15, 180, 3, 3, UTC_TIMESTAMP(6) FROM seq_1_to_$USERS;
		INSERT INTO voice_therapy_usage (session_id, credit_id, minutes)
		  SELECT seq, seq, 3 FROM seq_1_to_$USERS;
		ANALYZE TABLE credit_transactions, user_credits, checkout_sessions, audit_log;
	EOF
}

run_check() {
	local t0 rc=0
	t0=$(date +%s%N)
	env -i PATH=/usr/bin:/bin TZ=UTC CD_DB_SOCKET="$CD_DB_SOCKET" CD_DB_USER="$CD_DB_USER" \
		CD_DB_PASSWORD="$CD_DB_PASSWORD" CD_DB_NAME=$BENCH_DB \
		"$REPO/creditdesk-check" || rc=$?
	ELAPSED_MS=$((($(date +%s%N) - t0) / 1000000))
	((rc == 0)) || die "creditdesk-check exited $rc on a consistent book"
}

load_average() { cut -d' ' -f1 /proc/loadavg; }

main() {
	local t0 cold i slowest=0 times=()
	echo "bench: building $BENCH_DB with $USERS users and $((USERS * 10)) ledger rows"
	t0=$(date +%s)
	"${ROOT[@]}" -e "SET GLOBAL innodb_buffer_pool_size = $((POOL_MB * 1048576))"
	create_db
	generate >/dev/null
	echo "bench: data ready in $(($(date +%s) - t0)) s; running creditdesk-check $((RUNS + 1)) times"
	# The first run also reads the fresh rows into the buffer pool; the
	# others are the steady state of a check that runs every few minutes.
	run_check >/dev/null
	cold=$ELAPSED_MS
	for ((i = 1; i <= RUNS; i++)); do
		if ((i < RUNS)); then run_check >/dev/null; else run_check; fi
		times+=("$(printf '%d.%03d s (load %s)' $((ELAPSED_MS / 1000)) \
			$((ELAPSED_MS % 1000)) "$(load_average)")")
		((ELAPSED_MS <= slowest)) || slowest=$ELAPSED_MS
	done
	printf 'bench: creditdesk-check for %d users, %d ledger rows (limit %d s, first run %d.%03d s):\n' \
		"$USERS" $((USERS * 10)) "$LIMIT" $((cold / 1000)) $((cold % 1000))
	printf 'bench:   %s\n' "${times[@]}"
	((slowest <= LIMIT * 1000)) || die "slower than $LIMIT s"
}

main "$@"
