"""The Billing page's Payments section: every payment of the user, newest
first, named as a person says it, its amount in dollars and its status
(Paid, Refunded, Partly refunded: $X, Disputed, Charged back), read from our
records; another user's payments never appear."""

import datetime
import html
import pathlib
import re
import secrets

from .lib import (Case, bought_live_help, check_status, db_exec, db_row, db_scalar, emu_ok,
                  pay_and_confirm, refund_processed, register, wait_until)
from .test_bookings import book, emu_succeed, new_expert, payment_row, status_is
from .test_consultations import bought_chat
from .test_credits import allocations, buy_pack, create_checkout
from .test_money import (charge_of, close_dispute, dispute_charge, dispute_intent, hours_ahead,
                         paid_with)
from .test_voice_therapy import buy_voice, firewall_user

ROW = re.compile(r'<tr data-payment="([a-z_]+)"><td><time datetime="([^"]+)">([^<]+)</time>'
                 r'</td><td>([^<]*)</td><td class="num">([^<]+)</td><td>([^<]+)</td></tr>')

MIGRATION_040 = (pathlib.Path(__file__).resolve().parents[2] / "db" / "migrations"
                 / "040_payment_paid_at_backfill.sql")


def payments_section(page):
    """The Payments table of a Billing page."""
    start = page.index("<h2>Payments</h2>")
    return page[start:page.index("</table>", start)]


def intent_of(session_id):
    return paid_with(session_id)[0]


def bought_chat_session(u):
    """A fulfilled Quick Chat consultation of u: its Checkout Session id."""
    return db_scalar("SELECT stripe_session_id FROM sessions WHERE id = %s", bought_chat(u))


def bought_plan(u, plan="starter"):
    r = create_checkout(u, {"purchaseType": "subscription", "planId": plan})
    check_status(r, 200, "create-checkout subscription")
    out = pay_and_confirm(u, r.json["sessionId"])
    sub = db_scalar("SELECT stripe_subscription_id FROM subscriptions WHERE user_id = %s", u.id)
    wait_until(lambda: len(allocations(sub)) == 1, 20, message="first invoice allocated")
    return sub


class PaymentsSectionTests(Case):

    def rows(self, u):
        """(name, amount, status) of each row of the user's Payments section,
        after checking each row's time and that they come newest first."""
        r = u.get("/settings/billing")
        self.assertStatus(r, 200, "billing page")
        section = payments_section(r.text)
        found = ROW.findall(section)
        self.assertEqual(section.count("<tr data-payment="), len(found), section)
        for _, iso, human, _, _, _ in found:
            self.assertRegex(iso, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            self.assertEqual(human, f"{iso[:10]} {iso[11:16]} UTC")
        isos = [f[1] for f in found]
        self.assertEqual(isos, sorted(isos, reverse=True), "newest first")
        return [(html.unescape(name), amount, status) for _, _, _, name, amount, status in found]

    def booked(self, u, expert_id, hours):
        """A 30-minute booking `hours` ahead, paid; (booking id, PaymentIntent)."""
        r = book(u, expert_id, hours_ahead(hours))
        self.assertStatus(r, 201, "create booking")
        bid, pi = r.json["booking"]["id"], r.json["booking"]["paymentIntentId"]
        emu_succeed(pi)
        status_is(bid, "scheduled", "succeeded")
        return bid, pi

    def test_each_payment_newest_first_with_its_refunds_and_disputes(self):
        a, b = firewall_user(), register()
        self.assertIn('<td colspan="4" class="muted">No payments yet.</td>',
                      payments_section(a.get("/settings/billing").text))
        tag = secrets.token_hex(3)
        expert = f"Ada <b>{tag}</b> & Co"
        eid = new_expert(100, name=expert)          # 30 minutes: $30.00

        lh = bought_live_help(a, 3)                 # $147.00, $49.00 of it refunded
        refund_processed(intent_of(lh), 4900)
        voice = buy_voice(a)                        # refunded in full
        refund_processed(intent_of(voice))
        power = buy_pack(a, "boost-medium")         # disputed, still open
        dispute_intent(intent_of(power))
        quick = buy_pack(a, "boost-small")          # disputed and lost
        close_dispute(dispute_intent(intent_of(quick)), "lost")
        dispute_charge(charge_of(bought_chat_session(a)), inquiry=True)  # no chargeback
        bought_plan(a)
        late, _ = self.booked(a, eid, 12)           # cancelled inside 24 h: half back
        self.assertStatus(a.post(f"/api/bookings/{late}/cancel", {}), 200, "cancel")
        wait_until(lambda: payment_row(late)["status"] == "partially_refunded",
                   message="the cancel's refund recorded")
        _, lost_pi = self.booked(a, eid, 72)        # charged back
        close_dispute(dispute_intent(lost_pi), "lost")

        other = f"Other expert {tag}"
        buy_pack(b, "boost-large")
        self.booked(b, new_expert(100, name=other), 48)

        self.assertEqual(self.rows(a), [
            (f"Session with {expert}", "$30.00", "Charged back"),
            (f"Session with {expert}", "$30.00", "Partly refunded: $15.00"),
            ("Starter plan", "$10.00", "Paid"),
            ("Quick Chat", "$9.99", "Paid"),
            ("Quick Boost", "$5.00", "Charged back"),
            ("Power Boost", "$10.00", "Disputed"),
            ("Voice AI Therapy, 15 minutes", "$9.99", "Refunded"),
            ("Live Help, 3 hours", "$147.00", "Partly refunded: $49.00"),
        ])
        page = a.get("/settings/billing").text
        self.assertIn(f"Session with Ada &lt;b&gt;{tag}&lt;/b&gt; &amp; Co", page)
        self.assertNotIn(f"<b>{tag}</b>", page)
        self.assertNotIn(other, page)
        self.assertNotIn("Mega Boost</td>", page)

        self.assertEqual(self.rows(b), [
            (f"Session with {other}", "$30.00", "Paid"),
            ("Mega Boost", "$20.00", "Paid"),
        ])

    def test_a_booking_is_dated_when_it_was_paid(self):
        """Not when its hold asked for the payment: a hold paid ten minutes
        after it was made reads the time the payment succeeded."""
        a = register()
        r = book(a, new_expert(100), hours_ahead(72))
        self.assertStatus(r, 201, "create booking")
        bid, pi = r.json["booking"]["id"], r.json["booking"]["paymentIntentId"]
        db_exec("UPDATE payments SET created_at = created_at - INTERVAL 10 MINUTE"
                " WHERE booking_id = %s", bid)
        self.assertIsNone(payment_row(bid)["paid_at"])
        emu_succeed(pi)
        status_is(bid, "scheduled", "succeeded")
        p = payment_row(bid)
        self.assertGreaterEqual(p["paid_at"] - p["created_at"], datetime.timedelta(minutes=10))
        (found,) = ROW.findall(payments_section(a.get("/settings/billing").text))
        self.assertEqual(found[1], p["paid_at"].strftime("%Y-%m-%dT%H:%M:%SZ"))

    def test_a_booking_paid_before_paid_at_was_kept_is_dated_by_its_audit(self):
        """Migration 040 dates a payment that succeeded before paid_at was
        kept (036) by its BOOKING_PAID audit row, written when it succeeded;
        a payment not made keeps none."""
        a = register()
        expert = new_expert(100)
        r, waiting = book(a, expert, hours_ahead(72)), book(a, expert, hours_ahead(96))
        self.assertStatus(r, 201, "create booking")
        self.assertStatus(waiting, 201, "create the second booking")
        bid, pi = r.json["booking"]["id"], r.json["booking"]["paymentIntentId"]
        unpaid = waiting.json["booking"]["id"]
        emu_succeed(pi)
        status_is(bid, "scheduled", "succeeded")
        paid = payment_row(bid)["paid_at"]
        audited = db_scalar("SELECT created_at FROM audit_log WHERE action = 'BOOKING_PAID'"
                            " AND entity_id = %s", str(bid))
        self.assertLess(abs(audited - paid), datetime.timedelta(milliseconds=50))
        db_exec("UPDATE payments SET paid_at = NULL, created_at = created_at - INTERVAL 10 MINUTE"
                " WHERE booking_id = %s", bid)

        db_exec(MIGRATION_040.read_text())
        self.assertEqual(payment_row(bid)["paid_at"], audited)
        self.assertIsNone(payment_row(unpaid)["paid_at"])
        (found,) = ROW.findall(payments_section(a.get("/settings/billing").text))
        self.assertEqual(found[1], audited.strftime("%Y-%m-%dT%H:%M:%SZ"))

    def test_a_plans_every_invoice_with_its_refunds_and_disputes(self):
        """The first invoice and each renewal, each with what happened to its
        own payment; the plan's checkout is not listed beside its first
        invoice."""
        u = register()
        sub = bought_plan(u)
        invoices = []
        for n in (2, 3, 4):
            invoices.append(emu_ok("POST", f"/_emu/subscriptions/{sub}/renew"))
            wait_until(lambda: len(allocations(sub)) == n, 20, message=f"renewal {n} allocated")
        for inv in invoices:
            a = db_row("SELECT amount_cents, payment_intent_id FROM subscription_allocations"
                       " WHERE stripe_invoice_id = %s", inv["id"])
            self.assertEqual(a, {"amount_cents": 1000, "payment_intent_id": inv["payment_intent"]})
        refund_processed(invoices[0]["payment_intent"], 400)
        refund_processed(invoices[1]["payment_intent"])
        dispute_intent(invoices[2]["payment_intent"])
        self.assertEqual(self.rows(u), [
            ("Starter plan", "$10.00", "Disputed"),
            ("Starter plan", "$10.00", "Refunded"),
            ("Starter plan", "$10.00", "Partly refunded: $4.00"),
            ("Starter plan", "$10.00", "Paid"),
        ])
