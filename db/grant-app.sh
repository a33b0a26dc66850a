#!/usr/bin/env bash
# Gives the application's database account its privileges, table by table.
# Run it after every migration (scripts/stack.sh does on each start), so that
# tables a later migration adds get them too; running it again changes
# nothing.
#
# Every table: SELECT, INSERT, UPDATE, DELETE — except two that are
# append-only by grants:
#   audit_log      SELECT, INSERT: an audit row is never changed or removed;
#   stripe_events  SELECT, INSERT, UPDATE (processed_at, processed_by,
#                  effect_at): an event is never deleted and its id, type and
#                  body never change; stamping when it took effect and marking
#                  it processed (and by whom) are the only updates the code
#                  makes.
# schema_migrations is the migrator's alone.  Privileges add up, so the
# account must hold no database-level grant: one left from an older set-up is
# revoked once the table grants are in place.
#
# Usage: db/grant-app.sh --defaults-file=FILE DATABASE 'USER'@'HOST' ...
#   FILE: a mariadb option file for an account that may GRANT (root).
set -euo pipefail

die() { echo "grant-app: $*" >&2; exit 1; }

if (($# < 3)) || [[ $1 != --defaults-file=* ]]; then
	die "usage: $0 --defaults-file=FILE DATABASE 'USER'@'HOST' ..."
fi
CNF=${1#*=} DB=$2
shift 2
[[ $DB =~ ^[A-Za-z0-9_]+$ ]] || die "bad database name: $DB"

sql() { mariadb --defaults-file="$CNF" --batch --skip-column-names -e "$1"; }

tables=$(sql "SELECT table_name FROM information_schema.tables WHERE table_schema = '$DB'
	AND table_name NOT IN ('audit_log', 'stripe_events', 'schema_migrations')") ||
	die "cannot list the tables of $DB"
stmts=""
for who in "$@"; do
	[[ $who =~ ^\'([A-Za-z0-9_]+)\'@\'([A-Za-z0-9_.%:-]+)\'$ ]] || die "bad account: $who"
	user=${BASH_REMATCH[1]} host=${BASH_REMATCH[2]}
	for t in $tables; do
		stmts+="GRANT SELECT, INSERT, UPDATE, DELETE ON \`$DB\`.\`$t\` TO $who;"
	done
	stmts+="GRANT SELECT, INSERT ON \`$DB\`.audit_log TO $who;"
	stmts+="GRANT SELECT, INSERT, UPDATE (processed_at, processed_by, effect_at) ON \`$DB\`.stripe_events TO $who;"
	if [[ -n $(sql "SELECT 1 FROM mysql.db WHERE User = '$user' AND Host = '$host' AND Db = '$DB'") ]]; then
		stmts+="REVOKE ALL PRIVILEGES ON \`$DB\`.* FROM $who;"
	fi
done
sql "$stmts" || die "granting failed"
