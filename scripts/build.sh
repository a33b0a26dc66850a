#!/usr/bin/env bash
# Builds creditdesk in the source tree: regenerates the autotools files only
# when they are missing or older than configure.ac, configures once (make's
# own rules rerun config.status/automake when Makefile.am or configure
# change later), then compiles.
#
# Usage: scripts/build.sh [configure options…]
#   With options, ./configure always runs again with them (e.g.
#   --enable-sanitizers).  CD_JOBS sets make's parallelism (default 2).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

main() {
	cd "$REPO"

	# Generate ./configure (and Makefile.in) when absent or stale.
	if [[ ! -x configure || configure.ac -nt configure ]]; then
		echo "build: autoreconf -fi"
		autoreconf -fi
	fi

	# Configure on first build, when configure changed, or when asked to.
	if (($# > 0)) || [[ ! -f config.status || ! -f Makefile || configure -nt config.status ]]; then
		echo "build: ./configure $*"
		./configure "$@"
	fi

	make -j"${CD_JOBS:-2}"
}

main "$@"
