"""Operations: a crashed responder child is replaced without dropping the
others, and a Stripe failure is a 502 that records nothing."""

import os
import signal
import subprocess
import threading

from .lib import (Browser, Case, checkout_rows, emu_fail, env, event_processed,
                  make_event, post_webhook, register, wait_until)


def children(family):
    """PIDs of the FastCGI children multiwatch runs for a family."""
    with open(os.path.join(env("CD_RUN_DIR"), f"{family}.pid")) as f:
        parent = f.read().strip()
    out = subprocess.run(["pgrep", "-P", parent], capture_output=True, text=True)
    return sorted(int(p) for p in out.stdout.split())


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
