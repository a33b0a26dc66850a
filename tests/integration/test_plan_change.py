"""Changing plan: POST /api/subscriptions/{id}/plan makes a live subscription
renew as another plan.  Nothing is charged or allocated at the change: the
period paid for stays as bought (its credits, its tier); the next renewal
charges the new plan's price and allocates its credits, and from then the
subscription is that plan (its tier too).  Choosing the plan it already
renews as changes nothing; choosing its own plan again undoes a change."""

import time

from .lib import (audit_count, db_row, db_rows, db_scalar, emu_hold, emu_ok, emu_release,
                  event_processed, events_about, parallel, stripe_api, wait_until)
from .test_billing_payments import ROW, payments_section
from .test_credits import STARTER_CREDITS, CreditsCase, allocations, rate
from . import test_money     # not its classes by name: they would run here again
from .test_money import replayed

PRO_CREDITS = 62500


def local_id(sub):
    return db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)


def row(sub):
    return db_row("SELECT s.plan_id, s.renews_as, u.plan_tier FROM subscriptions s"
                  " JOIN users u ON u.id = s.user_id WHERE s.stripe_subscription_id = %s", sub)


def plan_allocations(sub):
    return [(a["plan_id"], a["credits"], a["amount_cents"]) for a in db_rows(
        "SELECT a.plan_id, a.credits, a.amount_cents FROM subscription_allocations a"
        " JOIN subscriptions s ON s.id = a.subscription_id"
        " WHERE s.stripe_subscription_id = %s ORDER BY a.id", sub)]


def stripe_item(sub):
    """(unit amount of the subscription's one item, its metadata item)."""
    s = stripe_api("GET", f"/v1/subscriptions/{sub}").json
    (item,) = s["items"]["data"]
    return item["price"]["unit_amount"], s["metadata"]["item"]


class PlanChangeTests(CreditsCase):
    subscribe = test_money.SubscriptionLifecycleTests.subscribe
    settled = test_money.SubscriptionLifecycleTests.settled

    def change(self, u, sub, plan, status=200):
        r = u.post(f"/api/subscriptions/{local_id(sub)}/plan", {"planId": plan})
        self.assertStatus(r, status, f"change to {plan}")
        return r

    def renew(self, sub, allocated):
        emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
        wait_until(lambda: len(allocations(sub)) == allocated, 20, message="renewal allocated")
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(sub)), 20,
                   message="the subscription's events handled")

    def test_a_plan_changes_at_renewal(self):
        u, other = self.user(), self.user()
        _, sub = self.settled(u)
        self.assertError(other.post(f"/api/subscriptions/{local_id(sub)}/plan", {"planId": "pro"}),
                         404, "subscription_not_found")
        self.assertError(self.change(u, sub, "gold", 404), 404, "plan_not_found")
        self.assertEqual(self.change(u, sub, "", 400).status, 400)

        r = self.change(u, sub, "pro")
        self.assertEqual((r.json["plan_id"], r.json["renewsAs"], r.json["status"]),
                         ("starter", "pro", "active"))
        self.assertEqual(stripe_item(sub), (2500, "pro"))
        # the period paid for stays as bought: no charge, no credits, no tier
        self.assertEqual(row(sub), {"plan_id": "starter", "renews_as": "pro",
                                    "plan_tier": "free"})
        self.assertEqual(plan_allocations(sub), [("starter", STARTER_CREDITS * rate(), 1000)])
        page = u.get("/settings/billing").text
        self.assertIn("From then it renews as the Pro plan: 62,500 credits every month for"
                      " $25.00 a month.", page)
        self.assertIn('data-plan="starter">Keep the Starter plan</button>', page)
        self.assertNotIn("Change to Pro at renewal", page)
        self.assertEqual(self.change(u, sub, "pro").json["renewsAs"], "pro")
        self.assertEqual(audit_count("SUBSCRIPTION_PLAN_CHANGED", str(local_id(sub))), 1)

        self.renew(sub, 2)
        self.assertEqual(plan_allocations(sub), [("starter", STARTER_CREDITS * rate(), 1000),
                                                 ("pro", PRO_CREDITS * rate(), 2500)])
        self.assertEqual(row(sub), {"plan_id": "pro", "renews_as": "pro", "plan_tier": "firewall"})
        self.assertEqual(db_scalar("SELECT description FROM credit_transactions WHERE user_id = %s"
                                   " ORDER BY id DESC LIMIT 1", u.id),
                         "Pro plan: 62,500 Pilot Credits")
        page = u.get("/settings/billing").text
        self.assertEqual([(f[3], f[4], f[5]) for f in ROW.findall(payments_section(page))],
                         [("Pro plan", "$25.00", "Paid"), ("Starter plan", "$10.00", "Paid")])
        self.assertIn('data-plan="starter">Change to Starter at renewal</button>', page)
        self.assertEqual(replayed(u.id), (0, []))

    def test_choosing_its_own_plan_again_undoes_the_change(self):
        u = self.user()
        _, sub = self.settled(u)
        self.change(u, sub, "pro")
        r = self.change(u, sub, "starter")
        self.assertEqual((r.json["plan_id"], r.json["renewsAs"]), ("starter", "starter"))
        self.assertEqual(stripe_item(sub), (1000, "starter"))
        self.assertEqual(audit_count("SUBSCRIPTION_PLAN_CHANGED", str(local_id(sub))), 2)
        self.assertIn("Change to Pro at renewal", u.get("/settings/billing").text)
        self.renew(sub, 2)
        self.assertEqual(plan_allocations(sub), [("starter", STARTER_CREDITS * rate(), 1000)] * 2)
        self.assertEqual(row(sub), {"plan_id": "starter", "renews_as": "starter",
                                    "plan_tier": "free"})
        self.assertEqual(replayed(u.id), (0, []))

    def test_concurrent_changes_end_where_stripe_is(self):
        """Two tabs clicking at once: 8 changes to Pro and 8 back to Starter
        reach Stripe in any order; once Stripe's news of each is handled, our
        row renews as the plan Stripe's item is priced for, every change made
        at Stripe was audited, and the renewal allocates that plan."""
        u = self.user()
        _, sub = self.settled(u)
        steps = ["pro", "starter"] * 8
        out = parallel(lambda plan: u.post(f"/api/subscriptions/{local_id(sub)}/plan",
                                           {"planId": plan}), steps)
        self.assertEachStatus(steps, out, 200)
        changes = events_about(sub, "customer.subscription.updated")
        self.assertGreaterEqual(len(changes), 1)
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(sub)), 30,
                   message="every change's event handled")
        amount, plan = stripe_item(sub)
        self.assertEqual(amount, {"pro": 2500, "starter": 1000}[plan])
        self.assertEqual(row(sub)["renews_as"], plan)
        self.assertEqual(audit_count("SUBSCRIPTION_PLAN_CHANGED", str(local_id(sub))),
                         len(changes))
        self.renew(sub, 2)
        self.assertEqual(plan_allocations(sub)[-1][::2], (plan, amount))
        self.assertEqual(row(sub)["plan_id"], plan)

    def test_a_cancelled_unpaid_or_ended_plan_is_not_changed(self):
        u = self.user()
        _, sub = self.settled(u)
        local = local_id(sub)
        self.assertStatus(u.post(f"/api/subscriptions/{local}/cancel", {}), 200, "cancel")
        self.assertError(self.change(u, sub, "pro", 409), 409, "subscription_cancelled")
        self.assertNotIn("at renewal", u.get("/settings/billing").text)
        self.assertStatus(u.post(f"/api/subscriptions/{local}/resume", {}), 200, "resume")
        emu_ok("POST", f"/_emu/subscriptions/{sub}/fail_renewal")
        wait_until(lambda: db_scalar("SELECT status FROM subscriptions WHERE id = %s",
                                     local) == "past_due", 20, message="renewal failed")
        self.assertError(self.change(u, sub, "pro", 409), 409, "subscription_past_due")
        self.assertEqual(stripe_item(sub), (1000, "starter"))
        self.assertStatus(u.post(f"/api/subscriptions/{local}/cancel", {}), 200, "cancel")
        emu_ok("POST", f"/_emu/subscriptions/{sub}/end_period")
        wait_until(lambda: db_scalar("SELECT status FROM subscriptions WHERE id = %s",
                                     local) == "canceled", 20, message="ended")
        self.assertError(self.change(u, sub, "pro", 409), 409, "subscription_not_active")
        self.assertEqual(audit_count("SUBSCRIPTION_PLAN_CHANGED", str(local)), 0)

    def test_a_renewal_handled_late_does_not_set_the_plan_back(self):
        """Two renewals, Pro then Starter again, whose invoices arrive newest
        first: the subscription is the plan of its newest invoice, each
        invoice allocates its own plan's credits."""
        u = self.user()
        _, sub = self.settled(u)
        self.change(u, sub, "pro")
        emu_hold()
        try:
            emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
            time.sleep(1.1)     # Stripe's times are whole seconds
            self.change(u, sub, "starter")
            emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
        finally:
            emu_release("reverse")
        wait_until(lambda: len(allocations(sub)) == 3, 20, message="both renewals allocated")
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(sub)), 20,
                   message="the subscription's events handled")
        by_amount = sorted(plan_allocations(sub), key=lambda a: a[2])
        self.assertEqual(by_amount, [("starter", STARTER_CREDITS * rate(), 1000)] * 2 +
                         [("pro", PRO_CREDITS * rate(), 2500)])
        self.assertEqual(row(sub), {"plan_id": "starter", "renews_as": "starter",
                                    "plan_tier": "free"})
        self.assertEqual(replayed(u.id), (0, []))
