"""
Helpers for bench/bench.sh (run with /usr/bin/python3 from the repo root,
the stack's env file loaded):

  user FILE            registers a user, buys 3 Live Help hours through the
                       emulator, writes the session cookie value to FILE
  events FILE N PREFIX writes N signed "bench.ping" events (one per line:
                       signature TAB body) with ids evt_<PREFIX><n>, signed
                       with the first STRIPE_WEBHOOK_SECRET at the current time
  count PREFIX         prints how many of those events the database stored
"""

import json
import os
import sys
import time

from tests.integration import lib


def cmd_user(path):
    b = lib.register()
    lib.bought_live_help(b, 3)
    r = b.live_help()
    lib.check_status(r, 200, "GET /api/live-help-hour")
    if r.json.get("totalHours", 0) < 3:
        raise SystemExit(f"bench: the bench user has no hours: {r!r}")
    cookie = b.cookie("cd_session")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(cookie)
    print(f"bench: user {b.email} (id {b.id}) with {r.json['totalHours']} hours")


def cmd_events(path, n, prefix):
    secret = lib.webhook_secret()
    t = int(time.time())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for k in range(int(n)):
            evt = {"id": f"evt_{prefix}{k}", "object": "event", "api_version": "2024-06-20",
                   "created": t, "type": "bench.ping", "livemode": False,
                   "data": {"object": {"id": f"bench_{prefix}{k}", "object": "bench"}}}
            body = json.dumps(evt, separators=(",", ":"))
            f.write(f"{lib.sign(body.encode(), secret, t)}\t{body}\n")


def cmd_count(prefix):
    print(lib.db_scalar("SELECT COUNT(*) FROM stripe_events WHERE event_id LIKE %s"
                        " AND processed_at IS NOT NULL", f"evt_{prefix}%"))


def main(argv):
    if os.environ.get("CD_STATE_DIR") and not os.environ.get("CD_BASE_URL"):
        lib.load_env_file(os.path.join(os.environ["CD_STATE_DIR"], "env"))
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "user" and len(argv) == 3:
        cmd_user(argv[2])
    elif cmd == "events" and len(argv) == 5:
        cmd_events(argv[2], argv[3], argv[4])
    elif cmd == "count" and len(argv) == 3:
        cmd_count(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
