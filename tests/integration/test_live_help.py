"""Live Help: checkout through the emulator, the fulfilment race, parallel
purchases, bad input, isolation, slots and refunds (issue 2, tests 2-4, 6, 7,
9, 10)."""

import json
import re
import threading
import time
import urllib.parse

from .lib import (CARD_DECLINE, CARD_OK, Browser, Case, audit_count, base_url,
                  bought_live_help, check_status, checkout_rows, completed_event,
                  db_exec, db_rows, db_scalar, emu_deliver, emu_fail, emu_hold, emu_pay,
                  emu_release, emu_state, event_processed, events_about, grant_hours,
                  make_event, post_webhook,
                  new_slot, parallel, purchases_for_session, purchases_for_user,
                  refund_processed,
                  register, session_event_ids, start_live_help, statements_during, stripe_api,
                  stripe_session, totals, wait_until)

UNIT_CENTS = 4900   # products.live_help; read from the DB in the tests that need it


def unit_cents():
    return db_scalar("SELECT unit_amount_cents FROM products WHERE code = 'live_help'")


class CheckoutFlowTests(Case):

    def test_buy_creates_local_record_and_stripe_session(self):
        a = register()
        r = a.buy_live_help(2)
        self.assertStatus(r, 200, "buy")
        sid, url = r.json["session_id"], r.json["url"]
        self.assertRegex(sid, r"^cs_[A-Za-z0-9_]+$")
        self.assertTrue(url.endswith(f"/checkout/pay/{sid}"), url)
        rows = checkout_rows(a.id)
        self.assertEqual(len(rows), 1)
        row = rows[0]
        price = unit_cents()
        self.assertEqual((row["stripe_session_id"], row["product"], row["quantity"],
                          row["amount_cents"], row["status"]),
                         (sid, "live_help", 2, 2 * price, "open"))
        self.assertEqual(audit_count("CHECKOUT_STARTED", sid), 1)
        cs = stripe_session(sid)
        self.assertEqual(cs["amount_total"], 2 * price)
        self.assertEqual(cs["mode"], "payment")
        self.assertEqual(cs["metadata"].get("user_id"), str(a.id))
        self.assertEqual(cs["metadata"].get("quantity"), "2")
        self.assertEqual(cs["success_url"],
                         f"{base_url()}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}")
        # nothing is granted before payment
        self.assertEqual(purchases_for_session(sid), [])
        r = a.confirm(sid)
        self.assertStatus(r, 200, "confirm before paying")
        self.assertEqual((r.json["paid"], r.json["fulfilledNow"]), (False, False))
        self.assertEqual(purchases_for_session(sid), [])

    def test_client_key_returns_the_same_session(self):
        a = register()
        s1 = start_live_help(a, 1, session_id="cart-123")
        s2 = start_live_help(a, 1, session_id="cart-123")
        self.assertEqual(s1, s2, "a retried buy with the same client key made a new session")
        self.assertEqual(len(checkout_rows(a.id)), 1)
        # another user may use the same key
        b = register()
        s3 = start_live_help(b, 1, session_id="cart-123")
        self.assertNotEqual(s3, s1)

    def test_hosted_checkout_page_success_and_dashboard(self):
        a = register()
        r = a.buy_live_help(3)
        self.assertStatus(r, 200, "buy")
        sid, url = r.json["session_id"], r.json["url"]

        page = a.get(url)
        self.assertStatus(page, 200, "hosted checkout page")
        self.assertIn("<form", page.text)
        m = re.search(r'<form[^>]*method="post"[^>]*action="([^"]+)"', page.text)
        self.assertIsNotNone(m, "no Pay form on the hosted page")
        self.assertIn('name="card"', page.text)
        total = 3 * unit_cents()
        self.assertIn(f"${total // 100}.{total % 100:02d}", page.text,
                      "the 3-hour total is not on the checkout page")
        action = urllib.parse.urljoin(url, m.group(1).replace("&amp;", "&"))

        paid = a.request("POST", action, form={"card": CARD_OK})
        self.assertStatus(paid, 303, "Pay")
        success = paid.header("location")
        self.assertEqual(success, f"{base_url()}/checkout/success?session_id={sid}")

        back = a.get(success)
        self.assertStatus(back, 303, "success page")
        local_id = checkout_rows(a.id)[0]["id"]
        self.assertEqual(back.header("location"), f"/dashboard?purchased={local_id}")
        rows = purchases_for_session(sid)
        self.assertEqual(len(rows), 1, "the redirect did not fulfil exactly once")
        self.assertEqual((rows[0]["user_id"], rows[0]["hours"], rows[0]["amount_cents"]),
                         (a.id, 3, 3 * unit_cents()))
        self.assertEqual(totals(a.id)["hours_total"], 3)

        dash = a.get("/dashboard")
        self.assertStatus(dash, 200, "dashboard")
        self.assertIn("Total Live Help Purchased: 3 hours", dash.text)
        self.assertIn("Payment received: you bought 3 Live Help hours.",
                      a.get(back.header("location")).text)

        # the webhook arrives (before or after the redirect): still one grant
        evt = completed_event(sid)
        wait_until(lambda: event_processed(evt["id"]), 20,
                   message=f"{evt['id']} processed by the webhook")
        self.assertEqual(len(purchases_for_session(sid)), 1)
        self.assertEqual(totals(a.id)["hours_total"], 3)
        self.assertEqual(audit_count("PAYMENT_FULFILLED", sid), 1)
        ck = checkout_rows(a.id)[0]
        self.assertEqual(ck["status"], "fulfilled")
        self.assertEqual(ck["payment_intent_id"], stripe_session(sid)["payment_intent"])

        # refreshing the success page and confirm-payment change nothing
        self.assertStatus(a.get(success), 303)
        r = a.confirm(sid)
        self.assertStatus(r, 200)
        self.assertEqual((r.json["paid"], r.json["fulfilledNow"], r.json["product"],
                          r.json["route"]), (True, False, "live_help",
                                             f"/dashboard?purchased={local_id}"))
        self.assertEqual(len(purchases_for_session(sid)), 1)
        self.assertEqual(totals(a.id)["hours_total"], 3)
        lh = a.live_help()
        self.assertStatus(lh, 200)
        self.assertEqual((lh.json["totalHours"], lh.json["usedHours"],
                          lh.json["remainingHours"]), (3, 0, 3))

    def test_the_notice_after_a_purchase_says_how_it_ended(self):
        a = register()
        sid = bought_live_help(a, 2)
        local_id = checkout_rows(a.id)[0]["id"]

        def notice():
            page = a.get(f"/dashboard?purchased={local_id}")
            self.assertStatus(page, 200)
            return re.search(r'data-notice[^>]*>\s*([^<]*?)\s*<', page.text).group(1)
        self.assertEqual(notice(), "Payment received: you bought 2 Live Help hours."
                         " Book a session with them under Live Help below.")
        refund_processed(stripe_session(sid)["payment_intent"])
        self.assertEqual(notice(), "Your payment for 2 Live Help hours has been refunded.")
        db_exec("UPDATE checkout_sessions SET status = 'failed' WHERE id = %s", local_id)
        try:
            self.assertEqual(notice(), "Your payment for 2 Live Help hours did not go through,"
                             " so nothing was bought. You can try again.")
        finally:    # as it was: the books hold a fulfilled, refunded purchase
            db_exec("UPDATE checkout_sessions SET status = 'refunded' WHERE id = %s", local_id)

    def test_declined_card_grants_nothing(self):
        a = register()
        r = a.buy_live_help(2)
        self.assertStatus(r, 200)
        sid, url = r.json["session_id"], r.json["url"]
        resp = a.request("POST", url, form={"card": CARD_DECLINE})
        self.assertIsNone(resp.header("location"), "a declined card redirected to success_url")
        self.assertEqual(resp.status, 402, f"declined payment page: {resp!r}")
        self.assertIn("declined", resp.text)
        # the failure events are delivered and processed; nothing is granted
        ids = session_event_ids(sid)
        self.assertTrue(ids, "no events for the declined payment")
        for eid in ids:
            wait_until(lambda: event_processed(eid), 20, message=f"{eid} processed")
        r = a.confirm(sid)
        self.assertStatus(r, 200, "confirm after a decline")
        self.assertEqual((r.json["paid"], r.json["fulfilledNow"]), (False, False))
        r = a.get(f"/checkout/success?session_id={sid}")
        self.assertStatus(r, 303)
        self.assertNotEqual(r.header("location"), "/dashboard")
        self.assertEqual(purchases_for_session(sid), [])
        self.assertIsNone(totals(a.id))
        self.assertEqual(audit_count("PAYMENT_FULFILLED", sid), 0)
        self.assertIn("Total Live Help Purchased: 0 hours", a.get("/dashboard").text)

    def test_confirm_payment_bad_requests(self):
        a = register()
        self.assertError(a.get("/api/confirm-payment?status=success"), 400,
                         "missing_session_id")
        self.assertError(a.confirm("cs_doesnotexist123"), 404, "checkout_not_found")
        self.assertError(a.get("/api/confirm-payment?status=success&session_id=cs_%27%3B--"),
                         (400, 404))
        sid = start_live_help(a, 1)
        self.assertError(a.confirm(sid, status="cancelled"), 400)


class RaceTests(Case):

    def test_confirm_payment_races_webhook_deliveries(self):
        a = register()
        sid = start_live_help(a, 4)
        emu_hold()
        emu_pay(sid)
        evt = completed_event(sid)
        n = 20
        barrier = threading.Barrier(n + 1)
        results = [None] * n
        webhook = {}

        def confirm(i):
            barrier.wait(10)
            results[i] = a.confirm(sid)

        def deliver():
            barrier.wait(10)
            webhook["release"] = emu_release("fifo")
            webhook["again"] = emu_deliver(evt["id"], times=2)

        threads = [threading.Thread(target=confirm, args=(i,)) for i in range(n)]
        threads.append(threading.Thread(target=deliver))
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertIn(evt["id"], webhook["release"]["released"])
        rel = dict(zip(webhook["release"]["released"], webhook["release"]["statuses"]))
        self.assertEqual(rel[evt["id"]], 200, f"released delivery: {webhook['release']}")
        self.assertEqual(webhook["again"]["statuses"], [200, 200], webhook["again"])

        for i, r in enumerate(results):
            self.assertIsNotNone(r, f"confirm {i} did not finish")
            self.assertStatus(r, 200, f"confirm {i}")
            self.assertIs(r.json["paid"], True, f"confirm {i}: {r!r}")
        granted_by_confirm = sum(1 for r in results if r.json["fulfilledNow"])
        self.assertLessEqual(granted_by_confirm, 1,
                             f"{granted_by_confirm} confirm-payment calls said fulfilledNow")

        rows = purchases_for_session(sid)
        self.assertEqual(len(rows), 1, f"purchase rows: {rows}")
        self.assertEqual(rows[0]["hours"], 4)
        self.assertEqual(totals(a.id), {"hours_total": 4, "hours_used": 0})
        # exactly one grant in all: confirm's fulfilledNow (0 or 1) plus the
        # webhook's grant (1 - that) is the one PAYMENT_FULFILLED row
        self.assertEqual(audit_count("PAYMENT_FULFILLED", sid), 1)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM stripe_events WHERE event_id = %s",
                                   evt["id"]), 1)
        self.assertTrue(event_processed(evt["id"]))

    def test_two_hundred_purchases_in_parallel(self):
        users = parallel(lambda i: register(), range(20), threads=10)
        for u in users:
            self.assertIsInstance(u, Browser, f"register failed: {u!r}")
        jobs = [(u, 1 + (i * 7 + j * 3) % 5) for i, u in enumerate(users) for j in range(10)]

        def purchase(job):
            u, q = job
            sid = start_live_help(u, q)
            emu_pay(sid)
            r = u.confirm(sid)
            check_status(r, 200, "confirm")
            if not r.json["paid"]:
                raise AssertionError(f"confirm says unpaid: {r!r}")
            return sid

        t0 = time.monotonic()
        sids = parallel(purchase, jobs, threads=16)
        took = time.monotonic() - t0
        errors = [s for s in sids if isinstance(s, Exception)]
        self.assertEqual(errors, [], f"{len(errors)} purchases failed, first: {errors[:1]}")
        self.assertEqual(len(set(sids)), 200)

        user_ids = [u.id for u in users]
        marks = ",".join(["%s"] * len(user_ids))
        self.assertEqual(db_scalar(f"SELECT COUNT(*) FROM live_help_purchases WHERE user_id IN "
                                   f"({marks})", *user_ids), 200)
        # let every webhook land, then check again: still 200, sums exact
        wait_until(lambda: db_scalar(
            "SELECT COUNT(*) FROM stripe_events WHERE type = 'checkout.session.completed'"
            f" AND processed_at IS NOT NULL AND object_id IN ({','.join(['%s'] * 200)})",
            *sids) == 200, 60, message="200 completed events processed")
        self.assertEqual(db_scalar(f"SELECT COUNT(*) FROM live_help_purchases WHERE user_id IN "
                                   f"({marks})", *user_ids), 200)
        self.assertEqual(db_scalar("SELECT COUNT(DISTINCT stripe_session_id) FROM "
                                   f"live_help_purchases WHERE user_id IN ({marks})",
                                   *user_ids), 200)
        for u in users:
            want = sum(q for (v, q) in jobs if v is u)
            self.assertEqual(hours_of(u), want, f"user {u.id}: hours_total")
            self.assertEqual(sum(p["hours"] for p in purchases_for_user(u.id)), want)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM audit_log WHERE action ="
                                   " 'PAYMENT_FULFILLED' AND entity_id IN "
                                   f"({','.join(['%s'] * 200)})", *sids), 200)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM checkout_sessions WHERE status ="
                                   f" 'fulfilled' AND user_id IN ({marks})", *user_ids), 200)
        self.assertLess(took, 120, f"200 purchases took {took:.0f}s")


def hours_of(u):
    t = totals(u.id)
    return t["hours_total"] if t else 0


class BadInputTests(Case):

    def test_buy_live_help_bad_input(self):
        a = register()
        stripe_before = emu_state()["checkout_sessions"]
        cases = [
            ({"quantity": 0}, None, 400, "invalid_quantity"),
            ({"quantity": 6}, None, 400, "invalid_quantity"),
            ({"quantity": -1}, None, 400, "invalid_quantity"),
            ({"quantity": "abc"}, None, 400, "invalid_quantity"),
            ({"quantity": 2.5}, None, 400, "invalid_quantity"),
            ({"quantity": True}, None, 400, "invalid_quantity"),
            ({"quantity": [1]}, None, 400, "invalid_quantity"),
            ({"quantity": 99999999999999999999}, None, 400, ("invalid_quantity", "invalid_json")),
            ({}, None, 400, "missing_quantity"),
            ({"quantity": None}, None, 400, "missing_quantity"),
            ({"quantity": 1, "session_id": "has spaces"}, None, 400, "invalid_session_id"),
            ({"quantity": 1, "session_id": "x" * 65}, None, 400, "invalid_session_id"),
        ]
        for body, _, status, code in cases:
            r = a.post("/api/buy/live_help", body)
            self.assertError(r, status, code, f"buy {body!r}")
        raw = [
            (b'{"quantity": 1, "pad": "' + b"x" * 70000 + b'"}', "application/json", 413,
             "body_too_large", "70 KB body"),
            (b"quantity=1", "text/plain", 415, "unsupported_media_type", "text/plain"),
            (b"quantity=1", "application/x-www-form-urlencoded", 415,
             "unsupported_media_type", "form body"),
            (b'{"quantity": ', "application/json", 400, "invalid_json", "truncated JSON"),
            (b'[1]', "application/json", 400, "invalid_json", "JSON array"),
            (b'"q"', "application/json", 400, "invalid_json", "JSON string"),
            (b'{"quantity": 1, "quantity": 2}', "application/json", 400, "invalid_json",
             "duplicate keys"),
            (b'{"quantity": 1}\x00{"quantity": 5}', "application/json", 400, "invalid_json",
             "NUL in body"),
        ]
        for body, ctype, status, code, what in raw:
            r = a.request("POST", "/api/buy/live_help", data=body, content_type=ctype)
            self.assertError(r, status, code, what)
        self.assertEqual(checkout_rows(a.id), [], "a refused request recorded a checkout")
        self.assertEqual(emu_state()["checkout_sessions"], stripe_before,
                         "a refused request created a Stripe Checkout Session")
        # the boundary value is accepted
        r = a.post("/api/buy/live_help", {"quantity": 5})
        self.assertStatus(r, 200, "quantity 5")
        self.assertEqual(checkout_rows(a.id)[0]["quantity"], 5)

    def test_wrong_method_on_buy(self):
        a = register()
        r = a.get("/api/buy/live_help")
        self.assertError(r, 405, "method_not_allowed")
        self.assertEqual(r.header_all("allow"), ["POST"])
        # a path that takes more than one method names them all
        r = a.request("DELETE", "/api/bookings")
        self.assertError(r, 405, "method_not_allowed")
        self.assertEqual(r.header_all("allow"), ["GET, HEAD, POST"])
        self.assertError(a.post("/api/buy/nothing_like_this", {"quantity": 1}), 404)
        self.assertEqual(checkout_rows(a.id), [])


class IsolationTests(Case):

    def test_other_users_session_is_not_found(self):
        a, b = register(), register()
        sid = start_live_help(a, 2)
        emu_hold()
        emu_pay(sid)
        # B cannot confirm (and so cannot fulfil) A's paid session
        self.assertError(b.confirm(sid), 404, "checkout_not_found", "B confirms A's session")
        r = b.get(f"/checkout/success?session_id={sid}")
        self.assertEqual(r.status, 404, f"B on A's success page: {r!r}")
        self.assertEqual(purchases_for_session(sid), [], "B's request fulfilled A's session")
        emu_release()
        r = a.confirm(sid)
        self.assertStatus(r, 200)
        self.assertTrue(r.json["paid"])
        self.assertEqual(len(purchases_for_session(sid)), 1)
        self.assertEqual(purchases_for_session(sid)[0]["user_id"], a.id)
        self.assertError(b.confirm(sid), 404, "checkout_not_found", "B after A's fulfilment")
        lb = b.live_help()
        self.assertStatus(lb, 200)
        self.assertEqual((lb.json["totalHours"], lb.json["usedHours"],
                          lb.json["remainingHours"]), (0, 0, 0))
        self.assertIn("Total Live Help Purchased: 0 hours", b.get("/dashboard").text)
        self.assertIn("Total Live Help Purchased: 2 hours", a.get("/dashboard").text)
        self.assertIsNone(totals(b.id))


class SlotTests(Case):

    def test_book_redeems_one_hour(self):
        a = register()
        bought_live_help(a, 2)
        slot = new_slot(3)
        lh = a.live_help()
        self.assertStatus(lh, 200)
        ours = [s for s in lh.json["slots"] if s["id"] == slot]
        self.assertEqual(len(ours), 1, "new upcoming slot not listed")
        self.assertEqual((ours[0]["capacity"], ours[0]["booked"]), (3, 0))
        self.assertTrue(ours[0]["starts_at"] and ours[0]["ends_at"])

        r = a.book(slot)
        self.assertStatus(r, 201, "book")
        self.assertEqual(r.json, {"slotId": slot, "remainingHours": 1})
        self.assertEqual(totals(a.id), {"hours_total": 2, "hours_used": 1})
        self.assertEqual(db_scalar("SELECT booked FROM live_help_slots WHERE id = %s", slot), 1)
        red = db_rows("SELECT user_id, slot_id, hours FROM live_help_redemptions"
                      " WHERE slot_id = %s", slot)
        self.assertEqual(red, [{"user_id": a.id, "slot_id": slot, "hours": 1}])
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM audit_log WHERE action ="
                                   " 'LIVE_HELP_BOOKED' AND user_id = %s", a.id), 1)
        lh = a.live_help().json
        self.assertEqual((lh["totalHours"], lh["usedHours"], lh["remainingHours"]), (2, 1, 1))
        self.assertEqual([s["booked"] for s in lh["slots"] if s["id"] == slot], [1])

        # the same slot again: 409, nothing changes
        self.assertError(a.book(slot), 409, "already_booked", "same slot twice")
        self.assertEqual(totals(a.id), {"hours_total": 2, "hours_used": 1})
        self.assertEqual(db_scalar("SELECT booked FROM live_help_slots WHERE id = %s", slot), 1)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM live_help_redemptions"
                                   " WHERE user_id = %s", a.id), 1)

        # unknown, past, non-numeric slots; no CSRF token
        self.assertError(a.book(999999999), 404, "slot_not_found")
        past = new_slot(3, past=True)
        self.assertError(a.book(past), 404, "slot_not_found", "past slot")
        self.assertNotIn(past, [s["id"] for s in a.live_help().json["slots"]])
        r = a.post("/api/live-help-hour/abc/book", {})
        self.assertIn(r.status, (400, 404), f"non-numeric slot: {r!r}")
        other = new_slot(3)
        self.assertError(a.post(f"/api/live-help-hour/{other}/book", {}, csrf=False), 403,
                         "csrf_token_invalid")
        self.assertError(Browser().post(f"/api/live-help-hour/{other}/book", {}), 401)
        self.assertEqual(totals(a.id), {"hours_total": 2, "hours_used": 1})
        self.assertEqual(db_scalar("SELECT booked FROM live_help_slots WHERE id = %s", other), 0)

    def test_no_hours_left_402(self):
        a = register()
        s1, s2 = new_slot(3), new_slot(3)
        self.assertError(a.book(s1), 402, "no_hours_left", "booking with no hours at all")
        self.assertEqual(db_scalar("SELECT booked FROM live_help_slots WHERE id = %s", s1), 0)
        bought_live_help(a, 1)
        self.assertStatus(a.book(s1), 201, "first booking")
        r = a.book(s2)
        self.assertError(r, 402, "no_hours_left", "second slot with one hour bought")
        self.assertEqual(totals(a.id), {"hours_total": 1, "hours_used": 1})
        self.assertEqual(db_scalar("SELECT booked FROM live_help_slots WHERE id = %s", s2), 0,
                         "a refused booking kept its seat")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM live_help_redemptions"
                                   " WHERE user_id = %s", a.id), 1)
        lh = a.live_help().json
        self.assertEqual((lh["totalHours"], lh["usedHours"], lh["remainingHours"]), (1, 1, 0))

    def test_capacity_never_exceeded_under_concurrency(self):
        users = parallel(lambda i: register(), range(10), threads=10)
        for u in users:
            self.assertIsInstance(u, Browser, f"register failed: {u!r}")
            grant_hours(u, 2)
        slot = new_slot(3)
        barrier = threading.Barrier(len(users))

        def book(u):
            barrier.wait(20)
            return u.book(slot)

        results = parallel(book, users, threads=len(users))
        for r in results:
            self.assertNotIsInstance(r, Exception, f"booking raised {r!r}")
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses, [201] * 3 + [409] * 7, [repr(r) for r in results])
        for r in results:
            if r.status == 409:
                self.assertError(r, 409, "slot_full")
        self.assertEqual(db_scalar("SELECT booked FROM live_help_slots WHERE id = %s", slot), 3)
        red = db_rows("SELECT user_id FROM live_help_redemptions WHERE slot_id = %s", slot)
        winners = {u.id for u, r in zip(users, results) if r.status == 201}
        self.assertEqual({x["user_id"] for x in red}, winners)
        self.assertEqual(len(red), 3)
        for u, r in zip(users, results):
            self.assertEqual(totals(u.id)["hours_used"], 1 if r.status == 201 else 0,
                             f"user {u.id} ({r.status})")


class UpcomingListTests(Case):
    """Each responder child keeps the upcoming slots it last read (slots.h):
    a change to any slot, by a booking or by hand, and a slot's start must
    show in every child's next answer."""

    READS = 48

    def listed(self, browser, slot):
        """The slot as each of READS parallel reads lists it (None: absent)."""
        def read(_):
            r = browser.get("/api/live-help-hour")
            self.assertStatus(r, 200)
            return [s for s in r.json["slots"] if s["id"] == slot]
        answers = parallel(read, range(self.READS), threads=8)
        for a in answers:
            if isinstance(a, Exception):
                raise a
        return [a[0] if a else None for a in answers]

    def first_slot(self, seconds):
        """A slot starting in `seconds`, before every other upcoming one."""
        _, sid = db_exec("INSERT INTO live_help_slots (starts_at, ends_at, capacity, booked)"
                         " VALUES (UTC_TIMESTAMP() + INTERVAL %s SECOND,"
                         " UTC_TIMESTAMP() + INTERVAL %s SECOND + INTERVAL 1 HOUR, 3, 0)",
                         seconds, seconds)
        return sid

    def test_every_change_shows_in_every_child_at_once(self):
        a, b = register(), register()
        bought_live_help(b, 1)
        slot = self.first_slot(3 * 3600)
        seen = self.listed(a, slot)
        self.assertEqual([(s["capacity"], s["booked"]) for s in seen], [(3, 0)] * self.READS)

        db_exec("UPDATE live_help_slots SET capacity = 5 WHERE id = %s", slot)
        seen = self.listed(a, slot)
        self.assertEqual([(s["capacity"], s["booked"]) for s in seen], [(5, 0)] * self.READS,
                         "a change by hand")

        self.assertStatus(b.book(slot), 201, "book")
        seen = self.listed(a, slot)
        self.assertEqual([(s["capacity"], s["booked"]) for s in seen], [(5, 1)] * self.READS,
                         "a booking")

        other = self.first_slot(2 * 3600)
        self.assertEqual([s is not None for s in self.listed(a, other)], [True] * self.READS,
                         "a new slot")
        db_exec("DELETE FROM live_help_slots WHERE id = %s", other)
        self.assertEqual(self.listed(a, other), [None] * self.READS, "a deleted slot")

    def test_a_slot_leaves_the_list_when_it_starts(self):
        a = register()
        slot = self.first_slot(3)
        self.assertEqual([s is not None for s in self.listed(a, slot)], [True] * self.READS)
        wait_until(lambda: db_scalar("SELECT starts_at <= UTC_TIMESTAMP() FROM live_help_slots"
                                     " WHERE id = %s", slot) == 1,
                   timeout=10, what="the slot's start")
        self.assertEqual(self.listed(a, slot), [None] * self.READS,
                         "a started slot is no longer upcoming")


class StatementCountTests(Case):
    """GET /api/live-help-hour reads the session, the totals and the slots'
    stamp in one statement.  A user with no totals row (one who never bought,
    or whose purchases were loaded by hand: the SPEC's fallback) costs one more,
    the sums, and not the totals read again first."""

    READS = 30

    def statements(self, browser, hours):
        """Prepared statements the server ran for READS reads of `browser`'s
        summary, once every child has prepared them and kept the slots list."""
        for r in parallel(lambda _: browser.get("/api/live-help-hour"), range(48), threads=8):
            self.assertStatus(r, 200, "warm-up")
            self.assertEqual((r.json["totalHours"], r.json["remainingHours"]), (hours, hours))
        return statements_during(
            lambda: self.assertStatus(browser.get("/api/live-help-hour"), 200), self.READS)

    def test_one_statement_for_a_buyer_two_without_a_totals_row(self):
        never, bought = register(), register()
        bought_live_help(bought, 2)
        self.assertEqual(self.statements(bought, 2), self.READS, "hours bought")
        self.assertEqual(self.statements(never, 0), 2 * self.READS, "never bought")

    def test_hours_loaded_by_hand_without_a_totals_row_are_summed(self):
        a = register()
        db_exec("INSERT INTO live_help_purchases (user_id, stripe_session_id, hours,"
                " amount_cents, hours_refunded) VALUES (%s, %s, 3, 14700, 1)",
                a.id, f"cs_by_hand_{a.id}")
        try:
            r = a.get("/api/live-help-hour")
            self.assertStatus(r, 200)
            self.assertEqual((r.json["totalHours"], r.json["usedHours"],
                              r.json["remainingHours"]), (2, 0, 2))
        finally:
            db_exec("DELETE FROM live_help_purchases WHERE user_id = %s", a.id)


class RefundTests(Case):

    def test_refund_reverses_unused_hours_once(self):
        a = register()
        sid = bought_live_help(a, 3)
        slot = new_slot(3)
        self.assertStatus(a.book(slot), 201)
        self.assertEqual(totals(a.id), {"hours_total": 3, "hours_used": 1})
        pi = stripe_session(sid)["payment_intent"]
        self.assertTrue(pi)

        r = stripe_api("POST", "/v1/refunds", {"payment_intent": pi})
        self.assertStatus(r, 200, "refund")
        refund = r.json
        ev = wait_until(lambda: events_about(refund["charge"], "charge.refunded"), 10,
                        message="charge.refunded event")
        eid = ev[0]["id"]
        wait_until(lambda: event_processed(eid), 20, message=f"{eid} processed")

        self.assertEqual(totals(a.id), {"hours_total": 1, "hours_used": 1},
                         "refund must take back the 2 unused hours, never the used one")
        rev = db_rows("SELECT * FROM payment_reversals WHERE stripe_session_id = %s", sid)
        self.assertEqual(len(rev), 1, rev)
        self.assertEqual((rev[0]["payment_intent_id"], rev[0]["product"],
                          rev[0]["amount_cents"], rev[0]["units_reversed"]),
                         (pi, "live_help", 3 * unit_cents(), 2))
        self.assertEqual(checkout_rows(a.id)[0]["status"], "refunded")
        self.assertEqual(purchases_for_session(sid)[0]["hours_refunded"], 2,
                         "the purchase records the hours taken back, not the used one")
        self.assertEqual(audit_count("PAYMENT_REFUNDED", sid), 1)
        lh = a.live_help().json
        self.assertEqual((lh["totalHours"], lh["usedHours"], lh["remainingHours"]), (1, 1, 0))
        self.assertIn("Total Live Help Purchased: 1 hours", a.get("/dashboard").text)

        # the same event again, twice: nothing changes
        out = emu_deliver(eid, times=2)
        self.assertEqual(out["statuses"], [200, 200], out)
        # a late copy of checkout.session.completed grants nothing either
        out = emu_deliver(completed_event(sid)["id"])
        self.assertEqual(out["statuses"], [200], out)
        r = a.confirm(sid)
        self.assertStatus(r, 200)
        self.assertFalse(r.json["fulfilledNow"])
        self.assertEqual(totals(a.id), {"hours_total": 1, "hours_used": 1})
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM payment_reversals"
                                   " WHERE stripe_session_id = %s", sid), 1)
        self.assertEqual(audit_count("PAYMENT_REFUNDED", sid), 1)
        self.assertEqual(len(purchases_for_session(sid)), 1)
        # a second refund of the same payment is refused by Stripe itself
        r = stripe_api("POST", "/v1/refunds", {"payment_intent": pi})
        self.assertEqual(r.status, 400)

    def test_partial_refund_then_rest(self):
        a = register()
        sid = bought_live_help(a, 4)
        pi = stripe_session(sid)["payment_intent"]
        price = unit_cents()
        # refund one hour's worth, then the rest
        r = stripe_api("POST", "/v1/refunds", {"payment_intent": pi, "amount": price})
        self.assertStatus(r, 200, "partial refund")
        charge = r.json["charge"]
        wait_until(lambda: hours_of(a) == 3, 20, message="one hour reversed")
        r = stripe_api("POST", "/v1/refunds", {"payment_intent": pi})
        self.assertStatus(r, 200, "refund the rest")
        wait_until(lambda: hours_of(a) == 0, 20, message="all hours reversed")
        evs = events_about(charge, "charge.refunded")
        self.assertEqual(len(evs), 2)
        for e in evs:
            wait_until(lambda: event_processed(e["id"]), 20)
            emu_deliver(e["id"])
        self.assertEqual(totals(a.id), {"hours_total": 0, "hours_used": 0})
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM payment_reversals"
                                   " WHERE stripe_session_id = %s", sid), 2)
        self.assertEqual(db_scalar("SELECT SUM(units_reversed) FROM payment_reversals"
                                   " WHERE stripe_session_id = %s", sid), 4)

    def test_a_booked_hour_refunded_goes_to_the_refund_when_its_slot_is_cancelled(self):
        """Refunded while one hour is booked: that hour is owed to the refund,
        and cancelling its slot gives it to the refund, not back to the user."""
        a = register()
        sid = bought_live_help(a, 2)
        slot = new_slot(3)
        self.assertStatus(a.book(slot), 201)
        event = refund_processed(stripe_session(sid)["payment_intent"])
        owed = "SELECT hours_refunded, hours_owed FROM live_help_purchases WHERE stripe_session_id = %s"
        self.assertEqual(totals(a.id), {"hours_total": 1, "hours_used": 1})
        self.assertEqual(db_rows(owed, sid), [{"hours_refunded": 1, "hours_owed": 1}])
        r = a.post(f"/api/live-help-hour/{slot}/cancel", {})
        self.assertStatus(r, 200, "cancel the booked hour")
        self.assertEqual(r.json, {"slotId": slot, "remainingHours": 0, "hourReturned": False})
        self.assertIn("Cancelled: the hour went to the refund of the purchase it came from",
                      a.get("/live-help?done=refunded").text)
        self.assertEqual(totals(a.id), {"hours_total": 0, "hours_used": 0})
        self.assertEqual(db_rows(owed, sid), [{"hours_refunded": 2, "hours_owed": 0}])
        self.assertError(a.book(new_slot(3)), 402, "no_hours_left")
        details = db_scalar("SELECT details FROM audit_log WHERE action = 'LIVE_HELP_CANCELLED'"
                            " AND user_id = %s", a.id)
        self.assertEqual(json.loads(details)["hoursRefunded"], 1)
        # the event again changes nothing: the refund has all it was owed
        self.assertEqual(emu_deliver(event)["statuses"], [200])
        self.assertEqual(totals(a.id), {"hours_total": 0, "hours_used": 0})
        self.assertEqual(db_rows(owed, sid), [{"hours_refunded": 2, "hours_owed": 0}])
        # a hour bought later is the user's to book and cancel as usual
        bought_live_help(a, 1)
        other = new_slot(3)
        self.assertStatus(a.book(other), 201)
        r = a.post(f"/api/live-help-hour/{other}/cancel", {})
        self.assertStatus(r, 200)
        self.assertIs(r.json["hourReturned"], True)
        self.assertEqual(totals(a.id), {"hours_total": 1, "hours_used": 0})


class StripeTrustTests(Case):
    """Fulfilment trusts the local record and Stripe's current state only."""

    def test_session_not_created_by_the_app_grants_nothing(self):
        a = register()
        price = unit_cents()
        r = stripe_api("POST", "/v1/checkout/sessions", {
            "mode": "payment",
            "success_url": f"{base_url()}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
            "line_items[0][quantity]": "5",
            "line_items[0][price_data][currency]": "usd",
            "line_items[0][price_data][unit_amount]": str(price),
            "line_items[0][price_data][product_data][name]": "Live Help",
            "metadata[user_id]": str(a.id), "metadata[product]": "live_help",
            "metadata[item]": "live_help", "metadata[quantity]": "5",
            "client_reference_id": str(a.id),
        })
        self.assertStatus(r, 200, "session made straight on Stripe")
        sid = r.json["id"]
        emu_pay(sid)
        evt = completed_event(sid)
        wait_until(lambda: event_processed(evt["id"]), 20,
                   message="the foreign session's event processed")
        self.assertError(a.confirm(sid), 404, "checkout_not_found")
        self.assertEqual(a.get(f"/checkout/success?session_id={sid}").status, 404)
        self.assertEqual(purchases_for_session(sid), [])
        self.assertIsNone(totals(a.id))

    def test_signed_event_claiming_paid_for_an_unpaid_session(self):
        a = register()
        sid = start_live_help(a, 5)
        obj = dict(stripe_session(sid))
        obj.update(status="complete", payment_status="paid", payment_intent="pi_itFake0001")
        eid, body = make_event("checkout.session.completed", obj)
        r = post_webhook(body)
        self.assertStatus(r, 200, "a well-signed event about an unpaid session")
        self.assertTrue(event_processed(eid))
        self.assertEqual(purchases_for_session(sid), [], "granted on the payload's word")
        self.assertIsNone(totals(a.id))
        self.assertEqual(checkout_rows(a.id)[0]["status"], "open")


class StripeFailureTests(Case):

    def test_stripe_failure_on_buy_is_502_and_records_nothing(self):
        a = register()
        emu_fail(count=1, status=500)
        r = a.buy_live_help(2)
        self.assertError(r, 502, "payment_provider_error", "buy while Stripe fails")
        self.assertEqual(checkout_rows(a.id), [])
        self.assertNotIn("injected by the emulator", r.text, "Stripe's message leaked")
        r = a.buy_live_help(2)
        self.assertStatus(r, 200, "buy once Stripe is back")
        self.assertEqual(len(checkout_rows(a.id)), 1)

    def test_stripe_failure_on_confirm_is_502_then_recovers(self):
        a = register()
        sid = start_live_help(a, 2)
        emu_hold()
        emu_pay(sid)
        emu_fail(count=1, status=500)
        self.assertError(a.confirm(sid), 502, "payment_provider_error", "confirm, Stripe down")
        self.assertEqual(purchases_for_session(sid), [])
        r = a.confirm(sid)
        self.assertStatus(r, 200)
        self.assertEqual((r.json["paid"], r.json["fulfilledNow"]), (True, True))
        self.assertEqual(len(purchases_for_session(sid)), 1)

    def test_session_creation_sends_an_idempotency_key(self):
        a = register()
        before = emu_state()["idempotency_keys"]
        start_live_help(a, 1)
        start_live_help(a, 1)
        self.assertEqual(emu_state()["idempotency_keys"], before + 2,
                         "Checkout Session creation without an Idempotency-Key")

    def test_concurrent_buys_with_one_client_key(self):
        a = register()
        barrier = threading.Barrier(8)

        def buy(i):
            barrier.wait(10)
            return a.buy_live_help(3, session_id="double-click-1")

        results = parallel(buy, range(8), threads=8)
        for r in results:
            self.assertNotIsInstance(r, Exception, repr(r))
            self.assertStatus(r, 200, "concurrent buy with one client key")
        self.assertEqual(len({r.json["session_id"] for r in results}), 1,
                         [r.json for r in results])
        self.assertEqual(len(checkout_rows(a.id)), 1)

    def test_a_client_key_sent_with_another_purchase_is_refused(self):
        """The same session_id with another quantity, plan or pack is 409 and
        creates nothing; the same purchase again gets its first session."""
        a = register()
        first = a.buy_live_help(1, session_id="k-1")
        self.assertStatus(first, 200, "first buy")
        before = emu_state()["checkout_sessions"]
        self.assertError(a.buy_live_help(5, session_id="k-1"), 409, "session_id_reused")
        self.assertError(a.post("/api/checkout", {"plan": "chat10", "session_id": "k-1"}),
                         409, "session_id_reused")
        r = a.post("/api/checkout", {"plan": "chat10", "session_id": "k-2"})
        self.assertIn(r.status, (200, 303), r)
        for plan in ("video15", "diagnostic"):
            self.assertError(a.post("/api/checkout", {"plan": plan, "session_id": "k-2"}),
                             409, "session_id_reused")
        again = a.buy_live_help(1, session_id="k-1")
        self.assertStatus(again, 200, "same purchase again")
        self.assertEqual(again.json["session_id"], first.json["session_id"])
        self.assertEqual(emu_state()["checkout_sessions"], before + 1)
        self.assertEqual(len(checkout_rows(a.id)), 2)


class OutOfOrderRefundTests(Case):

    def test_refund_event_before_the_completed_event(self):
        """charge.refunded delivered before checkout.session.completed: once
        both are processed the refunded payment must not leave hours behind."""
        a = register()
        sid = start_live_help(a, 3)
        emu_hold()
        emu_pay(sid)
        pi = stripe_session(sid)["payment_intent"]
        r = stripe_api("POST", "/v1/refunds", {"payment_intent": pi})
        self.assertStatus(r, 200, "refund")
        refunded = events_about(r.json["charge"], "charge.refunded")
        self.assertEqual(len(refunded), 1)
        completed = completed_event(sid)
        out = emu_release("reverse")
        order = out["released"]
        self.assertLess(order.index(refunded[0]["id"]), order.index(completed["id"]))
        self.assertTrue(all(s == 200 for s in out["statuses"]), out)
        for e in (refunded[0], completed):
            self.assertTrue(event_processed(e["id"]))
        self.assertEqual(hours_of(a), 0, "a fully refunded payment left its hours granted "
                         f"(purchases {purchases_for_session(sid)}, totals {totals(a.id)})")
        # and confirm-payment (the buyer coming back late) does not grant them either
        r = a.confirm(sid)
        self.assertStatus(r, 200)
        self.assertEqual(hours_of(a), 0)


class ConcurrentBookingTests(Case):

    def test_one_hour_many_slots_concurrently(self):
        a = register()
        grant_hours(a, 1)
        slots = [new_slot(3) for _ in range(6)]
        barrier = threading.Barrier(len(slots))

        def book(s):
            barrier.wait(10)
            return a.book(s)

        results = parallel(book, slots, threads=len(slots))
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses, [201] + [402] * 5, [repr(r) for r in results])
        self.assertEqual(totals(a.id), {"hours_total": 1, "hours_used": 1})
        marks = ",".join(["%s"] * len(slots))
        self.assertEqual(db_scalar(f"SELECT SUM(booked) FROM live_help_slots WHERE id IN "
                                   f"({marks})", *slots), 1)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM live_help_redemptions"
                                   " WHERE user_id = %s", a.id), 1)

    def test_same_slot_concurrently_by_one_user(self):
        a = register()
        grant_hours(a, 5)
        slot = new_slot(10)
        barrier = threading.Barrier(5)

        def book(i):
            barrier.wait(10)
            return a.book(slot)

        results = parallel(book, range(5), threads=5)
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses, [201] + [409] * 4, [repr(r) for r in results])
        for r in results:
            if r.status == 409:
                self.assertError(r, 409, "already_booked")
        self.assertEqual(totals(a.id), {"hours_total": 5, "hours_used": 1})
        self.assertEqual(db_scalar("SELECT booked FROM live_help_slots WHERE id = %s", slot), 1)


class CancelTests(Case):
    """POST /api/live-help-hour/{id}/cancel: the hour and the seat come back once."""

    def cancel(self, user, slot):
        return user.post(f"/api/live-help-hour/{slot}/cancel", {})

    def test_concurrent_cancels_give_back_one_hour(self):
        a = register()
        grant_hours(a, 2)
        slot = new_slot(3, days_ahead=3)
        self.assertStatus(a.book(slot), 201)
        barrier = threading.Barrier(5)

        def cancel(i):
            barrier.wait(10)
            return self.cancel(a, slot)

        results = parallel(cancel, range(5), threads=5)
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses, [200] + [404] * 4, [repr(r) for r in results])
        ok = [r for r in results if r.status == 200][0]
        self.assertEqual(ok.json, {"slotId": slot, "remainingHours": 2, "hourReturned": True})
        self.assertEqual(totals(a.id), {"hours_total": 2, "hours_used": 0})
        self.assertEqual(db_scalar("SELECT booked FROM live_help_slots WHERE id = %s", slot), 0)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM live_help_redemptions"
                                   " WHERE user_id = %s", a.id), 0)
        self.assertEqual(audit_count("LIVE_HELP_CANCELLED", str(slot)), 1)
        # booked again after cancelling: the seat and the hour are spent again
        self.assertStatus(a.book(slot), 201)
        self.assertEqual(totals(a.id), {"hours_total": 2, "hours_used": 1})

    def test_inside_24_hours_and_other_users(self):
        a, b = register(), register()
        grant_hours(a, 1)
        soon = new_slot(2)
        db_exec("UPDATE live_help_slots SET starts_at = UTC_TIMESTAMP() + INTERVAL 2 HOUR,"
                " ends_at = UTC_TIMESTAMP() + INTERVAL 3 HOUR WHERE id = %s", soon)
        self.assertStatus(a.book(soon), 201)
        r = self.cancel(a, soon)
        self.assertStatus(r, 409)
        self.assertEqual(r.error_code, "too_late_to_cancel")
        r = self.cancel(b, soon)
        self.assertStatus(r, 404)
        self.assertEqual(r.error_code, "booking_not_found")
        self.assertEqual(totals(a.id), {"hours_total": 1, "hours_used": 1})
        self.assertEqual(db_scalar("SELECT booked FROM live_help_slots WHERE id = %s", soon), 1)
