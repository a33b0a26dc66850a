"""A dispute we hold the evidence for is answered: the periodic job
(creditdesk-reconcile) submits it to the bank, once for each status that
awaits a response (an inquiry, then the chargeback the bank may turn it
into).  For a payment we had refunded in full the evidence is the refund:
unanswered, the bank would decide for the customer, who would have the money
back twice.  For a booking its customer cancelled late, refunded in part by
the cancellation policy, it is the cancel: unanswered, the rest (the
expert's time held for them) would go back too."""

import re

from .lib import (audit_count, books_check, db_exec, db_scalar, emu_fail, emu_hold, emu_release,
                  event_processed, events_about, latest_charge, parallel, refund_processed,
                  register, run_tool, stripe_api, wait_until)
from .test_billing_payments import bought_plan
from .test_bookings import (BookingCase, book, booking_row, emu_succeed, new_expert,
                            payment_row, status_is)
from .test_credits import buy_pack
from .test_money import (close_dispute, dispute_charge, dispute_intent, escalate_dispute,
                         hours_ahead, paid_with, replayed)


def stripe_dispute(dp):
    return stripe_api("GET", f"/v1/disputes/{dp}").json


def answered(dp):
    return db_scalar("SELECT answered_status FROM disputes WHERE stripe_dispute_id = %s", dp)


def submissions(dp):
    return stripe_dispute(dp)["evidence_details"]["submission_count"]


class DisputeAnswerTests(BookingCase):

    def setUp(self):
        super().setUp()
        # disputes other tests left to answer are answered first
        self.assertIn(run_tool("creditdesk-reconcile").returncode, (0, 1))

    def reconcile(self, answers=0, rc=0):
        """One run of the periodic job; asserts how many disputes it answered."""
        p = run_tool("creditdesk-reconcile")
        self.assertEqual(p.returncode, rc, p.stdout + p.stderr)
        if answers:
            self.assertIn(f"answered {answers} disputes with their refund or cancel", p.stdout)
        else:
            self.assertNotIn("answered", p.stdout)
        return p

    def status_is(self, dp, status):
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(dp)) and db_scalar(
            "SELECT status FROM disputes WHERE stripe_dispute_id = %s", dp) == status,
            20, message=f"dispute {dp} {status}")

    def test_an_inquiry_of_a_refunded_booking_is_answered_then_its_chargeback(self):
        a = register()
        bid, pi = self.paid(a, new_expert(100))              # 30 minutes: $30.00
        charge = latest_charge(pi)
        dp = dispute_charge(charge, inquiry=True)
        self.reconcile()                                     # the payment stands: no answer
        self.assertEqual((submissions(dp), answered(dp)), (0, None))
        self.assertStatus(a.post(f"/api/bookings/{bid}/cancel", {}), 200, "cancel")
        wait_until(lambda: payment_row(bid)["status"] == "refunded", message="refunded")

        self.reconcile(answers=1)
        d = stripe_dispute(dp)
        self.assertEqual((d["status"], d["evidence_details"]["submission_count"]),
                         ("warning_under_review", 1))
        self.assertIn("refunded in full", d["evidence"]["uncategorized_text"])
        self.assertIn("$30.00 went back", d["evidence"]["uncategorized_text"])
        self.status_is(dp, "warning_under_review")
        self.assertEqual(answered(dp), "warning_needs_response")
        self.assertEqual(audit_count("DISPUTE_ANSWERED", charge), 1)
        self.reconcile()                                     # answered once
        self.assertEqual(submissions(dp), 1)

        escalate_dispute(dp)                                 # the bank makes it a chargeback
        self.reconcile(answers=1)
        self.assertEqual((stripe_dispute(dp)["status"], submissions(dp)), ("under_review", 2))
        self.status_is(dp, "under_review")
        self.assertEqual(answered(dp), "needs_response")
        self.assertEqual(audit_count("DISPUTE_ANSWERED", charge), 2)
        self.reconcile()

        close_dispute(dp, "won")                             # the money stays refunded, once
        self.assertEqual(payment_row(bid)["status"], "refunded")
        self.assertEqual(db_scalar("SELECT refunded_cents FROM bookings WHERE id = %s", bid), 3000)
        self.assertEqual(replayed(a.id), (0, []))

    def test_only_a_payment_refunded_in_full_is_answered(self):
        """A pack and a plan's invoice refunded in full are answered; a pack
        refunded in part, whose dispute decides the rest, is not."""
        u = register()
        full, part = buy_pack(u, "boost-small"), buy_pack(u, "boost-medium")
        refund_processed(paid_with(full)[0])
        refund_processed(paid_with(part)[0], 100)
        sub = bought_plan(u)
        invoice_pi = db_scalar(
            "SELECT a.payment_intent_id FROM subscription_allocations a JOIN subscriptions s"
            " ON s.id = a.subscription_id WHERE s.stripe_subscription_id = %s", sub)
        refund_processed(invoice_pi)
        disputes = [dispute_intent(pi) for pi in (paid_with(full)[0], invoice_pi,
                                                  paid_with(part)[0])]
        self.reconcile(answers=2)
        self.assertEqual([(stripe_dispute(dp)["status"], submissions(dp)) for dp in disputes],
                         [("under_review", 1), ("under_review", 1), ("needs_response", 0)])
        self.assertEqual([answered(dp) for dp in disputes],
                         ["needs_response", "needs_response", None])
        self.assertIn("$5.00 went back", stripe_dispute(disputes[0])["evidence"]["uncategorized_text"])
        self.assertIn("$10.00 went back",
                      stripe_dispute(disputes[1])["evidence"]["uncategorized_text"])
        self.reconcile()
        self.assertEqual(replayed(u.id), (0, []))

    def test_a_booking_cancelled_late_is_answered_with_its_cancel(self):
        """Cancelled 5 hours before it starts, half refunded by the policy,
        then charged back: the answer is the cancel, when and how long before
        the session, and what the policy refunded.  Left unanswered for an
        hour, the books check names it."""
        a = register()
        r = book(a, new_expert(100), hours_ahead(5), 30)       # 30 minutes: $30.00
        self.assertStatus(r, 201, "book")
        bid, pi = r.json["booking"]["id"], r.json["booking"]["paymentIntentId"]
        emu_succeed(pi)
        status_is(bid, "scheduled", "succeeded")
        self.assertStatus(a.post(f"/api/bookings/{bid}/cancel", {}), 200, "cancel")
        wait_until(lambda: payment_row(bid)["status"] == "partially_refunded",
                   message="half refunded")
        charge = latest_charge(pi)
        dp = dispute_charge(charge)
        unanswered = lambda: [f["stripe_dispute_id"] for f in books_check()["findings"]  # noqa: E731
                              if f["check"] == "dispute_unanswered"]
        aged = "UPDATE disputes SET created_at = created_at {} INTERVAL 2 HOUR" \
               " WHERE stripe_dispute_id = %s"
        db_exec(aged.format("-"), dp)
        try:
            self.assertEqual(unanswered(), [dp])
            self.reconcile(answers=1)
            self.assertEqual(unanswered(), [])
        finally:
            db_exec(aged.format("+"), dp)

        d = stripe_dispute(dp)
        self.assertEqual((d["status"], submissions(dp), answered(dp)),
                         ("under_review", 1, "needs_response"))
        start = booking_row(bid)["start_time"]
        self.assertEqual(sorted(d["evidence"]), ["cancellation_rebuttal", "service_date"])
        self.assertEqual(d["evidence"]["service_date"], start.strftime("%Y-%m-%d"))
        self.assertRegex(d["evidence"]["cancellation_rebuttal"], "^The customer cancelled this"
                         r" booking on \d{4}-\d\d-\d\d \d\d:\d\d UTC, (5 hours|4 hours and \d\d? minutes?)"
                         " before the session"
                         f" it reserved \\({re.escape(start.strftime('%Y-%m-%d %H:%M'))} UTC,"
                         r" 30 minutes with an expert\)\. Under the cancellation policy shown to"
                         r" them when booking \(in full up to 24 hours before the session, 50% of"
                         r" the price after that\), \$15\.00 of its \$30\.00 price was refunded to"
                         r" their card; the rest pays for the expert's time")
        self.reconcile()                                       # answered once
        self.assertEqual((submissions(dp), audit_count("DISPUTE_ANSWERED", charge)), (1, 1))
        self.assertEqual(replayed(a.id), (0, []))

    def test_stripe_unreachable_is_asked_again_and_a_refusal_is_not(self):
        u = register()
        sid = buy_pack(u, "boost-small")
        refund_processed(paid_with(sid)[0])
        dp = dispute_intent(paid_with(sid)[0])
        emu_fail(count=10, status=500, path=f"/v1/disputes/{dp}")
        try:
            self.reconcile(rc=1)
        finally:
            emu_fail(count=0, path=f"/v1/disputes/{dp}")
        self.assertEqual((submissions(dp), answered(dp)), (0, None))

        # answered meanwhile in Stripe's Dashboard, its event not with us yet
        emu_hold()
        try:
            r = stripe_api("POST", f"/v1/disputes/{dp}",
                           {"evidence[uncategorized_text]": "Answered by hand."})
            self.assertStatus(r, 200, "answer in the Dashboard")
            self.reconcile()
        finally:
            emu_release()
        self.assertEqual(answered(dp), "needs_response")
        self.assertEqual(audit_count("DISPUTE_ANSWER_REFUSED", db_scalar(
            "SELECT charge_id FROM disputes WHERE stripe_dispute_id = %s", dp)), 1)
        d = stripe_dispute(dp)
        self.assertEqual((d["evidence"]["uncategorized_text"], submissions(dp)),
                         ("Answered by hand.", 1))
        self.status_is(dp, "under_review")
        self.reconcile()
        self.assertEqual(submissions(dp), 1)

    def test_two_passes_at_once_answer_once(self):
        """Two machines' periodic jobs at the same moment: one submission at
        Stripe (one Idempotency-Key) and one answer recorded."""
        for _ in range(3):
            u = register()
            sid = buy_pack(u, "boost-small")
            refund_processed(paid_with(sid)[0])
            dp = dispute_intent(paid_with(sid)[0])
            runs = parallel(lambda _: run_tool("creditdesk-reconcile"), range(2), threads=2)
            self.assertEqual([r.returncode for r in runs], [0, 0],
                             [r.stdout + r.stderr for r in runs])
            self.assertEqual((submissions(dp), answered(dp)), (1, "needs_response"))
            charge = db_scalar("SELECT charge_id FROM disputes WHERE stripe_dispute_id = %s", dp)
            self.assertEqual(audit_count("DISPUTE_ANSWERED", charge), 1)
            self.status_is(dp, "under_review")
