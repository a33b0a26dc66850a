#!/usr/bin/env bash
# Runs every test: installs missing packages, builds, runs the C unit tests
# (make check), make distcheck, the layout tests (tests/layout/), the Stripe emulator's
# self-test and a short fuzz run of every harness, starts a private test
# stack (its own datadir, ports and emulator, wiped at every run so results
# do not depend on earlier runs), runs the integration tests and then the
# browser journeys (tests/browser, headless Chromium) against it, and stops
# it again whatever happens.
# The last line printed is exactly "N passed, N failed" (unit test cases plus
# integration tests plus browser journeys); the exit status is non-zero if anything failed.
#
# Usage: scripts/test.sh
#        scripts/test.sh --cluster   the cluster suite instead (tests/cluster:
#                    cross-node races and faults) against a fresh three-machine
#                    cluster from scripts/cluster.sh (root; CD_CLUSTER_RACES
#                    races per invariant, 200)
# Settings: CD_TEST_STATE_DIR (default $repo/.state-test), CD_TEST_HTTP_PORT
# (18081), CD_TEST_DB_PORT (13307), CD_TEST_EMU_PORT (12112);
# CD_TEST_VALGRIND=1 runs the unit tests under valgrind; CD_SKIP_DEPS=1 skips
# scripts/deps.sh.  Arguments after the script name go to the integration
# runner (e.g. a test name filter, if the runner supports one).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEST_STATE_ASKED=$(realpath -m "${CD_TEST_STATE_DIR:-$REPO/.state-test}")
TEST_STATE=	# the directory the stack really uses (set in main, see stack.sh state-dir)

PASSED=0
FAILED=0
STACK_UP=
TMP_FILES=()

# The stack is configured only through these, whatever the caller's shell
# had exported (a sourced .state/env, for instance).
stack() {
	CD_STATE_DIR=$TEST_STATE_ASKED \
	CD_HTTP_PORT=${CD_TEST_HTTP_PORT:-18081} \
	CD_DB_PORT=${CD_TEST_DB_PORT:-13307} \
	CD_EMU_PORT=${CD_TEST_EMU_PORT:-12112} \
	CD_EMU_RETRY=1,1,2,2,4 \
	CD_CHILDREN=${CD_TEST_CHILDREN:-2} \
	CD_BOOKS_INTERVAL=0 \
		bash "$REPO/scripts/stack.sh" "$@"
}

# Stops the test stack if this run started it (also from the EXIT trap).
stop_stack() {
	if [[ -n $STACK_UP ]]; then
		STACK_UP=
		stack stop || echo "test: stopping the test stack failed" >&2
	fi
}

# Everything the EXIT trap undoes, interrupted or not.
cleanup() {
	stop_stack
	((${#TMP_FILES[@]} == 0)) || rm -f "${TMP_FILES[@]}"
}

summary() {
	echo "$PASSED passed, $FAILED failed"
	((FAILED == 0))
}

# ---- unit tests

# Counts Check's per-program summary ("100%: Checks: 12, Failures: 0,
# Errors: 0") from each test's automake log; a program that failed without
# such a line (crash, valgrind error, link error) counts as one failure.
count_unit_results() {
	local stamp=$1 trs log result line checks failures errors
	local found=0
	while IFS= read -r trs; do
		found=1
		log=${trs%.trs}.log
		result=$(sed -n 's/^:test-result: //p' "$trs" | head -n 1)
		line=$(grep -Eo '[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" 2>/dev/null | tail -n 1 || true)
		if [[ $line =~ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
			checks=${BASH_REMATCH[1]} failures=${BASH_REMATCH[2]} errors=${BASH_REMATCH[3]}
			PASSED=$((PASSED + checks - failures - errors))
			FAILED=$((FAILED + failures + errors))
			if [[ $result != PASS && $result != SKIP && $result != XFAIL ]] && ((failures + errors == 0)); then
				echo "test: ${trs%.trs}: $result although every check passed (see $log)" >&2
				FAILED=$((FAILED + 1))
			fi
		else
			case $result in
			PASS|XFAIL) PASSED=$((PASSED + 1)) ;;
			SKIP) ;;
			*) FAILED=$((FAILED + 1)); echo "test: ${trs%.trs}: $result (see $log)" >&2 ;;
			esac
		fi
	done < <(find "$REPO" -path "$TEST_STATE" -prune -o -path "$REPO/.state" -prune -o \
		-name '*.trs' -newer "$stamp" -print | sort)
	if ((found == 0)); then
		echo "test: make check produced no test results" >&2
		FAILED=$((FAILED + 1))
	fi
}

run_unit_tests() {
	local stamp rc=0
	stamp=$(mktemp "${TMPDIR:-/tmp}/cd-test-stamp.XXXXXX")
	TMP_FILES+=("$stamp")
	sleep 1	# .trs files must be strictly newer than the stamp
	local make_args=()
	if [[ -n ${CD_TEST_VALGRIND:-} ]]; then
		make_args=(LOG_COMPILER=valgrind
			"LOG_FLAGS=--quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --trace-children=yes")
		export CK_FORK=no
	fi
	echo "== unit tests (make check)"
	make -j"${CD_JOBS:-2}" check "${make_args[@]}" || rc=$?
	count_unit_results "$stamp"
	rm -f "$stamp"
	((rc == 0)) || echo "test: make check exited with $rc" >&2
}

# ---- fuzzing

# A short libFuzzer run of every parser harness (tests/fuzz/run.sh); each
# harness that builds and runs without a finding counts as one passed test.
run_fuzz_smoke() {
	local f name log
	echo "== fuzz smoke (${CD_FUZZ_SECONDS:-10}s per harness)"
	log=$(mktemp "${TMPDIR:-/tmp}/cd-test-fuzz.XXXXXX")
	TMP_FILES+=("$log")
	for f in "$REPO"/tests/fuzz/fuzz_*.c; do
		name=$(basename "$f" .c)
		if FUZZ_SECONDS=${CD_FUZZ_SECONDS:-10} bash "$REPO/tests/fuzz/run.sh" "$name" >"$log" 2>&1; then
			PASSED=$((PASSED + 1))
			echo "ok   fuzz $name"
		else
			FAILED=$((FAILED + 1))
			echo "FAIL fuzz $name (see tests/fuzz/out/)"
			tail -n 20 "$log" >&2
		fi
	done
}

# ---- checks that need no stack

# The layout tests: the family list and the URL-to-family mapping agree
# wherever they are written (tests/layout/).
# make distcheck, the SPEC's release build: the tarball configures, builds
# and passes its unit tests out of the tree (a file Makefile.am leaves out
# fails here).  One test.
run_distcheck() {
	local out
	echo "== make distcheck"
	out=$(mktemp "${TMPDIR:-/tmp}/cd-test-distcheck.XXXXXX")
	TMP_FILES+=("$out")
	if make -s distcheck >"$out" 2>&1; then
		echo "ok   make distcheck"
		PASSED=$((PASSED + 1))
	else
		echo "test: make distcheck failed; its last lines:" >&2
		tail -25 "$out" >&2
		FAILED=$((FAILED + 1))
	fi
}

run_layout_tests() {
	local out rc=0
	echo "== layout tests"
	out=$(mktemp "${TMPDIR:-/tmp}/cd-test-layout.XXXXXX")
	TMP_FILES+=("$out")
	/usr/bin/python3 -m unittest discover -s tests/layout -v >"$out" 2>&1 || rc=$?
	grep -E ' \.\.\. ' "$out" || true
	local ran fails
	ran=$(sed -n 's/^Ran \([0-9]*\) tests\? .*/\1/p' "$out")
	fails=$(grep -cE ' \.\.\. (FAIL|ERROR|skipped)' "$out" || true)
	if [[ -z $ran ]] || ((ran == 0)); then
		echo "test: the layout tests did not run" >&2
		cat "$out" >&2
		FAILED=$((FAILED + 1))
		return
	fi
	((rc == 0)) || sed -n '/^=====/,$p' "$out" >&2
	PASSED=$((PASSED + ran - fails))
	FAILED=$((FAILED + fails))
}

# The Stripe emulator's own end-to-end checks, on a port of their own.
run_emulator_selftest() {
	local out rc=0
	echo "== emulator self-test"
	out=$(mktemp "${TMPDIR:-/tmp}/cd-test-emu.XXXXXX")
	TMP_FILES+=("$out")
	EMU_SELFTEST_PORT=${CD_TEST_EMU_SELFTEST_PORT:-12190} \
		/usr/bin/python3 "$REPO/emulator/selftest.py" >"$out" 2>&1 || rc=$?
	grep -E '^(FAIL|[0-9]+ passed)' "$out" || true
	add_runner_counts "emulator self-test" "$out" "$rc"
}

# ---- integration tests

run_integration_tests() {
	local out rc=0
	if [[ ! -f $REPO/tests/integration/run.py ]]; then
		echo "test: tests/integration/run.py not found; integration tests skipped" >&2
		return 0
	fi
	echo "== integration tests"
	out=$(mktemp "${TMPDIR:-/tmp}/cd-test-integration.XXXXXX")
	TMP_FILES+=("$out")
	(
		set -a
		# shellcheck source=/dev/null
		source "${TESTS_ENV:-$TEST_STATE/env}"
		set +a
		cd "$REPO"
		exec /usr/bin/python3 -m tests.integration.run "$@"
	) 2>&1 | tee "$out" || rc=$?
	add_runner_counts integration "$out" "$rc"
}

# Adds a runner's own last "N passed, N failed" line (in file $2) to the
# totals; a runner that exited non-zero ($3) with no failure counted, or
# printed no such line, counts as one failure.
add_runner_counts() {
	local name=$1 out=$2 rc=$3 line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
	rm -f "$out"
	if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		PASSED=$((PASSED + BASH_REMATCH[1]))
		FAILED=$((FAILED + BASH_REMATCH[2]))
		if ((rc != 0 && BASH_REMATCH[2] == 0)); then
			echo "test: the $name runner exited with $rc" >&2
			FAILED=$((FAILED + 1))
		fi
	else
		echo "test: the $name runner exited with $rc without a result line" >&2
		FAILED=$((FAILED + 1))
	fi
}

# ---- browser tests

# Every journey clicked through in Debian's headless Chromium (puppeteer-core,
# installed from tests/browser/package-lock.json), against the same stack.
# A failing step leaves a screenshot under $TEST_STATE/browser-screenshots/.
run_browser_tests() {
	local out rc=0
	echo "== browser tests"
	if ! (cd "$REPO/tests/browser" && npm ci --no-audit --no-fund --loglevel=error); then
		echo "test: npm ci in tests/browser failed; browser tests not run" >&2
		FAILED=$((FAILED + 1))
		return 0
	fi
	out=$(mktemp "${TMPDIR:-/tmp}/cd-test-browser.XXXXXX")
	TMP_FILES+=("$out")
	(
		set -a
		# shellcheck source=/dev/null
		source "$TEST_STATE/env"
		set +a
		cd "$REPO"
		exec node tests/browser/run.js
	) 2>&1 | tee "$out" || rc=$?
	add_runner_counts browser "$out" "$rc"
}

# ---- the books, checked and replayed

# Runs a books tool (creditdesk-check, scripts/replay.sh) with the test
# stack's environment; a non-zero exit (findings, differences, or the tool
# could not run) is one failed test.
run_books_tool() {
	local name=$1 out rc=0
	shift
	echo "== $name"
	out=$(mktemp "${TMPDIR:-/tmp}/cd-test-books.XXXXXX")
	TMP_FILES+=("$out")
	(
		set -a
		# shellcheck source=/dev/null
		source "${TESTS_ENV:-$TEST_STATE/env}"
		set +a
		cd "$REPO"
		exec "$@"
	) >"$out" 2>&1 || rc=$?
	grep -vE '^creditdesk-[a-z]+\[[0-9]+\] (info|warn)' "$out" | tail -n 60 || true
	if ((rc == 0)); then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi >>"$out"
	add_runner_counts "$name" "$out" "$rc"
}

# Every integration module runs creditdesk-check in its teardown; the
# journeys pay, book, cancel and pay out too, so the books must balance after
# them as well.
run_books_check() {
	run_books_tool "books check after the browser journeys" ./creditdesk-check
}

# After every suite has paid, refunded and disputed on the test stack: the
# stored events and local records must rebuild exactly the live books
# (scripts/replay.sh); any difference, or a step that could not be
# replayed, fails.
run_books_replay() {
	run_books_tool "replay of the books" bash scripts/replay.sh
}

# ---- the run

# Wipes the previous test stack's state, but only a directory that is one.
reset_test_state() {
	stack stop >/dev/null 2>&1 || true
	if [[ -d $TEST_STATE ]]; then
		if [[ -e $TEST_STATE/secrets || -e $TEST_STATE/.lock || -z $(ls -A "$TEST_STATE") ]]; then
			rm -rf "$TEST_STATE"
		else
			echo "test: $TEST_STATE exists and is not a stack state dir; refusing to wipe it" >&2
			exit 1
		fi
	fi
}

# ---- the cluster suite

CLUSTER_UP=

stop_cluster() {
	if [[ -n $CLUSTER_UP ]]; then
		CLUSTER_UP=
		bash "$REPO/scripts/cluster.sh" stop || echo "test: stopping the cluster failed" >&2
	fi
}

# A fresh cluster (its state dir wiped), the tests/cluster suite, stopped again.
run_cluster_suite() {
	local dir=${CD_CLUSTER_DIR:-$REPO/.state-cluster} front
	trap 'stop_cluster; cleanup' EXIT
	bash "$REPO/scripts/cluster.sh" stop >/dev/null 2>&1 || true
	if [[ -d $dir || -L $dir ]]; then
		rm -rf "$(CD_STATE_DIR=$dir/front bash "$REPO/scripts/stack.sh" state-dir)"
		local m
		for m in 1 2 3; do
			rm -rf "$(CD_STATE_DIR=$dir/m$m bash "$REPO/scripts/stack.sh" state-dir)"
		done
		rm -rf "$dir"
	fi
	CLUSTER_UP=1
	if bash "$REPO/scripts/cluster.sh" start; then
		front=$(CD_STATE_DIR=$dir/front bash "$REPO/scripts/stack.sh" state-dir)
		TESTS_ENV=$front/env run_integration_tests --suite cluster --env "$front/env" -v
	else
		echo "test: the cluster did not start" >&2
		FAILED=$((FAILED + 1))
	fi
	stop_cluster
	summary
}

main() {
	cd "$REPO"
	trap cleanup EXIT
	trap 'exit 130' INT TERM

	if [[ -z ${CD_SKIP_DEPS:-} ]]; then
		bash "$REPO/scripts/deps.sh"
	fi
	if ! bash "$REPO/scripts/build.sh"; then
		echo "test: the build failed" >&2
		FAILED=$((FAILED + 1))
		summary
		exit 1
	fi

	# Under /var/lib/creditdesk when the clone is where the service users
	# cannot reach (known only once deps.sh has created those users).
	TEST_STATE=$(stack state-dir)
	if [[ ${1:-} == --cluster ]]; then
		run_cluster_suite
		return
	fi

	run_unit_tests
	run_distcheck
	run_layout_tests
	run_emulator_selftest
	run_fuzz_smoke

	echo "== test stack ($TEST_STATE)"
	reset_test_state
	STACK_UP=1
	if stack start; then
		run_integration_tests "$@"
		run_browser_tests
		run_books_check
		run_books_replay
	else
		echo "test: the test stack did not start; integration tests not run" >&2
		FAILED=$((FAILED + 1))
	fi
	stop_stack
	summary
}

main "$@"
