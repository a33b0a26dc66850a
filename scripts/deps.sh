#!/usr/bin/env bash
# Installs the Debian 12 packages creditdesk needs to build, test and run the
# local stack.  When everything is already installed it asks dpkg once and
# exits quietly; otherwise it runs apt-get update once and installs only what
# is missing, non-interactively, without starting the system MariaDB or nginx
# services (the local stack runs its own private instances).
#
# Usage: scripts/deps.sh [--check]     (--check: report missing, install nothing)
set -euo pipefail

PACKAGES=(
	build-essential autoconf automake pkg-config
	libfcgi-dev libmariadb-dev libcurl4-openssl-dev libssl-dev libjansson-dev check
	libunistring-dev libcrack2-dev cracklib-runtime
	mariadb-server mariadb-client nginx-light libnginx-mod-nchan spawn-fcgi multiwatch
	python3 python3-pymysql wrk clang libclang-rt-14-dev valgrind curl ca-certificates
	chromium fonts-liberation nodejs
	galera-4 rsync socat iproute2
)
# The browser tests' npm: Debian packages it apart from nodejs; a nodejs that
# already brings its own npm (another vendor's build) must not get Debian's.
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

# Prints the packages from PACKAGES that dpkg does not report as installed.
missing_packages() {
	local installed
	installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null |
		awk '$2 == "installed" { print $1 }' || true)
	local p
	for p in "${PACKAGES[@]}"; do
		grep -qxF -- "$p" <<<"$installed" || printf '%s\n' "$p"
	done
}

# While apt runs, a policy-rc.d that denies every action keeps maintainer
# scripts from starting mariadb/nginx; an existing policy is left untouched.
POLICY=/usr/sbin/policy-rc.d
OUR_POLICY=
deny_service_starts() {
	if [[ ! -e $POLICY ]]; then
		printf '#!/bin/sh\n# creditdesk deps.sh: no service starts during install\nexit 101\n' >"$POLICY"
		chmod 755 "$POLICY"
		OUR_POLICY=1
	fi
}
restore_service_policy() {
	if [[ -n $OUR_POLICY ]]; then
		rm -f "$POLICY"
	fi
}

main() {
	local check_only=
	case ${1:-} in
	--check) check_only=1 ;;
	"") ;;
	*) echo "usage: $0 [--check]" >&2; exit 2 ;;
	esac

	local missing
	mapfile -t missing < <(missing_packages)
	if ((${#missing[@]} == 0)); then
		echo "deps: all ${#PACKAGES[@]} packages present"
		return 0
	fi
	echo "deps: missing: ${missing[*]}"
	if [[ -n $check_only ]]; then
		return 1
	fi

	# Root, or sudo when it is there; nothing else can install packages.
	local sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || { echo "deps: run as root (or install sudo)" >&2; exit 1; }
		sudo=(sudo --preserve-env=DEBIAN_FRONTEND)
	fi
	export DEBIAN_FRONTEND=noninteractive

	if ((EUID == 0)); then
		trap restore_service_policy EXIT
		deny_service_starts
	fi
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}"

	mapfile -t missing < <(missing_packages)
	if ((${#missing[@]} != 0)); then
		echo "deps: still missing after install: ${missing[*]}" >&2
		exit 1
	fi
	echo "deps: installed; all ${#PACKAGES[@]} packages present"
}

main "$@"
