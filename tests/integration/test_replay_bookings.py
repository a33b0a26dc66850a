"""Replaying expert bookings: creditdesk-replay rebuilds bookings, their
payments, refunds, disputes and payouts from the bookings as created, the
local actions on them (cancel, complete, payout) and the stored events, and
finds them equal to live after a scripted mix: paid and completed and paid
out, cancelled with a full and with a partial refund, declined then paid,
cancelled unpaid, refunded in Stripe, disputed and lost, disputed and won,
free; a destination charge (Connect) whose buyer confirmed the payment
before its webhook arrived; and holds let go because the app found their
PaymentIntents canceled at Stripe; a booking moved, whose old time someone
else then paid for.  A payout or booking altered in live is reported, and it
alone."""

from . import test_money
from .lib import (all_processed, db_row, db_scalar, db_exec, emu_hold, emu_ok, emu_release,
                  promote, register, stripe_api, wait_until)
from .test_bookings import (BookingCase, admin, booking_row, emu_decline, emu_succeed,
                            events_done, future, move, new_expert, payment_row, refund_rows,
                            started, status_is)
from .test_replay import replay


def mine(report, user_id, payout_ids):
    """The differences of a whole-database replay about this user's rows or
    these payouts ("not replayed" steps name only a live id: all of them)."""
    return [d for d in report["differences"]
            if d.get("user_id") == user_id or d["side"] == "not replayed"
            or (d["table"] == "payouts" and d.get("id") in payout_ids)]


class BookingReplayTests(BookingCase):

    def completed(self, customer, expert_user, eid):
        bid, pi = self.paid(customer, eid)
        started(bid)        # moved after it was paid: the replay books the time asked for
        self.assertStatus(expert_user.post(f"/api/bookings/{bid}/complete", {}), 200)
        return bid, pi

    def disputed(self, pi, status):
        dp = test_money.dispute_intent(pi)
        test_money.close_dispute(dp, status)
        return dp

    def cancelled(self, customer, bid):
        self.assertStatus(customer.post(f"/api/bookings/{bid}/cancel", {}), 200, "cancel")
        return booking_row(bid)

    def scripted_mix(self):
        """Every booking path, for one customer; returns (customer, payout id, bookings)."""
        adm, a, expert_user = admin(), register(), register()
        eid = new_expert(100, user=expert_user)          # 30 min: 3000, fee 300, payout 2700
        strict = new_expert(100)                         # a late cancel gives 25% back
        db_exec("UPDATE experts SET cancel_full_refund_hours = 100000,"
                " cancel_late_refund_bps = 2500 WHERE id = %s", strict)
        done, _ = self.completed(a, expert_user, eid)
        r = adm.post("/api/admin/payouts", {"expertId": eid})
        self.assertStatus(r, 201, "payout")
        self.assertEqual(r.json["payout"]["amountCents"], 2700)
        full, _ = self.paid(a, eid)
        self.assertEqual(self.cancelled(a, full)["refunded_cents"], 3000)
        late, _ = self.paid(a, strict)
        self.assertEqual(self.cancelled(a, late)["refunded_cents"], 750)
        j = self.created(a, eid)
        retried, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        emu_decline(pi)
        wait_until(lambda: payment_row(retried)["failed_attempts"] == 1, message="decline")
        emu_succeed(pi)
        status_is(retried, "scheduled", "succeeded")
        unpaid = self.created(a, eid)["booking"]["id"]
        self.assertEqual(self.cancelled(a, unpaid)["status"], "cancelled_by_user")
        in_stripe, pi = self.paid(a, eid)
        self.assertStatus(stripe_api("POST", "/v1/refunds", {"payment_intent": pi}), 200)
        wait_until(lambda: len(refund_rows(in_stripe)) == 1, message="refund recorded")
        lost, pi = self.paid(a, eid)
        self.disputed(pi, "lost")
        won, pi = self.paid(a, eid)
        self.disputed(pi, "won")
        free = self.created(a, new_expert(0))["booking"]["id"]
        all_processed()
        books = {"done": done, "full": full, "late": late, "retried": retried,
                 "unpaid": unpaid, "in_stripe": in_stripe, "lost": lost, "won": won,
                 "free": free}
        return a, r.json["payout"]["id"], books

    def test_scripted_bookings_replay_to_the_live_state(self):
        a, payout, books = self.scripted_mix()
        self.assertEqual({k: (b["status"], b["refunded_cents"], b["dispute_status"])
                          for k, b in ((k, booking_row(v)) for k, v in books.items())}, {
            "done": ("completed", 0, None), "full": ("cancelled_by_user", 3000, None),
            "late": ("cancelled_by_user", 750, None), "retried": ("scheduled", 0, None),
            "unpaid": ("cancelled_by_user", 0, None), "in_stripe": ("scheduled", 3000, None),
            "lost": ("cancelled_by_user", 3000, "lost"), "won": ("scheduled", 0, "won"),
            "free": ("scheduled", 0, None)})
        rc, report = replay("--user", str(a.id))
        self.assertEqual((rc, report["differences"]), (0, []))
        # nine bookings created, two cancels, one completion, and their events
        self.assertGreaterEqual(report["steps"], 12)
        # the payout is replayed only with everyone's bookings
        _, report = replay()
        self.assertEqual(mine(report, a.id, {payout}), [])

    def test_holds_released_for_a_canceled_payment_intent_replay(self):
        a = register()
        eid = new_expert(100)
        held = [self.created(a, eid)["booking"] for _ in range(3)]
        # canceled at Stripe before the webhooks came: found by pay, by
        # confirm-payment, and (the customer's own cancel) by the cancel
        emu_hold()
        try:
            for b in held[:2]:
                self.assertStatus(stripe_api("POST", f"/v1/payment_intents/{b['paymentIntentId']}"
                                                     "/cancel"), 200, "cancel at Stripe")
            self.assertError(a.post(f"/api/bookings/{held[0]['id']}/pay", {}), 409, "hold_released")
            self.assertStatus(a.post(f"/api/bookings/{held[1]['id']}/confirm-payment", {}), 200)
            self.assertStatus(a.post(f"/api/bookings/{held[2]['id']}/cancel", {}), 200)
        finally:
            emu_release()
        for b in held:
            wait_until(lambda: events_done(b["paymentIntentId"], "payment_intent.canceled"),
                       message="payment_intent.canceled stored")
        all_processed()
        self.assertEqual([(booking_row(b["id"])["status"], payment_row(b["id"])["status"])
                          for b in held],
                         [("payment_failed", "failed"), ("payment_failed", "failed"),
                          ("cancelled_by_user", "failed")])
        rc, report = replay("--user", str(a.id))
        self.assertEqual((rc, report["differences"]), (0, []))

    def test_a_moved_booking_replays_at_its_new_time(self):
        """A paid booking moved away from its time, and that time then booked
        and paid by someone else: the replay moves the first when it moved,
        so the second's payment finds its time free, as live did."""
        a, b = register(), register()
        eid = new_expert(100)
        first, _ = self.paid(a, eid)
        old = booking_row(first)["start_time"].strftime("%Y-%m-%dT%H:%M:%SZ")
        self.assertStatus(move(a, first, future()[0]), 200, "move")
        j = self.created(b, eid, old)
        second, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        emu_succeed(pi)
        status_is(second, "scheduled", "succeeded")
        all_processed()
        self.assertEqual(refund_rows(second), [])
        _, report = replay()
        self.assertEqual(mine(report, a.id, set()) + mine(report, b.id, set()), [])

    def test_an_altered_booking_or_payout_is_reported_alone(self):
        a, payout, books = self.scripted_mix()
        db_exec("UPDATE payouts SET amount_cents = amount_cents + 1 WHERE id = %s", payout)
        db_exec("UPDATE payments SET failed_attempts = 2 WHERE booking_id = %s", books["retried"])
        try:
            _, report = replay()
        finally:
            db_exec("UPDATE payouts SET amount_cents = amount_cents - 1 WHERE id = %s", payout)
            db_exec("UPDATE payments SET failed_attempts = 1 WHERE booking_id = %s",
                    books["retried"])
        got = sorted((d["table"], d["side"], d.get("amount_cents"), d.get("failed_attempts"))
                     for d in mine(report, a.id, {payout}))
        self.assertEqual(got, [("payments", "live only", 3000, 2),
                               ("payments", "replay only", 3000, 1),
                               ("payouts", "live only", 2701, None),
                               ("payouts", "replay only", 2700, None)])

    def test_a_destination_charge_confirmed_before_its_webhook_replays(self):
        customer, u = register(), register()
        promote(u, role="expert")
        eid = new_expert(150, user=u)                    # 30 min: 4500, fee 450, payout 4050
        acct = u.post("/api/experts/me/connect", {}).json["accountId"]
        emu_ok("POST", f"/_emu/accounts/{acct}/onboard")
        wait_until(lambda: db_row("SELECT charges_enabled, payouts_enabled FROM experts"
                                  " WHERE id = %s", eid) == {"charges_enabled": 1,
                                                            "payouts_enabled": 1},
                   20, message="account.updated")
        j = self.created(customer, eid)
        bid, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        emu_hold()
        try:
            emu_succeed(pi)
            r = customer.post(f"/api/bookings/{bid}/confirm-payment", {})
            self.assertStatus(r, 200, "confirm-payment")
        finally:
            emu_release()
        wait_until(lambda: events_done(pi, "payment_intent.succeeded"),
                   message="payment_intent.succeeded processed")
        all_processed()
        b = booking_row(bid)
        self.assertEqual((b["status"], b["destination_account"], b["stripe_transfer_id"][:3]),
                         ("scheduled", acct, "tr_"))
        # the buyer's confirm-payment paid it before the webhook was handled
        self.assertEqual(db_scalar(
            "SELECT a.created_at < e.processed_at FROM audit_log a JOIN stripe_events e"
            " ON e.object_id = %s AND e.type = 'payment_intent.succeeded'"
            " WHERE a.action = 'BOOKING_PAID' AND a.entity_id = %s", pi, str(bid)), 1)
        rc, report = replay("--user", str(customer.id))
        self.assertEqual((rc, report["differences"]), (0, []))
