"""Voice AI Therapy: buying 15-minute credits (premium tier only), the
credits endpoint, starting and ending sessions, deduction across credits
under concurrency, expiry, isolation, duplicate webhooks and refunds."""

import threading

from .lib import (Browser, Case, check_status, checkout_rows, completed_event, db_exec,
                  db_row, db_rows, db_scalar, emu_deliver, emu_hold, emu_pay, emu_release,
                  event_processed, events_about, pay_and_confirm, promote, register,
                  session_event_ids, stripe_api, stripe_session, wait_until)

MINUTES = 15          # platform_settings.voice_minutes_per_pack
VALID_DAYS = 30       # platform_settings.voice_validity_days


def firewall_user():
    u = register()
    promote(u, tier="firewall")
    return u


def start_voice_checkout(u, **body):
    r = u.post("/api/stripe/voice-therapy", body)
    check_status(r, 200, "POST /api/stripe/voice-therapy")
    sid = r.json.get("session_id")
    if not (isinstance(sid, str) and sid.startswith("cs_")):
        raise AssertionError(f"voice-therapy checkout: no cs_ session_id in {r!r}")
    if not (isinstance(r.json.get("url"), str) and r.json["url"].endswith(sid)):
        raise AssertionError(f"voice-therapy checkout: bad url in {r!r}")
    return sid


def buy_voice(u):
    """A paid, confirmed Voice AI Therapy pack; returns the Checkout Session id."""
    return pay_and_confirm(u, start_voice_checkout(u))


def credit_rows(user_id):
    return db_rows("SELECT id, user_id, stripe_session_id, minutes_purchased, minutes_remaining,"
                   " minutes_refunded, amount_cents, purchased_at, expires_at, is_active"
                   " FROM voice_therapy_credits WHERE user_id = %s ORDER BY id", user_id)


def credit_for(session_id):
    rows = db_rows("SELECT * FROM voice_therapy_credits WHERE stripe_session_id = %s",
                   session_id)
    if len(rows) != 1:
        raise AssertionError(f"{len(rows)} voice_therapy_credits rows for {session_id}")
    return rows[0]


def remaining(user_id):
    return {c["id"]: c["minutes_remaining"] for c in credit_rows(user_id)}


def session_row(session_id):
    return db_row("SELECT * FROM voice_therapy_sessions WHERE id = %s", session_id)


def usage_rows(session_id=None, credit_ids=None):
    if session_id is not None:
        return db_rows("SELECT session_id, credit_id, minutes FROM voice_therapy_usage"
                       " WHERE session_id = %s ORDER BY id", session_id)
    marks = ",".join(["%s"] * len(credit_ids))
    return db_rows("SELECT id, session_id, credit_id, minutes FROM voice_therapy_usage"
                   f" WHERE credit_id IN ({marks}) ORDER BY id", *credit_ids)


def run_for(session_id, seconds):
    """Moves an open session's start back so it has run `seconds` by the server's clock."""
    db_exec("UPDATE voice_therapy_sessions SET started_at = UTC_TIMESTAMP(6) - INTERVAL %s SECOND"
            " WHERE id = %s AND status = 'active'", seconds, session_id)


def voice_price():
    return db_scalar("SELECT unit_amount_cents FROM products WHERE code = 'voice_therapy'")


def ceil_minutes(seconds):
    return (seconds + 59) // 60


class VoiceCase(Case):

    def start(self, u, **body):
        r = u.post("/api/voice-therapy/start", body)
        self.assertStatus(r, 200, "voice start")
        self.assertIsInstance(r.json.get("sessionId"), int, f"start: {r!r}")
        return r

    def end(self, u, session_id, seconds, elapsed=None, **extra):
        """Ends a session that ran `elapsed` seconds (default: seconds) by the
        server's clock, reporting `seconds` as the client's secondsUsed."""
        run_for(session_id, seconds if elapsed is None else elapsed)
        body = {"sessionId": session_id, "secondsUsed": seconds}
        body.update(extra)
        return u.post("/api/voice-therapy/end", body)

    def credits(self, u):
        r = u.get("/api/voice-therapy/credits")
        self.assertStatus(r, 200, "GET /api/voice-therapy/credits")
        return r.json

    def assertUsageConsistent(self, user_id):
        """Every credit's used minutes are its usage rows; every ended session's
        deduction is its usage rows; nothing below zero or above what was bought."""
        creds = credit_rows(user_id)
        for c in creds:
            self.assertGreaterEqual(c["minutes_remaining"], 0)
            self.assertLessEqual(c["minutes_remaining"], c["minutes_purchased"])
            used = db_scalar("SELECT COALESCE(SUM(minutes), 0) FROM voice_therapy_usage"
                             " WHERE credit_id = %s", c["id"])
            self.assertEqual(int(used), c["minutes_purchased"] - c["minutes_remaining"]
                             - c["minutes_refunded"], f"credit {c['id']}: usage rows vs minutes used")
            if c["minutes_remaining"] == 0:
                self.assertEqual(c["is_active"], 0, f"exhausted credit {c['id']} still active")
        sessions = db_rows("SELECT * FROM voice_therapy_sessions WHERE user_id = %s", user_id)
        for s in sessions:
            us = usage_rows(s["id"])
            for x in us:
                self.assertGreater(x["minutes"], 0, f"zero-minute usage row {x}")
                self.assertIn(x["credit_id"], [c["id"] for c in creds],
                              f"session {s['id']} took from another user's credit")
            if s["status"] == "ended":
                self.assertIsNone(s["open_slot"])
                self.assertEqual(s["minutes_requested"], ceil_minutes(s["seconds_charged"]))
                self.assertLessEqual(s["minutes_deducted"], s["minutes_requested"])
                self.assertEqual(sum(x["minutes"] for x in us), s["minutes_deducted"],
                                 f"session {s['id']}: usage rows vs minutes_deducted")
                self.assertEqual(len({x["credit_id"] for x in us}), len(us))
            else:
                self.assertEqual(us, [], f"open session {s['id']} has usage rows")
        total_used = sum(c["minutes_purchased"] - c["minutes_remaining"] - c["minutes_refunded"]
                         for c in creds)
        deducted = sum(s["minutes_deducted"] or 0 for s in sessions)
        self.assertEqual(total_used, deducted, "minutes used vs sum of minutes_deducted")


class PurchaseTests(VoiceCase):

    def test_purchase_gives_fifteen_minutes_for_thirty_days(self):
        u = firewall_user()
        self.assertEqual(self.credits(u), {"hasCredits": False, "remainingMinutes": 0,
                                           "credits": []})
        sid = start_voice_checkout(u)
        ck = checkout_rows(u.id)
        self.assertEqual(len(ck), 1)
        self.assertEqual((ck[0]["stripe_session_id"], ck[0]["product"], ck[0]["quantity"],
                          ck[0]["amount_cents"], ck[0]["status"]),
                         (sid, "voice_therapy", 1, voice_price(), "open"))
        cs = stripe_session(sid)
        self.assertEqual((cs["mode"], cs["amount_total"]), ("payment", voice_price()))
        self.assertEqual(cs["metadata"].get("user_id"), str(u.id))
        # nothing before payment
        self.assertEqual(credit_rows(u.id), [])
        emu_pay(sid)
        r = u.confirm(sid)
        self.assertStatus(r, 200, "confirm")
        self.assertIs(r.json["paid"], True)
        self.assertEqual(r.json["product"], "voice_therapy")

        rows = credit_rows(u.id)
        self.assertEqual(len(rows), 1, rows)
        c = rows[0]
        self.assertEqual((c["stripe_session_id"], c["minutes_purchased"], c["minutes_remaining"],
                          c["amount_cents"], c["is_active"]),
                         (sid, MINUTES, MINUTES, voice_price(), 1))
        self.assertEqual(db_scalar("SELECT TIMESTAMPDIFF(SECOND, purchased_at, expires_at)"
                                   " FROM voice_therapy_credits WHERE id = %s", c["id"]),
                         VALID_DAYS * 86400)
        self.assertLess(abs(db_scalar("SELECT TIMESTAMPDIFF(SECOND, purchased_at,"
                                      " UTC_TIMESTAMP(6)) FROM voice_therapy_credits"
                                      " WHERE id = %s", c["id"])), 120,
                        "purchased_at is not now (UTC)")

        j = self.credits(u)
        self.assertEqual((j["hasCredits"], j["remainingMinutes"]), (True, MINUTES))
        self.assertEqual(len(j["credits"]), 1)
        jc = j["credits"][0]
        self.assertEqual(set(jc), {"id", "minutesPurchased", "minutesRemaining", "purchasedAt",
                                   "expiresAt"})
        self.assertEqual((jc["id"], jc["minutesPurchased"], jc["minutesRemaining"]),
                         (c["id"], MINUTES, MINUTES))
        self.assertTrue(jc["purchasedAt"] and jc["expiresAt"], jc)

        # the webhook lands too: still one credit
        evt = completed_event(sid)
        wait_until(lambda: event_processed(evt["id"]), 20, message="completed event processed")
        self.assertEqual(len(credit_rows(u.id)), 1)
        self.assertEqual(self.credits(u)["remainingMinutes"], MINUTES)
        self.assertEqual(checkout_rows(u.id)[0]["status"], "fulfilled")

    def test_two_purchases_give_thirty_minutes(self):
        u = firewall_user()
        s1, s2 = buy_voice(u), buy_voice(u)
        self.assertNotEqual(s1, s2)
        rows = credit_rows(u.id)
        self.assertEqual([(c["stripe_session_id"], c["minutes_remaining"], c["is_active"])
                          for c in rows], [(s1, MINUTES, 1), (s2, MINUTES, 1)])
        j = self.credits(u)
        self.assertEqual((j["hasCredits"], j["remainingMinutes"]), (True, 2 * MINUTES))
        self.assertEqual(sorted(c["id"] for c in j["credits"]), [c["id"] for c in rows])
        r = self.start(u)
        self.assertEqual(r.json["availableMinutes"], 2 * MINUTES)

    def test_free_tier_gets_403_and_no_checkout(self):
        u = register()
        self.assertEqual(u.user["tier"], "free")
        for body in ({}, {"session_id": "cart-voice-1"}):
            r = u.post("/api/stripe/voice-therapy", body)
            self.assertError(r, 403, "premium_required", f"free tier buying voice {body}")
        self.assertEqual(checkout_rows(u.id), [], "a refused voice purchase recorded a checkout")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM audit_log WHERE user_id = %s AND"
                                   " action LIKE '%%CHECKOUT%%'", u.id), 0)
        # signed out: 401
        self.assertError(Browser().post("/api/stripe/voice-therapy", {}), 401)
        # once promoted the same user may buy
        promote(u, tier="firewall")
        start_voice_checkout(u)
        self.assertEqual(len(checkout_rows(u.id)), 1)

    def test_client_key_returns_the_same_session(self):
        u = firewall_user()
        s1 = start_voice_checkout(u, session_id="voice-cart-1")
        s2 = start_voice_checkout(u, session_id="voice-cart-1")
        self.assertEqual(s1, s2)
        self.assertEqual(len(checkout_rows(u.id)), 1)
        emu_pay(s1)
        self.assertStatus(u.confirm(s1), 200)
        self.assertEqual(len(credit_rows(u.id)), 1)
        # another user confirming it: 404, nothing granted to anyone
        other = firewall_user()
        self.assertError(other.confirm(s1), 404, "checkout_not_found")
        self.assertEqual(credit_rows(other.id), [])
        self.assertEqual(len(credit_rows(u.id)), 1)

    def test_double_webhook_delivery_grants_one_credit(self):
        u = firewall_user()
        sid = start_voice_checkout(u)
        emu_pay(sid)
        evt = completed_event(sid)
        wait_until(lambda: event_processed(evt["id"]), 20, message="completed event processed")
        self.assertEqual(len(credit_rows(u.id)), 1)
        out = emu_deliver(evt["id"], times=2)
        self.assertEqual(out["statuses"], [200, 200], out)
        r = u.confirm(sid)
        self.assertStatus(r, 200)
        self.assertEqual((r.json["paid"], r.json["fulfilledNow"]), (True, False))
        rows = credit_rows(u.id)
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["minutes_remaining"], MINUTES)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM stripe_events WHERE event_id = %s",
                                   evt["id"]), 1)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM audit_log WHERE action ="
                                   " 'PAYMENT_FULFILLED' AND entity_id = %s", sid), 1)
        self.assertEqual(self.credits(u)["remainingMinutes"], MINUTES)

    def test_refund_deactivates_the_credit(self):
        u = firewall_user()
        s1 = buy_voice(u)
        s2 = buy_voice(u)
        sess = self.start(u).json["sessionId"]
        r = self.end(u, sess, 61)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"minutesDeducted": 2, "remainingMinutes": 2 * MINUTES - 2})
        c1 = credit_for(s1)
        self.assertEqual(c1["minutes_remaining"], MINUTES - 2, "ties go to the oldest credit")
        pi = db_scalar("SELECT payment_intent_id FROM checkout_sessions"
                       " WHERE stripe_session_id = %s", s1)
        self.assertTrue(pi and pi.startswith("pi_"), pi)
        r = stripe_api("POST", "/v1/refunds", {"payment_intent": pi})
        self.assertStatus(r, 200, "refund")
        charge = r.json["charge"]
        wait_until(lambda: credit_for(s1)["is_active"] == 0, 20,
                   message="refunded credit deactivated")
        ev = wait_until(lambda: events_about(charge, "charge.refunded"), 10,
                        message="charge.refunded event")
        wait_until(lambda: event_processed(ev[0]["id"]), 20, message="refund event processed")
        c1 = credit_for(s1)
        self.assertEqual((c1["is_active"], c1["minutes_remaining"]), (0, MINUTES - 2))
        c2 = credit_for(s2)
        self.assertEqual((c2["is_active"], c2["minutes_remaining"]), (1, MINUTES))
        j = self.credits(u)
        self.assertEqual((j["hasCredits"], j["remainingMinutes"]), (True, MINUTES))
        self.assertEqual([c["id"] for c in j["credits"]], [c2["id"]])
        rev = db_rows("SELECT product, payment_intent_id, units_reversed FROM payment_reversals"
                      " WHERE stripe_session_id = %s", s1)
        self.assertEqual(rev, [{"product": "voice_therapy", "payment_intent_id": pi,
                                "units_reversed": MINUTES - 2}])
        self.assertEqual(checkout_rows(u.id)[0]["status"], "refunded")
        # the refunded credit is never drawn on again
        sess = self.start(u).json
        self.assertEqual(sess["availableMinutes"], MINUTES)
        r = self.end(u, sess["sessionId"], 20 * 60)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"minutesDeducted": MINUTES, "remainingMinutes": 0})
        self.assertEqual(credit_for(s1)["minutes_remaining"], MINUTES - 2)
        # the same refund event again changes nothing
        out = emu_deliver(ev[0]["id"], times=2)
        self.assertEqual(out["statuses"], [200, 200], out)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM payment_reversals"
                                   " WHERE stripe_session_id = %s", s1), 1)
        self.assertError(u.post("/api/voice-therapy/start", {}), 402, "no_voice_credits")
        self.assertUsageConsistent(u.id)

    def test_refund_processed_before_fulfilment_grants_nothing(self):
        """charge.refunded may arrive before checkout.session.completed (out of
        order delivery): the refunded payment must leave no usable minutes."""
        u = firewall_user()
        sid = start_voice_checkout(u)
        emu_hold()
        pi = emu_pay(sid).json["payment_intent"]
        self.assertStatus(stripe_api("POST", "/v1/refunds", {"payment_intent": pi}), 200)
        rel = emu_release("reverse")
        self.assertEqual(set(rel["statuses"]), {200}, rel)
        for eid in session_event_ids(sid):
            wait_until(lambda: event_processed(eid), 20, message=f"{eid} processed")
        self.assertStatus(u.confirm(sid), 200)
        self.assertEqual(self.credits(u), {"hasCredits": False, "remainingMinutes": 0,
                                           "credits": []},
                         "a payment refunded before it was fulfilled still granted minutes")
        self.assertError(u.post("/api/voice-therapy/start", {}), 402, "no_voice_credits")

    def test_refund_of_only_credit_leaves_nothing(self):
        u = firewall_user()
        sid = buy_voice(u)
        pi = stripe_session(sid)["payment_intent"]
        self.assertStatus(stripe_api("POST", "/v1/refunds", {"payment_intent": pi}), 200)
        wait_until(lambda: credit_for(sid)["is_active"] == 0, 20,
                   message="refunded credit deactivated")
        self.assertEqual(self.credits(u), {"hasCredits": False, "remainingMinutes": 0,
                                           "credits": []})
        self.assertError(u.post("/api/voice-therapy/start", {}), 402, "no_voice_credits")
        # a late redelivery of the payment grants nothing back
        out = emu_deliver(completed_event(sid)["id"])
        self.assertEqual(out["statuses"], [200], out)
        self.assertEqual(len(credit_rows(u.id)), 1)
        self.assertEqual(credit_for(sid)["is_active"], 0)


class SessionTests(VoiceCase):

    def test_61_seconds_deducts_two_minutes(self):
        u = firewall_user()
        sid = buy_voice(u)
        r = self.start(u, persona="calm")
        sess = r.json["sessionId"]
        self.assertEqual(r.json, {"sessionId": sess, "availableMinutes": MINUTES})
        row = session_row(sess)
        self.assertEqual((row["user_id"], row["status"], row["open_slot"], row["persona"],
                          row["available_minutes"]), (u.id, "active", 1, "calm", MINUTES))
        r = self.end(u, sess, 61, summary="felt better")
        self.assertStatus(r, 200, "end")
        self.assertEqual(r.json, {"minutesDeducted": 2, "remainingMinutes": MINUTES - 2})
        row = session_row(sess)
        self.assertEqual((row["status"], row["open_slot"], row["seconds_used"],
                          row["minutes_requested"], row["minutes_deducted"], row["summary"]),
                         ("ended", None, 61, 2, 2, "felt better"))
        self.assertIsNotNone(row["ended_at"])
        c = credit_for(sid)
        self.assertEqual((c["minutes_remaining"], c["is_active"]), (MINUTES - 2, 1))
        self.assertEqual(usage_rows(sess), [{"session_id": sess, "credit_id": c["id"],
                                             "minutes": 2}])
        j = self.credits(u)
        self.assertEqual((j["hasCredits"], j["remainingMinutes"]), (True, MINUTES - 2))
        self.assertEqual(j["credits"][0]["minutesRemaining"], MINUTES - 2)
        self.assertEqual(j["credits"][0]["minutesPurchased"], MINUTES)
        # boundaries: 0 s deducts nothing, 60 s one minute, 120 s two
        for seconds, want in ((0, 0), (60, 1), (120, 2), (1, 1)):
            s = self.start(u).json["sessionId"]
            before = self.credits(u)["remainingMinutes"]
            r = self.end(u, s, seconds)
            self.assertStatus(r, 200)
            self.assertEqual(r.json, {"minutesDeducted": want,
                                      "remainingMinutes": before - want}, f"{seconds}s")
        self.assertEqual(credit_for(sid)["minutes_remaining"], MINUTES - 2 - 0 - 1 - 2 - 1)
        self.assertUsageConsistent(u.id)

    def test_the_pages_count_minutes_in_words(self):
        """One minute left is "1 minute", more is "minutes", on both pages."""
        u = firewall_user()
        buy_voice(u)
        self.assertStatus(self.end(u, self.start(u).json["sessionId"], (MINUTES - 2) * 60), 200)
        for left, word in ((2, "minutes"), (1, "minute")):
            self.assertEqual(self.credits(u)["remainingMinutes"], left)
            self.assertRegex(u.get("/dashboard").text,
                             rf'<p class="big">{left}</p>\s*<p class="muted">{word} remaining</p>')
            self.assertIn(f"data-minutes-left>{left}</strong> <span data-minutes-word>{word}</span> left",
                          u.get("/voice").text)
            self.assertStatus(self.end(u, self.start(u).json["sessionId"], 60), 200)

    def test_deducts_most_minutes_left_first_across_credits(self):
        u = firewall_user()
        s1, s2 = buy_voice(u), buy_voice(u)
        c1, c2 = credit_for(s1)["id"], credit_for(s2)["id"]
        sess = self.start(u).json["sessionId"]
        self.assertEqual(self.end(u, sess, 3 * 60).json,
                         {"minutesDeducted": 3, "remainingMinutes": 27})
        self.assertEqual(remaining(u.id), {c1: 12, c2: 15})
        # 20 minutes: all 15 of the fuller credit, then 5 of the other
        sess = self.start(u).json["sessionId"]
        r = self.end(u, sess, 19 * 60 + 1)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"minutesDeducted": 20, "remainingMinutes": 7})
        self.assertEqual(remaining(u.id), {c1: 7, c2: 0})
        self.assertEqual(sorted((x["credit_id"], x["minutes"]) for x in usage_rows(sess)),
                         sorted([(c2, 15), (c1, 5)]))
        self.assertEqual(credit_for(s2)["is_active"], 0)
        self.assertEqual(credit_for(s1)["is_active"], 1)
        # an hour on 7 minutes: the server ended it when they ran out and
        # charged the 7 available at start, never more
        sess = self.start(u).json
        self.assertEqual(sess["availableMinutes"], 7)
        r = self.end(u, sess["sessionId"], 3600)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"minutesDeducted": 7, "remainingMinutes": 0})
        row = session_row(sess["sessionId"])
        self.assertEqual((row["minutes_requested"], row["minutes_deducted"], row["ended_by"],
                          row["seconds_charged"], row["seconds_used"]),
                         (7, 7, "server", 7 * 60, None))
        self.assertEqual(remaining(u.id), {c1: 0, c2: 0})
        self.assertEqual([c["is_active"] for c in credit_rows(u.id)], [0, 0])
        self.assertEqual(self.credits(u), {"hasCredits": False, "remainingMinutes": 0,
                                           "credits": []})
        self.assertError(u.post("/api/voice-therapy/start", {}), 402, "no_voice_credits")
        self.assertUsageConsistent(u.id)

    def test_second_start_while_open_is_409(self):
        u = firewall_user()
        buy_voice(u)
        sess = self.start(u).json["sessionId"]
        self.assertError(u.post("/api/voice-therapy/start", {}), 409, "session_already_open")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM voice_therapy_sessions"
                                   " WHERE user_id = %s", u.id), 1)
        self.assertStatus(self.end(u, sess, 30), 200)
        sess2 = self.start(u).json["sessionId"]
        self.assertNotEqual(sess, sess2)
        self.assertStatus(self.end(u, sess2, 30), 200)
        # ten concurrent starts: exactly one opens a session
        barrier = threading.Barrier(10)
        out = [None] * 10

        def go(i):
            barrier.wait(10)
            out[i] = u.post("/api/voice-therapy/start", {"persona": f"p{i}"})

        ts = [threading.Thread(target=go, args=(i,)) for i in range(10)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(sorted(r.status for r in out), [200] + [409] * 9,
                         [repr(r) for r in out])
        for r in out:
            if r.status == 409:
                self.assertError(r, 409, "session_already_open")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM voice_therapy_sessions"
                                   " WHERE user_id = %s AND status = 'active'", u.id), 1)

    def test_ending_twice_deducts_once(self):
        u = firewall_user()
        sid = buy_voice(u)
        sess = self.start(u).json["sessionId"]
        r1 = self.end(u, sess, 125)
        self.assertStatus(r1, 200)
        self.assertEqual(r1.json, {"minutesDeducted": 3, "remainingMinutes": MINUTES - 3})
        r2 = self.end(u, sess, 125)
        self.assertStatus(r2, 200)
        self.assertEqual(r2.json, r1.json, "ending twice must answer the same")
        # a different secondsUsed on a repeat changes nothing either
        r3 = self.end(u, sess, 900)
        self.assertStatus(r3, 200)
        self.assertEqual(r3.json, r1.json)
        self.assertEqual(credit_for(sid)["minutes_remaining"], MINUTES - 3)
        row = session_row(sess)
        self.assertEqual((row["seconds_used"], row["minutes_requested"],
                          row["minutes_deducted"]), (125, 3, 3))
        self.assertEqual(len(usage_rows(sess)), 1)
        # and concurrently: 10 ends of one fresh session deduct once
        sess = self.start(u).json["sessionId"]
        run_for(sess, 61)  # once, before the race: the threads only end
        barrier = threading.Barrier(10)
        out = [None] * 10

        def go(i):
            barrier.wait(10)
            out[i] = u.post("/api/voice-therapy/end", {"sessionId": sess, "secondsUsed": 61})

        ts = [threading.Thread(target=go, args=(i,)) for i in range(10)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        for r in out:
            self.assertIsNotNone(r)
            self.assertStatus(r, 200, "concurrent end")
            self.assertEqual(r.json["minutesDeducted"], 2, r)
        self.assertEqual(credit_for(sid)["minutes_remaining"], MINUTES - 5)
        self.assertEqual(len(usage_rows(sess)), 1)
        self.assertUsageConsistent(u.id)

    def test_another_users_session_is_404(self):
        a, b = firewall_user(), firewall_user()
        sa, sb = buy_voice(a), buy_voice(b)
        sess = self.start(a).json["sessionId"]
        r = self.end(b, sess, 600)
        self.assertError(r, 404, "session_not_found", "B ending A's session")
        self.assertEqual(session_row(sess)["status"], "active")
        self.assertEqual(credit_for(sa)["minutes_remaining"], MINUTES)
        self.assertEqual(credit_for(sb)["minutes_remaining"], MINUTES)
        self.assertEqual(usage_rows(sess), [])
        # unknown ids are the same 404
        self.assertError(self.end(b, 999999999999, 60), 404, "session_not_found")
        # A may still end it
        r = self.end(a, sess, 60)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"minutesDeducted": 1, "remainingMinutes": MINUTES - 1})
        # and B cannot end it after A did either (nor read its result)
        self.assertError(self.end(b, sess, 60), 404, "session_not_found")
        self.assertEqual(credit_for(sb)["minutes_remaining"], MINUTES)

    def test_bad_input(self):
        u = firewall_user()
        buy_voice(u)
        sess = self.start(u).json["sessionId"]
        for body in ({}, {"sessionId": sess}, {"secondsUsed": 60},
                     {"sessionId": sess, "secondsUsed": -1},
                     {"sessionId": sess, "secondsUsed": 86401},
                     {"sessionId": sess, "secondsUsed": "sixty"},
                     {"sessionId": sess, "secondsUsed": 1.5},
                     {"sessionId": "x", "secondsUsed": 60},
                     {"sessionId": 0, "secondsUsed": 60}):
            self.assertError(u.post("/api/voice-therapy/end", body), 400, None, f"end {body}")
        self.assertEqual(session_row(sess)["status"], "active")
        self.assertEqual(self.credits(u)["remainingMinutes"], MINUTES)
        r = self.end(u, sess, 86400)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"minutesDeducted": MINUTES, "remainingMinutes": 0})
        self.assertError(Browser().post("/api/voice-therapy/start", {}), 401)
        self.assertError(Browser().get("/api/voice-therapy/credits"), 401)
        self.assertError(u.post("/api/voice-therapy/end", {"sessionId": sess, "secondsUsed": 1},
                                csrf=False), 403)

    def test_expired_credits_do_not_count(self):
        u = firewall_user()
        s1, s2 = buy_voice(u), buy_voice(u)
        c1, c2 = credit_for(s1)["id"], credit_for(s2)["id"]
        db_exec("UPDATE voice_therapy_credits SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"
                " WHERE id = %s", c1)
        j = self.credits(u)
        self.assertEqual((j["hasCredits"], j["remainingMinutes"]), (True, MINUTES))
        self.assertEqual([c["id"] for c in j["credits"]], [c2])
        sess = self.start(u).json
        self.assertEqual(sess["availableMinutes"], MINUTES)
        r = self.end(u, sess["sessionId"], 20 * 60)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"minutesDeducted": MINUTES, "remainingMinutes": 0})
        self.assertEqual(remaining(u.id), {c1: MINUTES, c2: 0}, "took from an expired credit")
        # only an expired credit left: nothing to use, start -> 402
        self.assertEqual(self.credits(u), {"hasCredits": False, "remainingMinutes": 0,
                                           "credits": []})
        self.assertError(u.post("/api/voice-therapy/start", {}), 402, "no_voice_credits")
        # a session opened before expiry and ended after it takes nothing expired
        s3 = buy_voice(u)
        c3 = credit_for(s3)["id"]
        sess = self.start(u).json["sessionId"]
        db_exec("UPDATE voice_therapy_credits SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"
                " WHERE id = %s", c3)
        r = self.end(u, sess, 300)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"minutesDeducted": 0, "remainingMinutes": 0})
        self.assertEqual(remaining(u.id), {c1: MINUTES, c2: 0, c3: MINUTES})
        self.assertError(u.post("/api/voice-therapy/start", {}), 402, "no_voice_credits")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM voice_therapy_sessions WHERE user_id = %s"
                                   " AND status = 'active'", u.id), 0)
        self.assertUsageConsistent(u.id)

    def test_no_credits_start_402(self):
        u = firewall_user()
        self.assertError(u.post("/api/voice-therapy/start", {}), 402, "no_voice_credits")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM voice_therapy_sessions"
                                   " WHERE user_id = %s", u.id), 0)


class ConcurrencyTests(VoiceCase):

    def run_ends(self, u, seconds, available):
        """Inserts one open session per entry (as if started), ends them all at once."""
        ids = []
        for s in seconds:
            _, sid = db_exec("INSERT INTO voice_therapy_sessions (user_id, status, open_slot,"
                             " available_minutes, started_at) VALUES (%s, 'active', NULL, %s,"
                             " UTC_TIMESTAMP(6) - INTERVAL %s SECOND)", u.id, available, s)
            ids.append(sid)
        n = len(ids)
        barrier = threading.Barrier(n)
        out = [None] * n

        def go(i):
            try:
                barrier.wait(20)
                out[i] = u.post("/api/voice-therapy/end", {"sessionId": ids[i],
                                                           "secondsUsed": seconds[i]})
            except Exception as e:  # noqa: BLE001 -- asserted below
                out[i] = e

        ts = [threading.Thread(target=go, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        for i, r in enumerate(out):
            self.assertIsNotNone(r, f"end {i} did not finish")
            self.assertNotIsInstance(r, Exception, f"end {i}: {r!r}")
            self.assertStatus(r, 200, f"end {i} ({seconds[i]}s)")
        return ids, out

    def check_round(self, ids, seconds, out, before):
        """Each end took min(requested, what was left at its turn), in the order
        the ends took their minutes (first usage row id)."""
        requested = [ceil_minutes(s) for s in seconds]
        deducted = [r.json["minutesDeducted"] for r in out]
        for sid, s, req, d in zip(ids, seconds, requested, deducted):
            row = session_row(sid)
            self.assertEqual((row["status"], row["open_slot"], row["seconds_used"],
                              row["minutes_requested"], row["minutes_deducted"]),
                             ("ended", None, s, req, d), f"session {sid}")
            self.assertLessEqual(d, req)
            self.assertGreaterEqual(d, 0)
        total = sum(deducted)
        self.assertEqual(total, min(sum(requested), before),
                         f"deducted {total} of {sum(requested)} requested with {before} left")
        first_use = {}
        for x in usage_rows(credit_ids=self.credit_ids):
            first_use.setdefault(x["session_id"], x["id"])
        order = sorted((first_use[sid], i) for i, sid in enumerate(ids) if sid in first_use)
        left = before
        for _, i in order:
            self.assertEqual(deducted[i], min(requested[i], left),
                             f"session {ids[i]}: {requested[i]} requested, {left} left at its turn")
            left -= deducted[i]
        for i, sid in enumerate(ids):
            if sid not in first_use:
                self.assertEqual(deducted[i], 0)
                self.assertTrue(requested[i] == 0 or left == 0,
                                f"session {sid} took nothing of {requested[i]} with {left} left")
        for r in out:
            self.assertGreaterEqual(r.json["remainingMinutes"], 0)
            self.assertLessEqual(r.json["remainingMinutes"], before)
        return total

    def test_forty_concurrent_ends_on_three_credits(self):
        u = firewall_user()
        sids = [buy_voice(u) for _ in range(3)]
        self.credit_ids = [credit_for(s)["id"] for s in sids]
        self.assertEqual(self.credits(u)["remainingMinutes"], 3 * MINUTES)

        # round 1: less than is there (every end is served in full)
        seconds1 = [(i * 17) % 61 for i in range(40)]      # 0..60 s: 0 or 1 minute each
        req1 = sum(ceil_minutes(s) for s in seconds1)
        self.assertLess(req1, 45)
        ids1, out1 = self.run_ends(u, seconds1, 45)
        took1 = self.check_round(ids1, seconds1, out1, 45)
        self.assertEqual(took1, req1)
        left = remaining(u.id)
        self.assertEqual(sum(left.values()), 45 - took1)
        self.assertEqual(self.credits(u)["remainingMinutes"], 45 - took1)
        self.assertUsageConsistent(u.id)

        # round 2: far more than is left
        seconds2 = [(i * 53) % 181 + (i % 3) * 60 for i in range(40)]
        req2 = sum(ceil_minutes(s) for s in seconds2)
        self.assertGreater(req2, 45 - took1)
        ids2, out2 = self.run_ends(u, seconds2, 45 - took1)
        took2 = self.check_round(ids2, seconds2, out2, 45 - took1)
        self.assertEqual(took1 + took2, min(req1 + req2, 45))
        rows = credit_rows(u.id)
        self.assertEqual(45 - sum(c["minutes_remaining"] for c in rows), took1 + took2)
        self.assertEqual([(c["minutes_remaining"], c["is_active"]) for c in rows],
                         [(0, 0)] * 3)
        self.assertEqual(int(db_scalar("SELECT SUM(minutes_deducted) FROM voice_therapy_sessions"
                                       " WHERE user_id = %s", u.id)), 45)
        self.assertEqual(int(db_scalar("SELECT SUM(minutes) FROM voice_therapy_usage WHERE"
                                       " credit_id IN (%s, %s, %s)", *self.credit_ids)), 45)
        self.assertEqual(self.credits(u), {"hasCredits": False, "remainingMinutes": 0,
                                           "credits": []})
        self.assertUsageConsistent(u.id)
        # the final answers agree with the database: someone saw 0 left
        self.assertIn(0, [r.json["remainingMinutes"] for r in out2])
