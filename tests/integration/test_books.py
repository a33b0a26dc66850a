"""Proving the books: creditdesk-check finds exactly the corruption put into a
database (a ledger row changed, a duplicate fulfilment, an overfilled slot, a
refund without its reversal (of a Checkout payment or a subscription invoice), disputed credits
thawed, a refund that took no credits, refunded minutes usable again; a paid booking cancelled
without its refund, a
paid PaymentIntent's payment set back to pending, a booking refund's row
removed, a cancel refunded in full left cancelling) and nothing else, and with --stripe it compares
our paid sessions with Stripe's own list.  A recorded run (as the reconcile
job makes one) shows on /admin, and --metrics writes the gauges.  Every corruption is undone before
the test ends, so the module's own books check still passes."""

import json
import os

from .lib import (Case, all_processed, assert_books_balance, books_check, bought_live_help,
                  completed_event, db_exec, db_row, db_rows, db_scalar, emu_config, emu_fail,
                  emu_hold, emu_pay, emu_release, env, event_processed, events_about,
                  grant_hours, hours_total, latest_charge, new_slot, post_webhook, promote, refund_processed,
                  register, run_tool, session_event_ids, start_live_help, stripe_api,
                  stripe_session, totals, wait_until)
from .test_bookings import BookingCase, events_done, new_expert, refund_rows
from .test_credits import buy_pack


def ledger_rows(user_id):
    return db_rows("SELECT * FROM credit_transactions WHERE user_id = %s ORDER BY id", user_id)


def credits_row(user_id):
    return db_row("SELECT balance, total_earned, total_spent FROM user_credits"
                  " WHERE user_id = %s", user_id)


def refunded(sid):
    """Refunds a paid session in Stripe and waits for its reversal; returns the
    charge id."""
    r = stripe_api("POST", "/v1/refunds", {"payment_intent": stripe_session(sid)["payment_intent"]})
    if r.status != 200:
        raise AssertionError(f"refund: {r!r}")
    charge = r.json["charge"]
    ev = wait_until(lambda: events_about(charge, "charge.refunded"), 10,
                    message="charge.refunded event")
    wait_until(lambda: event_processed(ev[0]["id"]), 20, message="refund processed")
    return charge


class Undoing(Case):
    """Books balanced before; each corruption's undo (self.undo) run after."""

    def remove_reversal(self, column, value):
        """Deletes the payment_reversals row whose column is value (put back after)."""
        rev = db_row(f"SELECT * FROM payment_reversals WHERE {column} = %s", value)
        self.assertIsNotNone(rev, "the refund was reversed")
        db_exec("DELETE FROM payment_reversals WHERE id = %s", rev["id"])
        cols = list(rev)
        self.undo.append(lambda: db_exec(
            f"INSERT INTO payment_reversals ({', '.join(cols)}) VALUES"
            f" ({', '.join(['%s'] * len(cols))})", *[rev[c] for c in cols]))
        return rev

    def setUp(self):
        super().setUp()
        assert_books_balance("before corrupting")
        self.undo = []

    def tearDown(self):
        for fn in reversed(self.undo):
            fn()
        super().tearDown()


class CorruptionTests(Undoing):
    """Each corruption is made through the admin DB user, after real purchases."""

    def change_ledger_row(self):
        u = register()
        buy_pack(u, "boost-small")
        row = ledger_rows(u.id)[-1]
        # the row stays self-consistent (its CHECK holds), but no longer
        # explains the balance
        db_exec("UPDATE credit_transactions SET credits_delta = credits_delta + 7,"
                " balance_after = balance_after + 7 WHERE id = %s", row["id"])
        self.undo.append(lambda: db_exec(
            "UPDATE credit_transactions SET credits_delta = credits_delta - 7,"
            " balance_after = balance_after - 7 WHERE id = %s", row["id"]))
        c = credits_row(u.id)
        return {"check": "credit_balance", "user_id": u.id, "balance": c["balance"],
                "total_earned": c["total_earned"], "total_spent": c["total_spent"],
                "ledger_sum": c["balance"] + 7, "ledger_earned": c["total_earned"] + 7,
                "ledger_spent": 0}

    def duplicate_fulfilment(self):
        u = register()
        sid = bought_live_help(u, 2)
        _, cid = db_exec("INSERT INTO voice_therapy_credits (user_id, stripe_session_id,"
                         " minutes_purchased, minutes_remaining, amount_cents, expires_at)"
                         " VALUES (%s, %s, 15, 15, 999, UTC_TIMESTAMP(6) + INTERVAL 1 DAY)",
                         u.id, sid)
        self.undo.append(lambda: db_exec("DELETE FROM voice_therapy_credits WHERE id = %s", cid))
        return {"check": "fulfilment", "stripe_session_id": sid, "user_id": u.id,
                "product": "live_help", "status": "fulfilled", "fulfilment_rows": 2,
                "audit_rows": 1}

    def overfill_slot(self):
        a, b = register(), register()
        grant_hours(a, 1)
        grant_hours(b, 1)
        slot = new_slot(1)
        self.assertStatus(a.book(slot), 201)
        self.assertError(b.book(slot), 409, "slot_full")
        # b's seat as if written past the guard: the redemption and the hour
        _, rid = db_exec("INSERT INTO live_help_redemptions (user_id, slot_id) VALUES (%s, %s)",
                         b.id, slot)
        db_exec("UPDATE user_live_help_totals SET hours_used = hours_used + 1"
                " WHERE user_id = %s", b.id)

        def undo():
            db_exec("UPDATE user_live_help_totals SET hours_used = hours_used - 1"
                    " WHERE user_id = %s", b.id)
            db_exec("DELETE FROM live_help_redemptions WHERE id = %s", rid)
        self.undo.append(undo)
        self.assertEqual(totals(b.id), {"hours_total": 1, "hours_used": 1})
        return {"check": "live_help_slot", "slot_id": slot, "capacity": 1, "booked": 1,
                "redemptions": 2}

    def drop_reversal(self):
        u = register()
        sid = bought_live_help(u, 1)
        charge = refunded(sid)
        rev = self.remove_reversal("stripe_session_id", sid)
        return {"check": "unreversed_refund", "charge_id": charge,
                "payment_intent": rev["payment_intent_id"], "stripe_session_id": sid,
                "refunded_cents": rev["amount_cents"], "reversed_cents": 0}

    def thaw_disputed_credits(self):
        from .test_money import open_dispute
        u = register()
        open_dispute(buy_pack(u, "boost-small"))
        frozen = db_scalar("SELECT frozen FROM user_credits WHERE user_id = %s", u.id)
        self.assertGreater(frozen, 0, "the dispute froze the credits")
        # spendable again while the dispute is still open
        db_exec("UPDATE user_credits SET frozen = 0 WHERE user_id = %s", u.id)
        self.undo.append(lambda: db_exec("UPDATE user_credits SET frozen = %s"
                                         " WHERE user_id = %s", frozen, u.id))
        return {"check": "dispute_hold", "holding": "credits", "id": u.id, "frozen": 0,
                "held": frozen}

    def refund_without_credits(self):
        """The purchase says its credits were refunded; the ledger never took them."""
        u = register()
        sid = buy_pack(u, "boost-small")
        db_exec("UPDATE boost_pack_purchases SET credits_refunded = 100"
                " WHERE stripe_session_id = %s", sid)
        self.undo.append(lambda: db_exec("UPDATE boost_pack_purchases SET credits_refunded = 0"
                                         " WHERE stripe_session_id = %s", sid))
        earned = credits_row(u.id)["total_earned"]
        return {"check": "credit_grants", "user_id": u.id, "purchases_net": earned - 100,
                "total_earned": earned}

    def revive_refunded_minutes(self):
        from .test_voice_therapy import buy_voice, firewall_user
        u = firewall_user()
        sid = buy_voice(u)
        refunded(sid)
        c = db_row("SELECT id, minutes_remaining FROM voice_therapy_credits"
                   " WHERE stripe_session_id = %s", sid)
        db_exec("UPDATE voice_therapy_credits SET is_active = 1 WHERE id = %s", c["id"])
        self.undo.append(lambda: db_exec("UPDATE voice_therapy_credits SET is_active = 0"
                                         " WHERE id = %s", c["id"]))
        return {"check": "refunded_units", "holding": "voice_therapy", "id": c["id"],
                "user_id": u.id, "ref": sid, "units": c["minutes_remaining"]}

    def test_each_corruption_is_found_and_nothing_else(self):
        expected = [self.change_ledger_row(), self.duplicate_fulfilment(),
                    self.overfill_slot(), self.drop_reversal(), self.thaw_disputed_credits(),
                    self.refund_without_credits(), self.revive_refunded_minutes()]
        report = books_check()
        self.assertFalse(report["ok"])
        key = lambda f: (f["check"], json.dumps(f, sort_keys=True))  # noqa: E731
        self.assertEqual(sorted(report["findings"], key=key), sorted(expected, key=key))
        counts = {c["check"]: c["findings"] for c in report["checks"]}
        self.assertEqual({k: v for k, v in counts.items() if v},
                         {"credit_balance": 1, "fulfilment": 1, "live_help_slot": 1,
                          "unreversed_refund": 1, "dispute_hold": 1, "credit_grants": 1,
                          "refunded_units": 1})

        for fn in reversed(self.undo):
            fn()
        self.undo = []
        self.assertEqual(books_check()["findings"], [], "clean once the corruption is undone")

    def test_a_subscription_refund_without_its_reversal(self):
        from .test_credits import allocations, create_checkout
        u = register()
        r = create_checkout(u, {"purchaseType": "subscription", "planId": "starter"})
        self.assertStatus(r, 200)
        sub = emu_pay(r.json["sessionId"]).json["subscription"]
        wait_until(lambda: len(allocations(sub)) == 1, 20, message="first invoice allocated")
        invoice = db_scalar("SELECT a.stripe_invoice_id FROM subscription_allocations a"
                            " JOIN subscriptions s ON s.id = a.subscription_id"
                            " WHERE s.stripe_subscription_id = %s", sub)
        pi = stripe_api("GET", f"/v1/invoices/{invoice}").json["payment_intent"]
        from .lib import refund_processed
        refund_processed(pi)
        rev = self.remove_reversal("payment_intent_id", pi)
        charge = rev["stripe_refund_id"].split("/")[0]
        findings = books_check()["findings"]
        self.assertIn({"check": "unreversed_refund", "charge_id": charge, "payment_intent": pi,
                       "stripe_session_id": invoice, "refunded_cents": rev["amount_cents"],
                       "reversed_cents": 0}, findings)

    def test_a_plan_tier_left_behind_is_found(self):
        """Pro's premium tier taken away by hand: its subscriber's plan tier
        is left behind until their next subscription change, and the check
        says so; a user with a plan tier and no plan is found too."""
        from .test_credits import allocations, create_checkout
        u, other = register(), register()
        r = create_checkout(u, {"purchaseType": "subscription", "planId": "pro"})
        self.assertStatus(r, 200)
        sub = emu_pay(r.json["sessionId"]).json["subscription"]
        wait_until(lambda: len(allocations(sub)) == 1, 20, message="first invoice allocated")
        self.assertEqual([f for f in books_check()["findings"] if f["check"] == "plan_tier"], [])
        db_exec("UPDATE subscription_plans SET tier = 'free' WHERE id = 'pro'")
        self.undo.append(lambda: db_exec(
            "UPDATE subscription_plans SET tier = 'firewall' WHERE id = 'pro'"))
        db_exec("UPDATE users SET plan_tier = 'firewall' WHERE id = %s", other.id)
        self.undo.append(lambda: db_exec("UPDATE users SET plan_tier = 'free' WHERE id = %s",
                                         other.id))
        findings = [f for f in books_check()["findings"] if f.get("user_id") in (u.id, other.id)]
        self.assertEqual(findings, [{"check": "plan_tier", "user_id": u.id,
                                     "plan_tier": "firewall"},
                                    {"check": "plan_tier", "user_id": other.id,
                                     "plan_tier": "firewall"}])

    def test_a_dispute_left_unanswered_is_found_until_it_is_answered(self):
        """A dispute of a payment refunded in full, an hour old and not yet
        answered (the periodic job did not run, or Stripe would not take
        it), is a finding until the job answers it."""
        from .test_money import dispute_intent, paid_with
        pi = paid_with(buy_pack(register(), "boost-small"))[0]
        refund_processed(pi)
        dp = dispute_intent(pi)
        mine = lambda: [f for f in books_check()["findings"]  # noqa: E731
                        if f["check"] == "dispute_unanswered"]
        self.assertEqual(mine(), [], "within the hour the job has to answer it")
        aged = "UPDATE disputes SET created_at = created_at {} INTERVAL 2 HOUR" \
               " WHERE stripe_dispute_id = %s"
        db_exec(aged.format("-"), dp)
        self.undo.append(lambda: db_exec(aged.format("+"), dp))
        self.assertEqual(mine(), [{"check": "dispute_unanswered", "stripe_dispute_id": dp,
                                   "status": "needs_response", "payment_intent_id": pi}])
        p = run_tool("creditdesk-reconcile")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(mine(), [])

    def test_fulfilment_without_a_paid_session(self):
        u = register()
        sid = "cs_test_orphan_" + u.email.split("@")[0].replace("-", "_")[-20:]
        _, pid = db_exec("INSERT INTO boost_pack_purchases (user_id, boost_pack_id,"
                         " stripe_session_id, amount_cents, credits_applied)"
                         " VALUES (%s, 'boost-small', %s, 500, 0)", u.id, sid)
        self.undo.append(lambda: db_exec("DELETE FROM boost_pack_purchases WHERE id = %s", pid))
        self.assertEqual(books_check()["findings"], [{
            "check": "unpaid_fulfilment", "fulfilment_table": "boost_pack_purchases",
            "stripe_session_id": sid}])

    def test_ledger_gap_is_a_chain_finding(self):
        u = register()
        buy_pack(u, "boost-small")
        buy_pack(u, "boost-small")
        first, second = ledger_rows(u.id)
        # move 5 of the first row's amount into the second: the deltas still
        # sum to the balance and each row adds up, but the second row no
        # longer starts where the first one ends
        db_exec("UPDATE credit_transactions SET credits_delta = credits_delta - 5,"
                " balance_after = balance_after - 5 WHERE id = %s", first["id"])
        db_exec("UPDATE credit_transactions SET credits_delta = credits_delta + 5,"
                " balance_after = balance_after + 5 WHERE id = %s", second["id"])
        self.undo.append(lambda: db_exec(
            "UPDATE credit_transactions SET credits_delta = credits_delta + 5,"
            " balance_after = balance_after + 5 WHERE id = %s", first["id"]))
        self.undo.append(lambda: db_exec(
            "UPDATE credit_transactions SET credits_delta = credits_delta - 5,"
            " balance_after = balance_after - 5 WHERE id = %s", second["id"]))
        findings = books_check()["findings"]
        self.assertEqual(findings, [{
            "check": "ledger_chain", "user_id": u.id, "transaction_id": second["id"],
            "credits_delta": second["credits_delta"] + 5,
            "balance_before": second["balance_before"],
            "balance_after": second["balance_after"] + 5,
            "previous_balance_after": first["balance_after"] - 5}])


class BookingCorruptionTests(Undoing, BookingCase):
    """Expert bookings' payments, corrupted after real payments and refunds."""

    def cancelled_unrefunded(self, u, eid):
        bid, pi = self.paid(u, eid)
        db_exec("UPDATE bookings SET status = 'cancelled_by_user' WHERE id = %s", bid)
        self.undo.append(lambda: db_exec("UPDATE bookings SET status = 'scheduled'"
                                         " WHERE id = %s", bid))
        return {"check": "booking_paid", "booking_id": bid, "stripe_payment_intent_id": pi,
                "payment_status": "succeeded", "booking_status": "cancelled_by_user",
                "booking_payment_intent": pi}

    def paid_back_to_pending(self, u, eid):
        bid, pi = self.paid(u, eid)
        db_exec("UPDATE payments SET status = 'pending' WHERE booking_id = %s", bid)
        self.undo.append(lambda: db_exec("UPDATE payments SET status = 'succeeded'"
                                         " WHERE booking_id = %s", bid))
        return {"check": "booking_paid", "booking_id": bid, "stripe_payment_intent_id": pi,
                "payment_status": "pending", "booking_status": "scheduled",
                "booking_payment_intent": pi}

    def refund_row_removed(self, u, eid):
        bid, pi = self.paid(u, eid)
        self.assertStatus(u.post(f"/api/bookings/{bid}/cancel", {}), 200, "cancel")
        row = wait_until(lambda: (refund_rows(bid) or [None])[0], message="refund row")
        # Stripe's charge.refunded too, or it would record the refund again
        ch = latest_charge(pi)
        wait_until(lambda: events_done(ch, "charge.refunded"), message="charge.refunded")
        db_exec("DELETE FROM refunds WHERE id = %s", row["id"])
        cols = list(row)
        self.undo.append(lambda: db_exec(
            f"INSERT INTO refunds ({', '.join(cols)}) VALUES"
            f" ({', '.join(['%s'] * len(cols))})", *[row[c] for c in cols]))
        return {"check": "booking_refund", "booking_id": bid, "stripe_payment_intent_id": pi,
                "payment_status": "refunded", "refund_rows": 0}

    def cancel_left_unsettled(self, u, eid):
        """Cancelled and refunded in full, then put back to cancelling: a cancel
        nothing is left to finish."""
        bid, pi = self.paid(u, eid)
        self.assertStatus(u.post(f"/api/bookings/{bid}/cancel", {}), 200, "cancel")
        ch = latest_charge(pi)
        wait_until(lambda: events_done(ch, "charge.refunded"), message="charge.refunded")
        db_exec("UPDATE bookings SET status = 'scheduled' WHERE id = %s", bid)
        self.undo.append(lambda: db_exec("UPDATE bookings SET status = 'cancelled_by_user'"
                                         " WHERE id = %s", bid))
        return {"check": "cancel_unsettled", "booking_id": bid, "stripe_payment_intent_id": pi,
                "payment_status": "refunded", "cancel_refund_cents": 3000}

    def test_each_booking_corruption_is_found_and_nothing_else(self):
        u, eid = register(), new_expert(100)
        expected = [self.cancelled_unrefunded(u, eid), self.paid_back_to_pending(u, eid),
                    self.refund_row_removed(u, eid), self.cancel_left_unsettled(u, eid)]
        report = books_check()
        key = lambda f: (f["check"], f["booking_id"])  # noqa: E731
        self.assertEqual(sorted(report["findings"], key=key), sorted(expected, key=key))
        for fn in reversed(self.undo):
            fn()
        self.undo = []
        self.assertEqual(books_check()["findings"], [], "clean once the corruption is undone")


class StripeListTests(Case):

    def test_paid_in_stripe_but_not_fulfilled_until_the_webhook_arrives(self):
        u = register()
        r = u.buy_live_help(1)
        self.assertStatus(r, 200)
        sid = r.json["session_id"]
        emu_hold()
        emu_pay(sid)
        mine = lambda: [f for f in books_check("--stripe")["findings"]  # noqa: E731
                        if f.get("stripe_session_id") == sid]
        self.assertEqual(mine(), [{"check": "stripe_paid_unfulfilled",
                                   "stripe_session_id": sid, "user_id": u.id,
                                   "product": "live_help", "status": "open"}])
        self.assertEqual([f for f in books_check()["findings"]
                          if f.get("stripe_session_id") == sid], [],
                         "without --stripe the local books are consistent")
        emu_release()
        wait_until(lambda: totals(u.id) == {"hours_total": 1, "hours_used": 0}, 20,
                   message="the held webhook fulfils the session")
        self.assertEqual(mine(), [])


class StripeListMoreTests(Case):
    """--stripe also compares Stripe's PaymentIntents and refunds with ours: a
    booking paid in Stripe whose webhook is held, and a refund whose webhook
    is held, are findings until the webhook arrives."""

    def findings(self, check, key, value):
        return [f for f in books_check("--stripe")["findings"]
                if f["check"] == check and f.get(key) == value]

    def test_a_booking_paid_in_stripe_is_a_finding_until_its_webhook(self):
        from .test_bookings import book, emu_succeed, future, new_expert, status_is
        u = register()
        r = book(u, new_expert(100), future()[0])
        self.assertStatus(r, 201)
        bid, pi = r.json["booking"]["id"], r.json["booking"]["paymentIntentId"]
        emu_hold()
        try:
            emu_succeed(pi)
            self.assertEqual(self.findings("stripe_booking_unpaid", "payment_intent", pi), [{
                "check": "stripe_booking_unpaid", "payment_intent": pi, "booking_id": bid,
                "payment_rows": 1, "payment_status": "pending",
                "booking_status": "awaiting_payment"}])
        finally:
            emu_release()
        status_is(bid, "scheduled", "succeeded")
        self.assertEqual(self.findings("stripe_booking_unpaid", "payment_intent", pi), [])
        self.assertEqual(self.findings("stripe_refund_unrecorded", "payment_intent", pi), [])

    def test_a_refund_in_stripe_is_a_finding_until_it_is_reversed(self):
        u = register()
        sid = bought_live_help(u, 2)
        pi = stripe_session(sid)["payment_intent"]
        emu_hold()
        try:
            r = stripe_api("POST", "/v1/refunds", {"payment_intent": pi, "amount": 4900})
            self.assertEqual(r.status, 200, r)
            charge = r.json["charge"]
            self.assertEqual(self.findings("stripe_refund_unreversed", "charge_id", charge), [{
                "check": "stripe_refund_unreversed", "charge_id": charge,
                "payment_intent": pi, "refunded_cents": 4900, "reversed_cents": 0}])
        finally:
            emu_release()
        ev = wait_until(lambda: events_about(charge, "charge.refunded"), 10,
                        message="charge.refunded event")
        wait_until(lambda: event_processed(ev[0]["id"]), 20, message="refund processed")
        self.assertEqual(self.findings("stripe_refund_unreversed", "charge_id", charge), [])


def record(*extra):
    """One recorded books check, as the reconcile job runs it; returns the run's row."""
    p = run_tool("creditdesk-check", "--record", *extra)
    if p.returncode not in (0, 1):
        raise AssertionError(f"creditdesk-check --record exited {p.returncode}: {p.stderr}")
    return db_row("SELECT * FROM integrity_runs ORDER BY id DESC LIMIT 1")


class RecordedRunTests(Case):

    def setUp(self):
        super().setUp()
        self.admin = register()
        promote(self.admin, role="admin")

    def tearDown(self):
        emu_config(enabled=True)
        super().tearDown()

    def admin_page(self):
        r = self.admin.get("/admin")
        self.assertStatus(r, 200, "/admin")
        return r.text

    def paid_unheard(self):
        """After a recorded run, a user and a Live Help purchase paid while
        no webhook is delivered: (user, session id)."""
        record()
        u = register()
        sid = start_live_help(u, 1)
        emu_config(enabled=False)
        emu_pay(sid)
        return u, sid

    def reconcile(self):
        p = run_tool("creditdesk-reconcile")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    @staticmethod
    def recovered(sid):
        """The session's events reconcile processed and a handler acted on
        (not types nothing handles), whoever stored them."""
        ids = session_event_ids(sid)
        marks = ",".join(["%s"] * len(ids))
        return db_rows(f"SELECT event_id, source FROM stripe_events"
                       f" WHERE processed_by = 'reconcile' AND effect_at IS NOT NULL"
                       f" AND event_id IN ({marks}) ORDER BY id", *ids)

    def test_a_run_records_the_events_reconcile_recovered(self):
        _, sid = self.paid_unheard()
        self.reconcile()
        recovered = len(self.recovered(sid))
        self.assertGreaterEqual(recovered, 1, "reconcile stored the session's events")

        run = record()
        self.assertEqual((run["events_recovered"], run["findings"], json.loads(run["details"])),
                         (recovered, 0, []))
        page = self.admin_page()
        ran, iso = (run["ran_at"].strftime(f) for f in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"))
        self.assertIn(f'Last run <time datetime="{iso}">{ran} UTC</time>:'
                      f" {recovered} events recovered,", page)
        self.assertIn('<strong class="findings">0 findings</strong>', page)
        self.assertIn("No findings: the books balance.", page)
        self.assertEqual(record()["events_recovered"], 0, "each event is counted by one run")

    def test_an_event_the_webhook_stored_but_could_not_act_on_is_recovered_once(self):
        u, sid = self.paid_unheard()
        event = completed_event(sid)
        # the webhook stores the event, then cannot retrieve the session
        emu_fail(count=100, status=500, path=f"/v1/checkout/sessions/{sid}")
        try:
            r = post_webhook(json.dumps(event))
        finally:
            emu_fail(count=0, path=f"/v1/checkout/sessions/{sid}")
        self.assertStatus(r, 502, "the webhook could not act on the event")
        stored = db_row("SELECT source, processed_at, processed_by FROM stripe_events"
                        " WHERE event_id = %s", event["id"])
        self.assertEqual((stored["source"], stored["processed_at"], stored["processed_by"]),
                         ("webhook", None, None))
        self.assertEqual(hours_total(u.id), 0)

        self.reconcile()
        self.assertEqual(hours_total(u.id), 1)
        self.assertEqual(db_scalar("SELECT processed_by FROM stripe_events WHERE event_id = %s",
                                   event["id"]), "reconcile")
        recovered = self.recovered(sid)
        self.assertIn({"event_id": event["id"], "source": "webhook"}, recovered)
        self.assertEqual(record()["events_recovered"], len(recovered))
        self.assertEqual(record()["events_recovered"], 0, "each event is counted by one run")

    def test_admin_shows_the_findings_of_the_last_run(self):
        # two findings, each longer than a fetch buffer's first 256 bytes
        users = [register(), register()]
        for u in users:
            db_exec("INSERT INTO user_live_help_totals (user_id, hours_total) VALUES (%s, 4)",
                    u.id)
        try:
            run = record()
            self.assertEqual(run["findings"], 2)
            self.assertEqual(json.loads(run["details"]), [{
                "check": "live_help_hours", "user_id": u.id, "hours_total": 4,
                "hours_used": 0, "hours_purchased": 0, "hours_reversed": 0,
                "hours_redeemed": 0} for u in users])
            for _ in range(3):
                page = self.admin_page()
                self.assertIn('<strong class="findings">2 findings</strong>', page)
                for u in users:
                    self.assertRegex(page, r"<td>live_help_hours</td><td><code>[^<]*user_id"
                                           rf"[^<]*\b{u.id}\b")
        finally:
            for u in users:
                db_exec("DELETE FROM user_live_help_totals WHERE user_id = %s", u.id)
        self.assertEqual(record()["findings"], 0)
        self.assertIn("No findings: the books balance.", self.admin_page())

    def test_metrics_textfile_has_the_gauges(self):
        path = os.path.join(env("CD_STATE_DIR"), "books-test.prom")
        u = register()
        grant_hours(u, 3)
        all_processed()         # the purchase's webhook may still be in flight
        run_tool("creditdesk-check", "--metrics", path)
        with open(path, encoding="utf-8") as f:
            lines = dict(line.rsplit(" ", 1) for line in f.read().splitlines()
                         if line and not line.startswith("#"))
        hours = db_scalar("SELECT SUM(hours_total - hours_used) FROM user_live_help_totals")
        price = db_scalar("SELECT unit_amount_cents FROM products WHERE code = 'live_help'")
        unprocessed = db_scalar("SELECT COUNT(*) FROM stripe_events WHERE processed_at IS NULL")
        self.assertEqual(lines['creditdesk_prepaid_unused{product="live_help",unit="hours"}'],
                         str(hours))
        self.assertEqual(lines['creditdesk_prepaid_liability_cents{product="live_help"}'],
                         str(hours * price))
        self.assertEqual(lines["creditdesk_stripe_events_unprocessed"], str(unprocessed))
        self.assertEqual(lines["creditdesk_books_findings_total"], "0")
        self.assertEqual(lines['creditdesk_books_findings{check="ledger_chain"}'], "0")
        self.assertIn("creditdesk_stripe_events_oldest_unprocessed_age_seconds", lines)
        os.unlink(path)
