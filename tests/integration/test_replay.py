"""Replaying the books: creditdesk-replay (scripts/replay.sh) rebuilds, in a
scratch database, what a scripted mix of payments and consumption produced
(a Live Help purchase with a booked hour, a voice pack with a session, a boost
pack, a refund; then every Checkout product with a subscription renewal and a
lost dispute; a Live Help hour booked, refunded around and cancelled) from
the stored Stripe events and the local records, and finds it equal to live; a fulfilment row removed or altered in live, or a stored
event removed, is reported, and it alone."""

import json
import os
import subprocess

from . import lib
from .lib import (Case, all_processed, bought_live_help, completed_event, db_exec, db_row,
                  db_rows, db_scalar, emu_ok, emu_pay, env, event_processed, new_slot, register,
                  totals, wait_until)
from .test_books import refunded
from .test_consultations import paid_plan
from .test_credits import allocations, balance, buy_pack, consume, create_checkout
from .test_money import open_dispute
from .test_voice_therapy import buy_voice, firewall_user, run_for


def replay(*args):
    """scripts/replay.sh --json [args] -> (exit status, report)."""
    script = os.path.join(env("CD_REPO"), "scripts", "replay.sh")
    p = subprocess.run(["bash", script, "--json", *args], env=dict(os.environ),
                       capture_output=True, text=True, timeout=300)
    if p.returncode not in (0, 1):
        raise AssertionError(f"replay exited {p.returncode}: {(p.stdout + p.stderr)[-1500:]}")
    return p.returncode, json.loads(p.stdout)


def settled(sid):
    """sid once its checkout.session.completed event is processed: the replay
    fulfils from stored events, and a late delivery must not fulfil again."""
    ev = wait_until(lambda: completed_event(sid), 10, message="completed event")
    wait_until(lambda: event_processed(ev["id"]), 20, message="completed event processed")
    return sid


def used_voice(u, seconds):
    """Starts and ends one voice session that ran `seconds`."""
    r = u.post("/api/voice-therapy/start", {})
    if r.status != 200:
        raise AssertionError(f"voice start: {r!r}")
    run_for(r.json["sessionId"], seconds)
    r = u.post("/api/voice-therapy/end", {"sessionId": r.json["sessionId"],
                                          "secondsUsed": seconds})
    if r.status != 200:
        raise AssertionError(f"voice end: {r!r}")


def subscribed(u):
    """A starter subscription, paid, renewed once: its sub_ id."""
    r = create_checkout(u, {"purchaseType": "subscription", "planId": "starter"})
    lib.check_status(r, 200, "subscription checkout")
    sub = emu_pay(r.json["sessionId"]).json["subscription"]
    wait_until(lambda: len(allocations(sub)) == 1, 20, message="first invoice allocated")
    emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
    wait_until(lambda: len(allocations(sub)) == 2, 20, message="renewal allocated")
    return sub


def lost_dispute(sid):
    """Opens a dispute of the session's charge and closes it lost."""
    dp = open_dispute(sid)
    emu_ok("POST", f"/_emu/disputes/{dp}/close", {"status": "lost"})
    wait_until(lambda: db_scalar("SELECT closed_at IS NOT NULL FROM disputes"
                                 " WHERE stripe_dispute_id = %s", dp) == 1, 20,
               message="dispute closed")
    return dp


class ReplayTests(Case):

    def test_scripted_mix_replays_to_the_live_state(self):
        u = firewall_user()
        hours = settled(bought_live_help(u, 3))
        self.assertStatus(u.book(new_slot(2)), 201, "book")
        settled(buy_voice(u))
        used_voice(u, 61)
        settled(buy_pack(u, "boost-small"))
        refunded(hours)         # two unused hours go back, the booked one stays
        self.assertEqual(db_row("SELECT hours_total, hours_used FROM user_live_help_totals"
                                " WHERE user_id = %s", u.id),
                         {"hours_total": 1, "hours_used": 1})
        rc, report = replay("--user", str(u.id))
        self.assertEqual((rc, report["differences"]), (0, []))
        # purchase, booking, voice purchase, session, pack, refund: six or
        # more steps (a completed event may be stored more than once)
        self.assertGreaterEqual(report["steps"], 6)

    def test_a_cancelled_live_help_booking_replays_in_its_place(self):
        # booked, then the purchase refunded (the booked hour stays, owed to
        # the refund), then the booking cancelled: the hour goes to the refund
        u = register()
        hours = settled(bought_live_help(u, 2))
        slot = new_slot(2)
        self.assertStatus(u.book(slot), 201, "book")
        refunded(hours)
        self.assertEqual(totals(u.id), {"hours_total": 1, "hours_used": 1})
        self.assertStatus(u.post(f"/api/live-help-hour/{slot}/cancel", {}), 200, "cancel")
        self.assertEqual(totals(u.id), {"hours_total": 0, "hours_used": 0})
        rc, report = replay("--user", str(u.id))
        self.assertEqual((rc, report["differences"]), (0, []))
        self.assertGreaterEqual(report["steps"], 4)   # purchase, booked, refund, cancelled

    def test_a_removed_fulfilment_row_is_reported_alone(self):
        u = register()
        sid = settled(buy_pack(u, "boost-small"))
        row = db_row("SELECT * FROM boost_pack_purchases WHERE stripe_session_id = %s", sid)
        db_exec("DELETE FROM boost_pack_purchases WHERE id = %s", row["id"])
        try:
            rc, report = replay("--user", str(u.id))
        finally:
            cols = list(row)
            db_exec(f"INSERT INTO boost_pack_purchases ({', '.join(cols)}) VALUES"
                    f" ({', '.join(['%s'] * len(cols))})", *row.values())
        self.assertEqual(rc, 1)
        self.assertEqual(report["differences"], [{
            "table": "boost_pack_purchases", "side": "replay only",
            "stripe_session_id": sid, "user_id": u.id,
            "boost_pack_id": row["boost_pack_id"],
            "payment_intent_id": row["payment_intent_id"],
            "amount_cents": row["amount_cents"], "credits_applied": row["credits_applied"],
            "credits_refunded": row["credits_refunded"]}])


    def test_every_checkout_product_with_refund_and_dispute_replays(self):
        u = firewall_user()
        hours = settled(bought_live_help(u, 2))
        self.assertStatus(u.book(new_slot(2)), 201, "book")
        settled(buy_voice(u))
        used_voice(u, 61)
        pack = settled(buy_pack(u, "boost-small"))
        sub = subscribed(u)
        chat = settled(paid_plan(u, "chat10"))
        self.assertStatus(u.get("/checkout/success?session_id=" + chat), 303, "success page")
        refunded(hours)
        dp = lost_dispute(pack)
        all_processed()
        self.assertEqual(len(db_rows("SELECT id FROM sessions WHERE stripe_session_id = %s",
                                     chat)), 1)
        self.assertEqual(db_scalar("SELECT status FROM disputes WHERE stripe_dispute_id = %s",
                                   dp), "lost")
        rc, report = replay("--user", str(u.id))
        self.assertEqual((rc, report["differences"]), (0, []))
        self.assertEqual(len(allocations(sub)), 2)

    def test_credits_spent_before_the_renewal_was_marked_processed_replay_after_it(self):
        """A renewal's credits are allocated in its handler's transaction, and
        the event is marked processed in one of its own afterwards.  Credits
        spent in between (the mark is moved past the spend here, as that race
        leaves it) replay after the renewal: the event takes its place at the
        time it took effect."""
        u = register()
        sub = subscribed(u)
        all_processed()
        renewal = db_row("SELECT event_id, effect_at, processed_at FROM stripe_events"
                         " WHERE type = 'invoice.paid' AND JSON_VALUE(payload,"
                         " '$.data.object.subscription') = %s AND JSON_VALUE(payload,"
                         " '$.data.object.billing_reason') = 'subscription_cycle'", sub)
        self.assertIsNotNone(renewal["effect_at"])
        self.assertLessEqual(renewal["effect_at"], renewal["processed_at"])
        credits = balance(u.id)
        self.assertEqual(credits, 2 * allocations(sub)[0]["credits"])
        consume(u.id, credits)          # more than the first invoice gave
        db_exec("UPDATE stripe_events SET processed_at = (SELECT MAX(created_at)"
                " FROM credit_transactions WHERE user_id = %s) + INTERVAL 1 MICROSECOND"
                " WHERE event_id = %s", u.id, renewal["event_id"])
        rc, report = replay("--user", str(u.id))
        self.assertEqual((rc, report["differences"]), (0, []))
        self.assertEqual(balance(u.id), 0)

    def test_a_removed_stored_event_is_reported(self):
        u = register()
        sid = settled(buy_pack(u, "boost-small"))
        all_processed()
        rows = db_rows("SELECT * FROM stripe_events WHERE object_id = %s", sid)
        self.assertGreaterEqual(len(rows), 1)
        db_exec("DELETE FROM stripe_events WHERE object_id = %s", sid)
        try:
            rc, report = replay("--user", str(u.id))
        finally:
            for row in rows:
                cols = list(row)
                db_exec(f"INSERT INTO stripe_events ({', '.join(cols)}) VALUES"
                        f" ({', '.join(['%s'] * len(cols))})", *row.values())
        self.assertEqual(rc, 1)
        mine = [d for d in report["differences"] if d["table"] == "boost_pack_purchases"]
        self.assertEqual([(d["side"], d["stripe_session_id"]) for d in mine],
                         [("live only", sid)])

    def test_an_altered_fulfilment_row_is_reported_alone(self):
        u = register()
        sid = settled(buy_pack(u, "boost-small"))
        row = db_row("SELECT * FROM boost_pack_purchases WHERE stripe_session_id = %s", sid)
        db_exec("UPDATE boost_pack_purchases SET credits_applied = credits_applied + 1"
                " WHERE id = %s", row["id"])
        try:
            rc, report = replay("--user", str(u.id))
        finally:
            db_exec("UPDATE boost_pack_purchases SET credits_applied = %s WHERE id = %s",
                    row["credits_applied"], row["id"])
        self.assertEqual(rc, 1)
        self.assertEqual([(d["table"], d["side"], d["credits_applied"])
                          for d in report["differences"]],
                         [("boost_pack_purchases", "live only", row["credits_applied"] + 1),
                          ("boost_pack_purchases", "replay only", row["credits_applied"])])
