"""Operations: a crashed responder child is replaced without dropping the
others, a family whose children all keep crashing comes back by itself, and
a Stripe failure is a 502 that records nothing."""

import os
import signal
import subprocess
import threading
import time

from .lib import (Browser, Case, checkout_rows, emu_fail, env, event_processed,
                  make_event, post_webhook, register, wait_until)


def child_pids(parent):
    """Live (not zombie) child processes of parent, by command name."""
    out = subprocess.run(["ps", "-o", "pid=,stat=,comm=", "--ppid", str(parent)],
                         capture_output=True, text=True)
    kids = {}
    for line in out.stdout.splitlines():
        pid, stat, comm = line.split(None, 2)
        if not stat.startswith("Z"):
            kids[int(pid)] = comm.strip()
    return kids


def supervisor(family):
    """PID of the family's supervisor (scripts/respawn.sh), from its pid file."""
    with open(os.path.join(env("CD_RUN_DIR"), f"{family}.pid")) as f:
        return int(f.read().strip())


def multiwatch(family):
    """PID of the multiwatch the family's supervisor runs now, or None."""
    mws = [p for p, comm in child_pids(supervisor(family)).items() if comm == "multiwatch"]
    return mws[0] if len(mws) == 1 else None


def children(family):
    """PIDs of the FastCGI children multiwatch runs for a family."""
    mw = multiwatch(family)
    return sorted(child_pids(mw)) if mw else []


class ProcessTests(Case):

    def test_killed_child_is_replaced_and_others_keep_serving(self):
        before = children("credits")
        self.assertGreaterEqual(len(before), 2, f"credits children: {before}")
        statuses, lock = [], threading.Lock()

        def hit():
            r = Browser().get("/api/boost-packs")
            with lock:
                statuses.append(r.status)

        os.kill(before[0], signal.SIGKILL)
        threads = [threading.Thread(target=hit) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(statuses, [200] * 40, "requests during the restart")

        wait_until(lambda: len(children("credits")) == len(before), timeout=10,
                   message="multiwatch restores the child count")
        after = children("credits")
        self.assertNotIn(before[0], after, "the killed child is gone")
        self.assertIn(before[1], after, "the other child was not restarted")
        self.assertEqual(Browser().get("/api/boost-packs").status, 200)


class CrashLoopTests(Case):

    def test_family_whose_children_all_keep_dying_comes_back(self):
        family, n = "credits", int(env("CD_CHILDREN", "2"))
        sup, first_mw = supervisor(family), multiwatch(family)
        self.assertIsNotNone(first_mw, "multiwatch runs under the supervisor")
        killed = set()
        for round_no in range(1, 6):
            # Each round kills every child there is now, all of them new ones
            # (multiwatch's replacements or, once it has given up, a new
            # multiwatch's children).
            wait_until(lambda: set(children(family)) - killed, timeout=15,
                       message=f"new {family} children, round {round_no}")
            time.sleep(0.2)
            kids = set(children(family)) - killed
            for pid in kids:
                os.kill(pid, signal.SIGKILL)
            killed |= kids

        # Five deaths of every child within seconds make multiwatch give up and
        # exit; the supervisor starts a new one and the family answers again.
        started = time.monotonic()
        wait_until(lambda: Browser().get("/api/boost-packs").status == 200, timeout=15,
                   message=f"{family} answers 200 again")
        self.assertLess(time.monotonic() - started, 15)
        self.assertEqual(supervisor(family), sup, "the same supervisor")
        self.assertNotEqual(multiwatch(family), first_mw, "multiwatch was started again")
        wait_until(lambda: len(children(family)) == n, timeout=10,
                   message=f"{n} {family} children again")
        self.assertFalse(killed & set(children(family)))
        statuses = [Browser().get("/api/boost-packs").status for _ in range(20)]
        self.assertEqual(statuses, [200] * 20)


class StripeFailureTests(Case):

    def test_stripe_error_is_502_and_nothing_is_recorded(self):
        b = register()
        emu_fail(count=1, status=500)
        r = b.buy_live_help(2)
        self.assertError(r, 502, "payment_provider_error", "buy while Stripe fails")
        self.assertEqual(checkout_rows(b.id), [], "no local checkout recorded")
        r = b.buy_live_help(2)
        self.assertStatus(r, 200, "buy after Stripe recovers")
        self.assertEqual(len(checkout_rows(b.id)), 1)


class UnknownObjectTests(Case):

    def test_event_about_an_object_stripe_never_had_is_not_retried(self):
        for etype, obj_id in (("checkout.session.completed", "cs_test_neverexisted42"),
                              ("charge.refunded", "ch_neverexisted42"),
                              ("invoice.paid", "in_neverexisted42")):
            eid, body = make_event(etype, {"id": obj_id, "object": "x"})
            r = post_webhook(body)
            self.assertStatus(r, 200, f"{etype} about {obj_id}")
            self.assertTrue(event_processed(eid), f"{etype} marked processed")
