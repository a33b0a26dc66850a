"""
Chat push measured (bench/bench_chat.sh runs it with /usr/bin/python3 from
the repository root, the stack's environment loaded; 127.0.0.1 only):

  1. delivery: a customer and a mechanic each hold an EventSource on one
     room; the customer posts MESSAGES messages one after another and each
     is timed from the POST's start until the mechanic's stream has it
     (p50, p90, max);
  2. idle cost: ROOMS rooms (consultations bought through Checkout and the
     emulator, one customer, a mechanic added to each so they leave the
     mechanics' queue), one EventSource each held open; the CPU time
     nginx and every responder process use over IDLE seconds, first with no
     stream open, then with all of them open, as a share of one core.

Prints "RESULT <name> <value>" lines for the shell script.
"""

import os
import selectors
import socket
import sys
import time

from tests.integration import lib
from tests.integration.test_chat_push import EventStream
from tests.integration.test_consultations import admin, bought_chat, mechanic

TICK = os.sysconf("SC_CLK_TCK")


def say(text):
    print(f"bench: {text}", flush=True)


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def delivery(messages):
    owner, mech = lib.register(), mechanic()
    room = bought_chat(owner)
    lib.check_status(admin().post(f"/api/admin/sessions/{room}/participants",
                                  {"userId": mech.id, "role": "mechanic"}), 201)
    stream = EventStream(mech, room)
    if stream.status != 200:
        raise SystemExit(f"bench: the stream answered {stream.status}")
    time.sleep(0.5)     # the subscription is in place once nginx has it
    path = f"/api/sessions/{room}/messages"
    times = []
    for i in range(messages):
        t0 = time.monotonic()
        sent = owner.post(path, {"body": f"bench {i}"})
        lib.check_status(sent, 201, "post")
        got = stream.next_event()
        times.append((time.monotonic() - t0) * 1000)
        if got["message"]["id"] != sent.json["message"]["id"]:
            raise SystemExit(f"bench: message {i} arrived as {got!r}")
    stream.close()
    return times


def buy_rooms(n):
    """n rooms of one customer, each taken by one mechanic (so they leave the
    mechanics' queue, through the admin's API like any assignment)."""
    owner, mech, boss = lib.register(), mechanic(), admin()

    def room(_):
        r = bought_chat(owner)
        lib.check_status(boss.post(f"/api/admin/sessions/{r}/participants",
                                   {"userId": mech.id, "role": "mechanic"}), 201)
        return r
    t0 = time.monotonic()
    rooms = lib.parallel(room, range(n), threads=6)
    bad = [r for r in rooms if not isinstance(r, int)]
    if bad:
        raise SystemExit(f"bench: {len(bad)} rooms failed, e.g. {bad[0]!r}")
    say(f"{n} rooms bought in {time.monotonic() - t0:.0f} s")
    return owner, rooms


def open_streams(owner, rooms):
    """One raw EventSource request per room; returns the sockets (headers read)."""
    host, port = "127.0.0.1", int(lib.base_url().rsplit(":", 1)[1])
    cookie = "; ".join(f"{k}={v}" for k, v in owner.cookies["127.0.0.1"].items())
    socks = []
    for room in rooms:
        s = socket.create_connection((host, port), timeout=10)
        s.sendall((f"GET /api/sessions/{room}/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   "Accept: text/event-stream\r\n"
                   f"Cookie: {cookie}\r\n\r\n").encode())
        socks.append(s)
    for s in socks:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("bench: a stream closed while opening")
            head += chunk
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"bench: a stream answered {head[:60]!r}")
        s.setblocking(False)
    return socks


def our_pids():
    """nginx (master and workers) and every responder family's processes."""
    run = lib.env("CD_RUN_DIR")
    roots = []
    nginx_pid = os.path.join(lib.env("CD_STATE_DIR"), "nginx", "nginx.pid")
    for f in [nginx_pid] + [os.path.join(run, n) for n in os.listdir(run)
                            if n.endswith(".pid") and n != "mariadbd.pid"]:
        try:
            with open(f) as fh:
                roots.append(int(fh.read().strip()))
        except (OSError, ValueError):
            pass
    pids, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in pids:
            continue
        pids.add(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return pids


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])     # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def idle_share(seconds, socks):
    """CPU seconds of our processes over `seconds`, draining any pings."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    pids = our_pids()
    c0, t0 = cpu_ticks(pids), time.monotonic()
    closed = 0
    while time.monotonic() - t0 < seconds:
        for key, _ in sel.select(timeout=1):
            if not key.fileobj.recv(65536):
                sel.unregister(key.fileobj)
                closed += 1
    cpu = (cpu_ticks(pids) - c0) / TICK
    wall = time.monotonic() - t0
    sel.close()
    return cpu, wall, closed


def main(argv):
    messages, rooms_n, idle = (int(a) for a in argv[1:4])
    say(f"delivery: {messages} messages, customer → mechanic's EventSource")
    times = delivery(messages)
    print(f"RESULT delivery_p50_ms {percentile(times, 0.5):.1f}")
    print(f"RESULT delivery_p90_ms {percentile(times, 0.9):.1f}")
    print(f"RESULT delivery_max_ms {max(times):.1f}")
    say(f"buying {rooms_n} consultations (one room each)")
    owner, rooms = buy_rooms(rooms_n)
    say(f"idle for {idle} s with no stream open")
    cpu, wall, _ = idle_share(idle, [])
    print(f"RESULT baseline_cpu_pct {100 * cpu / wall:.2f}")
    say(f"opening {rooms_n} streams")
    socks = open_streams(owner, rooms)
    say(f"idle for {idle} s with {len(socks)} streams open")
    cpu, wall, closed = idle_share(idle, socks)
    print(f"RESULT idle_cpu_pct {100 * cpu / wall:.2f}")
    print(f"RESULT idle_streams_closed {closed}")
    for s in socks:
        s.close()


if __name__ == "__main__":
    main(sys.argv)
