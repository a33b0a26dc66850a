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

    def own(self, path):
        """The test's own GET of a /v1/ path, and the log sizes once the
        emulator has logged it: it writes a request's line after answering,
        so a size taken at once could count the test's call as the app's."""
        before = lib.log_sizes()
        out = lib.stripe_api("GET", path).json
        lib.wait_until(lambda: self.stripe_calls(before, [path]), timeout=5,
                       what="the test's own GET in the emulator's log")
        return out, lib.log_sizes()

    def own_session(self, sid):
        return self.own(f"/v1/checkout/sessions/{sid}")

    def paid_subscription(self):
        """A user's subscription checkout paid, its events held: (user,
        session id, subscription id, its period end)."""
        u = lib.register()
        lib.emu_hold()
        self.addCleanup(lib.reset_webhooks)
        r = create_checkout(u, {"purchaseType": "subscription", "planId": "starter"})
        self.assertStatus(r, 200, "create-checkout subscription")
        sid = r.json["sessionId"]
        sub = lib.emu_pay(sid).json["subscription"]
        ends = lib.stripe_api("GET", f"/v1/subscriptions/{sub}").json["current_period_end"]
        return u, sid, sub, ends

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

    def test_first_subscription_checkout_costs_one_stripe_call(self):
        u, sid, sub, ends = self.paid_subscription()
        session, sizes = self.own_session(sid)
        invoice = session["invoice"]
        self.assertTrue(invoice.startswith("in_"), invoice)
        event = lib.completed_event(sid)
        r = lib.post_webhook(json.dumps(event))
        self.assertStatus(r, 200, "webhook")
        # Fulfilled, the subscription kept and the first invoice's credits
        # allocated, all from one answer: the session with its invoice and
        # that invoice's subscription expanded.
        self.assertEqual(lib.db_scalar("SELECT COUNT(*) FROM subscription_allocations"
                                       " WHERE stripe_invoice_id = %s", invoice), 1)
        self.assertEqual(balance(u.id), STARTER_CREDITS * rate())
        self.assertEqual(lib.db_row("SELECT status, UNIX_TIMESTAMP(current_period_end) AS ends"
                                    " FROM subscriptions WHERE stripe_subscription_id = %s", sub),
                         {"status": "active", "ends": ends})
        lib.wait_until(lambda: self.stripe_calls(sizes, [sid]), timeout=5,
                       what="the session's retrieve in the emulator's log")
        time.sleep(0.3)
        calls = self.stripe_calls(sizes, [sid, sub, invoice])
        self.assertEqual(len(calls), 1, calls)
        self.assertEqual(calls[0], f"GET /v1/checkout/sessions/{sid}")
        self.assertEqual(lib.db_scalar(
            "SELECT JSON_VALUE(a.params, '$.expand[0]') FROM stripe_event_answers a"
            " WHERE a.event_id = %s", event["id"]), "invoice.subscription")

    def test_first_subscription_checkout_confirmed_by_the_buyer_costs_one_stripe_call(self):
        """The success page's confirm-payment fulfils the same way."""
        u, sid, sub, _ = self.paid_subscription()
        session, sizes = self.own_session(sid)
        r = u.confirm(sid)
        self.assertStatus(r, 200, "confirm-payment")
        self.assertEqual(lib.db_scalar("SELECT COUNT(*) FROM subscription_allocations"
                                       " WHERE stripe_invoice_id = %s", session["invoice"]), 1)
        self.assertEqual(balance(u.id), STARTER_CREDITS * rate())
        time.sleep(0.3)
        calls = self.stripe_calls(sizes, [sid, sub, session["invoice"]])
        self.assertEqual(len(calls), 1, calls)
        self.assertEqual(calls[0], f"GET /v1/checkout/sessions/{sid}")

    def test_a_disputed_subscription_invoice_costs_one_stripe_call(self):
        """The dispute comes with its charge expanded, and the charge names
        the invoice it paid: no lookup of Checkout Sessions, no charge."""
        u, sid, sub, _ = self.paid_subscription()
        self.assertStatus(u.confirm(sid), 200, "confirm-payment")
        per = STARTER_CREDITS * rate()
        self.assertEqual(balance(u.id), per)
        invoice = lib.stripe_session(sid)["invoice"]
        charge = lib.stripe_api("GET", f"/v1/invoices/{invoice}").json["charge"]
        dp = lib.emu_ok("POST", f"/_emu/charges/{charge}/dispute")["id"]
        pi, sizes = self.own(f"/v1/charges/{charge}")
        created = lib.events_about(dp, "charge.dispute.created")
        self.assertEqual(len(created), 1, created)
        self.assertEqual(lib.emu_deliver(created[0]["id"])["statuses"], [200])
        self.assertEqual(lib.db_row("SELECT user_id, product, units_frozen FROM disputes"
                                    " WHERE stripe_dispute_id = %s", dp),
                         {"user_id": u.id, "product": "subscription", "units_frozen": per})
        self.assertEqual(lib.db_row("SELECT balance, frozen FROM user_credits"
                                    " WHERE user_id = %s", u.id),
                         {"balance": per, "frozen": per})
        time.sleep(0.3)
        calls = self.stripe_calls(sizes, [dp, charge, invoice, sub, pi["payment_intent"],
                                          "/v1/checkout/sessions"])
        self.assertEqual(calls, [f"GET /v1/disputes/{dp}"])
