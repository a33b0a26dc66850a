#!/usr/bin/env bash
# Everything needed to see creditdesk running on a fresh Debian 12 machine,
# in one command: packages, build, then the local stack (scripts/stack.sh
# start, which prints the URL and the demo sign-in).  Settings are those of
# scripts/stack.sh (CD_STATE_DIR, CD_HTTP_PORT, …).
#
# Usage: scripts/up.sh
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$REPO/scripts/deps.sh"
bash "$REPO/scripts/build.sh"
exec bash "$REPO/scripts/stack.sh" start
