#!/usr/bin/env bash
# Rebuilds the payment-determined tables from their records and compares
# them with the live database (creditdesk-replay, see src/tools/replay.c).
#
# The rebuild goes into a scratch database on the same server,
# ${CD_DB_NAME}_replay (CD_REPLAY_DB to choose another the admin user may
# create), made afresh from the migrations by the admin user
# (CD_DB_ADMIN_USER, its option file CD_DB_ADMIN_CNF) and dropped afterwards
# unless CD_REPLAY_KEEP=1.  The replay itself runs as the admin user too: it
# reads live and writes the scratch database.
#
# Usage: scripts/replay.sh [--json] [--user ID]   (needs a built creditdesk-replay
# and the stack's environment: source $CD_STATE_DIR/env)
# Exit status: that of creditdesk-replay (0 equal, 1 differences, 2 error).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIVE=${CD_DB_NAME:-creditdesk}
SCRATCH=${CD_REPLAY_DB:-${LIVE}_replay}

die() { echo "replay: error: $*" >&2; exit 2; }

[[ -r ${CD_DB_ADMIN_CNF:-} && -n ${CD_DB_ADMIN_USER:-} && -n ${CD_DB_ADMIN_PASSWORD:-} ]] ||
	die "CD_DB_ADMIN_USER, CD_DB_ADMIN_PASSWORD and CD_DB_ADMIN_CNF must be set (source the stack's env)"
[[ $SCRATCH =~ ^[A-Za-z0-9_]{1,64}$ && $SCRATCH != "$LIVE" ]] || die "bad scratch database name"
[[ -x $REPO/creditdesk-replay ]] || die "build first (bash scripts/build.sh)"
ADMIN=(mariadb --defaults-file="$CD_DB_ADMIN_CNF")

cleanup() { [[ -n ${CD_REPLAY_KEEP:-} ]] || "${ADMIN[@]}" -e "DROP DATABASE IF EXISTS \`$SCRATCH\`" || true; }
trap cleanup EXIT

"${ADMIN[@]}" -e "DROP DATABASE IF EXISTS \`$SCRATCH\`;
	CREATE DATABASE \`$SCRATCH\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" ||
	die "the admin user could not create $SCRATCH"
CD_DB_NAME=$SCRATCH CD_DB_SOCKET='' CD_DB_HOST='' CD_DB_PORT='' CD_DB_USER='' CD_DB_PASSWORD='' \
	"$REPO/db/migrate.sh" --defaults-extra-file="$CD_DB_ADMIN_CNF" >/dev/null ||
	die "migrating $SCRATCH failed"
rc=0
CD_DB_NAME=$SCRATCH CD_REPLAY_LIVE_DB=$LIVE CD_DB_USER=$CD_DB_ADMIN_USER \
	CD_DB_PASSWORD=$CD_DB_ADMIN_PASSWORD "$REPO/creditdesk-replay" "$@" || rc=$?
exit "$rc"
