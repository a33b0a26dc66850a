"""
No statement escapes its transaction.  The probe (tests/probe/tx_probe.c)
runs transactions through the same db_tx every responder uses; here the
server rolls each round's first attempt back between two statements
without telling the next one, as a cluster node's applier can.  db_tx must
notice, run the round again, and keep nothing of the broken attempt:
every round logged exactly once and both counters equal to the rounds.
"""

import os
import subprocess

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
