"""
Helpers for bench/bench_voice.sh (run with /usr/bin/python3 from the repo
root, the stack's env file loaded):

  users FILE N MINUTES   registers N firewall-tier users, gives each one
                         Voice AI Therapy credit of MINUTES minutes straight
                         in the database (admin user), and writes one line
                         per user: user_id TAB session cookie TAB csrf token
  startend FILE SECONDS  one worker process per user in FILE, each looping
                         POST /api/voice-therapy/start then
                         POST /api/voice-therapy/end {sessionId, secondsUsed: 60}
                         over one keep-alive connection for SECONDS seconds;
                         prints requests/s, pairs/s, p50/p99 per request kind,
                         non-2xx counts, and checks the minutes deducted in
                         the database against the ends that answered 200
"""

import http.client
import json
import multiprocessing
import os
import sys
import time
import urllib.parse

from tests.integration import lib


def cmd_users(path, n, minutes):
    n, minutes = int(n), int(minutes)
    lines = []
    for _ in range(n):
        b = lib.register()
        lib.promote(b, tier="firewall")
        lib.db_exec("INSERT INTO voice_therapy_credits (user_id, stripe_session_id,"
                    " minutes_purchased, minutes_remaining, amount_cents, expires_at)"
                    " VALUES (%s, %s, %s, %s, 0, UTC_TIMESTAMP(6) + INTERVAL 30 DAY)",
                    b.id, f"bench_voice_{b.id}", minutes, minutes)
        r = b.get("/api/voice-therapy/credits")
        lib.check_status(r, 200, "GET /api/voice-therapy/credits")
        if r.json.get("remainingMinutes") != minutes:
            raise SystemExit(f"bench: the bench user has no minutes: {r!r}")
        lines.append(f"{b.id}\t{b.cookie('cd_session')}\t{b.csrf}\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(lines)
    print(f"bench: {n} firewall users with {minutes} voice minutes each")


def read_users(path):
    with open(path, encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t")) for line in f if line.strip()]


def worker(args):
    """One user's start/end loop; returns (start_lat, end_lat, statuses, ok_ends)."""
    _uid, cookie, csrf, seconds, base = args
    u = urllib.parse.urlsplit(base)
    hdrs = {"Cookie": f"cd_session={cookie}", "X-CSRF-Token": csrf,
            "Content-Type": "application/json", "Accept": "application/json"}
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    lat = {"start": [], "end": []}
    statuses = {}
    ok_ends = 0

    def post(path, body):
        data = json.dumps(body).encode()
        for attempt in (0, 1):
            try:
                t0 = time.perf_counter()
                conn.request("POST", path, body=data, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read()
                return resp.status, raw, time.perf_counter() - t0
            except (http.client.HTTPException, OSError):
                conn.close()            # reconnects on the next request
                if attempt:
                    raise

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        st, raw, dt = post("/api/voice-therapy/start", {})
        lat["start"].append(dt)
        statuses[f"start {st}"] = statuses.get(f"start {st}", 0) + 1
        if st != 200:
            continue
        sid = json.loads(raw)["sessionId"]
        st, raw, dt = post("/api/voice-therapy/end", {"sessionId": sid, "secondsUsed": 60})
        lat["end"].append(dt)
        statuses[f"end {st}"] = statuses.get(f"end {st}", 0) + 1
        if st == 200:
            ok_ends += 1
    conn.close()
    return lat, statuses, ok_ends


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100.0))]


def ms(x):
    return f"{x * 1000:.2f}ms"


def cmd_startend(path, seconds):
    users = read_users(path)
    seconds = float(seconds)
    minutes_before = {int(u[0]): lib.db_scalar(
        "SELECT SUM(minutes_remaining) FROM voice_therapy_credits WHERE user_id = %s",
        int(u[0])) for u in users}
    lib.db_close()
    jobs = [(uid, cookie, csrf, seconds, lib.base_url()) for uid, cookie, csrf in users]
    ctx = multiprocessing.get_context("fork")
    t0 = time.monotonic()
    with ctx.Pool(len(jobs)) as pool:
        results = pool.map(worker, jobs)
    took = time.monotonic() - t0
    starts = [x for lat, _, _ in results for x in lat["start"]]
    ends = [x for lat, _, _ in results for x in lat["end"]]
    statuses = {}
    for _, st, _ in results:
        for k, v in st.items():
            statuses[k] = statuses.get(k, 0) + v
    ok_ends = sum(r[2] for r in results)
    total = len(starts) + len(ends)
    both = starts + ends
    print(f"start/end: {len(jobs)} users x keep-alive loop for {took:.1f}s")
    print(f"RESULT startend {total / took:.0f} {ms(pct(both, 99))} {total} "
          f"{ok_ends / took:.0f} {ms(pct(starts, 99))} {ms(pct(ends, 99))} "
          f"{ms(pct(both, 50))}")
    bad = {k: v for k, v in statuses.items() if not k.endswith(" 200")}
    if bad:
        print(f"bench: warning: non-200 answers: {bad}", file=sys.stderr)
    deducted = 0
    for uid, before in minutes_before.items():
        after = lib.db_scalar("SELECT SUM(minutes_remaining) FROM voice_therapy_credits"
                              " WHERE user_id = %s", uid)
        deducted += int(before) - int(after)
    status = "ok" if deducted == ok_ends else "MISMATCH"
    print(f"check: {ok_ends} ends answered 200, {deducted} minutes deducted in the "
          f"database ({status})")
    return 0 if deducted == ok_ends else 1


def main(argv):
    if os.environ.get("CD_STATE_DIR") and not os.environ.get("CD_BASE_URL"):
        lib.load_env_file(os.path.join(os.environ["CD_STATE_DIR"], "env"))
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "users" and len(argv) == 5:
        cmd_users(argv[2], argv[3], argv[4])
    elif cmd == "startend" and len(argv) == 4:
        return cmd_startend(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
