"""Money rules under concurrency and time: a subscription's first invoice
racing its first fulfilment, Voice AI Therapy start racing end, and minutes
charged by the server's clock.

Races are made deterministic by holding a row lock from a test connection
until the request under test is seen waiting for it, then letting go."""

import threading
import time

from .lib import (Case, _db_connect, run_tool, db_exec, db_row, db_rows, db_scalar, emu_deliver,
                  emu_hold, emu_pay, emu_release, wait_until)
from .test_credits import (STARTER_CREDITS, CreditsCase, allocations, balance,
                           completed_processed, create_checkout, invoice_events, ledger,
                           rate)
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
