"""Money rules under concurrency and time: a subscription's first invoice
racing its first fulfilment, Voice AI Therapy start racing end, and minutes
charged by the server's clock.

Races are made deterministic by holding a row lock from a test connection
until the request under test is seen waiting for it, then letting go."""

import datetime
import json
import re
import threading
import time

from .lib import (Case, _db_connect, check_status, run_tool, db_exec, db_row, db_rows, db_scalar, emu_deliver,
                  books_check, emu_hold, emu_pay, emu_release, env, http_request, latest_charge,
                  wait_until, checkout_rows)
from .test_credits import (STARTER_CREDITS, CreditsCase, allocations, balance,
                           buy_pack, completed_processed, create_checkout, invoice_events,
                           ledger, pack_tokens, rate)
from .lib import (audit_count, emu_slow, emu_state, parallel, promote, refund_processed,
                  register, reset_webhooks, statements_during, stripe_api)
from .lib import (bought_live_help, emu_ok, event_processed, events_about, new_slot,
                  start_live_help, stripe_session)
from .test_bookings import (BookingCase, admin, book, booking_row, emu_decline, emu_succeed,
                            emu_fail, future, move, new_expert, payment_row, refund_rows, started,
                            status_is)
from .test_voice_therapy import (MINUTES, VoiceCase, buy_voice, firewall_user, run_for,
                                 session_row, usage_rows)


# How long a request on this machine needs to reach a lock wait it cannot
# be seen in (the test's database user may not read other sessions' locks).
REACH_WAIT_S = 1.0


def row_locked(sql, *args):
    """True when another transaction holds a lock this locking read needs."""
    conn = _db_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                cur.execute(sql + " NOWAIT", args)
                return False
            except Exception as e:  # noqa: BLE001 -- 1205/3572: locked
                if e.args and e.args[0] in (1205, 3572):
                    return True
                raise
            finally:
                cur.execute("ROLLBACK")
    finally:
        conn.close()


def in_thread(fn, out, key):
    def run():
        try:
            out[key] = fn()
        except Exception as e:  # noqa: BLE001 -- asserted by the caller
            out[key] = e
    t = threading.Thread(target=run)
    t.start()
    return t


class Holder:
    """A test transaction on its own connection that keeps row locks until released."""

    def __init__(self):
        self.conn = _db_connect()
        self.conn.autocommit(False)
        self.cur = self.conn.cursor()
        self.cur.execute("BEGIN")

    def run(self, sql, *args):
        self.cur.execute(sql, args)
        return self.cur.fetchall()

    def commit(self):
        self.conn.commit()
        self.conn.close()

    def rollback(self):
        self.conn.rollback()
        self.conn.close()


class InvoiceRaceTests(CreditsCase):

    def test_invoice_paid_racing_first_fulfilment_allocates_once(self):
        """The fulfilment commits the subscription row while the invoice's
        allocation waits for it: the allocation must use that row, not 503."""
        u = self.user()
        per = STARTER_CREDITS * rate()
        emu_hold()
        r = create_checkout(u, {"purchaseType": "subscription", "planId": "starter"})
        self.assertStatus(r, 200, "create-checkout subscription")
        sid = r.json["sessionId"]
        sub = emu_pay(sid).json["subscription"]
        inv_ev = wait_until(lambda: invoice_events(sub), 10, message="invoice.paid")
        # the first fulfilment, as it writes the subscription row, not yet committed
        h = Holder()
        h.run("INSERT INTO subscriptions (user_id, plan_id, stripe_subscription_id,"
              " stripe_session_id, status) VALUES (%s, 'starter', %s, %s, 'active')",
              u.id, sub, sid)
        out = {}
        t = in_thread(lambda: emu_deliver(inv_ev[0]["id"]), out, "deliver")
        try:
            time.sleep(REACH_WAIT_S)  # the allocation waits for the subscription row
        finally:
            h.commit()
        t.join(30)
        self.assertEqual(out["deliver"]["statuses"], [200], out["deliver"])
        sub_id = db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)
        self.assertEqual(db_rows("SELECT subscription_id, credits FROM subscription_allocations"
                                 " WHERE subscription_id = %s", sub_id),
                         [{"subscription_id": sub_id, "credits": per}])
        self.assertEqual(balance(u.id), per)
        # the held events (completed and the same invoice again) change nothing more
        emu_release("fifo")
        wait_until(lambda: completed_processed([sid]) == 1, 20, message="completed processed")
        self.assertEqual(len(allocations(sub)), 1)
        self.assertEqual([(t["credits_delta"], t["transaction_type"]) for t in ledger(u.id)],
                         [(per, "allocation")])
        self.assertEqual(balance(u.id), per)

    def test_many_first_invoices_racing_fulfilment(self):
        """Real races: completed and invoice.paid delivered at the same moment."""
        per = STARTER_CREDITS * rate()
        users, pairs = [], []
        emu_hold()
        for _ in range(6):
            u = self.user()
            r = create_checkout(u, {"purchaseType": "subscription", "planId": "starter"})
            self.assertStatus(r, 200)
            sid = r.json["sessionId"]
            sub = emu_pay(sid).json["subscription"]
            users.append(u)
            pairs.append((sid, sub))
        rel = emu_release("reverse")
        self.assertEqual(set(rel["statuses"]), {200}, rel)
        for u, (sid, sub) in zip(users, pairs):
            wait_until(lambda: completed_processed([sid]) == 1, 20, message="completed")
            self.assertEqual(len(allocations(sub)), 1)
            self.assertEqual(balance(u.id), per)


class VoiceRaceTests(VoiceCase):

    def test_start_racing_end_sees_the_minutes_end_used(self):
        """start waits for a concurrent end of the same user and reports what is
        left after it, not what was there before."""
        u = firewall_user()
        buy_voice(u)
        s1 = self.start(u).json["sessionId"]
        # the session has run 5 minutes by the server's clock
        db_exec("UPDATE voice_therapy_sessions SET started_at = started_at - INTERVAL 300 SECOND"
                " WHERE id = %s", s1)
        # a reader holding the open-session index entry makes end wait at its last step
        h = Holder()
        h.run("SELECT user_id FROM voice_therapy_sessions FORCE INDEX (uq_voice_session_open)"
              " WHERE user_id = %s AND open_slot = 1 LOCK IN SHARE MODE", u.id)
        out = {}
        te = in_thread(lambda: self.end(u, s1, 300), out, "end")
        try:
            # end has taken the minutes (it holds the credit) and waits to close
            wait_until(lambda: row_locked("SELECT id FROM voice_therapy_credits WHERE user_id = %s"
                                          " FOR UPDATE", u.id), 10, message="end waiting")
            ts = in_thread(lambda: u.post("/api/voice-therapy/start", {}), out, "start")
            time.sleep(REACH_WAIT_S)  # start waits behind end
        finally:
            h.commit()
        te.join(30)
        ts.join(30)
        self.assertStatus(out["end"], 200, "end")
        self.assertEqual(out["end"].json["minutesDeducted"], 5)
        self.assertStatus(out["start"], 200, "start")
        self.assertEqual(out["start"].json["availableMinutes"], MINUTES - 5)
        s2 = out["start"].json["sessionId"]
        self.assertEqual(session_row(s2)["available_minutes"], MINUTES - 5)
        self.assertEqual(self.credits(u)["remainingMinutes"], MINUTES - 5)
        self.assertUsageConsistent(u.id)

    def test_start_and_end_hammered_concurrently(self):
        """Many start/end pairs of one user at once: every open session's
        available minutes are what its start could really use."""
        u = firewall_user()
        buy_voice(u)
        sid = self.start(u).json["sessionId"]
        db_exec("UPDATE voice_therapy_sessions SET started_at = started_at - INTERVAL 60 SECOND"
                " WHERE id = %s", sid)
        out = {}
        te = in_thread(lambda: self.end(u, sid, 60), out, "end")
        ts = in_thread(lambda: u.post("/api/voice-therapy/start", {}), out, "start")
        te.join(30)
        ts.join(30)
        self.assertStatus(out["end"], 200)
        if out["start"].status == 200:
            self.assertEqual(out["start"].json["availableMinutes"], MINUTES - 1)
        else:
            self.assertError(out["start"], 409, "session_already_open")
        self.assertUsageConsistent(u.id)


class VoiceClockTests(VoiceCase):
    """Minutes are charged by the server's clock; the client may lower the
    charge by at most the 30-second grace; overdue sessions end by themselves."""

    def ended(self, sid):
        row = session_row(sid)
        return (row["status"], row["open_slot"], row["seconds_used"], row["seconds_charged"],
                row["minutes_requested"], row["minutes_deducted"], row["ended_by"])

    def test_grace_setting(self):
        self.assertEqual(db_scalar("SELECT int_value FROM platform_settings"
                                   " WHERE name = 'voice_grace_seconds'"), 30)

    def test_ended_early_client_lowers_by_at_most_the_grace(self):
        u = firewall_user()
        buy_voice(u)
        # ran 620 s; the client says 100 s: charged 590 s = 10 minutes (not 2, not 11)
        s1 = self.start(u).json["sessionId"]
        r = self.end(u, s1, 100, elapsed=620)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"minutesDeducted": 10, "remainingMinutes": MINUTES - 10})
        self.assertEqual(self.ended(s1), ("ended", None, 100, 590, 10, 10, "user"))
        # ran 120 s; the client claims 900 s: the server's 120 s = 2 minutes
        s2 = self.start(u).json["sessionId"]
        r = self.end(u, s2, 900, elapsed=120)
        self.assertEqual(r.json, {"minutesDeducted": 2, "remainingMinutes": MINUTES - 12})
        self.assertEqual(self.ended(s2), ("ended", None, 900, 120, 2, 2, "user"))
        # ran 61 s, client says 40 s (within the grace): 40 s = 1 minute
        s3 = self.start(u).json["sessionId"]
        r = self.end(u, s3, 40, elapsed=61)
        self.assertEqual(r.json, {"minutesDeducted": 1, "remainingMinutes": MINUTES - 13})
        self.assertEqual(self.ended(s3), ("ended", None, 40, 40, 1, 1, "user"))
        self.assertUsageConsistent(u.id)

    def test_ended_late_within_grace_is_capped_at_available(self):
        u = firewall_user()
        buy_voice(u)
        s1 = self.start(u).json["sessionId"]
        r = self.end(u, s1, MINUTES * 60 + 20)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"minutesDeducted": MINUTES, "remainingMinutes": 0})
        self.assertEqual(self.ended(s1), ("ended", None, MINUTES * 60 + 20, MINUTES * 60,
                                          MINUTES, MINUTES, "user"))
        self.assertUsageConsistent(u.id)

    def test_never_ended_is_ended_by_the_next_request_and_charged_in_full(self):
        u = firewall_user()
        buy_voice(u)
        buy_voice(u)
        s1 = self.start(u).json
        self.assertEqual(s1["availableMinutes"], 2 * MINUTES)
        sid = s1["sessionId"]
        run_for(sid, 2 * MINUTES * 60 + 29)      # inside the grace: still open
        self.assertEqual(self.credits(u)["remainingMinutes"], 2 * MINUTES)
        self.assertEqual(session_row(sid)["status"], "active")
        run_for(sid, 2 * MINUTES * 60 + 31)      # past it: the next request ends it
        self.assertEqual(self.credits(u), {"hasCredits": False, "remainingMinutes": 0,
                                           "credits": []})
        self.assertEqual(self.ended(sid), ("ended", None, None, 2 * MINUTES * 60,
                                           2 * MINUTES, 2 * MINUTES, "server"))
        self.assertEqual(sorted(x["minutes"] for x in usage_rows(sid)), [MINUTES, MINUTES])
        # the client's late end changes nothing
        r = u.post("/api/voice-therapy/end", {"sessionId": sid, "secondsUsed": 10})
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"minutesDeducted": 2 * MINUTES, "remainingMinutes": 0})
        self.assertEqual(self.ended(sid)[2], None)
        self.assertUsageConsistent(u.id)

    def test_the_stored_grace_is_the_one_applied(self):
        u = firewall_user()
        buy_voice(u)
        sid = self.start(u).json["sessionId"]
        db_exec("UPDATE platform_settings SET int_value = 90 WHERE name = 'voice_grace_seconds'")
        try:
            run_for(sid, MINUTES * 60 + 60)     # past 30 s, inside 90 s: still open
            self.assertEqual(self.credits(u)["remainingMinutes"], MINUTES)
            self.assertEqual(session_row(sid)["status"], "active")
            run_for(sid, MINUTES * 60 + 91)
            self.assertEqual(self.credits(u)["remainingMinutes"], 0)
            self.assertEqual(self.ended(sid), ("ended", None, None, MINUTES * 60, MINUTES,
                                               MINUTES, "server"))
        finally:
            db_exec("UPDATE platform_settings SET int_value = 30"
                    " WHERE name = 'voice_grace_seconds'")
        self.assertUsageConsistent(u.id)

    def test_reading_the_credits_costs_three_statements(self):
        # the session, the check for an overdue session (with the stored grace
        # in it), the credits: the grace is not read on its own first
        u = firewall_user()
        buy_voice(u)
        for r in parallel(lambda _: u.get("/api/voice-therapy/credits"), range(48), threads=8):
            self.assertStatus(r, 200, "warm-up")
        self.assertEqual(statements_during(
            lambda: self.assertEqual(self.credits(u)["remainingMinutes"], MINUTES), 20), 60)

    def test_start_ends_an_overdue_session_then_opens_one(self):
        u = firewall_user()
        buy_voice(u)
        buy_voice(u)
        s1 = self.start(u, persona="calm").json["sessionId"]
        db_exec("UPDATE voice_therapy_sessions SET available_minutes = 5 WHERE id = %s", s1)
        run_for(s1, 5 * 60 + 31)
        r = self.start(u)
        self.assertEqual(r.json["availableMinutes"], 2 * MINUTES - 5)
        self.assertEqual(self.ended(s1), ("ended", None, None, 300, 5, 5, "server"))
        self.assertEqual(session_row(r.json["sessionId"])["status"], "active")
        self.assertUsageConsistent(u.id)

    def test_the_pages_show_the_minutes_a_forgotten_session_used(self):
        """A session left open past its minutes: the dashboard and /voice
        charge it before showing the minutes, as the credits API does."""
        u = firewall_user()
        buy_voice(u)
        buy_voice(u)
        s = self.start(u).json["sessionId"]
        db_exec("UPDATE voice_therapy_sessions SET available_minutes = 5 WHERE id = %s", s)
        run_for(s, 5 * 60 + 31)
        left = 2 * MINUTES - 5
        for path, shown in (
                ("/dashboard", rf'<p class="big">{left}</p>\s*<p class="muted">minutes remaining'),
                ("/voice", rf'data-minutes-left>{left}<')):
            page = u.get(path)
            self.assertStatus(page, 200, path)
            self.assertRegex(page.text, shown, path)
        self.assertEqual(self.ended(s), ("ended", None, None, 300, 5, 5, "server"))
        self.assertEqual(self.credits(u)["remainingMinutes"], 2 * MINUTES - 5)
        self.assertUsageConsistent(u.id)

    def test_periodic_job_ends_overdue_sessions(self):
        u, v = firewall_user(), firewall_user()
        buy_voice(u)
        buy_voice(v)
        su = self.start(u).json["sessionId"]
        sv = self.start(v).json["sessionId"]
        run_for(su, MINUTES * 60 + 31)
        run_for(sv, MINUTES * 60 + 10)     # within the grace: left open
        p = run_tool("creditdesk-reconcile")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(self.ended(su), ("ended", None, None, MINUTES * 60, MINUTES, MINUTES,
                                          "server"))
        self.assertEqual(session_row(sv)["status"], "active")
        self.assertEqual(db_scalar("SELECT minutes_remaining FROM voice_therapy_credits"
                                   " WHERE user_id = %s", u.id), 0)
        self.assertEqual(db_scalar("SELECT minutes_remaining FROM voice_therapy_credits"
                                   " WHERE user_id = %s", v.id), MINUTES)
        self.assertUsageConsistent(u.id)
        self.assertUsageConsistent(v.id)


def booking_page_row(html, bid):
    """The <tr> of booking bid on a bookings page."""
    start = html.index(f'<tr data-booking="{bid}">')
    return html[start:html.index("</tr>", start)]


def hours_ahead(hours):
    """A start time `hours` from now (to the second), as the API takes it."""
    d = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=hours)
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


class CancellationPolicyTests(BookingCase):
    """Full refund up to 24 h before the start, 50% inside 24 h, nothing once
    started; the expert's payout is reduced by exactly what was refunded from it."""

    def paid_at(self, browser, eid, hours, minutes=30):
        r = book(browser, eid, hours_ahead(hours), minutes)
        self.assertStatus(r, 201, "create booking")
        bid, pi = r.json["booking"]["id"], r.json["booking"]["paymentIntentId"]
        emu_succeed(pi)
        status_is(bid, "scheduled", "succeeded")
        return bid, pi

    def quote(self, browser, bid):
        r = browser.get(f"/api/bookings/{bid}/cancellation")
        self.assertStatus(r, 200, "cancellation quote")
        return r.json

    def money(self, bid):
        b = booking_row(bid)
        return (b["status"], b["cancel_refund_cents"], b["refunded_cents"],
                b["fee_refunded_cents"], b["payout_refunded_cents"])

    def owed(self, adm, eid):
        return [(e["amountCents"], e["bookingIds"])
                for e in adm.get("/api/admin/payouts/pending").json["experts"]
                if e["expertId"] == eid]

    def test_platform_policy_settings(self):
        self.assertEqual({r["name"]: r["int_value"] for r in db_rows(
            "SELECT name, int_value FROM platform_settings WHERE name IN"
            " ('cancel_full_refund_hours', 'cancel_late_refund_bps', 'booking_max_unpaid_holds')")},
            {"cancel_full_refund_hours": 24, "cancel_late_refund_bps": 5000,
             "booking_max_unpaid_holds": 3})

    def test_cancel_25_hours_before_refunds_everything(self):
        adm, a = admin(), register()
        eid = new_expert(150)                      # 30 min: 4500, fee 450, payout 4050
        bid, pi = self.paid_at(a, eid, 25)
        q = self.quote(a, bid)
        self.assertEqual(q, {"bookingId": bid, "status": "scheduled", "cancellable": True,
                             "tier": "full", "priceCents": 4500, "refundCents": 4500,
                             "payoutReductionCents": 4050,
                             "policy": {"fullRefundHours": 24, "lateRefundBps": 5000}})
        r = a.post(f"/api/bookings/{bid}/cancel", {})
        self.assertStatus(r, 200, "cancel")
        self.assertEqual((r.json["booking"]["status"], r.json["booking"]["paymentStatus"]),
                         ("cancelled_by_user", "refunded"))
        self.assertEqual(self.money(bid), ("cancelled_by_user", 4500, 4500, 450, 4050))
        rows = refund_rows(bid)
        self.assertEqual([x["amount_cents"] for x in rows], [4500])
        re_ = stripe_api("GET", f"/v1/refunds/{rows[0]['stripe_refund_id']}").json
        self.assertEqual((re_["payment_intent"], re_["amount"]), (pi, 4500))
        self.assertEqual(self.owed(adm, eid), [])

    def test_cancel_23_hours_before_refunds_half_and_halves_the_payout(self):
        adm, a = admin(), register()
        eid = new_expert(150)
        bid, pi = self.paid_at(a, eid, 23)
        q = self.quote(a, bid)
        self.assertEqual((q["tier"], q["cancellable"], q["refundCents"],
                          q["payoutReductionCents"]), ("partial", True, 2250, 2025))
        r = a.post(f"/api/bookings/{bid}/cancel", {})
        self.assertStatus(r, 200, "cancel")
        self.assertEqual((r.json["booking"]["status"], r.json["booking"]["paymentStatus"]),
                         ("cancelled_by_user", "partially_refunded"))
        self.assertEqual(self.money(bid), ("cancelled_by_user", 2250, 2250, 225, 2025))
        self.assertIn("<td>$45.00<br><span class=\"muted small\" data-refunded>$22.50 back to"
                      " you</span></td>", booking_page_row(a.get("/dashboard").text, bid))
        rows = refund_rows(bid)
        self.assertEqual([x["amount_cents"] for x in rows], [2250])
        ch = latest_charge(pi)
        charge = stripe_api("GET", f"/v1/charges/{ch}").json
        self.assertEqual((charge["amount_refunded"], charge["refunded"]), (2250, False))
        # cancelling again refunds nothing more
        self.assertStatus(a.post(f"/api/bookings/{bid}/cancel", {}), 200)
        self.assertEqual(len(refund_rows(bid)), 1)
        self.assertEqual(audit_count("REFUND_ISSUED", str(bid)), 1)
        # the expert is owed what the refund left of the payout: 4050 - 2025
        self.assertEqual(self.owed(adm, eid), [(2025, [bid])])
        p = adm.post("/api/admin/payouts", {"expertId": eid})
        self.assertStatus(p, 201)
        self.assertEqual(p.json["payout"]["amountCents"], 2025)
        self.assertEqual(self.owed(adm, eid), [])

    def test_expert_policy_and_odd_cents(self):
        adm, a = admin(), register()
        eid = new_expert(67)                       # 15 min: 1005, fee 101, payout 904
        db_exec("UPDATE experts SET cancel_full_refund_hours = 48, cancel_late_refund_bps = 2500"
                " WHERE id = %s", eid)
        bid, _ = self.paid_at(a, eid, 30, minutes=15)
        q = self.quote(a, bid)
        self.assertEqual((q["tier"], q["priceCents"], q["refundCents"], q["payoutReductionCents"],
                          q["policy"]), ("partial", 1005, 251, 226,
                                         {"fullRefundHours": 48, "lateRefundBps": 2500}))
        self.assertStatus(a.post(f"/api/bookings/{bid}/cancel", {}), 200)
        # 251.25 -> 251; fee part round-half-up(251 * 101 / 1005) = 25, payout part 226
        self.assertEqual(self.money(bid), ("cancelled_by_user", 251, 251, 25, 226))
        self.assertEqual(self.owed(adm, eid), [(904 - 226, [bid])])
        # 50% of 1005 = 502.5 -> 503 under the platform policy, 10 h before the start
        eid2 = new_expert(67)
        bid2, _ = self.paid_at(a, eid2, 10, minutes=15)
        self.assertStatus(a.post(f"/api/bookings/{bid2}/cancel", {}), 200)
        self.assertEqual(self.money(bid2), ("cancelled_by_user", 503, 503, 51, 452))
        self.assertEqual(self.owed(adm, eid2), [(452, [bid2])])

    def test_a_booking_keeps_the_policy_it_was_made_under(self):
        """The schedule page shows the expert's policy before a time is
        picked; the booking keeps it.  The expert changing theirs later
        changes what the page shows and what later bookings get, not what a
        cancel of this one refunds."""
        adm, a = admin(), register()
        eid = new_expert(100)                      # 30 min: 3000, fee 300, payout 2700
        policy = lambda: re.search(r"<p class=\"policy\" data-policy>([^<]*)</p>",  # noqa: E731
                                   a.get(f"/experts/{eid}/schedule").text).group(1)
        self.assertEqual(policy(), "Cancelling up to 24 hours before the session refunds it in"
                         " full; later, 50% of its price; once it has started, nothing. The"
                         " booking keeps this policy.")
        bid, _ = self.paid_at(a, eid, 30)
        db_exec("UPDATE experts SET cancel_full_refund_hours = 48, cancel_late_refund_bps = 0"
                " WHERE id = %s", eid)
        self.assertEqual(policy(), "Cancelling up to 48 hours before the session refunds it in"
                         " full; later, nothing; once it has started, nothing. The booking"
                         " keeps this policy.")
        self.assertEqual((booking_row(bid)["full_refund_hours"], booking_row(bid)["late_refund_bps"]),
                         (24, 5000))
        q = self.quote(a, bid)                     # 30 h ahead: in full, under its own 24 h
        self.assertEqual((q["tier"], q["refundCents"], q["policy"]),
                         ("full", 3000, {"fullRefundHours": 24, "lateRefundBps": 5000}))
        later, _ = self.paid_at(a, eid, 33)        # made under the new policy: 33 h is late
        q = self.quote(a, later)
        self.assertEqual((q["tier"], q["refundCents"], q["policy"]),
                         ("partial", 0, {"fullRefundHours": 48, "lateRefundBps": 0}))
        self.assertStatus(a.post(f"/api/bookings/{bid}/cancel", {}), 200)
        self.assertEqual(self.money(bid), ("cancelled_by_user", 3000, 3000, 300, 2700))
        self.assertEqual(replayed(a.id), (0, []))
        # a booking inserted without one (by the release before, during a
        # rolling deploy) reads its expert's policy
        db_exec("UPDATE bookings SET full_refund_hours = NULL, late_refund_bps = NULL"
                " WHERE id = %s", later)
        db_exec("UPDATE experts SET cancel_full_refund_hours = 12 WHERE id = %s", eid)
        q = self.quote(a, later)
        self.assertEqual((q["tier"], q["refundCents"], q["policy"]),
                         ("full", 3000, {"fullRefundHours": 12, "lateRefundBps": 0}))

    def test_an_expert_sets_their_own_policy_for_later_bookings(self):
        """POST /api/experts/me/policy: the expert's own policy, audited with
        what it was; the bookings made before keep theirs.  Bad values and a
        user who is no expert change nothing."""
        a, expert_user, someone = register(), register(), register()
        eid = new_expert(100, user=expert_user)
        promote(expert_user, role="expert")
        before, _ = self.paid_at(a, eid, 10)      # 50% under the platform's policy
        path = "/api/experts/me/policy"
        for body, field in (({"fullRefundHours": 169, "lateRefundBps": 0}, "fullRefundHours"),
                            ({"fullRefundHours": -1, "lateRefundBps": 0}, "fullRefundHours"),
                            ({"fullRefundHours": 12, "lateRefundBps": 10001}, "lateRefundBps"),
                            ({"fullRefundHours": 12}, "lateRefundBps"),
                            ({"fullRefundHours": 1.5, "lateRefundBps": 2500}, "fullRefundHours")):
            r = expert_user.post(path, body)
            self.assertStatus(r, 400, str(body))
            self.assertIn(field, r.json["error"]["message"], str(body))
        self.assertError(someone.post(path, {"fullRefundHours": 1, "lateRefundBps": 0}),
                         403, "not_an_expert")
        self.assertEqual(db_row("SELECT cancel_full_refund_hours AS h, cancel_late_refund_bps AS b"
                                " FROM experts WHERE id = %s", eid), {"h": None, "b": None})

        r = expert_user.post(path, {"fullRefundHours": 6, "lateRefundBps": 2500})
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"policy": {"fullRefundHours": 6, "lateRefundBps": 2500}})
        self.assertEqual(db_row("SELECT cancel_full_refund_hours AS h, cancel_late_refund_bps AS b"
                                " FROM experts WHERE id = %s", eid), {"h": 6, "b": 2500})
        self.assertEqual(json.loads(db_scalar(
            "SELECT details FROM audit_log WHERE action = 'EXPERT_POLICY_CHANGED'"
            " AND entity_id = %s", str(eid))),
            {"from": {"fullRefundHours": 24, "lateRefundBps": 5000},
             "to": {"fullRefundHours": 6, "lateRefundBps": 2500}})
        self.assertEqual(a.get(f"/api/experts/{eid}").json["expert"]["lateRefundBps"], 2500)
        after, _ = self.paid_at(a, eid, 5)        # 5 h ahead: late under 6 h, 25%
        self.assertEqual([(self.quote(a, b)["tier"], self.quote(a, b)["refundCents"])
                          for b in (before, after)], [("partial", 1500), ("partial", 750)])

    def test_cancel_after_the_start_refunds_nothing_and_is_refused(self):
        adm, a = admin(), register()
        eid = new_expert(150)
        bid, pi = self.paid_at(a, eid, 25)
        started(bid)
        q = self.quote(a, bid)
        self.assertEqual((q["tier"], q["cancellable"], q["refundCents"],
                          q["payoutReductionCents"]), ("started", False, 0, 0))
        before = emu_state()["refunds"]
        self.assertError(a.post(f"/api/bookings/{bid}/cancel", {}), 409, "booking_started")
        self.assertEqual(self.money(bid), ("scheduled", None, 0, 0, 0))
        self.assertEqual(payment_row(bid)["status"], "succeeded")
        self.assertEqual(refund_rows(bid), [])
        self.assertEqual(emu_state()["refunds"], before)
        self.assertEqual(audit_count("BOOKING_CANCELLED", str(bid)), 0)

    def test_a_cancel_that_refunds_nothing_stays_unrefunded(self):
        """An expert whose late refund is 0%: the cancel inside the window
        refunds nothing, and asking for the payment again (confirm-payment,
        a redelivered success) does not turn it into a full refund."""
        adm, a = admin(), register()
        eid = new_expert(150)                      # 30 min: 4500, fee 450, payout 4050
        db_exec("UPDATE experts SET cancel_late_refund_bps = 0 WHERE id = %s", eid)
        bid, pi = self.paid_at(a, eid, 10)
        self.assertEqual(self.quote(a, bid)["refundCents"], 0)
        before = emu_state()["refunds"]
        r = a.post(f"/api/bookings/{bid}/cancel", {})
        self.assertStatus(r, 200, "cancel")
        self.assertEqual((r.json["booking"]["status"], r.json["booking"]["paymentStatus"]),
                         ("cancelled_by_user", "succeeded"))
        for _ in range(2):
            self.assertStatus(a.post(f"/api/bookings/{bid}/confirm-payment", {}), 200)
        self.assertEqual(self.money(bid), ("cancelled_by_user", 0, 0, 0, 0))
        self.assertEqual(payment_row(bid)["status"], "succeeded")
        self.assertEqual(refund_rows(bid), [])
        self.assertEqual(emu_state()["refunds"], before)
        # the expert keeps the whole payout of a cancel the policy did not refund
        self.assertEqual(self.owed(adm, eid), [(4050, [bid])])

    def test_the_rest_refunded_in_stripe_after_a_partial_cancel_is_recorded(self):
        """A cancel refunds 50%; the rest is refunded in Stripe's Dashboard:
        the booking is refunded in full, fee and payout, the expert is owed
        nothing, and the books agree with Stripe's refunds."""
        adm, a = admin(), register()
        eid = new_expert(150)                      # 30 min: 4500, fee 450, payout 4050
        bid, pi = self.paid_at(a, eid, 10)
        self.assertStatus(a.post(f"/api/bookings/{bid}/cancel", {}), 200)
        self.assertEqual(self.owed(adm, eid), [(2025, [bid])])
        first = refund_rows(bid)
        event = refund_processed(pi)
        self.assertEqual(self.money(bid), ("cancelled_by_user", 2250, 4500, 450, 4050))
        self.assertEqual(payment_row(bid)["status"], "refunded")
        self.assertEqual(refund_rows(bid), first)
        self.assertEqual(self.owed(adm, eid), [])
        self.assertEqual(audit_count("REFUND_ISSUED", str(bid)), 2)
        emu_deliver(event)
        self.assertEqual(audit_count("REFUND_ISSUED", str(bid)), 2)
        self.assertEqual([f for f in books_check("--stripe")["findings"]
                          if f.get("payment_intent") == pi or f.get("booking_id") == bid], [])

    def test_a_booking_being_cancelled_cannot_be_completed(self):
        """The cancel decided 50% and Stripe failed the refund: after the
        start the expert cannot complete the booking, and the customer's
        retry still refunds the decided cents."""
        adm, a, expert_user = admin(), register(), register()
        eid = new_expert(150, user=expert_user)
        bid, _ = self.paid_at(a, eid, 10)
        emu_fail(count=3, status=500, path="/v1/refunds")
        r = a.post(f"/api/bookings/{bid}/cancel", {})
        self.assertEqual(r.status, 502, r)
        emu_fail(count=0, path="/v1/refunds")
        self.assertEqual(self.money(bid), ("scheduled", 2250, 0, 0, 0))
        started(bid)
        self.assertError(expert_user.post(f"/api/bookings/{bid}/complete", {}), 409,
                         "booking_cancelled")
        self.assertEqual(booking_row(bid)["status"], "scheduled")
        self.assertEqual(self.owed(adm, eid), [])
        # the pages agree: the customer can still cancel (the refund is owed), the expert
        # is offered no Complete, and both read "cancelling"
        cancel_button = f'data-action="cancel-booking" data-booking="{bid}"'
        promote(expert_user, role="expert")
        self.assertIn(cancel_button, a.get("/dashboard").text)
        row = booking_page_row(expert_user.get("/expert/bookings").text, bid)
        self.assertNotIn("complete-booking", row)
        self.assertIn("<td data-status>Cancelling</td>", row)
        r = a.post(f"/api/bookings/{bid}/cancel", {})
        self.assertStatus(r, 200, "cancel again")
        self.assertEqual(self.money(bid), ("cancelled_by_user", 2250, 2250, 225, 2025))
        self.assertEqual(self.owed(adm, eid), [(2025, [bid])])
        self.assertNotIn(cancel_button, a.get("/dashboard").text)
        # the expert's page shows what the refund left them: $20.25, not the $40.50 payout
        self.assertIn('<td class="num">$20.25</td>',
                      booking_page_row(expert_user.get("/expert/bookings").text, bid))

    def test_reconcile_finishes_a_cancel_whose_refund_failed(self):
        """Stripe failed the cancel's refund and the customer never tried
        again: the periodic job refunds what was decided, once, and the
        replay of the books rebuilds the decision, then the cancel."""
        adm, a, expert_user = admin(), register(), register()
        eid = new_expert(150, user=expert_user)
        bid, _ = self.paid_at(a, eid, 10)
        emu_fail(count=3, status=500, path="/v1/refunds")
        self.assertEqual(a.post(f"/api/bookings/{bid}/cancel", {}).status, 502)
        emu_fail(count=0, path="/v1/refunds")
        self.assertEqual(self.money(bid), ("scheduled", 2250, 0, 0, 0))
        self.assertEqual(audit_count("BOOKING_CANCEL_DECIDED", str(bid)), 1)
        rc, diffs = replayed(a.id)
        self.assertEqual((rc, diffs), (0, []), "a cancel still being made replays as decided")
        p = run_tool("creditdesk-reconcile")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"finished \d+ booking cancels")
        self.assertEqual(self.money(bid), ("cancelled_by_user", 2250, 2250, 225, 2025))
        self.assertEqual(len(refund_rows(bid)), 1)
        self.assertEqual(self.owed(adm, eid), [(2025, [bid])])
        p = run_tool("creditdesk-reconcile")
        self.assertNotIn("booking cancels", p.stdout)
        self.assertEqual(len(refund_rows(bid)), 1)
        self.assertEqual(audit_count("BOOKING_CANCEL_DECIDED", str(bid)), 1)
        rc, diffs = replayed(a.id)
        self.assertEqual((rc, diffs), (0, []))

    def test_a_cancel_decided_before_a_chargeback_waits_for_the_dispute(self):
        """The cancel's refund failed, then the customer's bank charged the
        payment back: the periodic job leaves the refund alone while the
        dispute is open (Stripe would refuse it), and makes it once won."""
        a = register()
        bid, pi = self.paid_at(a, new_expert(150), 10)
        emu_fail(count=3, status=500, path="/v1/refunds")
        self.assertEqual(a.post(f"/api/bookings/{bid}/cancel", {}).status, 502)
        emu_fail(count=0, path="/v1/refunds")
        dp = dispute_intent(pi)
        before = emu_state()["refunds"]
        p = run_tool("creditdesk-reconcile")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("booking cancels", p.stdout)
        self.assertNotIn(f"booking {bid}", p.stderr)
        self.assertEqual((emu_state()["refunds"], refund_rows(bid)), (before, []))
        self.assertError(a.post(f"/api/bookings/{bid}/cancel", {}), 409, "payment_disputed")
        self.assertEqual(self.money(bid), ("scheduled", 2250, 0, 0, 0))
        close_dispute(dp, "won")
        p = run_tool("creditdesk-reconcile")
        self.assertRegex(p.stdout, r"finished \d+ booking cancels")
        self.assertEqual(self.money(bid), ("cancelled_by_user", 2250, 2250, 225, 2025))
        self.assertEqual(emu_state()["refunds"], before + 1)
        self.assertEqual(replayed(a.id), (0, []))

    def test_a_decided_cancel_is_settled_by_money_going_back_another_way(self):
        """The cancel's refund failed, then the money went back without it:
        the bank's, a chargeback lost, or a full refund made in Stripe's
        Dashboard.  The booking is cancelled as the customer asked (it was
        left "cancelling" for ever, nothing to finish it), nothing is refunded
        on top, the expert is owed nothing, and the books replay."""
        for way in ("lost chargeback", "refund in Stripe"):
            with self.subTest(way=way):
                adm, a = admin(), register()
                eid = new_expert(150)                  # 30 min: 4500, fee 450, payout 4050
                bid, pi = self.paid_at(a, eid, 10)
                emu_fail(count=3, status=500, path="/v1/refunds")
                self.assertEqual(a.post(f"/api/bookings/{bid}/cancel", {}).status, 502)
                emu_fail(count=0, path="/v1/refunds")
                self.assertEqual(self.money(bid), ("scheduled", 2250, 0, 0, 0))
                if way == "lost chargeback":
                    dp = dispute_intent(pi)
                    close_dispute(dp, "lost")
                    key, reason, by, shown = dp, "dispute_lost", "dispute", "Charged back"
                else:
                    refund_processed(pi)
                    key = newest_refund_of(pi)
                    reason, by, shown = "refunded_in_stripe", "stripe", "Cancelled"
                self.assertEqual(self.money(bid), ("cancelled_by_user", 2250, 4500, 450, 4050))
                self.assertEqual(payment_row(bid)["status"], "refunded")
                self.assertEqual([(r["stripe_refund_id"], r["amount_cents"], r["reason"])
                                  for r in refund_rows(bid)], [(key, 4500, reason)])
                self.assertEqual([json.loads(r["details"]) for r in db_rows(
                    "SELECT details FROM audit_log WHERE action = 'BOOKING_CANCEL_SETTLED'"
                    " AND entity_id = %s", str(bid))], [{"refundedBy": by}])
                self.assertEqual(audit_count("BOOKING_CANCELLED", str(bid)), 0)
                self.assertIn(f"<td data-status>{shown}</td>",
                              booking_page_row(a.get("/dashboard").text, bid))
                before = emu_state()["refunds"]
                p = run_tool("creditdesk-reconcile")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertNotIn("booking cancels", p.stdout)
                self.assertEqual(emu_state()["refunds"], before)
                self.assertEqual(self.owed(adm, eid), [])
                redeliver(pi, key)
                self.assertEqual(len(refund_rows(bid)), 1)
                self.assertEqual(audit_count("BOOKING_CANCEL_SETTLED", str(bid)), 1)
                self.assertEqual(replayed(a.id), (0, []))

    def test_a_cancels_refund_seen_first_is_still_the_customers_cancel(self):
        """Stripe's charge.refunded for the customer's own cancel arrives
        before Stripe's answer to the refund (a slow network): the webhook
        records the refund and cancels the booking as the app would, and the
        audit says the customer cancelled it, once."""
        a = register()
        bid, _ = self.paid_at(a, new_expert(150), 48)        # full refund: 4500
        emu_slow("/v1/refunds", ms=3000, method="POST")
        self.assertStatus(a.post(f"/api/bookings/{bid}/cancel", {}), 200, "cancel")
        self.assertEqual(self.money(bid), ("cancelled_by_user", 4500, 4500, 450, 4050))
        issued = db_rows("SELECT details FROM audit_log WHERE action = 'REFUND_ISSUED'"
                         " AND entity_id = %s", str(bid))
        self.assertEqual([json.loads(x["details"])["source"] for x in issued], ["stripe"],
                         "the webhook recorded the refund first")
        self.assertEqual([x["user_id"] for x in db_rows(
            "SELECT user_id FROM audit_log WHERE action = 'BOOKING_CANCELLED'"
            " AND entity_id = %s", str(bid))], [a.id])
        self.assertEqual(audit_count("BOOKING_CANCEL_SETTLED", str(bid)), 0)
        self.assertEqual(len(refund_rows(bid)), 1)
        self.assertEqual(replayed(a.id), (0, []))

    def test_an_unpaid_hold_cannot_be_paid_once_its_time_has_started(self):
        a = register()
        j = self.created(a, new_expert(100))
        bid = j["booking"]["id"]
        self.assertStatus(a.post(f"/api/bookings/{bid}/pay", {}), 200, "pay before the start")
        started(bid)
        self.assertError(a.post(f"/api/bookings/{bid}/pay", {}), 409, "booking_started")
        self.assertNotIn(f'data-pay-booking="{bid}"', a.get("/dashboard").text)
        self.assertEqual((booking_row(bid)["status"], payment_row(bid)["status"]),
                         ("awaiting_payment", "pending"))

    def test_a_free_booking_that_has_started_is_not_cancelled_either(self):
        a = register()
        r = book(a, new_expert(0), hours_ahead(25))
        self.assertStatus(r, 201, "free booking")
        bid = r.json["booking"]["id"]
        self.assertEqual(booking_row(bid)["status"], "scheduled")
        self.assertEqual((self.quote(a, bid)["tier"], self.quote(a, bid)["cancellable"]),
                         ("unpaid", True))
        started(bid)
        q = self.quote(a, bid)
        self.assertEqual((q["tier"], q["cancellable"], q["refundCents"]), ("started", False, 0))
        self.assertError(a.post(f"/api/bookings/{bid}/cancel", {}), 409, "booking_started")
        self.assertEqual(booking_row(bid)["status"], "scheduled")
        self.assertEqual(audit_count("BOOKING_CANCELLED", str(bid)), 0)

    def test_quote_is_the_owners_only(self):
        a, b = register(), register()
        bid, _ = self.paid_at(a, new_expert(100), 30)
        self.assertError(b.get(f"/api/bookings/{bid}/cancellation"), 404, "booking_not_found")


class UnpaidHoldTests(BookingCase):

    def test_fourth_unpaid_hold_is_409(self):
        a = register()
        ids = [self.created(a, new_expert(100))["booking"]["id"] for _ in range(3)]
        r = book(a, new_expert(100), hours_ahead(50))
        self.assertError(r, 409, "too_many_unpaid_bookings")
        self.assertIn("awaiting payment", r.json["error"]["message"])
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM bookings WHERE user_id = %s", a.id), 3)
        # paying one frees a place
        emu_succeed(payment_row(ids[0])["stripe_payment_intent_id"])
        status_is(ids[0], "scheduled", "succeeded")
        self.assertStatus(book(a, new_expert(100), hours_ahead(50)), 201)
        self.assertError(book(a, new_expert(100), hours_ahead(50)), 409,
                         "too_many_unpaid_bookings")
        # an expired hold no longer counts
        db_exec("UPDATE bookings SET created_at = created_at - INTERVAL 31 MINUTE WHERE id = %s",
                ids[1])
        self.assertStatus(book(a, new_expert(100), hours_ahead(50)), 201)
        # a free booking is no unpaid hold
        self.assertStatus(book(a, new_expert(0), hours_ahead(50)), 201)

    def test_concurrent_holds_stop_at_three(self):
        a = register()
        experts = [new_expert(100) for _ in range(8)]
        results = parallel(lambda e: book(a, e, hours_ahead(70)), experts, threads=8)
        codes = sorted(r.status for r in results)
        self.assertEqual(codes, [201] * 3 + [409] * 5, results)
        for r in results:
            if r.status == 409:
                self.assertError(r, 409, "too_many_unpaid_bookings")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM bookings WHERE user_id = %s"
                                   " AND status = 'awaiting_payment'", a.id), 3)


class ReverseOrderTests(BookingCase):
    """An older event delivered after a newer one never moves anything back."""

    def deliver_all(self, object_ids):
        """Every event about these objects again, newest first; returns their ids."""
        evs = events_about(object_ids)
        for e in reversed(evs):
            self.assertEqual(emu_deliver(e["id"])["statuses"], [200], e["type"])
        return [e["id"] for e in evs]

    def test_booking_declined_then_paid_delivered_newest_first(self):
        a = register()
        j = book(a, new_expert(100), hours_ahead(60)).json
        bid, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        emu_hold()
        emu_decline(pi)
        emu_succeed(pi)
        rel = emu_release("reverse")
        self.assertEqual(set(rel["statuses"]), {200}, rel)
        for e in rel["released"]:
            wait_until(lambda: event_processed(e), 20, message=f"{e} processed")
        self.assertEqual((booking_row(bid)["status"], payment_row(bid)["status"]),
                         ("scheduled", "succeeded"))
        self.assertEqual(audit_count("BOOKING_PAID", str(bid)), 1)
        self.assertEqual(audit_count("BOOKING_PAYMENT_FAILED", str(bid)), 0)

    def test_cancelled_booking_stays_cancelled_when_old_events_come_again(self):
        a = register()
        r = book(a, new_expert(100), hours_ahead(60))
        bid, pi = r.json["booking"]["id"], r.json["booking"]["paymentIntentId"]
        emu_succeed(pi)
        status_is(bid, "scheduled", "succeeded")
        self.assertStatus(a.post(f"/api/bookings/{bid}/cancel", {}), 200)
        refunds = emu_state()["refunds"]
        ch = latest_charge(pi)
        self.deliver_all([pi, ch])
        self.assertEqual((booking_row(bid)["status"], payment_row(bid)["status"]),
                         ("cancelled_by_user", "refunded"))
        self.assertEqual(emu_state()["refunds"], refunds)
        self.assertEqual(len(refund_rows(bid)), 1)
        self.assertEqual(audit_count("BOOKING_PAID", str(bid)), 1)


def release_newest_first(first, then):
    """Delivers the held events newest first, each answered 200; the event
    first = (object id, type) must be handled before then = (object id, type)."""
    released = emu_release("reverse")
    if set(released["statuses"]) != {200}:
        raise AssertionError(f"held events delivered: {released!r}")
    order = released["released"]
    ids = [events_about(*x)[0]["id"] for x in (first, then)]
    if not order.index(ids[0]) < order.index(ids[1]):
        raise AssertionError(f"{first} was not delivered before {then}: {order}")


def replayed(user_id):
    """The replay of one user's books: (exit status, differences)."""
    from .test_replay import replay     # test_replay imports this module
    rc, report = replay("--user", str(user_id))
    return rc, report["differences"]


class SubscriptionLifecycleTests(CreditsCase):
    """Status and period end from Stripe's subscription events; a refunded
    invoice takes back its credits; cancelling at period end through Stripe."""

    def subscribe(self, u, plan="starter"):
        r = create_checkout(u, {"purchaseType": "subscription", "planId": plan})
        self.assertStatus(r, 200)
        sid = r.json["sessionId"]
        sub = emu_pay(sid).json["subscription"]
        wait_until(lambda: len(allocations(sub)) == 1, 20, message="first invoice allocated")
        return sid, sub

    def settled(self, u):
        """subscribe(u), and its checkout's and first invoice's events handled:
        nothing left to race (or to hold a webhook child while a test holds
        a lock)."""
        sid, sub = self.subscribe(u)
        wait_until(lambda: completed_processed([sid]) == 1 and invoice_events(sub) and all(
            event_processed(e["id"]) for e in invoice_events(sub)), 20,
            message="the checkout and its first invoice settled")
        return sid, sub

    def renewed(self, u):
        """subscribe(u), then one renewal allocated; returns (sub, its invoice)."""
        _, sub = self.subscribe(u)
        inv = emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
        wait_until(lambda: len(allocations(sub)) == 2, 20, message="renewal allocated")
        return sub, inv

    def deliver_late(self, event_id, slow_path):
        """Delivers the event in the background, Stripe's answer to slow_path
        slow, and returns once its copy is on the way; the function returned
        waits for the delivery and gives its statuses."""
        emu_slow(slow_path, ms=int(3 * REACH_WAIT_S * 1000))
        out = {}
        late = threading.Thread(target=lambda: out.update(d=emu_deliver(event_id)))
        late.start()
        time.sleep(REACH_WAIT_S)    # its copy is made, and on its way

        def landed():
            late.join(30)
            return out["d"]["statuses"]
        return landed

    def row(self, sub):
        return db_row("SELECT status, UNIX_TIMESTAMP(current_period_end) AS period_end,"
                      " cancel_at_period_end FROM subscriptions WHERE stripe_subscription_id = %s",
                      sub)

    def stripe_sub(self, sub):
        return stripe_api("GET", f"/v1/subscriptions/{sub}").json

    def test_status_and_period_end_follow_stripe(self):
        u = self.user()
        per = STARTER_CREDITS * rate()
        _, sub = self.subscribe(u)
        s = self.stripe_sub(sub)
        wait_until(lambda: self.row(sub)["period_end"] == s["current_period_end"], 20,
                   message="period end kept")
        self.assertEqual(self.row(sub), {"status": "active", "period_end": s["current_period_end"],
                                         "cancel_at_period_end": 0})
        # a failed renewal: past_due, the new period's end, no credits
        inv = emu_ok("POST", f"/_emu/subscriptions/{sub}/fail_renewal")
        s = self.stripe_sub(sub)
        wait_until(lambda: self.row(sub)["status"] == "past_due", 20, message="past_due")
        self.assertEqual(self.row(sub)["period_end"], s["current_period_end"])
        self.assertEqual(len(allocations(sub)), 1)
        self.assertEqual(balance(u.id), per)
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(
            inv["id"], "invoice.payment_failed")), 20, message="payment_failed processed")
        # paid after all: active again, credited once more
        emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
        wait_until(lambda: len(allocations(sub)) == 2 and self.row(sub)["status"] == "active",
                   20, message="recovered")
        self.assertEqual(balance(u.id), 2 * per)

    def test_a_copy_fetched_before_the_cancel_cannot_undo_it(self):
        """A renewal's webhook fetches the subscription (not cancelled), then
        waits; the user cancels meanwhile; the webhook's older copy, written
        after the cancel, must leave the cancel in place."""
        u = self.user()
        sid, sub = self.settled(u)
        local = db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)
        h = Holder()
        h.run("LOCK TABLES platform_settings WRITE")  # the allocation reads its rate first
        try:
            emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
            time.sleep(REACH_WAIT_S)  # invoice.paid has its copy and waits for the rate
            r = u.post(f"/api/subscriptions/{local}/cancel", {})
            self.assertStatus(r, 200, "cancel while the renewal waits")
            self.assertIs(r.json["cancelAtPeriodEnd"], True)
            self.assertEqual(len(allocations(sub)), 1, "the renewal did not wait")
            # Stripe's word of the cancel arrives first, on another child
            upd = events_about(sub, "customer.subscription.updated")[-1]
            self.assertEqual(emu_deliver(upd["id"])["statuses"], [200])
            self.assertEqual(self.row(sub)["cancel_at_period_end"], 1)
        finally:
            h.commit()
        wait_until(lambda: len(allocations(sub)) == 2, 20, message="renewal allocated")
        self.assertEqual(self.row(sub)["cancel_at_period_end"], 1)
        self.assertIs(self.stripe_sub(sub)["cancel_at_period_end"], True)
        # asking again answers the same and records nothing more
        r = u.post(f"/api/subscriptions/{local}/cancel", {})
        self.assertStatus(r, 200, "second cancel")
        self.assertIs(r.json["cancelAtPeriodEnd"], True)
        self.assertEqual(audit_count("SUBSCRIPTION_CANCEL_REQUESTED", str(local)), 1)

    def test_resume_and_cancel_again_follow_stripe(self):
        """Keep my plan undoes a cancel at period end, any number of times;
        each change is one call to Stripe under a key of its own."""
        u, other = self.user(), self.user()
        _, sub = self.settled(u)
        local = db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)
        path = f"/api/subscriptions/{local}"
        r = u.post(f"{path}/resume", {})
        self.assertStatus(r, 200, "resume a plan that renews anyway")
        self.assertIs(r.json["cancelAtPeriodEnd"], False)
        self.assertEqual(events_about(sub, "customer.subscription.updated"), [])
        for step, ends in (("cancel", True), ("resume", False), ("cancel", True),
                           ("resume", False)):
            r = u.post(f"{path}/{step}", {})
            self.assertStatus(r, 200, step)
            self.assertEqual((r.json["status"], r.json["cancelAtPeriodEnd"]), ("active", ends))
            self.assertEqual(self.row(sub)["cancel_at_period_end"], int(ends), step)
            self.assertIs(self.stripe_sub(sub)["cancel_at_period_end"], ends, step)
        self.assertEqual(audit_count("SUBSCRIPTION_CANCEL_REQUESTED", str(local)), 2)
        self.assertEqual(audit_count("SUBSCRIPTION_RESUMED", str(local)), 2)
        self.assertError(other.post(f"{path}/resume", {}), 404, "subscription_not_found")
        keys = [e["request"]["idempotency_key"]
                for e in events_about(sub, "customer.subscription.updated")]
        self.assertEqual(len(keys), 4)
        self.assertEqual(len(set(keys)), 4, keys)
        # Stripe's news of the four changes, handled whenever it came,
        # leaves the row where Stripe is
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(sub)), 20,
                   message="the changes' events handled")
        self.assertEqual(self.row(sub)["cancel_at_period_end"], 0)
        # once the plan has ended there is nothing to keep
        self.assertStatus(u.post(f"{path}/cancel", {}), 200, "cancel")
        emu_ok("POST", f"/_emu/subscriptions/{sub}/end_period")
        wait_until(lambda: self.row(sub)["status"] == "canceled", 20, message="canceled")
        self.assertError(u.post(f"{path}/resume", {}), 409, "subscription_not_active")
        self.assertEqual(self.row(sub)["cancel_at_period_end"], 1)

    def test_a_plan_whose_renewal_failed_says_so_and_can_still_be_cancelled_or_kept(self):
        u = self.user()
        _, sub = self.settled(u)
        local = db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)
        emu_ok("POST", f"/_emu/subscriptions/{sub}/fail_renewal")
        wait_until(lambda: self.row(sub)["status"] == "past_due", 20, message="past_due")
        page = u.get("/settings/billing").text
        self.assertIn("<p data-sub-status>Payment due: this month's renewal could not be"
                      " charged and will be tried again.", page)
        self.assertNotIn("Active: renews on", page)
        self.assertIn('data-action="cancel-subscription"', page)
        for step, ends in (("cancel", True), ("resume", False)):
            r = u.post(f"/api/subscriptions/{local}/{step}", {})
            self.assertStatus(r, 200, f"{step} while the renewal is unpaid")
            self.assertEqual((r.json["status"], r.json["cancelAtPeriodEnd"]),
                             ("past_due", ends))
            self.assertIs(self.stripe_sub(sub)["cancel_at_period_end"], ends)
        # paid after all: active again, and the page says so
        emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
        wait_until(lambda: self.row(sub)["status"] == "active", 20, message="active again")
        self.assertIn("<p data-sub-status>Active: renews on", u.get("/settings/billing").text)

    def test_a_trialing_plan_can_be_cancelled_as_billing_offers(self):
        # Billing shows a trialing plan with its Cancel button; the API takes
        # the same statuses (SUBSCRIPTION_LIVE), not active and past_due alone
        u = self.user()
        _, sub = self.settled(u)
        local = db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)
        db_exec("UPDATE subscriptions SET status = 'trialing' WHERE id = %s", local)
        self.assertIn('data-action="cancel-subscription"', u.get("/settings/billing").text)
        r = u.post(f"/api/subscriptions/{local}/cancel", {})
        self.assertStatus(r, 200, "cancel while trialing")
        self.assertIs(r.json["cancelAtPeriodEnd"], True)
        self.assertIs(self.stripe_sub(sub)["cancel_at_period_end"], True)
        self.assertEqual(self.row(sub)["cancel_at_period_end"], 1)

    def test_concurrent_cancels_and_resumes_end_where_stripe_is(self):
        """Two tabs clicking at once: 8 cancels and 8 resumes in parallel
        reach Stripe in any order; once Stripe's news of each is handled,
        our row says what Stripe says, and every change was audited."""
        u = self.user()
        _, sub = self.settled(u)
        local = db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)
        steps = ["cancel", "resume"] * 8
        out = parallel(lambda step: u.post(f"/api/subscriptions/{local}/{step}", {}), steps)
        self.assertEachStatus(steps, out, 200)
        changes = events_about(sub, "customer.subscription.updated")
        self.assertGreaterEqual(len(changes), 1)
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(sub)), 30,
                   message="every change's event handled")
        ends = self.stripe_sub(sub)["cancel_at_period_end"]
        self.assertEqual(self.row(sub)["cancel_at_period_end"], int(ends))
        audited = (audit_count("SUBSCRIPTION_CANCEL_REQUESTED", str(local)) +
                   audit_count("SUBSCRIPTION_RESUMED", str(local)))
        self.assertEqual(audited, len(changes))

    def test_a_copy_fetched_before_the_resume_cannot_cancel_again(self):
        """The cancel's customer.subscription.updated is handled late: its
        handler fetches the subscription (still cancelling), and the answer
        is slow; the user keeps the plan meanwhile.  The older copy, written
        after the resume, must leave the plan renewing."""
        u = self.user()
        _, sub = self.settled(u)
        local = db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)
        emu_hold()
        self.addCleanup(reset_webhooks)
        self.assertStatus(u.post(f"/api/subscriptions/{local}/cancel", {}), 200, "cancel")
        upd = events_about(sub, "customer.subscription.updated")[-1]
        landed = self.deliver_late(upd["id"], f"/v1/subscriptions/{sub}")
        r = u.post(f"/api/subscriptions/{local}/resume", {})
        self.assertStatus(r, 200, "resume while the older copy is on its way")
        self.assertIs(r.json["cancelAtPeriodEnd"], False)
        self.assertEqual(landed(), [200])
        self.assertTrue(event_processed(upd["id"]))
        self.assertEqual(self.row(sub)["cancel_at_period_end"], 0)
        self.assertIs(self.stripe_sub(sub)["cancel_at_period_end"], False)

    def test_a_late_past_due_copy_cannot_undo_a_recovery(self):
        """A failed renewal's customer.subscription.updated is handled late:
        its copy says past_due and its answer is slow; the plan recovers
        meanwhile (the renewal is paid, its own update handled).  The older
        copy, written last, must leave the plan active, as Stripe has it."""
        u = self.user()
        _, sub = self.settled(u)
        emu_hold()
        self.addCleanup(reset_webhooks)
        emu_ok("POST", f"/_emu/subscriptions/{sub}/fail_renewal")
        upd = events_about(sub, "customer.subscription.updated")[-1]
        landed = self.deliver_late(upd["id"], f"/v1/subscriptions/{sub}")
        emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
        self.assertEqual(self.stripe_sub(sub)["status"], "active")
        recovered = events_about(sub, "customer.subscription.updated")[-1]
        self.assertNotEqual(recovered["id"], upd["id"])
        self.assertEqual(emu_deliver(recovered["id"])["statuses"], [200])
        self.assertEqual(self.row(sub)["status"], "active")
        self.assertEqual(landed(), [200])
        self.assertEqual(self.row(sub)["status"], "active", "a late copy undid the recovery")

    def test_a_copy_that_came_with_an_invoice_cannot_cancel_a_resumed_plan(self):
        """A failed renewal's invoice.payment_failed fetches the invoice with
        the subscription (still cancelling) and the answer is slow; the user
        keeps the plan meanwhile.  That copy has no ticket: it brings the
        status (past_due), not the cancel back."""
        u = self.user()
        _, sub = self.settled(u)
        local = db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)
        self.assertStatus(u.post(f"/api/subscriptions/{local}/cancel", {}), 200, "cancel")
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(sub)), 20,
                   message="the cancel's event handled")
        emu_hold()
        self.addCleanup(reset_webhooks)
        inv = emu_ok("POST", f"/_emu/subscriptions/{sub}/fail_renewal")
        failed = events_about(inv["id"], "invoice.payment_failed")[-1]
        landed = self.deliver_late(failed["id"], f"/v1/invoices/{inv['id']}")
        r = u.post(f"/api/subscriptions/{local}/resume", {})
        self.assertStatus(r, 200, "resume while the invoice's copy is on its way")
        self.assertIs(r.json["cancelAtPeriodEnd"], False)
        self.assertEqual(landed(), [200])
        self.assertEqual(self.row(sub)["cancel_at_period_end"], 0)
        self.assertEqual(self.row(sub)["status"], "past_due")
        self.assertIs(self.stripe_sub(sub)["cancel_at_period_end"], False)

    def test_the_end_of_a_period_keeps_its_cancel_when_that_news_comes_last(self):
        """Cancelled at period end in Stripe (not here), the period ended, and
        the deletion handled before the update: the row is canceled and still
        says it ended at the period's end, as Stripe does."""
        u = self.user()
        _, sub = self.settled(u)
        emu_hold()
        stripe_api("POST", f"/v1/subscriptions/{sub}", {"cancel_at_period_end": "true"})
        emu_ok("POST", f"/_emu/subscriptions/{sub}/end_period")
        released = emu_release("reverse")
        self.assertEqual(len(released["released"]), 2)
        self.assertEqual(released["statuses"], [200, 200])
        self.assertEqual([e["type"] for e in events_about(sub)][-2:],
                         ["customer.subscription.updated", "customer.subscription.deleted"])
        s = self.stripe_sub(sub)
        self.assertEqual((s["status"], s["cancel_at_period_end"]), ("canceled", True))
        self.assertEqual(self.row(sub), {"status": "canceled", "period_end": s["current_period_end"],
                                         "cancel_at_period_end": 1})

    def test_the_pro_plan_gives_the_premium_tier_while_it_stands(self):
        """Pro includes the premium (firewall) tier, so its subscriber can buy
        Voice AI Therapy: from the first payment, through a renewal being
        retried (past_due), until Stripe ends the plan.  Starter does not;
        an admin's grant stands on its own."""
        u, starter, granted = self.user(), self.user(), self.user()
        self.assertEqual(u.get("/api/me").json["tier"], "free")
        self.assertError(u.post("/api/stripe/voice-therapy", {}), 403)
        _, sub = self.subscribe(u, plan="pro")
        self.assertEqual(u.get("/api/me").json["tier"], "firewall")
        self.assertIn('data-action="buy-voice"', u.get("/").text)
        self.assertIn('<a href="/#voice-therapy">Buy minutes</a>', u.get("/dashboard").text)
        buy_voice(u)
        self.subscribe(starter)
        self.assertEqual(starter.get("/api/me").json["tier"], "free")
        self.assertError(starter.post("/api/stripe/voice-therapy", {}), 403)
        emu_ok("POST", f"/_emu/subscriptions/{sub}/fail_renewal")
        wait_until(lambda: self.row(sub)["status"] == "past_due", 20, message="past_due")
        self.assertEqual(u.get("/api/me").json["tier"], "firewall", "kept while retried")
        self.assertStatus(stripe_api("DELETE", f"/v1/subscriptions/{sub}"), 200, "ended")
        wait_until(lambda: self.row(sub)["status"] == "canceled", 20, message="canceled")
        self.assertEqual(u.get("/api/me").json["tier"], "free")
        self.assertError(u.post("/api/stripe/voice-therapy", {}), 403)
        self.assertEqual(db_row("SELECT tier, plan_tier FROM users WHERE id = %s", u.id),
                         {"tier": "free", "plan_tier": "free"})
        # the minutes bought stay usable once the plan has ended
        self.assertIn('data-action="voice-start"', u.get("/voice").text)
        self.assertIn('<a href="/voice">Start a session</a>', u.get("/dashboard").text)
        self.assertStatus(u.post("/api/voice-therapy/start", {}), 200, "start without the plan")
        self.assertIn('<a href="/settings/billing">Comes with a premium plan</a>',
                      starter.get("/dashboard").text)
        billing = starter.get("/settings/billing").text
        self.assertIn("Voice AI Therapy comes with the Pro plan.</p>", billing)
        self.assertIn('data-plan="pro">Change to Pro at renewal</button>', billing)
        self.assertIn("Voice AI Therapy comes with the Pro plan.", starter.get("/voice").text)
        self.assertNotIn('data-action="voice-start"', starter.get("/voice").text)
        promote(granted, tier="firewall")
        _, gsub = self.subscribe(granted, plan="pro")
        self.assertStatus(stripe_api("DELETE", f"/v1/subscriptions/{gsub}"), 200, "ended")
        wait_until(lambda: self.row(gsub)["status"] == "canceled", 20, message="canceled")
        self.assertEqual(granted.get("/api/me").json["tier"], "firewall", "the grant stands")

    def test_cancel_at_period_end_then_canceled_and_final(self):
        u, other = self.user(), self.user()
        sid, sub = self.subscribe(u)
        local = db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)
        self.assertError(other.post(f"/api/subscriptions/{local}/cancel", {}), 404,
                         "subscription_not_found")
        r = u.post(f"/api/subscriptions/{local}/cancel", {})
        self.assertStatus(r, 200, "cancel at period end")
        self.assertEqual((r.json["status"], r.json["cancelAtPeriodEnd"]), ("active", True))
        self.assertIs(self.stripe_sub(sub)["cancel_at_period_end"], True)
        nonce = db_scalar("SELECT stripe_nonce FROM subscriptions WHERE id = %s", local)
        self.assertRegex(nonce, r"^[A-Za-z0-9_-]{43}$")
        upd = events_about(sub, "customer.subscription.updated")
        self.assertRegex(upd[-1]["request"]["idempotency_key"],
                         rf"^subscription-{local}-{nonce}-cancel-at-period-end-[1-9][0-9]*$")
        self.assertEqual(self.row(sub)["cancel_at_period_end"], 1)
        lst = u.get("/api/credits/subscriptions").json["subscriptions"]
        self.assertEqual([(x["id"], x["status"], x["cancelAtPeriodEnd"]) for x in lst],
                         [(local, "active", 1)])
        # the period ends: Stripe cancels it, customer.subscription.deleted
        emu_ok("POST", f"/_emu/subscriptions/{sub}/end_period")
        wait_until(lambda: self.row(sub)["status"] == "canceled", 20, message="canceled")
        self.assertError(u.post(f"/api/subscriptions/{local}/cancel", {}), 409,
                         "subscription_not_active")
        # every older event about it, delivered again newest first: still canceled
        evs = events_about(sub) + [e for e in events_about(sid)]
        for e in sorted(evs, key=lambda e: e["created"], reverse=True):
            self.assertEqual(emu_deliver(e["id"])["statuses"], [200], e["type"])
        for e in invoice_events(sub):
            self.assertEqual(emu_deliver(e["id"])["statuses"], [200], e["type"])
        self.assertEqual(self.row(sub)["status"], "canceled")
        self.assertEqual(len(allocations(sub)), 1)

    def test_a_refund_handled_before_its_invoice_takes_back_what_the_invoice_grants(self):
        """A renewal refunded, and the refund's event handled before the
        invoice's (both held, then delivered newest first): the invoice is
        allocated first, once, and its credits taken back."""
        u = self.user()
        per = STARTER_CREDITS * rate()
        _, sub = self.settled(u)
        emu_hold()
        inv2 = emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
        r = stripe_api("POST", "/v1/refunds", {"charge": inv2["charge"]})
        self.assertEqual(r.status, 200, r)
        release_newest_first((inv2["charge"], "charge.refunded"), (inv2["id"], "invoice.paid"))
        self.assertEqual(db_rows("SELECT credits, credits_reversed FROM subscription_allocations"
                                 " WHERE stripe_invoice_id = %s", inv2["id"]),
                         [{"credits": per, "credits_reversed": per}])
        self.assertEqual([(t["credits_delta"], t["transaction_type"]) for t in ledger(u.id)],
                         [(per, "allocation"), (per, "allocation"), (-per, "refund")])
        self.assertEqual(balance(u.id), per)
        self.assertEqual(replayed(u.id), (0, []))

    def test_a_disputed_renewal_freezes_its_unspent_credits_and_lost_takes_them_back(self):
        from .test_credits import consume
        u = self.user()
        per = STARTER_CREDITS * rate()
        sub, inv2 = self.renewed(u)
        spent = per + per // 4
        consume(u.id, spent)
        left = 2 * per - spent          # less than the renewal granted: all of it frozen
        dp = dispute_charge(inv2["charge"])
        self.assertEqual(db_row("SELECT user_id, stripe_session_id, product, units_frozen"
                                " FROM disputes WHERE stripe_dispute_id = %s", dp),
                         {"user_id": u.id, "stripe_session_id": None, "product": "subscription",
                          "units_frozen": left})
        self.assertEqual(db_row("SELECT balance, frozen FROM user_credits WHERE user_id = %s",
                                u.id), {"balance": left, "frozen": left})
        shown = u.get("/api/credits/balance").json
        self.assertEqual((shown["balance"], shown["available"], shown["frozen"]), (left, 0, left))
        close_dispute(dp, "lost")
        self.assertEqual(db_row("SELECT balance, frozen FROM user_credits WHERE user_id = %s",
                                u.id), {"balance": 0, "frozen": 0})
        self.assertEqual(dispute_steps(dp), [("freeze", "subscription", left, 0),
                                             ("reverse", "subscription", left, per - left)])
        self.assertEqual(db_rows("SELECT credits, credits_reversed FROM subscription_allocations"
                                 " WHERE stripe_invoice_id = %s", inv2["id"]),
                         [{"credits": per, "credits_reversed": left}])
        want = [(per, "allocation", "subscription_renewal"),
                (per, "allocation", "subscription_renewal"),
                (-spent, "consumption", "integration_test"),
                (0, "adjustment", "dispute_freeze"),
                (0, "adjustment", "dispute_release"),
                (-left, "refund", "subscription_refund")]
        got = lambda: [(t["credits_delta"], t["transaction_type"], t["activity_type"])
                       for t in ledger(u.id)]
        self.assertEqual(got(), want)
        redeliver(dp, inv2["id"])
        self.assertEqual(got(), want)
        self.assertEqual(replayed(u.id), (0, []))

    def test_a_dispute_handled_before_its_invoice_freezes_and_won_releases(self):
        u = self.user()
        per = STARTER_CREDITS * rate()
        _, sub = self.settled(u)
        emu_hold()
        inv2 = emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
        dp = emu_ok("POST", f"/_emu/charges/{inv2['charge']}/dispute", {})["id"]
        release_newest_first((dp, "charge.dispute.created"), (inv2["id"], "invoice.paid"))
        self.assertEqual(len(allocations(sub)), 2)
        self.assertEqual(db_row("SELECT user_id, product, units_frozen FROM disputes"
                                " WHERE stripe_dispute_id = %s", dp),
                         {"user_id": u.id, "product": "subscription", "units_frozen": per})
        self.assertEqual(db_row("SELECT balance, frozen FROM user_credits WHERE user_id = %s",
                                u.id), {"balance": 2 * per, "frozen": per})
        month = f"{per // rate():,}"        # whole credits, as the pages show them
        for path in ("/dashboard", "/settings/billing"):
            page = u.get(path).text
            self.assertIn(f"data-balance>{month}</p>", page, path)
            self.assertIn(f"data-held>{month} more held while a payment of yours is disputed</p>",
                          page, path)
        close_dispute(dp, "won")
        self.assertEqual(db_row("SELECT balance, frozen FROM user_credits WHERE user_id = %s",
                                u.id), {"balance": 2 * per, "frozen": 0})
        for path in ("/dashboard", "/settings/billing"):
            page = u.get(path).text
            self.assertIn(f"data-balance>{2 * per // rate():,}</p>", page, path)
            self.assertNotIn("data-held", page, path)
        self.assertEqual(dispute_steps(dp), [("freeze", "subscription", per, 0),
                                             ("release", "subscription", per, 0)])

    def test_refunded_invoice_takes_back_its_credits_not_below_spent(self):
        from .test_credits import consume
        u = self.user()
        per = STARTER_CREDITS * rate()
        sub, inv2 = self.renewed(u)
        self.assertEqual(balance(u.id), 2 * per)
        # half of the renewal refunded: half its credits back
        r = stripe_api("POST", "/v1/refunds", {"charge": inv2["charge"], "amount": 500})
        self.assertEqual(r.status, 200, r)
        wait_until(lambda: balance(u.id) == 2 * per - per // 2, 20, message="half reversed")
        # the user spends all but 1,000 tokens; the rest refunded takes only those
        consume(u.id, 2 * per - per // 2 - 1000)
        r = stripe_api("POST", "/v1/refunds", {"charge": inv2["charge"]})
        self.assertEqual(r.status, 200, r)
        wait_until(lambda: balance(u.id) == 0, 20, message="the rest reversed")
        tx = ledger(u.id)
        self.assertEqual([(t["credits_delta"], t["transaction_type"], t["activity_type"])
                          for t in tx],
                         [(per, "allocation", "subscription_renewal"),
                          (per, "allocation", "subscription_renewal"),
                          (-(per // 2), "refund", "subscription_refund"),
                          (-(2 * per - per // 2 - 1000), "consumption", "integration_test"),
                          (-1000, "refund", "subscription_refund")])
        self.assertEqual(db_rows("SELECT credits, credits_reversed FROM subscription_allocations"
                                 " WHERE stripe_invoice_id = %s", inv2["id"]),
                         [{"credits": per, "credits_reversed": per // 2 + 1000}])
        self.assertEqual(sorted(x["units_reversed"] for x in db_rows(
            "SELECT units_reversed FROM payment_reversals WHERE product = 'subscription'"
            " AND stripe_refund_id LIKE %s", inv2["charge"] + "/%")), [1000, per // 2])
        # the refund events again: nothing more
        for e in events_about(inv2["charge"], "charge.refunded"):
            self.assertEqual(emu_deliver(e["id"])["statuses"], [200])
        self.assertEqual(balance(u.id), 0)
        self.assertEqual(len(ledger(u.id)), 5)


def charge_of(session_id):
    return latest_charge(stripe_session(session_id)["payment_intent"])


def dispute_charge(charge, inquiry=False):
    """A dispute of the charge (or an inquiry), opened and processed; returns its id."""
    dp = emu_ok("POST", f"/_emu/charges/{charge}/dispute", {"inquiry": inquiry})["id"]
    wait_until(lambda: db_row("SELECT id FROM disputes WHERE stripe_dispute_id = %s",
                              dp) is not None and all(
        event_processed(e["id"]) for e in events_about(dp)), 20, message="dispute opened")
    return dp


def dispute_intent(pi):
    """A dispute of the PaymentIntent's charge, opened and processed; returns its id."""
    return dispute_charge(latest_charge(pi))


def open_dispute(session_id):
    """A dispute of the session's charge, opened and processed; returns its id."""
    return dispute_charge(charge_of(session_id))


def close_dispute(dp, status):
    emu_ok("POST", f"/_emu/disputes/{dp}/close", {"status": status})
    wait_until(lambda: all(event_processed(e["id"]) for e in events_about(dp)) and db_scalar(
        "SELECT closed_at IS NOT NULL FROM disputes WHERE stripe_dispute_id = %s", dp) == 1,
        20, message="dispute closed")


def escalate_dispute(dp):
    """The bank turns inquiry dp into a chargeback; waits until that is processed."""
    emu_ok("POST", f"/_emu/disputes/{dp}/escalate")
    wait_until(lambda: all(event_processed(e["id"]) for e in events_about(dp)) and db_scalar(
        "SELECT status FROM disputes WHERE stripe_dispute_id = %s", dp) == "needs_response",
        20, message="dispute escalated")


def newest_refund_of(pi):
    """The id of the PaymentIntent's newest refund at Stripe."""
    return stripe_api("GET", "/v1/refunds", {"payment_intent": pi}).json["data"][0]["id"]


def redeliver(*object_ids):
    """Every event about the objects delivered once more; each answered 200."""
    for e in [e for i in object_ids for e in events_about(i)]:
        statuses = emu_deliver(e["id"])["statuses"]
        if statuses != [200]:
            raise AssertionError(f"{e['type']} {e['id']} delivered again: {statuses}")


def dispute_steps(dp):
    return [(x["step"], x["product"], x["units"], x["units_lost"]) for x in db_rows(
        "SELECT step, product, units, units_lost FROM dispute_steps"
        " WHERE stripe_dispute_id = %s ORDER BY id", dp)]


class DisputeTests(VoiceCase):
    """A dispute freezes what its payment granted and is unspent; won releases
    it, lost takes it back like a refund and records the rest as the loss."""

    def dispute(self, session_id):
        return open_dispute(session_id)

    def test_a_dispute_handled_before_its_checkout_freezes_what_the_purchase_grants(self):
        """The dispute's event is handled before the checkout's own (both
        held, then delivered newest first): the purchase is fulfilled first,
        once, and its hours frozen."""
        u = register()
        sid = start_live_help(u, 2)
        emu_hold()
        emu_pay(sid)
        dp = emu_ok("POST", f"/_emu/charges/{charge_of(sid)}/dispute", {})["id"]
        release_newest_first((dp, "charge.dispute.created"),
                             (sid, "checkout.session.completed"))
        self.assertEqual(len(events_about(sid, "checkout.session.completed")), 1)
        self.assertEqual(db_row("SELECT user_id, stripe_session_id, product, units_frozen"
                                " FROM disputes WHERE stripe_dispute_id = %s", dp),
                         {"user_id": u.id, "stripe_session_id": sid, "product": "live_help",
                          "units_frozen": 2})
        self.assertEqual(dispute_steps(dp), [("freeze", "live_help", 2, 0)])
        self.assertEqual(db_row("SELECT hours_total, hours_used, hours_frozen FROM"
                                " user_live_help_totals WHERE user_id = %s", u.id),
                         {"hours_total": 2, "hours_used": 0, "hours_frozen": 2})
        self.assertEqual(audit_count("PAYMENT_FULFILLED", sid), 1)
        self.assertEqual(u.get("/api/live-help-hour").json["remainingHours"], 0)

    def test_voice_minutes_frozen_then_released_when_won(self):
        u = firewall_user()
        sid = buy_voice(u)
        s = self.start(u).json["sessionId"]
        self.assertEqual(self.end(u, s, 300).json["minutesDeducted"], 5)
        dp = self.dispute(sid)
        self.assertEqual(db_row("SELECT minutes_remaining, minutes_frozen FROM"
                                " voice_therapy_credits WHERE stripe_session_id = %s", sid),
                         {"minutes_remaining": MINUTES - 5, "minutes_frozen": MINUTES - 5})
        self.assertEqual(self.credits(u)["remainingMinutes"], 0)
        self.assertError(u.post("/api/voice-therapy/start", {}), 402, "no_voice_credits")
        self.assertEqual(dispute_steps(dp), [("freeze", "voice_therapy", MINUTES - 5, 0)])
        # the pages say where the minutes are
        for page in ("/dashboard", "/voice"):
            self.assertIn(f"data-voice-held>{MINUTES - 5} more minutes held", u.get(page).text)
        close_dispute(dp, "won")
        self.assertNotIn("data-voice-held", u.get("/dashboard").text)
        self.assertEqual(self.credits(u)["remainingMinutes"], MINUTES - 5)
        self.assertEqual(dispute_steps(dp), [("freeze", "voice_therapy", MINUTES - 5, 0),
                                          ("release", "voice_therapy", MINUTES - 5, 0)])
        redeliver(dp)
        self.assertEqual(len(dispute_steps(dp)), 2)
        self.assertEqual(self.credits(u)["remainingMinutes"], MINUTES - 5)
        self.assertEqual(self.start(u).json["availableMinutes"], MINUTES - 5)

    def test_an_inquiry_closed_without_a_chargeback_releases_what_it_froze(self):
        """An inquiry (warning_needs_response) freezes like a dispute; closed
        as warning_closed the money stays with us, so the hours come back."""
        u = register()
        sid = bought_live_help(u, 3)
        dp = dispute_charge(charge_of(sid), inquiry=True)
        self.assertEqual(u.get("/api/live-help-hour").json["remainingHours"], 0)
        close_dispute(dp, "warning_closed")
        self.assertEqual(db_row("SELECT hours_total, hours_used, hours_frozen FROM"
                                " user_live_help_totals WHERE user_id = %s", u.id),
                         {"hours_total": 3, "hours_used": 0, "hours_frozen": 0})
        self.assertEqual(db_row("SELECT status, units_frozen, units_reversed FROM disputes"
                                " WHERE stripe_dispute_id = %s", dp),
                         {"status": "warning_closed", "units_frozen": 3, "units_reversed": 0})
        self.assertEqual(dispute_steps(dp), [("freeze", "live_help", 3, 0),
                                          ("release", "live_help", 3, 0)])
        self.assertEqual(u.get("/api/live-help-hour").json["remainingHours"], 3)
        redeliver(dp)
        self.assertEqual(len(dispute_steps(dp)), 2)

    def test_live_help_lost_takes_back_the_unused_hours(self):
        u = register()
        sid = bought_live_help(u, 3)
        self.assertStatus(u.post(f"/api/live-help-hour/{new_slot(5)}/book", {}), 201)
        dp = self.dispute(sid)
        self.assertEqual(db_row("SELECT hours_total, hours_used, hours_frozen FROM"
                                " user_live_help_totals WHERE user_id = %s", u.id),
                         {"hours_total": 3, "hours_used": 1, "hours_frozen": 2})
        self.assertEqual(u.get("/api/live-help-hour").json["remainingHours"], 0)
        self.assertError(u.post(f"/api/live-help-hour/{new_slot(5)}/book", {}), 402,
                         "no_hours_left")
        close_dispute(dp, "lost")
        self.assertEqual(db_row("SELECT hours_total, hours_used, hours_frozen FROM"
                                " user_live_help_totals WHERE user_id = %s", u.id),
                         {"hours_total": 1, "hours_used": 1, "hours_frozen": 0})
        self.assertEqual(db_row("SELECT status, product, units_frozen, units_reversed,"
                                " units_lost FROM disputes WHERE stripe_dispute_id = %s", dp),
                         {"status": "lost", "product": "live_help", "units_frozen": 2,
                          "units_reversed": 2, "units_lost": 1})
        self.assertEqual(dispute_steps(dp), [("freeze", "live_help", 2, 0),
                                          ("reverse", "live_help", 2, 1)])
        self.assertEqual(db_scalar("SELECT hours_refunded FROM live_help_purchases"
                                   " WHERE stripe_session_id = %s", sid), 2)
        redeliver(dp)
        self.assertEqual(len(dispute_steps(dp)), 2)
        self.assertEqual(db_scalar("SELECT hours_total FROM user_live_help_totals"
                                   " WHERE user_id = %s", u.id), 1)


def paid_with(sid):
    """(PaymentIntent, cents paid) of a Checkout purchase."""
    row = db_row("SELECT payment_intent_id, amount_cents FROM checkout_sessions"
                 " WHERE stripe_session_id = %s", sid)
    return row["payment_intent_id"], row["amount_cents"]


def reversed_units(sid):
    return [r["units_reversed"] for r in db_rows(
        "SELECT units_reversed FROM payment_reversals WHERE stripe_session_id = %s"
        " ORDER BY id", sid)]


class RefundShareTests(VoiceCase):
    """A refund takes its share of what the payment granted, from what an
    open dispute holds too; Voice minutes in proportion, after the open
    session is charged; a loss after a refund counts only what still stood."""

    def credit(self, sid):
        return db_row("SELECT minutes_remaining, minutes_refunded, minutes_frozen, is_active"
                      " FROM voice_therapy_credits WHERE stripe_session_id = %s", sid)

    def held(self, u):
        return db_row("SELECT balance, frozen FROM user_credits WHERE user_id = %s", u.id)

    def frozen_by(self, dp):
        return db_scalar("SELECT units_frozen FROM disputes WHERE stripe_dispute_id = %s", dp)

    def test_partial_refunds_of_voice_minutes_take_their_share_never_used_minutes(self):
        u = firewall_user()
        sid = buy_voice(u)
        self.assertEqual(self.end(u, self.start(u).json["sessionId"], 300)
                         .json["minutesDeducted"], 5)
        pi, paid = paid_with(sid)
        part = paid * 2 // 5
        share = MINUTES * part // paid
        self.assertGreater(share, 0)
        refund_processed(pi, part)
        self.assertEqual(self.credit(sid), {"minutes_remaining": MINUTES - 5 - share,
                                            "minutes_refunded": share, "minutes_frozen": 0,
                                            "is_active": 1})
        self.assertEqual(self.credits(u)["remainingMinutes"], MINUTES - 5 - share)
        self.assertEqual(checkout_rows(u.id)[0]["status"], "fulfilled")
        # four fifths refunded: its share is more than is left unused, so what is left
        refund_processed(pi, part)
        self.assertEqual(self.credit(sid), {"minutes_remaining": 0, "minutes_refunded": MINUTES - 5,
                                            "minutes_frozen": 0, "is_active": 0})
        refund_processed(pi)
        self.assertEqual(reversed_units(sid), [share, MINUTES - 5 - share, 0])
        self.assertEqual(checkout_rows(u.id)[0]["status"], "refunded")
        self.assertEqual(self.credits(u)["remainingMinutes"], 0)
        self.assertUsageConsistent(u.id)

    def test_a_refund_while_an_inquiry_is_open_takes_what_it_holds(self):
        """An inquiry is often answered with a refund: the refund takes the
        held credits, so the inquiry's close has nothing left to release."""
        u = register()
        sid = buy_pack(u, "boost-small")
        tokens = pack_tokens("boost-small")
        dp = dispute_charge(charge_of(sid), inquiry=True)
        self.assertEqual(self.held(u), {"balance": tokens, "frozen": tokens})
        pi, paid = paid_with(sid)
        half = paid // 2
        took = tokens * half // paid
        refund_processed(pi, half)
        self.assertEqual(self.held(u), {"balance": tokens - took, "frozen": tokens - took})
        self.assertEqual(self.frozen_by(dp), tokens - took)
        refund_processed(pi)
        self.assertEqual(self.held(u), {"balance": 0, "frozen": 0})
        self.assertEqual(self.frozen_by(dp), 0)
        self.assertEqual(reversed_units(sid), [took, tokens - took])
        close_dispute(dp, "warning_closed")
        self.assertEqual(self.held(u), {"balance": 0, "frozen": 0})
        self.assertEqual(dispute_steps(dp), [("freeze", "boost_pack", tokens, 0),
                                          ("release", "boost_pack", 0, 0)])

    def test_live_help_hours_held_by_an_inquiry_are_taken_by_its_refund(self):
        u = register()
        sid = bought_live_help(u, 3)
        dp = dispute_charge(charge_of(sid), inquiry=True)
        pi, _ = paid_with(sid)
        refund_processed(pi)
        self.assertEqual(db_row("SELECT hours_total, hours_used, hours_frozen FROM"
                                " user_live_help_totals WHERE user_id = %s", u.id),
                         {"hours_total": 0, "hours_used": 0, "hours_frozen": 0})
        self.assertEqual(self.frozen_by(dp), 0)
        close_dispute(dp, "warning_closed")
        self.assertEqual(u.get("/api/live-help-hour").json["remainingHours"], 0)
        self.assertEqual(reversed_units(sid), [3])

    def test_a_dispute_charges_the_open_voice_session_before_it_freezes(self):
        u = firewall_user()
        sid = buy_voice(u)
        s = self.start(u).json["sessionId"]
        run_for(s, 130)
        dp = self.dispute_of(sid)
        row = session_row(s)
        self.assertEqual((row["status"], row["ended_by"], row["minutes_deducted"]),
                         ("ended", "server", 3))
        self.assertEqual(self.credit(sid), {"minutes_remaining": MINUTES - 3,
                                            "minutes_refunded": 0,
                                            "minutes_frozen": MINUTES - 3, "is_active": 1})
        close_dispute(dp, "won")
        self.assertEqual(self.credits(u)["remainingMinutes"], MINUTES - 3)
        self.assertUsageConsistent(u.id)

    def test_a_loss_after_a_partial_refund_counts_only_what_still_stood(self):
        u = register()
        sid = buy_pack(u, "boost-small")
        tokens = pack_tokens("boost-small")
        pi, paid = paid_with(sid)
        took = tokens * (paid // 2) // paid
        refund_processed(pi, paid // 2)
        dp = self.dispute_of(sid)
        close_dispute(dp, "lost")
        self.assertEqual(db_row("SELECT units_frozen, units_reversed, units_lost FROM disputes"
                                " WHERE stripe_dispute_id = %s", dp),
                         {"units_frozen": tokens - took, "units_reversed": tokens - took,
                          "units_lost": 0})
        self.assertEqual(self.held(u), {"balance": 0, "frozen": 0})

    def test_a_dispute_won_leaves_a_session_on_other_minutes_running(self):
        u = firewall_user()
        disputed = buy_voice(u)
        buy_voice(u)
        dp = self.dispute_of(disputed)
        self.assertEqual(self.credit(disputed)["minutes_frozen"], MINUTES)
        s = self.start(u).json["sessionId"]
        run_for(s, 60)
        close_dispute(dp, "won")
        self.assertEqual(session_row(s)["status"], "active", "the won dispute ended the session")
        self.assertEqual(self.credit(disputed)["minutes_frozen"], 0)

    def test_a_dispute_lost_after_a_full_refund_loses_nothing(self):
        u = firewall_user()
        sid = buy_voice(u)
        pi, _ = paid_with(sid)
        refund_processed(pi)
        dp = self.dispute_of(sid)
        close_dispute(dp, "lost")
        self.assertEqual(db_row("SELECT units_reversed, units_lost FROM disputes"
                                " WHERE stripe_dispute_id = %s", dp),
                         {"units_reversed": 0, "units_lost": 0})

    def dispute_of(self, sid):
        return open_dispute(sid)


class BookingDisputeTests(BookingCase):
    """A dispute on a booking's payment: owed to nobody while open; won makes
    it owed again; lost reverses the payment like a full refund."""


    def paid_booking(self):
        """A customer, an expert at 100 an hour and their paid 30-minute
        booking (3,000 cents): (customer, expert id, booking id, intent)."""
        a, expert_user = register(), register()
        eid = new_expert(100, user=expert_user)
        promote(expert_user, role="expert")
        bid, pi = self.paid(a, eid)
        return a, eid, bid, pi

    def completed(self, customer, expert_user, eid):
        bid, pi = self.paid(customer, eid)
        started(bid)
        self.assertStatus(expert_user.post(f"/api/bookings/{bid}/complete", {}), 200)
        return bid, pi

    def owed(self, adm, eid):
        r = adm.get("/api/admin/payouts/pending")
        self.assertStatus(r, 200, "pending payouts")
        return [(e["amountCents"], e["bookingIds"]) for e in r.json["experts"]
                if e["expertId"] == eid]

    def test_open_then_won_is_owed_again(self):
        adm, a, expert_user = admin(), register(), register()
        eid = new_expert(100, user=expert_user)          # 30 min: 3000, fee 300, payout 2700
        bid, pi = self.completed(a, expert_user, eid)
        self.assertEqual(self.owed(adm, eid), [(2700, [bid])])
        dp = dispute_intent(pi)
        self.assertEqual(db_row("SELECT booking_id, user_id, product, amount_cents, units_frozen,"
                                " status FROM disputes WHERE stripe_dispute_id = %s", dp),
                         {"booking_id": bid, "user_id": a.id, "product": "booking",
                          "amount_cents": 3000, "units_frozen": 2700,
                          "status": "needs_response"})
        self.assertEqual(booking_row(bid)["dispute_status"], "open")
        self.assertEqual(payment_row(bid)["status"], "succeeded")
        self.assertEqual(self.owed(adm, eid), [], "a disputed booking is owed to nobody")
        self.assertError(adm.post("/api/admin/payouts", {"expertId": eid}), 409, "nothing_to_pay")
        self.assertEqual(dispute_steps(dp), [("freeze", "booking", 2700, 0)])
        redeliver(dp)
        self.assertEqual(dispute_steps(dp), [("freeze", "booking", 2700, 0)])
        close_dispute(dp, "won")
        self.assertEqual(booking_row(bid)["dispute_status"], "won")
        self.assertEqual(dispute_steps(dp), [("freeze", "booking", 2700, 0),
                                          ("release", "booking", 2700, 0)])
        self.assertEqual(self.owed(adm, eid), [(2700, [bid])], "won: owed again")
        redeliver(dp)
        self.assertEqual(len(dispute_steps(dp)), 2)
        self.assertEqual(audit_count("BOOKING_DISPUTE", str(bid)), 2)
        self.assertEqual(refund_rows(bid), [])
        r = adm.post("/api/admin/payouts", {"expertId": eid})
        self.assertStatus(r, 201, "payout after the dispute was won")
        self.assertEqual(r.json["payout"]["amountCents"], 2700)

    def test_a_dispute_lost_before_the_payments_success_is_handled(self):
        """Stripe's events come newest first: the lost dispute before the
        payment's success.  The payment is reversed and the booking gives
        its time up; the late success schedules nothing."""
        adm, a = admin(), register()
        eid = new_expert(100)                            # 30 min: 3000
        j = self.created(a, eid)
        bid, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        emu_hold()
        emu_succeed(pi)
        charge = latest_charge(pi)
        dp = emu_ok("POST", f"/_emu/charges/{charge}/dispute", {})["id"]
        emu_ok("POST", f"/_emu/disputes/{dp}/close", {"status": "lost"})
        release_newest_first((dp, "charge.dispute.closed"), (pi, "payment_intent.succeeded"))
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about([pi, dp])), 20,
                   message="events processed")
        b = booking_row(bid)
        self.assertEqual((b["status"], b["dispute_status"], b["refunded_cents"],
                          b["fee_refunded_cents"], b["payout_refunded_cents"]),
                         ("payment_failed", "lost", 3000, 300, 2700))
        self.assertEqual(payment_row(bid)["status"], "refunded")
        self.assertEqual([(r["stripe_refund_id"], r["amount_cents"]) for r in refund_rows(bid)],
                         [(dp, 3000)])
        self.assertEqual(self.owed(adm, eid), [])
        self.assertEqual(audit_count("BOOKING_PAID", str(bid)), 0)
        # the success again, as confirm-payment would apply it: still nothing
        self.assertStatus(a.post(f"/api/bookings/{bid}/confirm-payment", {}), 200)
        self.assertEqual((booking_row(bid)["status"], payment_row(bid)["status"]),
                         ("payment_failed", "refunded"))

    def test_a_prevented_dispute_is_owed_again(self):
        adm, a, expert_user = admin(), register(), register()
        eid = new_expert(100, user=expert_user)
        bid, pi = self.completed(a, expert_user, eid)
        dp = dispute_intent(pi)
        self.assertEqual(self.owed(adm, eid), [])
        close_dispute(dp, "prevented")
        self.assertEqual(booking_row(bid)["dispute_status"], "won")
        self.assertEqual(payment_row(bid)["status"], "succeeded")
        self.assertEqual(dispute_steps(dp), [("freeze", "booking", 2700, 0),
                                          ("release", "booking", 2700, 0)])
        self.assertEqual(self.owed(adm, eid), [(2700, [bid])])

    def test_lost_reverses_the_payment_like_a_full_refund(self):
        adm, a, expert_user = admin(), register(), register()
        eid = new_expert(100, user=expert_user)
        bid, pi = self.completed(a, expert_user, eid)
        dp = dispute_intent(pi)
        close_dispute(dp, "lost")
        b = booking_row(bid)
        self.assertEqual((b["status"], b["dispute_status"], b["refunded_cents"],
                          b["fee_refunded_cents"], b["payout_refunded_cents"]),
                         ("completed", "lost", 3000, 300, 2700))
        self.assertEqual(payment_row(bid)["status"], "refunded")
        self.assertEqual([(x["stripe_refund_id"], x["amount_cents"], x["reason"])
                          for x in refund_rows(bid)], [(dp, 3000, "dispute_lost")])
        self.assertEqual(db_row("SELECT status, units_frozen, units_reversed, units_lost"
                                " FROM disputes WHERE stripe_dispute_id = %s", dp),
                         {"status": "lost", "units_frozen": 2700, "units_reversed": 3000,
                          "units_lost": 0})
        self.assertEqual(dispute_steps(dp), [("freeze", "booking", 2700, 0),
                                          ("reverse", "booking", 3000, 0)])
        self.assertEqual(self.owed(adm, eid), [])
        redeliver(dp)
        self.assertEqual(len(refund_rows(bid)), 1)
        self.assertEqual(len(dispute_steps(dp)), 2)
        self.assertEqual(audit_count("BOOKING_DISPUTE", str(bid)), 2)
        # status only forward: a won close arriving later changes nothing
        self.assertEqual(booking_row(bid)["dispute_status"], "lost")

    def test_a_chargeback_lost_before_the_start_cancels_the_booking(self):
        """The customer's bank took the money back before the session: the
        booking is cancelled, its time free for others, instead of staying
        scheduled for an expert who will not be paid; both pages say
        charged back, with nothing to cancel or move."""
        adm, a, other, expert_user = admin(), register(), register(), register()
        eid = new_expert(100, user=expert_user)
        promote(expert_user, role="expert")
        bid, pi = self.paid(a, eid)
        start = booking_row(bid)["start_time"].strftime("%Y-%m-%dT%H:%M:%SZ")
        close_dispute(dispute_intent(pi), "lost")
        b = booking_row(bid)
        self.assertEqual((b["status"], b["dispute_status"], b["refunded_cents"]),
                         ("cancelled_by_user", "lost", 3000))
        self.assertEqual([json.loads(x["details"]) for x in db_rows(
            "SELECT details FROM audit_log WHERE action = 'BOOKING_CANCEL_SETTLED'"
            " AND entity_id = %s", str(bid))], [{"refundedBy": "dispute"}])
        row = booking_page_row(a.get("/dashboard").text, bid)
        self.assertIn("<td data-status>Charged back</td>", row)
        self.assertIn("$30.00 back to you", row)
        self.assertNotIn('data-action="cancel-booking"', row)
        self.assertNotIn("data-move-booking", row)
        self.assertIn("<td data-status>Charged back</td>",
                      booking_page_row(expert_user.get("/expert/bookings").text, bid))
        self.assertEqual(self.owed(adm, eid), [])
        self.assertStatus(book(other, eid, start), 201, "the time is free again")
        self.assertEqual(replayed(a.id), (0, []))

    def test_a_booking_lost_after_its_payout_is_taken_back_from_the_next(self):
        """Paid out, then its payment lost to a dispute: the expert owes the
        payout back; the next payout takes it from what later bookings earn,
        each line recorded, the payout the sum of its lines."""
        adm, a, expert_user = admin(), register(), register()
        eid = new_expert(100, user=expert_user)              # 30 min: payout 2700
        bid, pi = self.completed(a, expert_user, eid)
        r = adm.post("/api/admin/payouts", {"expertId": eid, "amountCents": 2700})
        self.assertStatus(r, 201, "the first payout")
        close_dispute(dispute_intent(pi), "lost")
        self.assertEqual(booking_row(bid)["payout_refunded_cents"], 2700)
        self.assertEqual(self.owed(adm, eid), [(-2700, [bid])], "owed back")
        r = adm.post("/api/admin/payouts", {"expertId": eid})
        self.assertError(r, 409, "nothing_to_pay")
        self.assertIn("owes back $27.00", r.json["error"]["message"])
        # a later booking of 60 minutes earns 5400: the next payout is 5400 - 2700
        later, _ = self.paid(a, eid, minutes=60)
        started(later)
        self.assertStatus(expert_user.post(f"/api/bookings/{later}/complete", {}), 200)
        self.assertEqual(self.owed(adm, eid), [(2700, [bid, later])])
        r = adm.post("/api/admin/payouts", {"expertId": eid, "amountCents": 2700})
        self.assertStatus(r, 201, "the payout that takes it back")
        pid = r.json["payout"]["id"]
        self.assertEqual(db_rows("SELECT booking_id, amount_cents FROM payout_items"
                                 " WHERE payout_id = %s ORDER BY booking_id", pid),
                         [{"booking_id": bid, "amount_cents": -2700},
                          {"booking_id": later, "amount_cents": 5400}])
        self.assertEqual(self.owed(adm, eid), [])
        self.assertEqual(db_scalar("SELECT SUM(amount_cents) FROM payout_items i"
                                   " WHERE i.booking_id = %s", bid), 0)
        rc, diffs = replayed(a.id)
        self.assertEqual((rc, diffs), (0, []))

    def test_a_charged_back_booking_is_not_cancelled_until_the_dispute_is_won(self):
        """The bank takes a chargeback's money back: a refund on top would pay
        the customer twice (Stripe refuses it, charge_disputed).  The cancel is
        refused and decides nothing, and so is a move (the dispute decides
        whether the booking stands); once the dispute is won it refunds."""
        a, expert_user = register(), register()
        eid = new_expert(100, user=expert_user)          # 30 min: 3000
        promote(expert_user, role="expert")
        bid, pi = self.paid(a, eid)
        refunds_before = emu_state()["refunds"]
        dp = dispute_intent(pi)
        self.assertIn("<td data-status>Disputed</td>",
                      booking_page_row(expert_user.get("/expert/bookings").text, bid))
        q = a.get(f"/api/bookings/{bid}/cancellation")
        self.assertStatus(q, 200, "quote")
        self.assertEqual((q.json["cancellable"], q.json["tier"]), (False, "disputed"))
        row = booking_page_row(a.get("/dashboard").text, bid)
        self.assertIn("<td data-status>Disputed</td>", row)
        self.assertNotIn('data-action="cancel-booking"', row)
        r = a.post(f"/api/bookings/{bid}/cancel", {})
        self.assertError(r, 409, "payment_disputed")
        b = booking_row(bid)
        self.assertEqual((b["status"], b["cancel_refund_cents"], b["refunded_cents"]),
                         ("scheduled", None, 0))
        self.assertEqual((refund_rows(bid), emu_state()["refunds"]), ([], refunds_before))
        self.assertEqual(audit_count("BOOKING_CANCEL_DECIDED", str(bid)), 0)
        self.assertNotIn("data-move-booking", row)
        before = booking_row(bid)["start_time"]
        self.assertError(move(a, bid, future()[0]), 409, "payment_disputed")
        self.assertEqual(booking_row(bid)["start_time"], before)
        self.assertEqual(audit_count("BOOKING_RESCHEDULED", str(bid)), 0)
        close_dispute(dp, "won")
        row = booking_page_row(a.get("/dashboard").text, bid)
        self.assertIn('data-action="cancel-booking"', row)
        self.assertIn(f'data-move-booking="{bid}"', row)
        r = a.post(f"/api/bookings/{bid}/cancel", {})
        self.assertStatus(r, 200, "cancel once the dispute is won")
        self.assertEqual((r.json["booking"]["status"], booking_row(bid)["refunded_cents"]),
                         ("cancelled_by_user", 3000))
        self.assertEqual(emu_state()["refunds"], refunds_before + 1)
        self.assertEqual(replayed(a.id), (0, []))

    def test_a_chargeback_opened_while_a_move_waits_stops_the_move(self):
        """The dispute's transaction writes the expert's guard row, which a
        move writes first: a move that comes while the chargeback is being
        recorded waits for it, then reads it and is refused.  A test
        transaction holds the booking's row, where the dispute's waits."""
        a, eid, bid, pi = self.paid_booking()
        before = booking_row(bid)["start_time"]
        out, h = {}, Holder()
        try:
            h.run("SELECT id FROM bookings WHERE id = %s FOR UPDATE", bid)
            dp = emu_ok("POST", f"/_emu/charges/{latest_charge(pi)}/dispute", {})["id"]
            wait_until(lambda: row_locked("SELECT id FROM experts WHERE id = %s FOR UPDATE", eid),
                       10, message="the dispute holds the expert's guard row")
            t = in_thread(lambda: move(a, bid, future()[0]), out, "move")
            time.sleep(REACH_WAIT_S)            # the move waits for the guard row
        finally:
            h.commit()
        t.join(30)
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(dp)), 20,
                   message="dispute processed")
        self.assertError(out["move"], 409, "payment_disputed")
        self.assertEqual((booking_row(bid)["start_time"], booking_row(bid)["dispute_status"]),
                         (before, "open"))
        self.assertEqual(audit_count("BOOKING_RESCHEDULED", str(bid)), 0)

    def test_an_inquiry_made_a_chargeback_while_a_move_waits_comes_after_the_move(self):
        """An inquiry does not stop a move; the bank making it a chargeback
        does.  A move that read the booking during the inquiry and waits to
        write it (a test transaction holds the booking's row) commits before
        the chargeback, never after it: the chargeback waits for the
        expert's guard row the move holds.  Without that write the
        chargeback commits first and the booking moves while charged back."""
        a, eid, bid, pi = self.paid_booking()
        dp = dispute_charge(latest_charge(pi), inquiry=True)
        out, h = {}, Holder()
        try:
            h.run("SELECT id FROM bookings WHERE id = %s FOR UPDATE", bid)
            t = in_thread(lambda: move(a, bid, future()[0]), out, "move")
            wait_until(lambda: row_locked("SELECT id FROM experts WHERE id = %s FOR UPDATE", eid),
                       10, message="the move holds the expert's guard row")
            time.sleep(REACH_WAIT_S)            # past its read, at the booking's row
            emu_ok("POST", f"/_emu/disputes/{dp}/escalate")
            time.sleep(REACH_WAIT_S)            # the chargeback handled as far as it goes
        finally:
            h.commit()
        t.join(30)
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(dp)) and db_scalar(
            "SELECT status FROM disputes WHERE stripe_dispute_id = %s", dp) == "needs_response",
            20, message="dispute escalated")
        self.assertStatus(out["move"], 200, "the move, during the inquiry")
        order = db_rows("SELECT action FROM audit_log WHERE action IN"
                        " ('BOOKING_RESCHEDULED', 'DISPUTE_UPDATED') AND entity_id IN (%s, %s)"
                        " ORDER BY id", str(bid), latest_charge(pi))
        self.assertEqual([r["action"] for r in order], ["BOOKING_RESCHEDULED", "DISPUTE_UPDATED"])
        self.assertError(move(a, bid, future()[0]), 409, "payment_disputed")

    def test_a_chargeback_after_an_inquiry_stops_the_cancel_too(self):
        """The same payment disputed twice: an inquiry (open, or closed
        without a chargeback), then a chargeback, which alone names no
        booking; the cancel is refused all the same and decides nothing."""
        for closed_first in (False, True):
            with self.subTest(inquiry_closed_first=closed_first):
                a = register()
                bid, pi = self.paid(a, new_expert(100))
                charge = latest_charge(pi)
                inquiry = dispute_charge(charge, inquiry=True)
                if closed_first:
                    close_dispute(inquiry, "warning_closed")
                chargeback = dispute_charge(charge)
                self.assertEqual(a.get(f"/api/bookings/{bid}/cancellation").json["tier"],
                                 "disputed")
                self.assertError(a.post(f"/api/bookings/{bid}/cancel", {}), 409,
                                 "payment_disputed")
                b = booking_row(bid)
                self.assertEqual((b["status"], b["cancel_refund_cents"], b["refunded_cents"]),
                                 ("scheduled", None, 0))
                close_dispute(chargeback, "won")
                if not closed_first:
                    close_dispute(inquiry, "warning_closed")
                self.assertStatus(a.post(f"/api/bookings/{bid}/cancel", {}), 200, "then cancel")
                self.assertEqual(booking_row(bid)["refunded_cents"], 3000)

    def test_a_chargeback_stripe_knows_of_first_refuses_the_cancel_clearly(self):
        """An inquiry became a chargeback at Stripe before its event reached
        us: Stripe refuses the refund (charge_disputed), the customer is told
        why (409, not a provider failure), and the periodic job waits."""
        a = register()
        bid, pi = self.paid(a, new_expert(100))
        charge = latest_charge(pi)
        emu_hold()
        try:
            dp = emu_ok("POST", f"/_emu/charges/{charge}/dispute", {})["id"]
            self.assertError(a.post(f"/api/bookings/{bid}/cancel", {}), 409, "payment_disputed")
            b = booking_row(bid)
            self.assertEqual((b["status"], b["cancel_refund_cents"]), ("scheduled", 3000),
                             "decided before Stripe refused: made once the dispute is won")
        finally:
            emu_release()
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(dp)), 20,
                   message="dispute processed")
        p = run_tool("creditdesk-reconcile")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(refund_rows(bid), [])
        close_dispute(dp, "won")
        p = run_tool("creditdesk-reconcile")
        self.assertRegex(p.stdout, r"finished \d+ booking cancels")
        self.assertEqual(booking_row(bid)["refunded_cents"], 3000)

    def test_an_inquiry_does_not_stop_a_cancel(self):
        """An inquiry is not a chargeback yet: the cancel refunds as usual, and
        the inquiry closing afterwards owes the expert nothing."""
        adm, a = admin(), register()
        eid = new_expert(100)
        bid, pi = self.paid(a, eid)
        dp = dispute_charge(latest_charge(pi),
                            inquiry=True)
        self.assertEqual(a.get(f"/api/bookings/{bid}/cancellation").json["cancellable"], True)
        r = a.post(f"/api/bookings/{bid}/cancel", {})
        self.assertStatus(r, 200, "cancel during an inquiry")
        self.assertEqual(booking_row(bid)["refunded_cents"], 3000)
        close_dispute(dp, "warning_closed")
        b = booking_row(bid)
        self.assertEqual((b["status"], b["dispute_status"], b["refunded_cents"]),
                         ("cancelled_by_user", "won", 3000))
        self.assertEqual(self.owed(adm, eid), [])
        self.assertEqual(replayed(a.id), (0, []))

    def test_an_inquiry_the_bank_turns_into_a_chargeback_stops_the_cancel(self):
        """The bank turns an inquiry into a chargeback: the same dispute, its
        status moved on (charge.dispute.updated).  Until then the cancel
        would refund; from then on it is refused and decides nothing, as for
        any chargeback, and once the dispute is won it refunds."""
        a = register()
        bid, pi = self.paid(a, new_expert(100))             # 30 min: 3000
        charge = latest_charge(pi)
        dp = dispute_charge(charge, inquiry=True)
        self.assertEqual(a.get(f"/api/bookings/{bid}/cancellation").json["tier"], "full")
        escalate_dispute(dp)
        self.assertEqual(db_row("SELECT status, closed_at, units_frozen FROM disputes"
                                " WHERE stripe_dispute_id = %s", dp),
                         {"status": "needs_response", "closed_at": None, "units_frozen": 2700})
        self.assertEqual([(r["severity"], json.loads(r["details"])["status"]) for r in db_rows(
            "SELECT severity, details FROM audit_log WHERE action = 'DISPUTE_UPDATED'"
            " AND entity_id = %s", charge)], [("critical", "needs_response")])
        q = a.get(f"/api/bookings/{bid}/cancellation").json
        self.assertEqual((q["cancellable"], q["tier"]), (False, "disputed"))
        self.assertNotIn('data-action="cancel-booking"', booking_page_row(
            a.get("/dashboard").text, bid))
        refunds_before = emu_state()["refunds"]
        self.assertError(a.post(f"/api/bookings/{bid}/cancel", {}), 409, "payment_disputed")
        b = booking_row(bid)
        self.assertEqual((b["status"], b["cancel_refund_cents"], b["dispute_status"]),
                         ("scheduled", None, "open"))
        self.assertEqual(emu_state()["refunds"], refunds_before)
        redeliver(dp)
        self.assertEqual(audit_count("DISPUTE_UPDATED", charge), 1)
        self.assertEqual(dispute_steps(dp), [("freeze", "booking", 2700, 0)])
        close_dispute(dp, "won")
        self.assertStatus(a.post(f"/api/bookings/{bid}/cancel", {}), 200, "cancel once won")
        self.assertEqual(booking_row(bid)["refunded_cents"], 3000)
        self.assertEqual(replayed(a.id), (0, []))

    def test_closed_without_the_opening_event(self):
        a = register()
        eid = new_expert(100)
        bid, pi = self.paid(a, eid)
        ch = latest_charge(pi)
        emu_hold()
        try:
            dp = emu_ok("POST", f"/_emu/charges/{ch}/dispute")["id"]
            emu_ok("POST", f"/_emu/disputes/{dp}/close", {"status": "won"})
        finally:
            rel = emu_release("reverse")           # closed first, then created
        self.assertEqual(set(rel["statuses"]), {200}, rel)
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(dp)), 20)
        self.assertEqual(booking_row(bid)["dispute_status"], "won")
        self.assertEqual(dispute_steps(dp), [("freeze", "booking", 2700, 0),
                                          ("release", "booking", 2700, 0)])
        self.assertEqual(payment_row(bid)["status"], "succeeded")


class CreditDisputeTests(CreditsCase):

    def test_credits_frozen_then_reversed_when_lost(self):
        from .test_credits import buy_pack, consume, pack_tokens
        u = self.user()
        sid = buy_pack(u, "boost-small")
        tokens = pack_tokens("boost-small")
        consume(u.id, 417_000)
        left = tokens - 417_000
        dp = open_dispute(sid)
        self.assertEqual(db_row("SELECT balance, frozen FROM user_credits WHERE user_id = %s",
                                u.id), {"balance": left, "frozen": left})
        emu_ok("POST", f"/_emu/disputes/{dp}/close", {"status": "lost"})
        wait_until(lambda: balance(u.id) == 0, 20, message="reversed")
        self.assertEqual(db_row("SELECT balance, frozen FROM user_credits WHERE user_id = %s",
                                u.id), {"balance": 0, "frozen": 0})
        self.assertEqual([(t["credits_delta"], t["transaction_type"], t["activity_type"])
                          for t in ledger(u.id)],
                         [(tokens, "allocation", "boost_pack_purchase"),
                          (-417_000, "consumption", "integration_test"),
                          (0, "adjustment", "dispute_freeze"),
                          (0, "adjustment", "dispute_release"),
                          (-left, "refund", "refund")])
        self.assertEqual(db_row("SELECT units_frozen, units_reversed, units_lost FROM disputes"
                                " WHERE stripe_dispute_id = %s", dp),
                         {"units_frozen": left, "units_reversed": left, "units_lost": 417_000})
        redeliver(dp)
        self.assertEqual(len(ledger(u.id)), 5)

    def test_a_refund_leaves_another_disputes_frozen_credits_alone(self):
        """Two packs, one spent; the other's dispute freezes what is left;
        a refund of the spent pack takes nothing frozen, and the won
        dispute releases all it froze."""
        from .test_credits import buy_pack, consume, pack_tokens
        u = self.user()
        a = buy_pack(u, "boost-small")
        c = buy_pack(u, "boost-small")
        tokens = pack_tokens("boost-small")
        consume(u.id, tokens)
        dp = open_dispute(a)
        self.assertEqual(db_row("SELECT balance, frozen FROM user_credits WHERE user_id = %s",
                                u.id), {"balance": tokens, "frozen": tokens})
        refund_processed(stripe_session(c)["payment_intent"])
        self.assertEqual(db_row("SELECT balance, frozen FROM user_credits WHERE user_id = %s",
                                u.id), {"balance": tokens, "frozen": tokens})
        self.assertEqual(db_scalar("SELECT credits_refunded FROM boost_pack_purchases"
                                   " WHERE stripe_session_id = %s", c), 0)
        close_dispute(dp, "won")
        self.assertEqual(db_row("SELECT balance, frozen FROM user_credits WHERE user_id = %s",
                                u.id), {"balance": tokens, "frozen": 0})
        self.assertEqual(dispute_steps(dp), [("freeze", "boost_pack", tokens, 0),
                                          ("release", "boost_pack", tokens, 0)])
        self.assertEqual([(t["credits_delta"], t["activity_type"]) for t in ledger(u.id)][-2:],
                         [(0, "dispute_freeze"), (0, "dispute_release")])


def completed_booking(customer, expert_user, eid, hours):
    """A booking paid, started and marked completed by its expert; returns its id."""
    r = book(customer, eid, hours_ahead(hours))
    bid, pi = r.json["booking"]["id"], r.json["booking"]["paymentIntentId"]
    emu_succeed(pi)
    status_is(bid, "scheduled", "succeeded")
    started(bid)
    check_status(expert_user.post(f"/api/bookings/{bid}/complete", {}), 200, "complete")
    return bid


class MetricsTests(BookingCase):
    """Admin metrics in integer cents, checked by what each action adds."""

    def metrics(self, adm):
        r = adm.get("/api/admin/metrics")
        self.assertStatus(r, 200, "metrics")
        return r.json

    def test_recent_counts_revenue_payouts_and_liability(self):
        adm, a, expert_user = admin(), register(), register()
        promote(a, tier="firewall")
        self.assertError(a.get("/api/admin/metrics"), 403)
        m0 = self.metrics(adm)
        for k in ("bookingsCreatedLastHour", "bookingsCreatedLast24h", "paymentSuccessRate24hBps",
                  "platformRevenue30dCents", "pendingManualPayoutsCents"):
            self.assertIsInstance(m0[k], int, k)
        self.assertEqual(m0["bookingsCreatedLast24h"], db_scalar(
            "SELECT COUNT(*) FROM bookings WHERE created_at > UTC_TIMESTAMP(6) - INTERVAL 1 DAY"))
        # a booking paid and completed: +1 created, its fee in revenue, its payout owed
        eid = new_expert(100, user=expert_user)          # 30 min: 3000, fee 300, payout 2700
        completed_booking(a, expert_user, eid, 30)
        # a booking created 2 hours ago counts in 24 h only; one declined lowers the rate
        old = book(a, new_expert(100), hours_ahead(40)).json["booking"]
        db_exec("UPDATE bookings SET created_at = created_at - INTERVAL 2 HOUR WHERE id = %s",
                old["id"])
        emu_decline(old["paymentIntentId"])
        status_is(old["id"], "awaiting_payment", "failed")
        m1 = self.metrics(adm)
        self.assertEqual(m1["bookingsCreatedLastHour"], m0["bookingsCreatedLastHour"] + 1)
        self.assertEqual(m1["bookingsCreatedLast24h"], m0["bookingsCreatedLast24h"] + 2)
        self.assertEqual(m1["platformRevenue30dCents"], m0["platformRevenue30dCents"] + 300)
        self.assertEqual(m1["pendingManualPayoutsCents"], m0["pendingManualPayoutsCents"] + 2700)
        ok, decided = (db_scalar("SELECT COUNT(*) FROM payments WHERE created_at >"
                                 " UTC_TIMESTAMP(6) - INTERVAL 1 DAY AND status IN"
                                 " ('succeeded', 'refunded', 'partially_refunded')"),
                       db_scalar("SELECT COUNT(*) FROM payments WHERE created_at >"
                                 " UTC_TIMESTAMP(6) - INTERVAL 1 DAY AND status <> 'pending'"))
        self.assertEqual(m1["paymentSuccessRate24hBps"], ok * 10000 // decided)
        # prepaid: 3 Live Help hours (3 x 4900), one used; a voice pack (999)
        sid = bought_live_help(a, 3)
        self.assertStatus(a.post(f"/api/live-help-hour/{new_slot(5)}/book", {}), 201)
        buy_voice(a)
        m2 = self.metrics(adm)
        li0, li2 = m1["prepaidLiabilityCents"], m2["prepaidLiabilityCents"]
        self.assertEqual(li2["liveHelp"], li0["liveHelp"] + 2 * 4900)
        self.assertEqual(li2["voice"], li0["voice"] + 999)
        self.assertEqual(li2["total"], li2["liveHelp"] + li2["voice"] + li2["credits"])
        # credits at the average price paid per token, rounded down
        tokens = int(db_scalar("SELECT COALESCE(SUM(balance), 0) FROM user_credits"))
        paid = int(db_scalar("SELECT COALESCE(SUM(amount_cents), 0) FROM boost_pack_purchases"))
        paid += sum(json.loads(x["metadata"])["amountPaidCents"] for x in db_rows(
            "SELECT metadata FROM credit_transactions WHERE activity_type = 'subscription_renewal'"))
        granted = int(db_scalar("SELECT COALESCE(SUM(credits_delta), 0) FROM credit_transactions"
                                " WHERE transaction_type = 'allocation'"))
        self.assertEqual(li2["credits"], tokens * paid // granted if granted else 0)
        self.assertIsNotNone(sid)


class IdempotencyKeyTests(BookingCase):
    """Keys sent to Stripe are our record's id plus a random value stored with it."""

    def key_of(self, object_id, event_type):
        evs = events_about(object_id, event_type)
        self.assertEqual(len(evs), 1, f"{event_type} about {object_id}")
        return evs[0]["request"]["idempotency_key"]

    def test_booking_keys_carry_the_rows_random_value(self):
        a = register()
        eid = new_expert(100)
        ids = []
        for h in (30, 31):
            r = book(a, eid, hours_ahead(h))
            self.assertStatus(r, 201)
            ids.append((r.json["booking"]["id"], r.json["booking"]["paymentIntentId"]))
        nonces = [booking_row(bid)["stripe_nonce"] for bid, _ in ids]
        for n in nonces:
            self.assertRegex(n, r"^[A-Za-z0-9_-]{43}$")
        self.assertNotEqual(nonces[0], nonces[1])
        for (bid, pi), n in zip(ids, nonces):
            self.assertEqual(self.key_of(pi, "payment_intent.created"), f"booking-{bid}-{n}-pi")
        # the refund of a paid one, the cancellation of an unpaid one
        (b1, pi1), (b2, pi2) = ids
        emu_succeed(pi1)
        status_is(b1, "scheduled", "succeeded")
        self.assertStatus(a.post(f"/api/bookings/{b1}/cancel", {}), 200)
        re_id = refund_rows(b1)[0]["stripe_refund_id"]
        self.assertEqual(self.key_of(re_id, "refund.created"), f"booking-{b1}-{nonces[0]}-refund")
        self.assertStatus(a.post(f"/api/bookings/{b2}/cancel", {}), 200)
        self.assertEqual(self.key_of(pi2, "payment_intent.canceled"),
                         f"booking-{b2}-{nonces[1]}-pi-cancel")


class CheckoutKeyTests(CreditsCase):
    """Checkout Sessions and Stripe customers: keys from the user row and the
    random value stored with it, never from the id alone."""

    def keys(self, path):
        return {k["key"] for k in emu_ok("GET", "/_emu/idempotency_keys?path=" + path)["data"]}

    def test_keys_carry_the_users_random_value(self):
        u, v = register(), register()
        self.assertEqual(db_scalar("SELECT stripe_nonce FROM users WHERE id = %s", u.id), "")
        before = self.keys("/v1/checkout/sessions")
        r = create_checkout(u, {"purchaseType": "boost_pack", "boostPackId": "boost-small"})
        self.assertStatus(r, 200, "boost pack checkout")
        nonce = db_scalar("SELECT stripe_nonce FROM users WHERE id = %s", u.id)
        self.assertRegex(nonce, r"^[A-Za-z0-9_-]{43}$")
        cus = db_scalar("SELECT stripe_customer_id FROM users WHERE id = %s", u.id)
        self.assertIn(f"user-{u.id}-{nonce}-customer", self.keys("/v1/customers"))
        self.assertEqual(evs_key(cus, "customer.created"), f"user-{u.id}-{nonce}-customer")
        new = self.keys("/v1/checkout/sessions") - before
        self.assertEqual(len(new), 1, new)
        key = new.pop()
        self.assertRegex(key, rf"^user-{u.id}-{nonce}-checkout-[A-Za-z0-9_-]{{43}}-{cus}$")
        # a client key for retries: the same key for the same request
        r1 = v.buy_live_help(2, session_id="retry-key-1")
        self.assertStatus(r1, 200, "live help checkout")
        vn = db_scalar("SELECT stripe_nonce FROM users WHERE id = %s", v.id)
        self.assertNotEqual(vn, nonce)
        self.assertIn(f"user-{v.id}-{vn}-checkout-retry-key-1", self.keys("/v1/checkout/sessions"))
        # a nonce stays once written
        self.assertStatus(create_checkout(u, {"purchaseType": "boost_pack",
                                              "boostPackId": "boost-small"}), 200)
        self.assertEqual(db_scalar("SELECT stripe_nonce FROM users WHERE id = %s", u.id), nonce)

    def test_a_restored_database_never_reuses_a_key(self):
        # A backup restored: the user row comes back without the nonce it had
        # when it first bought (here: the nonce is cleared), as a reused id would.
        u = register()
        self.assertStatus(u.buy_live_help(1, session_id="same-client-key"), 200)
        first = db_scalar("SELECT stripe_nonce FROM users WHERE id = %s", u.id)
        db_exec("UPDATE users SET stripe_nonce = '' WHERE id = %s", u.id)
        db_exec("DELETE FROM checkout_sessions WHERE user_id = %s", u.id)
        r = u.buy_live_help(3, session_id="same-client-key")
        self.assertStatus(r, 200, "the same client key after a restore is a new request")
        second = db_scalar("SELECT stripe_nonce FROM users WHERE id = %s", u.id)
        self.assertNotEqual(first, second)
        keys = self.keys("/v1/checkout/sessions")
        self.assertIn(f"user-{u.id}-{first}-checkout-same-client-key", keys)
        self.assertIn(f"user-{u.id}-{second}-checkout-same-client-key", keys)
        self.assertEqual(checkout_rows(u.id)[0]["quantity"], 3)


def evs_key(object_id, event_type):
    evs = events_about(object_id, event_type)
    if len(evs) != 1:
        raise AssertionError(f"{event_type} about {object_id}: {evs!r}")
    return evs[0]["request"]["idempotency_key"]


class ConnectTests(BookingCase):
    """Stripe Connect Express accounts and destination charges."""

    def expert(self):
        u = register()
        promote(u, role="expert")
        return u, new_expert(150, user=u)      # 30 min: 4500, fee 450, payout 4050

    def test_onboarding_and_destination_charges(self):
        adm, customer = admin(), register()
        u, eid = self.expert()
        self.assertError(customer.post("/api/experts/me/connect", {}), 403, "not_an_expert")
        # a booking before onboarding is paid out manually
        manual = book(customer, eid, hours_ahead(60)).json["booking"]
        r = u.post("/api/experts/me/connect", {})
        self.assertStatus(r, 200, "connect")
        acct = r.json["accountId"]
        self.assertRegex(acct, r"^acct_")
        self.assertTrue(r.json["url"].endswith(f"/connect/onboarding/{acct}"), r.json)
        self.assertEqual((r.json["chargesEnabled"], r.json["payoutsEnabled"],
                          r.json["onboarded"]), (False, False, False))
        # once: a second call continues with the same account
        r2 = u.post("/api/experts/me/connect", {})
        self.assertEqual(r2.json["accountId"], acct)
        self.assertEqual(db_scalar("SELECT stripe_account_id FROM experts WHERE id = %s", eid),
                         acct)
        a = stripe_api("GET", f"/v1/accounts/{acct}").json
        self.assertEqual((a["type"], a["metadata"].get("expert_id")), ("express", str(eid)))
        # onboarding finished at Stripe: account.updated keeps the flags
        emu_ok("POST", f"/_emu/accounts/{acct}/onboard")
        wait_until(lambda: db_row("SELECT charges_enabled, payouts_enabled FROM experts"
                                  " WHERE id = %s", eid) == {"charges_enabled": 1,
                                                            "payouts_enabled": 1},
                   20, message="account.updated")
        self.assertEqual(u.get("/api/experts/me/connect").json["onboarded"], True)
        # a booking now is a destination charge
        r = book(customer, eid, hours_ahead(23))
        self.assertStatus(r, 201)
        bid, pi = r.json["booking"]["id"], r.json["booking"]["paymentIntentId"]
        spi = stripe_api("GET", f"/v1/payment_intents/{pi}").json
        self.assertEqual((spi["application_fee_amount"], spi["transfer_data"]),
                         (450, {"destination": acct}))
        self.assertIsNone(booking_row(manual["id"])["destination_account"])
        emu_succeed(pi)
        status_is(bid, "scheduled", "succeeded")
        ch_id = latest_charge(pi)
        ch = stripe_api("GET", f"/v1/charges/{ch_id}").json
        b = booking_row(bid)
        self.assertEqual((b["destination_account"], b["stripe_transfer_id"],
                          b["stripe_application_fee_id"]),
                         (acct, ch["transfer"], ch["application_fee"]))
        self.assertRegex(b["stripe_transfer_id"], r"^tr_")
        self.assertRegex(b["stripe_application_fee_id"], r"^fee_")
        # cancelled 23 h before: half back, transfer reversed and fee refunded in proportion
        self.assertStatus(customer.post(f"/api/bookings/{bid}/cancel", {}), 200)
        b = booking_row(bid)
        self.assertEqual((b["refunded_cents"], b["fee_refunded_cents"], b["payout_refunded_cents"]),
                         (2250, 225, 2025))
        rf = refund_rows(bid)[0]
        self.assertRegex(rf["stripe_transfer_reversal_id"], r"^trr_")
        tr = stripe_api("GET", f"/v1/transfers/{b['stripe_transfer_id']}").json
        fee = stripe_api("GET", f"/v1/application_fees/{b['stripe_application_fee_id']}").json
        self.assertEqual((tr["amount"], tr["amount_reversed"]), (4500, 2250))
        self.assertEqual((fee["amount"], fee["amount_refunded"]), (450, 225))
        # the expert keeps 4500 - 2250 transferred, less the 450 - 225 fee: 2025
        self.assertEqual((tr["amount"] - tr["amount_reversed"]) -
                         (fee["amount"] - fee["amount_refunded"]), 4050 - 2025)
        # a completed destination booking is never owed a manual payout
        b2 = completed_booking(customer, u, eid, 70)
        emu_succeed(manual["paymentIntentId"])
        status_is(manual["id"], "scheduled", "succeeded")
        started(manual["id"])
        self.assertStatus(u.post(f"/api/bookings/{manual['id']}/complete", {}), 200)
        p = adm.get("/api/admin/payouts/pending").json
        self.assertEqual([(e["amountCents"], e["bookingIds"]) for e in p["experts"]
                          if e["expertId"] == eid], [(4050, [manual["id"]])])
        dest = {d["bookingId"]: d for d in p["destinationCharges"] if d["expertId"] == eid}
        self.assertEqual(sorted(dest), sorted([bid, b2]))
        self.assertEqual((dest[b2]["status"], dest[b2]["payoutCents"],
                          dest[b2]["destinationAccount"]), ("completed", 4050, acct))
        self.assertEqual(dest[bid]["payoutCents"], 2025)

    def test_hosted_onboarding_page_and_state_without_the_event(self):
        u, eid = self.expert()
        r = u.post("/api/experts/me/connect", {})
        self.assertStatus(r, 200, "connect")
        acct, url = r.json["accountId"], r.json["url"]
        # the hosted page offers to finish; finishing goes back to our return_url
        page = http_request("GET", url)
        self.assertStatus(page, 200, "onboarding page")
        self.assertIn('id="finish-onboarding"', page.text)
        emu_hold()                 # account.updated is held back: GET must ask Stripe
        try:
            done = http_request("POST", url, body=b"")
            self.assertEqual(done.status, 303, repr(done))
            self.assertEqual(done.header("location"),
                             env("CD_PUBLIC_URL").rstrip("/") + "/dashboard?connect=return")
            self.assertEqual(db_row("SELECT charges_enabled, payouts_enabled FROM experts"
                                    " WHERE id = %s", eid),
                             {"charges_enabled": 0, "payouts_enabled": 0})
            s = u.get("/api/experts/me/connect")
            self.assertStatus(s, 200, "state")
            self.assertEqual((s.json["accountId"], s.json["chargesEnabled"],
                              s.json["payoutsEnabled"], s.json["onboarded"]),
                             (acct, True, True, True))
            self.assertEqual(db_row("SELECT charges_enabled, payouts_enabled FROM experts"
                                    " WHERE id = %s", eid),
                             {"charges_enabled": 1, "payouts_enabled": 1})
        finally:
            rel = emu_release()
        self.assertEqual(set(rel["statuses"]) - {200}, set(), rel)
        self.assertEqual(db_row("SELECT charges_enabled, payouts_enabled FROM experts"
                                " WHERE id = %s", eid),
                         {"charges_enabled": 1, "payouts_enabled": 1})
