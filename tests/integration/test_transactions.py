"""
No statement escapes its transaction, and none runs twice.  The probe
(tests/probe/tx_probe.c) runs transactions through the same db_tx every
responder uses.  Here the server rolls each round's first attempt back
between two statements without telling the next one, as a cluster node's
applier can: db_tx must notice, run the round again, and keep nothing of
the broken attempt.  And the connection is lost at a COMMIT, after the
server committed (its answer never arrives) or before (the COMMIT never
does): db_tx must tell the two apart by its commit receipt, and run again
only the round that did not commit.  Every round logged exactly once and
both counters equal to the rounds.
"""

import os
import socket
import subprocess
import threading

from tests.integration import lib
from tests.integration.lib import Case

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "probe", "tx_probe")


def probe_env():
    """The stack's database settings, as the admin user (it owns the probe tables)."""
    return ["env", f"CD_DB_USER={lib.env('CD_DB_ADMIN_USER')}",
            f"CD_DB_PASSWORD={lib.env('CD_DB_ADMIN_PASSWORD')}"]


class ProbeCase(Case):
    """Creates the probe's tables and checks a writer's rounds against them."""

    def setUp(self):
        super().setUp()
        lib.db_exec("CREATE TABLE probe_counters (name VARCHAR(16) PRIMARY KEY,"
                    " n BIGINT NOT NULL) ENGINE=InnoDB")
        lib.db_exec("CREATE TABLE probe_log (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
                    " round BIGINT NOT NULL, KEY (round)) ENGINE=InnoDB")
        lib.db_exec("INSERT INTO probe_counters VALUES ('contended', 0), ('logged', 0)")

    def tearDown(self):
        lib.db_exec("DROP TABLE IF EXISTS probe_log, probe_counters")
        super().tearDown()

    def assertRounds(self, lines, rounds):
        """Each committed round logged once, failed ones never; returns (committed, failed)."""
        failed = {int(w.split()[1]) for w in lines if w.startswith("failed ")}
        self.assertTrue(lines and lines[-1].startswith("committed "), lines[-3:])
        committed = int(lines[-1].split()[1])
        self.assertEqual(committed + len(failed), rounds)
        logged = {r["round"]: r["n"] for r in lib.db_rows(
            "SELECT round, COUNT(*) AS n FROM probe_log GROUP BY round")}
        self.assertEqual(sorted(r for r, n in logged.items() if n != 1), [],
                         "rounds logged more than once")
        self.assertEqual(sorted(failed & set(logged)), [], "failed rounds that left a row")
        self.assertEqual(len(logged), committed)
        self.assertEqual(lib.db_scalar(
            "SELECT n FROM probe_counters WHERE name = 'logged'"), committed)
        return committed, failed


class Transactions(ProbeCase):

    def test_a_transaction_ended_under_it_is_run_again_whole(self):
        out = subprocess.run([*probe_env(), PROBE, "ended", "20"], capture_output=True,
                             text=True, timeout=120, check=True)
        committed, failed = self.assertRounds(out.stdout.splitlines(), 20)
        self.assertEqual((committed, failed), (20, set()))
        # The broken first attempts kept nothing: the contended row was
        # written once per round, by the attempt that committed.
        self.assertEqual(lib.db_scalar(
            "SELECT n FROM probe_counters WHERE name = 'contended'"), 20)
        self.assertEqual(out.stderr.count("ended the transaction under"), 20, out.stderr)

    def test_a_commit_whose_answer_is_lost_is_not_run_again(self):
        with CommitCutter(lose="answer") as cutter:
            out = self.probe_through(cutter, 20)
        self.assertEqual(self.assertRounds(out.stdout.splitlines(), 20), (20, set()))
        self.assertEqual(cutter.cuts, 5)
        self.assertEqual(out.stderr.count("the lost COMMIT had committed"), 5, out.stderr)
        self.assertEqual(lib.db_scalar(
            "SELECT n FROM probe_counters WHERE name = 'contended'"), 20)

    def test_a_commit_that_never_arrived_is_run_again(self):
        with CommitCutter(lose="commit") as cutter:
            out = self.probe_through(cutter, 20)
        self.assertEqual(self.assertRounds(out.stdout.splitlines(), 20), (20, set()))
        self.assertEqual(cutter.cuts, 6)     # of 26 COMMITs: 20 rounds, 6 run again
        self.assertNotIn("the lost COMMIT had committed", out.stderr)
        self.assertEqual(lib.db_scalar(
            "SELECT n FROM probe_counters WHERE name = 'contended'"), 20)

    def probe_through(self, cutter, rounds):
        """tx_probe writer ROUNDS, connecting over TCP through cutter."""
        return subprocess.run(
            ["env", "-u", "CD_DB_SOCKET", *probe_env()[1:], "CD_DB_HOST=127.0.0.1",
             f"CD_DB_PORT={cutter.port}", PROBE, "writer", str(rounds)],
            capture_output=True, text=True, timeout=120, check=True)


class CommitCutter:
    """
    A TCP proxy in front of the stack's database that loses the connection
    at every fourth COMMIT it carries: once the server has answered it,
    dropping the answer (lose="answer"), or before passing it on at all
    (lose="commit").  A COMMIT is a COM_QUERY packet of its own.
    """

    EVERY = 4

    def __init__(self, lose):
        self.lose = lose
        self.commits = self.cuts = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = ("127.0.0.1", int(lib.env("CD_DB_PORT")))

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            cut = threading.Event()
            threading.Thread(target=self._up, args=(client, server, cut), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, cut), daemon=True).start()

    def _chosen(self, packet):
        if packet[4:11] != b"\x03COMMIT":
            return False
        with self.lock:
            self.commits += 1
            if self.commits % self.EVERY:
                return False
            self.cuts += 1
            return True

    def _up(self, client, server, cut):
        while data := _recv(client):
            if self._chosen(data):
                if self.lose == "commit":
                    break
                cut.set()
            server.sendall(data)
        _close(client, server)

    def _down(self, server, client, cut):
        while (data := _recv(server)) and not cut.is_set():
            client.sendall(data)
        _close(client, server)


def _recv(sock):
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
