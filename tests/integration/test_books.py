"""Proving the books: creditdesk-check finds exactly the corruption put into a
database (a ledger row changed, a duplicate fulfilment, an overfilled slot, a
refund without its reversal) and nothing else, and with --stripe it compares
our paid sessions with Stripe's own list.  Every corruption is undone before
the test ends, so the module's own books check still passes."""

import json

from .lib import (Case, assert_books_balance, books_check, bought_live_help, db_exec,
                  db_row, db_rows, emu_hold, emu_pay, emu_release, event_processed,
                  events_about, grant_hours, new_slot, register, stripe_api, stripe_session,
                  totals, wait_until)
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


class CorruptionTests(Case):
    """Each corruption is made through the admin DB user, after real purchases."""

    def setUp(self):
        super().setUp()
        assert_books_balance("before corrupting")
        self.undo = []

    def tearDown(self):
        for fn in reversed(self.undo):
            fn()
        super().tearDown()

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
        rev = db_row("SELECT * FROM payment_reversals WHERE stripe_session_id = %s", sid)
        self.assertIsNotNone(rev, "the refund was reversed")
        db_exec("DELETE FROM payment_reversals WHERE id = %s", rev["id"])
        cols = list(rev)
        self.undo.append(lambda: db_exec(
            f"INSERT INTO payment_reversals ({', '.join(cols)}) VALUES"
            f" ({', '.join(['%s'] * len(cols))})", *[rev[c] for c in cols]))
        return {"check": "unreversed_refund", "charge_id": charge,
                "payment_intent": rev["payment_intent_id"], "stripe_session_id": sid,
                "refunded_cents": rev["amount_cents"], "reversed_cents": 0}

    def test_each_corruption_is_found_and_nothing_else(self):
        expected = [self.change_ledger_row(), self.duplicate_fulfilment(),
                    self.overfill_slot(), self.drop_reversal()]
        report = books_check()
        self.assertFalse(report["ok"])
        key = lambda f: (f["check"], json.dumps(f, sort_keys=True))  # noqa: E731
        self.assertEqual(sorted(report["findings"], key=key), sorted(expected, key=key))
        counts = {c["check"]: c["findings"] for c in report["checks"]}
        self.assertEqual({k: v for k, v in counts.items() if v},
                         {"credit_balance": 1, "fulfilment": 1, "live_help_slot": 1,
                          "unreversed_refund": 1})

        for fn in reversed(self.undo):
            fn()
        self.undo = []
        self.assertEqual(books_check()["findings"], [], "clean once the corruption is undone")

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
