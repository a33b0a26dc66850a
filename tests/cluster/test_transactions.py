"""
No statement escapes its transaction on a cluster.  The probe
(tests/probe/tx_probe.c, through the same db_tx every responder uses) runs
transactions on machine 1 that write a row which machine 2 keeps writing in
lone statements, so node 1's applier aborts the open transactions again
and again; and transactions the server ends between two statements.  Each
round db_tx reported committed is logged exactly once, each it reported
failed not at all, and the counters agree.
"""

import os
import signal
import subprocess

from tests.integration import lib
from tests.integration.test_transactions import PROBE, ProbeCase, probe_env

from .common import ROUNDS
from .test_faults import CLUSTER


def on_machine(n, *args):
    """tx_probe ARGS on machine n, with its responders' database settings."""
    return ["bash", CLUSTER, "exec", str(n), *probe_env(), PROBE, *args]


class Transactions(ProbeCase):

    def test_aborted_transactions_leave_nothing_behind(self):
        rounds = ROUNDS
        hammer = subprocess.Popen(on_machine(2, "hammer", "900"), start_new_session=True,
                                  stdout=subprocess.DEVNULL)
        try:
            out = subprocess.run(on_machine(1, "writer", str(rounds)), check=True,
                                 capture_output=True, text=True, timeout=900)
        finally:
            os.killpg(hammer.pid, signal.SIGTERM)
            hammer.wait(30)
        committed, failed = self.assertRounds(out.stdout.splitlines(), rounds)
        contended = lib.db_scalar("SELECT n FROM probe_counters WHERE name = 'contended'")
        print(f"\n    {committed} of {rounds} committed, {len(failed)} failed;"
              f" {out.stderr.count('still conflicting')} gave up;"
              f" the contended row written {contended} times", end="")

    def test_a_transaction_ended_under_it_is_run_again_whole(self):
        out = subprocess.run(on_machine(1, "ended", "20"), capture_output=True,
                             text=True, timeout=120, check=True)
        self.assertEqual(self.assertRounds(out.stdout.splitlines(), 20), (20, set()))
        self.assertEqual(lib.db_scalar(
            "SELECT n FROM probe_counters WHERE name = 'contended'"), 20)
