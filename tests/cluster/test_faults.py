"""
Faults under a steady mixed load through the front (purchases paid on the
emulator and fulfilled by its webhooks or by the buyer's return, expert
bookings, chat messages and reads): a node's mariadbd killed with -9 and
restarted (it rejoins by IST), a whole machine's responders killed and
restarted, and one node cut off the network and reconnected.  Clients see
nothing but brief 503s; once the rest of the cluster has noticed the fault
(a lost node leaves Galera's view after a few seconds, in which commits
wait everywhere) the machines it spared serve every request; and after
recovery every paid Checkout Session is fulfilled exactly once.
"""

import datetime
import os
import secrets
import subprocess
import threading
import time

from tests.integration import lib
from tests.integration.lib import Case

from .common import on

CLUSTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "scripts", "cluster.sh")
SUCCESS = (200, 201, 303)
# A lost node leaves the view after evs.suspect_timeout (3 s), and a new
# view may take evs.install_timeout (5 s) more (scripts/cluster.sh); until
# then commits wait everywhere.
NOTICED_WITHIN = 15


def cluster(*args, timeout=300):
    """scripts/cluster.sh ARGS; returns the seconds it took."""
    t0 = time.monotonic()
    subprocess.run(["bash", CLUSTER, *[str(a) for a in args]], check=True, timeout=timeout,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


class Load:
    """
    Four clients through the front, recording (time, kind, status), and a
    fifth that reads and posts straight to each machine the fault spares
    (survivors), recording (time, machine, status) in probes.
    """

    def __init__(self, survivors):
        self.stop = threading.Event()
        self.log = []
        self.probes = []
        self.survivors = survivors
        self.paid = []
        self.lock = threading.Lock()
        self.buyer = lib.register()
        self.booker = lib.register()
        from tests.integration.test_consultations import bought_chat
        self.chatter = lib.register()
        self.chat = f"/api/sessions/{bought_chat(self.chatter)}/messages"
        self.expert = lib.db_exec(
            "INSERT INTO experts (name, headline, bio, rate_cents_per_minute, active)"
            " VALUES ('Fault expert', 'Faults', 'Booked under faults.', 0, 1)")[1]
        self.hour_base = secrets.randbelow(60) * 100     # within the 366 days ahead
        self.threads = [threading.Thread(target=self._loop, args=(fn,))
                        for fn in (self._purchase, self._booking, self._chat, self._read,
                                   self._probe)]

    def record(self, kind, resp):
        with self.lock:
            self.log.append((time.monotonic(), kind, resp.status))
        return resp.status in SUCCESS

    def _loop(self, fn):
        i = 0
        while not self.stop.is_set():
            try:
                fn(i)
            except Exception as e:  # a refused or dropped connection is a failure too
                with self.lock:
                    self.log.append((time.monotonic(), fn.__name__, repr(e)))
            i += 1
            time.sleep(0.02)

    def _purchase(self, i):
        r = self.buyer.buy_live_help(1)
        if not self.record("buy", r):
            return
        sid = r.json["session_id"]
        lib.emu_pay(sid)
        with self.lock:
            self.paid.append(sid)
        if i % 2:
            self.record("confirm", self.buyer.confirm(sid))

    def _booking(self, i):
        # Computed here: the test's own database connection may be on the
        # node that is cut off.
        start = (datetime.datetime.now(datetime.timezone.utc).replace(
            minute=0, second=0, microsecond=0, tzinfo=None)
            + datetime.timedelta(days=1, hours=self.hour_base + i)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        self.record("book", self.booker.post("/api/bookings", {
            "expertId": self.expert, "startTime": start, "durationMinutes": 30}))

    def _chat(self, i):
        self.record("chat", self.chatter.post(self.chat, {"body": f"load {i}"}))

    def _read(self, i):
        self.record("read", self.buyer.live_help())

    def _probe(self, i):
        m = self.survivors[i % len(self.survivors)]
        r = on(self.chatter, m).post(self.chat, {"body": f"probe {i}"}) if i % 2 else \
            on(self.buyer, m).live_help()
        with self.lock:
            self.probes.append((time.monotonic(), m, r.status))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(120)

    def failures(self, since=0.0):
        with self.lock:
            return [e for e in self.log if e[0] >= since and e[2] not in SUCCESS]

    def probed(self, since, until):
        """The survivors' answers in [since, until]: (successes, failures)."""
        with self.lock:
            got = [p for p in self.probes if since <= p[0] <= until]
        return [p for p in got if p[2] in SUCCESS], [p for p in got if p[2] not in SUCCESS]


class Faults(Case):

    def run_fault(self, name, survivors, fault, recover, noticed=lambda: True, settle=4.0):
        """fault(); once noticed() holds, 6 s more of it; then recover()."""
        with Load(survivors) as load:
            time.sleep(settle)
            t_fault = time.monotonic()
            fault()
            lib.wait_until(noticed, timeout=NOTICED_WITHIN,
                           message=f"{name}: the rest of the cluster noticed")
            t_noticed = time.monotonic()
            time.sleep(6)
            t_recover = time.monotonic()
            took = recover()
            time.sleep(settle)
        # Only 503s, and the machines the fault spared served throughout
        # once the cluster had noticed it.
        bad = [e for e in load.failures() if e[2] != 503]
        self.assertEqual(bad, [], f"{name}: answers other than success or 503")
        served, failed = load.probed(t_noticed + 1.0, t_recover)
        self.assertEqual(failed, [], f"{name}: machines {survivors} failed")
        self.assertGreater(len(served), 20, f"{name}: machines {survivors} stopped serving")
        late = [e for e in load.failures(t_recover + took + 3.0)]
        self.assertEqual(late, [], f"{name}: 503s long after recovery")
        # Every paid session fulfilled, each exactly once (webhooks and the
        # emulator's retries included).
        lib.wait_until(lambda: all(lib.purchases_for_session(s) for s in load.paid),
                       timeout=60, message=f"{name}: every paid session fulfilled")
        for sid in load.paid:
            self.assertEqual(len(lib.purchases_for_session(sid)), 1, f"{name}: {sid}")
            self.assertEqual(lib.audit_count("PAYMENT_FULFILLED", sid), 1, f"{name}: {sid}")
        self.assertEqual(lib.hours_total(load.buyer.id), len(load.paid))
        overlaps = lib.db_scalar(
            "SELECT COUNT(*) FROM bookings a JOIN bookings b ON a.expert_id = b.expert_id"
            " AND a.id < b.id AND a.start_time < b.end_time AND b.start_time < a.end_time"
            " WHERE a.expert_id = %s", load.expert)
        self.assertEqual(overlaps, 0)
        n503 = len(load.failures())
        print(f"\n    {name}: noticed in {t_noticed - t_fault:.1f}s, recovery {took:.1f}s,"
              f" {n503} brief 503s of {len(load.log)} requests", end="")
        return took

    def test_node_killed_and_rejoins_by_ist(self):
        log = os.path.join(os.path.dirname(lib.env("CD_MACHINE2_ROOT_CNF")), "log", "mariadb.log")
        size = os.path.getsize(log)
        self.run_fault("kill -9 mariadbd of node 2", (1, 3),
                       lambda: cluster("kill-node", 2),
                       lambda: cluster("start-node", 2),
                       noticed=lambda: cluster_state(1) == ("Synced", "2"))
        with open(log, errors="replace") as f:
            f.seek(size)
            rejoin = f.read()
        self.assertIn("IST received", rejoin, "node 2 did not rejoin by IST")

    def test_machine_responders_killed(self):
        workers = nginx_workers(3)
        self.run_fault("kill -9 of machine 3's responders", (1, 2),
                       lambda: cluster("kill-app", 3),
                       lambda: cluster("start-app", 3))
        # Restarting the responders left machine 3's nginx alone: a reload
        # would close the connections the front keeps to it, and a POST the
        # front had just sent on one would be reset, not retried.
        self.assertEqual(nginx_workers(3), workers)

    def test_node_partitioned_away(self):
        def heal():
            t0 = time.monotonic()
            cluster("heal", 1)
            lib.wait_until(lambda: cluster_state(1) == ("Synced", "3"), timeout=120,
                           message="node 1 synced again")
            return time.monotonic() - t0
        self.run_fault("node 1 partitioned away", (2, 3), lambda: cluster("partition", 1), heal,
                       noticed=lambda: cluster_state(2) == ("Synced", "2"))

    def node_2_back_then_node_1_cut(self, while_away):
        """Machine 2's node is killed (while_away(machine 2) runs meanwhile)
        and brought back, then node 1 is cut off: each read on machine 2 must
        then take under 1 s, served by its own node."""
        user = lib.register()
        machine2 = on(user, 2)
        for _ in range(8):      # every credits child of machine 2 on node 2
            lib.check_status(machine2.live_help(), 200)
        cluster("kill-node", 2)
        lib.wait_until(lambda: cluster_state(1) == ("Synced", "2"), timeout=NOTICED_WITHIN,
                       message="node 2 left the view")
        while_away(machine2)
        cluster("start-node", 2)
        lib.wait_until(lambda: cluster_state(2) == ("Synced", "3"), timeout=120,
                       message="node 2 synced again")
        cluster("partition", 1)
        try:
            lib.wait_until(lambda: cluster_state(2) == ("Synced", "2"), timeout=NOTICED_WITHIN,
                           message="node 1 left the view")
            for i in range(8):
                t0 = time.monotonic()
                lib.check_status(machine2.live_help(), 200)
                self.assertLess(time.monotonic() - t0, 1.0, f"read {i} on machine 2 waited")
        finally:
            cluster("heal", 1)
            lib.wait_until(lambda: cluster_state(1) == ("Synced", "3"), timeout=120,
                           message="node 1 synced again")

    def test_responders_return_to_their_own_node(self):
        """Machine 2's responders go to node 1 while node 2 is away, and back
        to node 2 once it has rejoined: a later fault of node 1 then costs
        machine 2 nothing (before, each of its children held a statement on
        the cut-off node until CD_DB_TIMEOUT)."""
        def fail_over(machine2):
            for _ in range(8):      # every credits child of machine 2 moves to node 1
                lib.check_status(machine2.live_help(), 200)
        self.node_2_back_then_node_1_cut(fail_over)

    def test_idle_responders_reconnect_to_their_own_node(self):
        """Machine 2's responders serve nothing while node 2 is away, so each
        keeps a connection to the server that went away: once node 2 is back,
        their next statement goes to it, not on to node 1 (before, a child
        whose dead connection failed its statement moved on to node 1, cut
        off by then, and waited out the 3 s connect timeout)."""
        self.node_2_back_then_node_1_cut(lambda machine2: None)


def nginx_workers(n):
    """The PIDs of machine n's nginx workers."""
    state = os.path.dirname(lib.env(f"CD_MACHINE{n}_ROOT_CNF"))
    with open(os.path.join(state, "nginx", "nginx.pid")) as f:
        master = f.read().strip()
    out = subprocess.run(["pgrep", "-P", master], capture_output=True, text=True, timeout=10)
    return sorted(out.stdout.split())


def cluster_state(n):
    out = subprocess.run(
        ["mariadb", f"--defaults-file={lib.env(f'CD_MACHINE{n}_ROOT_CNF')}", "-N", "-B", "-e",
         "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN"
         " ('WSREP_LOCAL_STATE_COMMENT', 'WSREP_CLUSTER_SIZE') ORDER BY VARIABLE_NAME DESC"],
        capture_output=True, text=True, timeout=10)
    vals = out.stdout.split()
    return tuple(vals) if len(vals) == 2 else None
