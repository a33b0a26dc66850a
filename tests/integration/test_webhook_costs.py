"""What a webhook event costs: the Stripe API calls its handler makes
(counted in the emulator's request log) and, for an event no handler acts
on, one durable commit (recorded already processed, in one statement)."""

import json
import re
import time

from . import lib
from .lib import Case
from .test_credits import STARTER_CREDITS, balance, create_checkout, rate


class WebhookCostTests(Case):

    def stripe_calls(self, sizes, ids):
        """The emulator's /v1/ requests since sizes about any of ids, as "GET /v1/…"."""
        lines = lib.log_since(sizes, names=["emulator.log"], max_lines=100000).get(
            "emulator.log", [])
        calls = [m.group(1) for m in (re.search(r" ((?:GET|POST|DELETE) /v1/\S*)", l)
                                      for l in lines) if m]
        return [c for c in calls if any(i in c for i in ids)]

    def own_session(self, sid):
        """The test's own GET of the session, and the log sizes once the
        emulator has logged it: it writes a request's line after answering,
        so a size taken at once could count the test's call as the app's."""
        before = lib.log_sizes()
        session = lib.stripe_session(sid)
        lib.wait_until(lambda: self.stripe_calls(before, [sid]), timeout=5,
                       what="the test's own GET in the emulator's log")
        return session, lib.log_sizes()

    def test_event_without_handler_is_stored_processed_in_one_statement(self):
        event_id, body = lib.make_event("creditdesk.test_ping")
        sizes = lib.log_sizes()
        r = lib.post_webhook(body)
        self.assertStatus(r, 200, "webhook")
        self.assertEqual(r.json, {"received": True, "duplicate": False})
        row = lib.db_row("SELECT received_at, processed_at, payload FROM stripe_events"
                         " WHERE event_id = %s", event_id)
        # One INSERT wrote both times (a later "processed" UPDATE would
        # give a later processed_at): one commit.
        self.assertIsNotNone(row["processed_at"])
        self.assertEqual(row["processed_at"], row["received_at"])
        self.assertEqual(row["payload"], body.decode())
        time.sleep(0.3)
        self.assertEqual(self.stripe_calls(sizes, ["/v1/"]), [])
        # A redelivery is a duplicate and changes nothing.
        r = lib.post_webhook(body)
        self.assertStatus(r, 200, "redelivery")
        self.assertEqual(r.json, {"received": True, "duplicate": True})
        self.assertEqual(lib.db_scalar("SELECT COUNT(*) FROM stripe_events WHERE event_id = %s",
                                       event_id), 1)

    def test_paid_checkout_session_costs_one_stripe_call(self):
        b = lib.register()
        lib.emu_hold()
        self.addCleanup(lib.reset_webhooks)
        sid = lib.start_live_help(b, 2)
        lib.emu_pay(sid)
        event = lib.completed_event(sid)
        session, sizes = self.own_session(sid)
        pi = session["payment_intent"]
        r = lib.post_webhook(json.dumps(event))
        self.assertStatus(r, 200, "webhook")
        self.assertEqual(r.json, {"received": True, "duplicate": False})
        self.assertEqual(lib.hours_total(b.id), 2)
        lib.wait_until(lambda: self.stripe_calls(sizes, [sid]), timeout=5,
                       what="the session's retrieve in the emulator's log")
        time.sleep(0.3)
        calls = self.stripe_calls(sizes, [sid, pi])
        self.assertEqual(len(calls), 1, calls)
        self.assertTrue(calls[0].startswith(f"GET /v1/checkout/sessions/{sid}"), calls)

    def test_first_subscription_checkout_costs_two_stripe_calls(self):
        u = lib.register()
        lib.emu_hold()
        self.addCleanup(lib.reset_webhooks)
        r = create_checkout(u, {"purchaseType": "subscription", "planId": "starter"})
        self.assertStatus(r, 200, "create-checkout subscription")
        sid = r.json["sessionId"]
        sub = lib.emu_pay(sid).json["subscription"]
        session, sizes = self.own_session(sid)
        invoice = session["invoice"]
        self.assertTrue(invoice.startswith("in_"), invoice)
        event = lib.completed_event(sid)
        r = lib.post_webhook(json.dumps(event))
        self.assertStatus(r, 200, "webhook")
        # Fulfilled and the first invoice's credits allocated: the session,
        # then the invoice with its subscription expanded.
        self.assertEqual(lib.db_scalar("SELECT COUNT(*) FROM subscription_allocations"
                                       " WHERE stripe_invoice_id = %s", invoice), 1)
        self.assertEqual(balance(u.id), STARTER_CREDITS * rate())
        lib.wait_until(lambda: self.stripe_calls(sizes, [sid]), timeout=5,
                       what="the session's retrieve in the emulator's log")
        time.sleep(0.3)
        lib.wait_until(lambda: len(self.stripe_calls(sizes, [sid, sub, invoice])) >= 2,
                       timeout=5, what="the invoice's retrieve in the emulator's log")
        time.sleep(0.3)
        calls = self.stripe_calls(sizes, [sid, sub, invoice])
        self.assertEqual(len(calls), 2, calls)
        self.assertTrue(calls[0].startswith(f"GET /v1/checkout/sessions/{sid}"), calls)
        self.assertTrue(calls[1].startswith(f"GET /v1/invoices/{invoice}"), calls)
