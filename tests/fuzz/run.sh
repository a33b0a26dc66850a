#!/usr/bin/env bash
# Builds every libFuzzer harness in this folder with clang (ASan + UBSan)
# against the core sources and runs each for FUZZ_SECONDS (default 20).
# A finding stops the run with libFuzzer's non-zero exit and its crash file.
#
# Usage: tests/fuzz/run.sh [harness-name …]   (default: all fuzz_*.c)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${FUZZ_OUT:-$REPO/tests/fuzz/out}
SECONDS_EACH=${FUZZ_SECONDS:-20}
CORE=(account_rules arena buf error escape request app cfg log metrics db session push crypto page template template_render)

mkdir -p "$OUT"
cd "$REPO"
names=("$@")
if ((${#names[@]} == 0)); then
	for f in tests/fuzz/fuzz_*.c; do names+=("$(basename "$f" .c)"); done
fi
for name in "${names[@]}"; do
	srcs=()
	for c in "${CORE[@]}" stripe stripe_sig; do srcs+=("src/core/$c.c"); done
	srcs+=(src/billing/calc.c)
	echo "fuzz: building $name"
	# shellcheck disable=SC2046
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-D_GNU_SOURCE -DTPL_MAX_STEPS=65536 -DTPL_MAX_OUTPUT=1048576 -Isrc/core -Isrc/billing -Isrc/bookings \
		"${srcs[@]}" "tests/fuzz/$name.c" \
		$(mariadb_config --cflags --libs) \
		$(pkg-config --cflags --libs jansson libcurl libcrypto) -lfcgi -lunistring -lcrack \
		-o "$OUT/$name"
	mkdir -p "$OUT/$name.corpus"
	echo "fuzz: running $name for ${SECONDS_EACH}s"
	(cd "$OUT" && "./$name" -max_len=4096 -max_total_time="$SECONDS_EACH" \
		-print_final_stats=0 "$name.corpus" 2>&1 | tail -n 3)
done
