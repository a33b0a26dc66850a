#!/usr/bin/env bash
# Applies db/migrations/NNN_name.sql in order, each exactly once, and records
# every applied file with its SHA-256 in schema_migrations.  Running it again
# applies only new files.  A file whose content changed after it was applied
# is refused (exit 1) before anything runs: migrations are append-only; fix
# forward with a new file.
#
# A file is sent to the mariadb client in --binary-mode together with the
# INSERT that records it; the client stops at the first error, so a failed
# file is never recorded (MariaDB DDL is not transactional, so a file that
# fails half-way may need manual clean-up: keep one concern per file).
#
# Usage: db/migrate.sh [--defaults-extra-file=FILE] [--status]
# Connection: CD_DB_SOCKET, or CD_DB_HOST/CD_DB_PORT; CD_DB_USER,
# CD_DB_PASSWORD, CD_DB_NAME (default creditdesk).  Variables that are set
# override the same settings from FILE.  Run it as a user that may CREATE and
# ALTER (creditdesk_admin), not as the application's user.  Do not run two
# at once against the same database.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIGRATIONS_DIR=${CD_MIGRATIONS_DIR:-$REPO/db/migrations}
DB_NAME=${CD_DB_NAME:-creditdesk}
EXTRA_FILE=
STATUS_ONLY=
CNF=

die() { echo "migrate: $*" >&2; exit 1; }

usage() {
	echo "usage: $0 [--defaults-extra-file=FILE] [--status]" >&2
	exit 2
}

parse_args() {
	while (($# > 0)); do
		case $1 in
		--defaults-extra-file=*) EXTRA_FILE=${1#*=} ;;
		--defaults-extra-file) (($# > 1)) || usage; EXTRA_FILE=$2; shift ;;
		--status) STATUS_ONLY=1 ;;
		-h|--help) usage ;;
		*) usage ;;
		esac
		shift
	done
	if [[ -n $EXTRA_FILE && ! -r $EXTRA_FILE ]]; then
		die "cannot read $EXTRA_FILE"
	fi
}

# Quotes a value for a MariaDB option file.
cnf_value() {
	local v=${1//\\/\\\\}
	printf '"%s"' "${v//\"/\\\"}"
}

# Writes a private option file from the environment (so the password never
# appears on a command line), layered over --defaults-extra-file if given.
write_client_cnf() {
	CNF=$(umask 077 && mktemp "${TMPDIR:-/tmp}/cd-migrate.XXXXXX")
	trap 'rm -f "$CNF"' EXIT
	{
		if [[ -n $EXTRA_FILE ]]; then
			printf '!include %s\n' "$(cd "$(dirname "$EXTRA_FILE")" && pwd)/$(basename "$EXTRA_FILE")"
		fi
		echo "[client]"
		if [[ -n ${CD_DB_SOCKET:-} ]]; then
			echo "host=localhost"
			echo "socket=$(cnf_value "$CD_DB_SOCKET")"
		elif [[ -n ${CD_DB_HOST:-} || -n ${CD_DB_PORT:-} ]]; then
			echo "host=$(cnf_value "${CD_DB_HOST:-127.0.0.1}")"
			echo "port=${CD_DB_PORT:-3306}"
			echo "protocol=tcp"
		fi
		if [[ -n ${CD_DB_USER:-} ]]; then echo "user=$(cnf_value "$CD_DB_USER")"; fi
		if [[ -n ${CD_DB_PASSWORD:-} ]]; then echo "password=$(cnf_value "$CD_DB_PASSWORD")"; fi
		echo "default-character-set=utf8mb4"
	} >"$CNF"
}

# Runs the mariadb client against the database; extra options first.
db() {
	mariadb --defaults-extra-file="$CNF" --batch --skip-column-names "$@" "$DB_NAME"
}

ensure_table() {
	db -e "CREATE TABLE IF NOT EXISTS schema_migrations (
		version     VARCHAR(64) NOT NULL PRIMARY KEY,
		applied_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
		checksum    CHAR(64)
	) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin" ||
		die "cannot reach database '$DB_NAME' or create schema_migrations (check the connection settings and privileges)"
}

main() {
	parse_args "$@"
	[[ -d $MIGRATIONS_DIR ]] || die "no directory $MIGRATIONS_DIR"
	write_client_cnf
	ensure_table

	# What is already applied: version -> checksum.
	local -A applied=()
	local version sum
	while IFS=$'\t' read -r version sum; do
		[[ -n $version ]] && applied[$version]=$sum
	done < <(db -e "SELECT version, COALESCE(checksum, '') FROM schema_migrations")

	# The files, in order; names must be NNN_word.sql with unique numbers.
	local files=() f name
	local -A numbers=()
	while IFS= read -r f; do
		name=$(basename "$f")
		[[ $name =~ ^[0-9]{3}_[A-Za-z0-9_-]+\.sql$ ]] || die "bad migration file name: $name (want NNN_name.sql)"
		version=${name%.sql}
		((${#version} <= 64)) || die "migration name too long: $name"
		[[ -z ${numbers[${name:0:3}]:-} ]] || die "two migrations numbered ${name:0:3}: ${numbers[${name:0:3}]} and $name"
		numbers[${name:0:3}]=$name
		files+=("$f")
	done < <(find "$MIGRATIONS_DIR" -maxdepth 1 -type f -name '[0-9][0-9][0-9]_*.sql' | LC_ALL=C sort)

	# Refuse before applying anything if an applied file changed.
	local changed=0 pending=() last_applied=
	local -A present=()
	for f in "${files[@]}"; do
		version=$(basename "$f" .sql)
		present[$version]=1
		sum=$(sha256sum "$f" | cut -d' ' -f1)
		if [[ -n ${applied[$version]+set} ]]; then
			last_applied=$version
			if [[ -n ${applied[$version]} && ${applied[$version]} != "$sum" ]]; then
				echo "migrate: $version was changed after it was applied (recorded ${applied[$version]:0:12}…, file ${sum:0:12}…)" >&2
				changed=1
			elif [[ -n $STATUS_ONLY ]]; then
				echo "applied  $version"
			fi
		else
			pending+=("$f")
			[[ -n $STATUS_ONLY ]] && echo "pending  $version"
		fi
	done
	for version in "${!applied[@]}"; do
		[[ -n ${present[$version]:-} ]] || echo "migrate: warning: $version is recorded as applied but its file is gone" >&2
	done
	((changed == 0)) || die "refusing to continue: applied migrations must not change; add a new migration instead"
	[[ -z $STATUS_ONLY ]] || return 0

	if ((${#pending[@]} == 0)); then
		echo "migrate: up to date (${#applied[@]} applied)"
		return 0
	fi

	# Apply each pending file and record it in the same client session.
	for f in "${pending[@]}"; do
		version=$(basename "$f" .sql)
		sum=$(sha256sum "$f" | cut -d' ' -f1)
		if [[ -n $last_applied && $version < $last_applied ]]; then
			echo "migrate: warning: $version is older than the applied $last_applied; applying it now" >&2
		fi
		if ! {
			cat "$f"
			printf '\nDELIMITER ;\nINSERT INTO schema_migrations (version, checksum) VALUES ('\''%s'\'', '\''%s'\'');\n' "$version" "$sum"
		} | db --binary-mode; then
			die "$version failed; it is not recorded and nothing after it was applied"
		fi
		echo "migrate: applied $version"
	done
}

main "$@"
