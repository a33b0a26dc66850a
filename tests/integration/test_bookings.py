"""Expert bookings: PaymentIntents through the emulator, the webhook and
confirm-payment racing, double-booking under concurrency, free experts,
cancellation with refunds, fee arithmetic, completion, payouts and metrics.

Every test makes its own experts (straight in the database) so that slots
never collide with other tests or with earlier runs on the same stack.
"""

import datetime
import json
import secrets
import threading

from .lib import (Browser, Case, audit_count, db_exec, db_row, db_rows, db_scalar,
                  emu, emu_fail, emu_hold, emu_ok, emu_release, emu_state,
                  event_processed, events_about, latest_charge, parallel, promote, register,
                  stripe_api, wait_until)


# ---------------------------------------------------------------- helpers

def new_expert(rate, user=None, active=1, name=None):
    """An expert row at rate cents per minute; returns its id."""
    uid = user.id if isinstance(user, Browser) else user
    _, eid = db_exec(
        "INSERT INTO experts (user_id, name, headline, bio, rate_cents_per_minute, active)"
        " VALUES (%s, %s, 'Integration expert', 'Made by test_bookings.', %s, %s)",
        uid, name or "Expert " + secrets.token_hex(3), rate, active)
    return eid


# The (day, hour) pairs future() has drawn: a test books one expert several
# times, and two bookings drawn at the same hour would collide (409).
_drawn = set()


def future(days=None, hour=None, minute=0, short=False):
    """A UTC start time in the future: (API string, datetime); a day and hour
    drawn at random are never drawn twice."""
    while days is None and hour is None:
        pick = (2 + secrets.randbelow(300), secrets.randbelow(20))
        if pick not in _drawn:
            _drawn.add(pick)
            days, hour = pick
    days = days if days is not None else 2 + secrets.randbelow(300)
    hour = hour if hour is not None else secrets.randbelow(20)
    d = (datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
         .replace(hour=hour, minute=minute, second=0, microsecond=0)
         + datetime.timedelta(days=days))
    return (d.strftime("%Y-%m-%dT%H:%M") if short else d.strftime("%Y-%m-%dT%H:%M:%SZ")), d


def book(browser, expert_id, start, minutes=30):
    return browser.post("/api/bookings", {"expertId": expert_id, "startTime": start,
                                          "durationMinutes": minutes})


def booking_row(bid):
    return db_row("SELECT * FROM bookings WHERE id = %s", bid)


def payment_row(bid):
    return db_row("SELECT * FROM payments WHERE booking_id = %s", bid)


def refund_rows(bid):
    return db_rows("SELECT r.* FROM refunds r JOIN payments p ON p.id = r.payment_id"
                   " WHERE p.booking_id = %s", bid)


def status_is(bid, booking_status, payment_status=None):
    def check():
        b, p = booking_row(bid), payment_row(bid)
        return b["status"] == booking_status and (
            payment_status is None or (p and p["status"] == payment_status))
    return wait_until(check, message=f"booking {bid} {booking_status}/{payment_status}")


def started(bid):
    """Moves a booking two hours into the past, so that it has happened."""
    db_exec("UPDATE bookings SET start_time = UTC_TIMESTAMP() - INTERVAL 2 HOUR,"
            " end_time = UTC_TIMESTAMP() - INTERVAL 2 HOUR + INTERVAL duration_minutes MINUTE"
            " WHERE id = %s", bid)


def emu_succeed(pi):
    r = emu("POST", f"/_emu/payment_intents/{pi}/succeed", {})
    if r.status != 200:
        raise AssertionError(f"emulator succeed {pi}: {r!r}")
    return r.json


def emu_decline(pi):
    r = emu("POST", f"/_emu/payment_intents/{pi}/fail", {})
    if r.status != 402:
        raise AssertionError(f"emulator fail {pi}: {r!r}")
    return r.json


def admin():
    a = register()
    promote(a, role="admin")
    return a


def events_done(object_id, event_type):
    """Every emulator event of this type about object_id processed by us."""
    evs = events_about(object_id, event_type)
    return evs and all(event_processed(e["id"]) for e in evs)


class BookingCase(Case):

    def created(self, browser, expert_id, start=None, minutes=30):
        start = start or future()[0]
        r = book(browser, expert_id, start, minutes)
        self.assertStatus(r, 201, "create booking")
        return r.json

    def paid(self, browser, expert_id, minutes=30):
        """A booking paid through the emulator and scheduled by the webhook."""
        j = self.created(browser, expert_id, minutes=minutes)
        bid, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        emu_succeed(pi)
        status_is(bid, "scheduled", "succeeded")
        wait_until(lambda: events_done(pi, "payment_intent.succeeded"),
                   message="payment_intent.succeeded processed")
        return bid, pi


# ---------------------------------------------------------------- experts

class ExpertTests(BookingCase):

    def test_list_and_detail(self):
        eid = new_expert(123)
        hidden = new_expert(100, active=0)
        r = Browser().get("/api/experts")
        self.assertStatus(r, 200, "experts")
        by_id = {e["id"]: e for e in r.json["experts"]}
        self.assertIn(eid, by_id)
        self.assertNotIn(hidden, by_id)
        self.assertEqual(set(by_id[eid]), {"id", "name", "headline", "ratePerMinuteCents"})
        self.assertEqual(by_id[eid]["ratePerMinuteCents"], 123)
        r = Browser().get(f"/api/experts/{eid}")
        self.assertStatus(r, 200, "expert")
        self.assertEqual(r.json["expert"]["bio"], "Made by test_bookings.")
        self.assertEqual(r.json["expert"]["ratePerMinuteCents"], 123)
        self.assertError(Browser().get(f"/api/experts/{hidden}"), 404, "expert_not_found")
        self.assertError(Browser().get("/api/experts/999999999"), 404, "expert_not_found")


# ---------------------------------------------------------------- creating

class CreateTests(BookingCase):

    def test_create_payment_intent_then_webhook_schedules(self):
        a = register()
        eid = new_expert(150)
        start, when = future()
        j = self.created(a, eid, start, 30)
        bk = j["booking"]
        self.assertEqual((bk["status"], bk["priceCents"], bk["platformFeeCents"],
                          bk["payoutCents"], bk["durationMinutes"], bk["expertId"],
                          bk["userId"], bk["paymentStatus"]),
                         ("awaiting_payment", 4500, 450, 4050, 30, eid, a.id, "pending"))
        self.assertEqual(bk["startTime"], when.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.assertEqual(bk["endTime"],
                         (when + datetime.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        pi = bk["paymentIntentId"]
        self.assertRegex(pi, r"^pi_")
        self.assertTrue(j["clientSecret"].startswith(pi + "_secret_"), j)
        spi = stripe_api("GET", f"/v1/payment_intents/{pi}").json
        self.assertEqual((spi["amount"], spi["currency"]), (4500, "usd"))
        self.assertEqual(spi["metadata"], {"booking_id": str(bk["id"]), "user_id": str(a.id),
                                           "expert_id": str(eid)})
        self.assertEqual(spi["automatic_payment_methods"], {"enabled": True})
        p = payment_row(bk["id"])
        self.assertEqual((p["stripe_payment_intent_id"], p["amount_cents"], p["status"]),
                         (pi, 4500, "pending"))
        self.assertEqual(audit_count("BOOKING_CREATED", str(bk["id"])), 1)

        emu_succeed(pi)
        status_is(bk["id"], "scheduled", "succeeded")
        wait_until(lambda: events_done(pi, "payment_intent.succeeded"))
        self.assertEqual(audit_count("BOOKING_PAID", str(bk["id"])), 1)
        # confirm-payment afterwards changes nothing
        r = a.post(f"/api/bookings/{bk['id']}/confirm-payment", {})
        self.assertStatus(r, 200, "confirm")
        self.assertEqual((r.json["booking"]["status"], r.json["booking"]["paymentStatus"]),
                         ("scheduled", "succeeded"))
        self.assertEqual(audit_count("BOOKING_PAID", str(bk["id"])), 1)

    def test_confirm_payment_races_the_webhook(self):
        a = register()
        eid = new_expert(200)
        j = self.created(a, eid)
        bid, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        # before paying: confirm-payment asks Stripe and changes nothing
        r = a.post(f"/api/bookings/{bid}/confirm-payment", {})
        self.assertStatus(r, 200, "confirm unpaid")
        self.assertEqual(r.json["booking"]["status"], "awaiting_payment")

        emu_hold()
        emu_succeed(pi)
        out = []

        def release():
            out.append(emu_release("fifo"))
        t = threading.Thread(target=release)
        t.start()
        results = parallel(lambda _: a.post(f"/api/bookings/{bid}/confirm-payment", {}),
                           range(6), threads=6)
        t.join()
        for r in results:
            self.assertNotIsInstance(r, Exception)
            self.assertStatus(r, 200, "racing confirm")
            self.assertEqual(r.json["booking"]["status"], "scheduled")
        wait_until(lambda: events_done(pi, "payment_intent.succeeded"))
        # and a repeated delivery on top
        ev = events_about(pi, "payment_intent.succeeded")[0]
        emu_ok("POST", f"/_emu/events/{ev['id']}/deliver", {"times": 2, "delay_ms": 0})
        self.assertEqual(audit_count("BOOKING_PAID", str(bid)), 1)
        self.assertEqual((booking_row(bid)["status"], payment_row(bid)["status"]),
                         ("scheduled", "succeeded"))

    def test_concurrent_overlapping_bookings_one_wins(self):
        eid = new_expert(100)
        users = [register() for _ in range(10)]
        _, when = future(hour=10)
        # ten different but overlapping windows around 10:00-11:00
        starts = [(when + datetime.timedelta(minutes=15 * (i % 4)))
                  .strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(10)]
        results = parallel(lambda i: book(users[i], eid, starts[i], 60), range(10), threads=10)
        codes = sorted(r.status if not isinstance(r, Exception) else repr(r) for r in results)
        self.assertEqual(codes, [201] + [409] * 9, results)
        for r in results:
            if r.status == 409:
                self.assertError(r, 409, "booking_conflict")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM bookings WHERE expert_id = %s", eid), 1)
        # adjacent slots do not overlap
        won = next(r for r in results if r.status == 201).json["booking"]
        end = won["endTime"]
        self.assertStatus(book(users[0], eid, end, 15), 201, "right after")

    def test_free_expert_is_scheduled_at_once(self):
        a = register()
        eid = new_expert(0)
        before = emu_state()["payment_intents"]
        j = self.created(a, eid, future(short=True)[0], 45)
        bk = j["booking"]
        self.assertIsNone(j["clientSecret"])
        self.assertEqual((bk["status"], bk["priceCents"], bk["platformFeeCents"],
                          bk["payoutCents"], bk["paymentIntentId"], bk["paymentStatus"]),
                         ("scheduled", 0, 0, 0, None, None))
        self.assertIsNone(payment_row(bk["id"]))
        self.assertEqual(emu_state()["payment_intents"], before)
        self.assertEqual(audit_count("BOOKING_CREATED", str(bk["id"])), 1)
        # cancelling it is just a cancel
        r = a.post(f"/api/bookings/{bk['id']}/cancel", {})
        self.assertStatus(r, 200, "cancel free")
        self.assertEqual(r.json["booking"]["status"], "cancelled_by_user")

    def test_fee_on_an_odd_price(self):
        a = register()
        eid = new_expert(67)         # 67 x 15 = 1005; 10% = 100.5 -> 101
        bk = self.created(a, eid, minutes=15)["booking"]
        self.assertEqual((bk["priceCents"], bk["platformFeeCents"], bk["payoutCents"]),
                         (1005, 101, 904))
        row = booking_row(bk["id"])
        self.assertEqual((row["price_cents"], row["platform_fee_cents"], row["payout_cents"]),
                         (1005, 101, 904))
        pi = stripe_api("GET", f"/v1/payment_intents/{bk['paymentIntentId']}").json
        self.assertEqual(pi["amount"], 1005)
        eid = new_expert(97)         # 97 x 45 = 4365; 436.5 -> 437
        bk = self.created(a, eid, minutes=45)["booking"]
        self.assertEqual((bk["priceCents"], bk["platformFeeCents"], bk["payoutCents"]),
                         (4365, 437, 3928))

    def test_bad_input(self):
        a = register()
        eid = new_expert(50)
        past = (datetime.datetime.now(datetime.timezone.utc)
                - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        good = future()[0]
        cases = [
            ({"expertId": eid, "startTime": "tomorrow", "durationMinutes": 30},
             400, "invalid_start_time"),
            ({"expertId": eid, "startTime": good[:-1] + "+01:00", "durationMinutes": 30},
             400, "invalid_start_time"),
            ({"expertId": eid, "startTime": "2031-02-30T10:00", "durationMinutes": 30},
             400, "invalid_start_time"),
            ({"expertId": eid, "startTime": past, "durationMinutes": 30},
             400, "start_time_in_past"),
            ({"expertId": eid, "startTime": good, "durationMinutes": 20},
             400, "invalid_duration_minutes"),
            ({"expertId": eid, "startTime": good, "durationMinutes": 255},
             400, "invalid_duration_minutes"),
            ({"expertId": eid, "startTime": good, "durationMinutes": "30x"},
             400, "invalid_duration_minutes"),
            ({"expertId": eid, "startTime": good}, 400, "missing_duration_minutes"),
            ({"startTime": good, "durationMinutes": 30}, 400, "missing_expert_id"),
            ({"expertId": 999999999, "startTime": good, "durationMinutes": 30},
             404, "expert_not_found"),
            ({"expertId": new_expert(50, active=0), "startTime": good, "durationMinutes": 30},
             404, "expert_not_found"),
        ]
        for body, status, code in cases:
            self.assertError(a.post("/api/bookings", body), status, code, repr(body))
        self.assertError(book(a, new_expert(50, user=a), good, 30), 400, "own_expert_profile")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM bookings WHERE user_id = %s", a.id), 0)
        self.assertError(Browser().post("/api/bookings", {"expertId": eid, "startTime": good,
                                                          "durationMinutes": 30}), 401)
        self.assertError(a.post("/api/bookings", {"expertId": eid, "startTime": good,
                                                  "durationMinutes": 30}, csrf=False), 403)

    def test_stripe_failure_frees_the_slot(self):
        a = register()
        eid = new_expert(100)
        start = future()[0]
        emu_fail(count=2, status=500)
        try:
            r = book(a, eid, start, 30)
        finally:
            emu_fail(count=0)
        self.assertError(r, 502)
        row = db_row("SELECT * FROM bookings WHERE user_id = %s", a.id)
        self.assertEqual(row["status"], "payment_failed")
        self.assertIsNone(payment_row(row["id"]))
        self.assertStatus(book(a, eid, start, 30), 201, "the slot is free again")


# ---------------------------------------------------------------- paying again

def book_keyed(browser, expert_id, start, key, minutes=30):
    return browser.post("/api/bookings", {"expertId": expert_id, "startTime": start,
                                          "durationMinutes": minutes},
                        headers={"Idempotency-Key": key})


class PayAgainTests(BookingCase):
    """An unpaid hold's payment answered again: POST /api/bookings/{id}/pay
    (a customer back to pay), and POST /api/bookings repeated with its
    Idempotency-Key (the retry of a request whose answer was lost)."""

    def pay(self, browser, bid, status="awaiting_payment"):
        r = browser.post(f"/api/bookings/{bid}/pay", {})
        self.assertStatus(r, 200, "pay again")
        self.assertEqual((r.json["booking"]["id"], r.json["booking"]["status"]),
                         (bid, status))
        return r.json["clientSecret"]

    def test_pay_answers_the_hold_with_its_payment(self):
        a, b = register(), register()
        eid = new_expert(100)
        start = future()[0]
        j = self.created(a, eid, start)
        bid, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        intents = emu_state()["payment_intents"]
        self.assertEqual(self.pay(a, bid), j["clientSecret"])
        self.assertError(b.post(f"/api/bookings/{bid}/pay", {}), 404, "booking_not_found")
        # asking for the same time again is still a conflict, the holder's too
        self.assertError(book(a, eid, start), 409, "booking_conflict", "the holder again")
        # a declined card keeps the hold, and the same PaymentIntent takes another
        emu_decline(pi)
        status_is(bid, "awaiting_payment", "failed")
        self.assertEqual(self.pay(a, bid), j["clientSecret"])
        # paid at Stripe before we heard of it: applied first, then answered
        emu_hold()
        try:
            emu_succeed(pi)
            self.assertIsNone(self.pay(a, bid, "scheduled"))
        finally:
            emu_release()
        self.assertEqual(payment_row(bid)["status"], "succeeded")
        wait_until(lambda: events_done(pi, "payment_intent.succeeded"))
        self.assertEqual(audit_count("BOOKING_PAID", str(bid)), 1)
        self.assertIsNone(self.pay(a, bid, "scheduled"))
        # nothing new: no booking, payment, PaymentIntent or refund
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM bookings WHERE expert_id = %s", eid), 1)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM payments WHERE booking_id = %s", bid), 1)
        self.assertEqual(emu_state()["payment_intents"], intents)
        self.assertEqual(refund_rows(bid), [])

    def test_pay_refuses_what_cannot_be_paid(self):
        a = register()
        eid = new_expert(100)
        lapsed = self.created(a, eid)["booking"]["id"]
        db_exec("UPDATE bookings SET created_at = UTC_TIMESTAMP(6) - INTERVAL 31 MINUTE"
                " WHERE id = %s", lapsed)
        self.assertError(a.post(f"/api/bookings/{lapsed}/pay", {}), 409, "hold_expired")
        self.assertEqual(booking_row(lapsed)["status"], "awaiting_payment")
        # its PaymentIntent cancelled at Stripe before we heard of it: the time is free
        j = self.created(a, eid)
        bid, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        emu_hold()
        try:
            self.assertStatus(stripe_api("POST", f"/v1/payment_intents/{pi}/cancel"), 200,
                              "cancel at Stripe")
            self.assertError(a.post(f"/api/bookings/{bid}/pay", {}), 409, "hold_released")
        finally:
            emu_release()
        self.assertEqual(booking_row(bid)["status"], "payment_failed")
        self.created(a, eid, j["booking"]["startTime"])
        # cancelled by its customer
        gone = self.created(a, eid)["booking"]["id"]
        self.assertStatus(a.post(f"/api/bookings/{gone}/cancel", {}), 200, "cancel")
        self.assertError(a.post(f"/api/bookings/{gone}/pay", {}), 409, "booking_not_payable")

    def test_a_repeated_idempotency_key_answers_its_booking(self):
        a, b = register(), register()
        eid = new_expert(100)
        start, key = future()[0], secrets.token_hex(16)
        r = book_keyed(a, eid, start, key)
        self.assertStatus(r, 201, "first")
        bid, secret = r.json["booking"]["id"], r.json["clientSecret"]
        intents = emu_state()["payment_intents"]
        r = book_keyed(a, eid, start, key)
        self.assertStatus(r, 200, "repeated")
        self.assertEqual((r.json["booking"]["id"], r.json["clientSecret"]), (bid, secret))
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM bookings WHERE expert_id = %s", eid), 1)
        self.assertEqual(emu_state()["payment_intents"], intents)
        self.assertEqual(audit_count("BOOKING_CREATED", str(bid)), 1)
        # the key is the customer's: another time under it is refused, and
        # another customer's same key is their own
        self.assertError(book_keyed(a, eid, future()[0], key), 400, "idempotency_key_reused")
        self.assertError(book_keyed(a, eid, start, key, 60), 400, "idempotency_key_reused")
        self.assertError(book_keyed(b, eid, start, key), 409, "booking_conflict")
        self.assertStatus(book_keyed(b, eid, future()[0], key), 201, "b's own key")
        # at the limit of unpaid holds, a repeated request is still answered
        self.created(a, eid)
        self.created(a, eid)
        self.assertError(book(a, eid, future()[0]), 409, "too_many_unpaid_bookings")
        self.assertEqual(book_keyed(a, eid, start, key).json["booking"]["id"], bid)
        for bad in ("", "has space", "x" * 65, "é"):
            self.assertError(book_keyed(a, eid, future()[0], bad), 400,
                             "invalid_idempotency_key", repr(bad))
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM bookings WHERE user_id = %s", a.id), 3)

    def test_concurrent_requests_with_one_key_make_one_booking(self):
        a = register()
        eid = new_expert(100)
        start, key = future()[0], secrets.token_hex(16)
        intents = emu_state()["payment_intents"]
        results = parallel(lambda _: book_keyed(a, eid, start, key), range(8), threads=8)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM bookings WHERE user_id = %s", a.id), 1)
        bid = db_scalar("SELECT id FROM bookings WHERE user_id = %s", a.id)
        codes = []
        for r in results:
            self.assertNotIsInstance(r, Exception)
            codes.append(r.status)
            if r.status == 409:      # answered while its PaymentIntent was being made
                self.assertError(r, 409, "payment_not_ready")
            else:
                self.assertEqual(r.json["booking"]["id"], bid)
        self.assertEqual(codes.count(201), 1, codes)
        self.assertEqual(codes.count(201) + codes.count(200) + codes.count(409), 8, codes)
        self.assertEqual(emu_state()["payment_intents"], intents + 1)
        self.assertEqual(audit_count("BOOKING_CREATED", str(bid)), 1)


# ---------------------------------------------------------------- payment failure

class FailureTests(BookingCase):

    def test_declined_card_keeps_the_hold_and_another_card_pays(self):
        a, b = register(), register()
        eid = new_expert(100)
        start = future()[0]
        j = self.created(a, eid, start)
        bid, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        declined = emu_decline(pi)
        self.assertEqual(declined["error"]["message"], "Your card was declined.")
        status_is(bid, "awaiting_payment", "failed")
        wait_until(lambda: events_done(pi, "payment_intent.payment_failed"),
                   message="payment_intent.payment_failed processed")
        p = payment_row(bid)
        self.assertEqual((p["last_payment_error"], p["failed_attempts"]),
                         ("Your card was declined.", 1))
        self.assertEqual(p["last_failed_charge"], declined["error"]["charge"])
        self.assertEqual(audit_count("BOOKING_PAYMENT_FAILED", str(bid)), 1)
        # the hold stays: nobody else can take the time
        self.assertError(book(b, eid, start), 409, "booking_conflict", "held after a decline")
        r = a.post(f"/api/bookings/{bid}/confirm-payment", {})
        self.assertStatus(r, 200, "confirm after decline")
        self.assertEqual((r.json["booking"]["status"], r.json["booking"]["paymentStatus"],
                          r.json["booking"]["lastPaymentError"]),
                         ("awaiting_payment", "failed", "Your card was declined."))
        # the redelivered event and the confirm count the attempt once
        self.assertEqual(payment_row(bid)["failed_attempts"], 1)
        # a second declined card is a second attempt; the hold still stays
        emu_decline(pi)
        wait_until(lambda: payment_row(bid)["failed_attempts"] == 2, message="second attempt")
        self.assertEqual(booking_row(bid)["status"], "awaiting_payment")
        self.assertEqual(audit_count("BOOKING_PAYMENT_FAILED", str(bid)), 2)
        # another card on the same PaymentIntent goes through
        emu_succeed(pi)
        status_is(bid, "scheduled", "succeeded")
        self.assertEqual(audit_count("BOOKING_PAID", str(bid)), 1)
        self.assertEqual(refund_rows(bid), [])

    def test_declined_hold_expires_and_a_late_payment_is_refunded(self):
        a, b = register(), register()
        eid = new_expert(100)
        start = future()[0]
        j = self.created(a, eid, start)
        bid, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        emu_decline(pi)
        status_is(bid, "awaiting_payment", "failed")
        self.assertError(book(b, eid, start), 409, "booking_conflict", "held after a decline")
        db_exec("UPDATE bookings SET created_at = UTC_TIMESTAMP(6) - INTERVAL 31 MINUTE"
                " WHERE id = %s", bid)
        self.created(b, eid, start)           # the hold expired: b takes the slot
        emu_succeed(pi)
        status_is(bid, "payment_failed", "refunded")
        rows = refund_rows(bid)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["amount_cents"], 3000)
        wait_until(lambda: events_done(pi, "payment_intent.succeeded"))
        self.assertEqual(len(refund_rows(bid)), 1)
        self.assertEqual(audit_count("REFUND_ISSUED", str(bid)), 1)

    def test_unpaid_hold_expires_and_a_late_payment_is_refunded(self):
        a, b = register(), register()
        eid = new_expert(100)
        start = future()[0]
        j = self.created(a, eid, start)
        bid, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        self.assertError(book(b, eid, start), 409, "booking_conflict", "held while unpaid")
        hold = db_scalar("SELECT int_value FROM platform_settings"
                         " WHERE name = 'booking_hold_minutes'")
        self.assertEqual(hold, 30)
        db_exec("UPDATE bookings SET created_at = UTC_TIMESTAMP(6) - INTERVAL 31 MINUTE"
                " WHERE id = %s", bid)
        self.created(b, eid, start)           # the hold expired: b takes the slot
        emu_succeed(pi)                       # a pays late: refunded, released
        status_is(bid, "payment_failed", "refunded")
        self.assertEqual(len(refund_rows(bid)), 1)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM bookings WHERE expert_id = %s"
                                   " AND status = 'scheduled'", eid), 0,
                         "only b's booking may hold the slot, and it is unpaid yet")


# ---------------------------------------------------------------- cancel

class CancelTests(BookingCase):

    def test_cancel_paid_refunds_once(self):
        a = register()
        eid = new_expert(150)
        bid, pi = self.paid(a, eid)
        refunds_before = emu_state()["refunds"]
        r = a.post(f"/api/bookings/{bid}/cancel", {})
        self.assertStatus(r, 200, "cancel")
        self.assertEqual((r.json["booking"]["status"], r.json["booking"]["paymentStatus"]),
                         ("cancelled_by_user", "refunded"))
        rows = refund_rows(bid)
        self.assertEqual(len(rows), 1)
        self.assertRegex(rows[0]["stripe_refund_id"], r"^re_")
        self.assertEqual(rows[0]["amount_cents"], 4500)
        self.assertEqual(emu_state()["refunds"], refunds_before + 1)
        re_ = stripe_api("GET", f"/v1/refunds/{rows[0]['stripe_refund_id']}").json
        self.assertEqual((re_["payment_intent"], re_["amount"]), (pi, 4500))
        # the charge.refunded webhook for our own refund adds nothing
        ch = latest_charge(pi)
        wait_until(lambda: events_done(ch, "charge.refunded"),
                   message="charge.refunded processed")
        # a second cancel: same state, no second refund
        r2 = a.post(f"/api/bookings/{bid}/cancel", {})
        self.assertStatus(r2, 200, "cancel again")
        self.assertEqual(r2.json["booking"]["status"], "cancelled_by_user")
        self.assertEqual(emu_state()["refunds"], refunds_before + 1)
        self.assertEqual(len(refund_rows(bid)), 1)
        self.assertEqual(audit_count("REFUND_ISSUED", str(bid)), 1)
        self.assertEqual(audit_count("BOOKING_CANCELLED", str(bid)), 1)
        self.assertEqual(payment_row(bid)["status"], "refunded")
        # the slot is free again
        self.assertStatus(book(register(), eid, r.json["booking"]["startTime"], 30), 201,
                          "rebook")

    def test_concurrent_cancels_one_refund(self):
        a = register()
        bid, _ = self.paid(a, new_expert(100))
        before = emu_state()["refunds"]
        results = parallel(lambda _: a.post(f"/api/bookings/{bid}/cancel", {}), range(5),
                           threads=5)
        for r in results:
            self.assertNotIsInstance(r, Exception)
            self.assertStatus(r, 200, "concurrent cancel")
        self.assertEqual(emu_state()["refunds"], before + 1)
        self.assertEqual(len(refund_rows(bid)), 1)
        self.assertEqual(audit_count("REFUND_ISSUED", str(bid)), 1)
        self.assertEqual(audit_count("BOOKING_CANCELLED", str(bid)), 1)

    def test_cancel_unpaid_stops_the_payment_intent(self):
        a = register()
        eid = new_expert(100)
        j = self.created(a, eid)
        bid, pi = j["booking"]["id"], j["booking"]["paymentIntentId"]
        r = a.post(f"/api/bookings/{bid}/cancel", {})
        self.assertStatus(r, 200, "cancel unpaid")
        self.assertEqual(r.json["booking"]["status"], "cancelled_by_user")
        self.assertEqual(payment_row(bid)["status"], "failed")
        self.assertEqual(stripe_api("GET", f"/v1/payment_intents/{pi}").json["status"],
                         "canceled")
        self.assertEqual(refund_rows(bid), [])
        self.assertStatus(book(a, eid, j["booking"]["startTime"], 30), 201, "rebook")

    def test_cancel_rules(self):
        a, other = register(), register()
        expert_user = register()
        eid = new_expert(0, user=expert_user)
        bid = self.created(a, eid)["booking"]["id"]
        self.assertError(other.post(f"/api/bookings/{bid}/cancel", {}), 404,
                         "booking_not_found")
        self.assertError(other.post(f"/api/bookings/{bid}/confirm-payment", {}), 404,
                         "booking_not_found")
        started(bid)
        self.assertStatus(expert_user.post(f"/api/bookings/{bid}/complete", {}), 200)
        self.assertError(a.post(f"/api/bookings/{bid}/cancel", {}), 409,
                         "booking_not_cancellable")


# ---------------------------------------------------------------- move

def move(browser, bid, start):
    return browser.post(f"/api/bookings/{bid}/reschedule", {"startTime": start})


class MoveTests(BookingCase):
    """A scheduled booking moves to another free time of its expert, for the
    same length and price, while cancelling would still refund in full."""

    def test_a_paid_booking_moves_and_keeps_its_money(self):
        a, other = register(), register()
        eid = new_expert(150)
        bid, pi = self.paid(a, eid)
        was = booking_row(bid)
        old = was["start_time"].strftime("%Y-%m-%dT%H:%M:%SZ")
        to, when = future()
        r = move(a, bid, to)
        self.assertStatus(r, 200, "move")
        bk = r.json["booking"]
        self.assertEqual((bk["startTime"], bk["status"], bk["paymentStatus"], bk["priceCents"]),
                         (to, "scheduled", "succeeded", 4500))
        now = booking_row(bid)
        self.assertEqual((now["start_time"], now["end_time"]),
                         (when, when + datetime.timedelta(minutes=30)))
        money = ("price_cents", "platform_fee_cents", "payout_cents", "payment_intent_id",
                 "refunded_cents", "cancel_refund_cents")
        self.assertEqual({k: now[k] for k in money}, {k: was[k] for k in money})
        self.assertEqual((payment_row(bid)["status"], refund_rows(bid)), ("succeeded", []))
        self.assertEqual(audit_count("BOOKING_RESCHEDULED", str(bid)), 1)
        details = db_scalar("SELECT details FROM audit_log WHERE action = 'BOOKING_RESCHEDULED'"
                            " AND entity_id = %s", str(bid))
        self.assertEqual(json.loads(details), {
            "startTime": when.strftime("%Y-%m-%d %H:%M:%S"),
            "from": was["start_time"].strftime("%Y-%m-%d %H:%M:%S")})
        # the same time again changes nothing; nobody else can move it
        self.assertStatus(move(a, bid, to), 200, "move to where it is")
        self.assertEqual(audit_count("BOOKING_RESCHEDULED", str(bid)), 1)
        self.assertError(move(other, bid, future()[0]), 404, "booking_not_found")
        # the old time is free, the new one taken
        self.assertStatus(book(register(), eid, old), 201, "book the old time")
        self.assertError(book(register(), eid, to), 409, "booking_conflict")
        # cancelled more than 24 hours before its new start: refunded in full
        self.assertStatus(a.post(f"/api/bookings/{bid}/cancel", {}), 200, "cancel")
        self.assertEqual([x["amount_cents"] for x in refund_rows(bid)], [4500])

    def test_what_cannot_move(self):
        a = register()
        eid = new_expert(100)
        bid, _ = self.paid(a, eid)
        taken, when = future()
        self.created(register(), eid, taken)                   # someone's hold
        overlapping = (when - datetime.timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for start in (taken, overlapping):
            self.assertError(move(a, bid, start), 409, "booking_conflict")
        self.assertError(move(a, bid, "soon"), 400, "invalid_start_time")
        self.assertError(move(a, bid, "2020-01-01T10:00:00Z"), 400, "start_time_in_past")
        self.assertError(a.post(f"/api/bookings/{bid}/reschedule", {}), 400)
        hold = self.created(a, eid)["booking"]["id"]
        self.assertError(move(a, hold, future()[0]), 409, "booking_not_movable")
        # an expert who no longer takes bookings takes no new times either
        db_exec("UPDATE experts SET active = 0 WHERE id = %s", eid)
        self.assertError(move(a, bid, future()[0]), 409, "booking_not_movable")
        db_exec("UPDATE experts SET active = 1 WHERE id = %s", eid)
        # within the policy's 24 hours a cancel refunds only part: no move
        db_exec("UPDATE bookings SET start_time = UTC_TIMESTAMP() + INTERVAL 23 HOUR,"
                " end_time = UTC_TIMESTAMP() + INTERVAL 23 HOUR + INTERVAL 30 MINUTE"
                " WHERE id = %s", bid)
        before = booking_row(bid)["start_time"]
        r = move(a, bid, future()[0])
        self.assertError(r, 409, "too_late_to_move")
        self.assertIn("less than 24 hours", r.json["error"]["message"])
        self.assertEqual(booking_row(bid)["start_time"], before)
        self.assertEqual(audit_count("BOOKING_RESCHEDULED", str(bid)), 0)

    def test_the_pages_offer_move_only_while_it_can(self):
        a, other = register(), register()
        eid = new_expert(100)
        bid, _ = self.paid(a, eid)
        row = f'<tr data-booking="{bid}">'
        link = f'href="/experts/{eid}/schedule?move={bid}" data-move-booking="{bid}">Move</a>'
        page = a.get("/dashboard").text
        self.assertIn(link, page[page.index(row):])
        page = a.get(f"/experts/{eid}/schedule?move={bid}").text
        self.assertIn(f'data-moving="{bid}" data-minutes="30"', page)
        self.assertNotIn('id="duration"', page)
        # what moving into the late window does to a later cancel, by the booking's policy
        self.assertIn("At a new time less than 24 hours away, cancelling it later refunds 50%,"
                      " not all of it.", page)
        self.assertNotIn("data-policy", page, "a move is told the booking's policy instead")
        # the expert's policy changed since: the booking keeps the one it was made under
        db_exec("UPDATE experts SET cancel_late_refund_bps = 3333 WHERE id = %s", eid)
        self.assertIn("less than 24 hours away, cancelling it later refunds 50%",
                      a.get(f"/experts/{eid}/schedule?move={bid}").text)
        later, _ = self.paid(a, eid)
        self.assertIn("less than 24 hours away, cancelling it later refunds 33.33%",
                      a.get(f"/experts/{eid}/schedule?move={later}").text)
        for who, path in ((other, f"/experts/{eid}/schedule?move={bid}"),
                          (a, f"/experts/{new_expert(100)}/schedule?move={bid}"),
                          (a, f"/experts/{eid}/schedule?move=x")):
            page = who.get(path).text
            self.assertIn("data-move-gone", page, path)
            self.assertNotIn("data-moving", page, path)
        self.assertIn("<p class=\"notice ok\" role=\"status\" data-notice>Moved: your session"
                      " with Expert ", a.get(f"/dashboard?moved={bid}").text)
        self.assertNotIn("data-notice", other.get(f"/dashboard?moved={bid}").text)
        started(bid)
        page = a.get("/dashboard").text
        self.assertNotIn("data-move-booking", page[page.index(row):])
        self.assertIn("data-move-gone", a.get(f"/experts/{eid}/schedule?move={bid}").text)

    def test_moves_and_holds_racing_for_one_time_one_wins(self):
        eid = new_expert(100)
        owners = [register() for _ in range(4)]
        bids = [self.paid(u, eid)[0] for u in owners]
        holders = [register() for _ in range(4)]
        target, when = future()
        jobs = [("move", i) for i in range(4)] + [("hold", i) for i in range(4)]
        results = parallel(lambda j: move(owners[j[1]], bids[j[1]], target) if j[0] == "move"
                           else book(holders[j[1]], eid, target), jobs, threads=8)
        won = [j for j, r in zip(jobs, results) if not isinstance(r, Exception)
               and r.status in (200, 201)]
        self.assertEqual(len(won), 1, [getattr(r, "status", r) for r in results])
        for j, r in zip(jobs, results):
            if j not in won:
                self.assertError(r, 409, "booking_conflict")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM bookings WHERE expert_id = %s"
                                   " AND start_time = %s", eid, when), 1)


# ---------------------------------------------------------------- complete, list

class CompleteTests(BookingCase):

    def test_only_the_expert_completes(self):
        a, other, expert_user = register(), register(), register()
        eid = new_expert(100, user=expert_user)
        j = self.created(a, eid)
        bid = j["booking"]["id"]
        # not scheduled yet
        self.assertError(expert_user.post(f"/api/bookings/{bid}/complete", {}), 409,
                         "booking_not_completable")
        emu_succeed(j["booking"]["paymentIntentId"])
        status_is(bid, "scheduled", "succeeded")
        self.assertError(a.post(f"/api/bookings/{bid}/complete", {}), 403, "not_the_expert")
        self.assertError(other.post(f"/api/bookings/{bid}/complete", {}), 404,
                         "booking_not_found")
        self.assertError(expert_user.post(f"/api/bookings/{bid}/complete", {}), 409,
                         "booking_not_started")
        self.assertEqual(booking_row(bid)["status"], "scheduled")
        started(bid)
        r = expert_user.post(f"/api/bookings/{bid}/complete", {})
        self.assertStatus(r, 200, "complete")
        self.assertEqual(r.json["booking"]["status"], "completed")
        r = expert_user.post(f"/api/bookings/{bid}/complete", {})
        self.assertStatus(r, 200, "complete again")
        self.assertEqual(audit_count("BOOKING_COMPLETED", str(bid)), 1)

    def test_lists_mine_as_customer_and_as_expert(self):
        a, expert_user = register(), register()
        eid = new_expert(0, user=expert_user)
        first = self.created(a, eid)["booking"]["id"]
        second = self.created(a, eid)["booking"]["id"]
        own = self.created(expert_user, new_expert(0))["booking"]["id"]
        r = a.get("/api/bookings")
        self.assertStatus(r, 200, "list")
        self.assertEqual([b["id"] for b in r.json["bookings"]], [second, first])
        self.assertEqual({b["role"] for b in r.json["bookings"]}, {"customer"})
        r = expert_user.get("/api/bookings")
        got = [(b["id"], b["role"]) for b in r.json["bookings"]]
        self.assertEqual(got, [(own, "customer"), (second, "expert"), (first, "expert")])
        self.assertEqual(register().get("/api/bookings").json["bookings"], [])
        self.assertError(Browser().get("/api/bookings"), 401)


# ---------------------------------------------------------------- admin

class AdminTests(BookingCase):

    def completed(self, customer, expert_user, eid, minutes=30):
        bid, _ = self.paid(customer, eid, minutes)
        started(bid)
        self.assertStatus(expert_user.post(f"/api/bookings/{bid}/complete", {}), 200)
        return bid

    def test_payouts(self):
        adm, a, expert_user = admin(), register(), register()
        eid = new_expert(67, user=expert_user)
        b1 = self.completed(a, expert_user, eid, 15)     # payout 904
        b2 = self.completed(a, expert_user, eid, 30)     # 2010: fee 201, payout 1809
        self.paid(a, eid)                                # scheduled: not owed yet
        self.assertError(a.get("/api/admin/payouts/pending"), 403)
        self.assertError(a.post("/api/admin/payouts", {"expertId": eid}), 403)

        r = adm.get("/api/admin/payouts/pending")
        self.assertStatus(r, 200, "pending")
        mine = [e for e in r.json["experts"] if e["expertId"] == eid]
        self.assertEqual(len(mine), 1)
        self.assertEqual((mine[0]["amountCents"], mine[0]["bookingIds"]), (904 + 1809, [b1, b2]))

        results = parallel(lambda _: adm.post("/api/admin/payouts", {"expertId": eid}),
                           range(4), threads=4)
        codes = sorted(r.status if not isinstance(r, Exception) else repr(r) for r in results)
        self.assertEqual(codes, [201, 409, 409, 409], results)
        won = next(r for r in results if r.status == 201).json["payout"]
        self.assertEqual((won["expertId"], won["amountCents"], won["bookingIds"]),
                         (eid, 2713, [b1, b2]))
        for r in results:
            if r.status == 409:
                self.assertError(r, 409, "nothing_to_pay")
        self.assertEqual(db_rows("SELECT expert_id, amount_cents, created_by FROM payouts"
                                 " WHERE expert_id = %s", eid),
                         [{"expert_id": eid, "amount_cents": 2713, "created_by": adm.id}])
        self.assertEqual(sorted(x["booking_id"] for x in db_rows(
            "SELECT booking_id FROM payout_items WHERE payout_id = %s", won["id"])), [b1, b2])
        self.assertEqual(audit_count("ADMIN_PAYOUT", str(won["id"])), 1)
        r = adm.get("/api/admin/payouts/pending")
        self.assertEqual([e for e in r.json["experts"] if e["expertId"] == eid], [])
        self.assertError(adm.post("/api/admin/payouts", {"expertId": 999999999}), 404)

    def test_a_payout_records_only_the_amount_the_admin_was_shown(self):
        """The admin was shown 904 cents and paid them by hand; a booking
        completed meanwhile makes the payout 409 payout_changed, nothing
        recorded, until the admin confirms the new amount."""
        adm, a, expert_user = admin(), register(), register()
        eid = new_expert(67, user=expert_user)
        b1 = self.completed(a, expert_user, eid, 15)     # payout 904
        shown = [e for e in adm.get("/api/admin/payouts/pending").json["experts"]
                 if e["expertId"] == eid][0]["amountCents"]
        self.assertEqual(shown, 904)
        b2 = self.completed(a, expert_user, eid, 30)     # payout 1809, completed meanwhile
        r = adm.post("/api/admin/payouts", {"expertId": eid, "amountCents": shown})
        self.assertError(r, 409, "payout_changed")
        self.assertIn("now owed $27.13, not $9.04", r.json["error"]["message"])
        self.assertEqual(db_rows("SELECT id FROM payouts WHERE expert_id = %s", eid), [])
        self.assertEqual(db_rows("SELECT booking_id FROM payout_items WHERE booking_id IN (%s, %s)",
                                 b1, b2), [])
        self.assertError(adm.post("/api/admin/payouts", {"expertId": eid, "amountCents": 0}), 400)
        r = adm.post("/api/admin/payouts", {"expertId": eid, "amountCents": 2713})
        self.assertStatus(r, 201, "payout of the amount now shown")
        self.assertEqual((r.json["payout"]["amountCents"], r.json["payout"]["bookingIds"]),
                         (2713, [b1, b2]))

    def test_refunded_booking_is_not_owed(self):
        adm, a, expert_user = admin(), register(), register()
        eid = new_expert(100, user=expert_user)
        bid = self.completed(a, expert_user, eid)
        pi = payment_row(bid)["stripe_payment_intent_id"]
        # refunded in Stripe's dashboard, outside the app
        r = stripe_api("POST", "/v1/refunds", {"payment_intent": pi})
        self.assertEqual(r.status, 200, r)
        status_is(bid, "completed", "refunded")
        rows = refund_rows(bid)
        self.assertEqual([(x["stripe_refund_id"], x["amount_cents"]) for x in rows],
                         [(r.json["id"], 3000)])
        self.assertEqual(audit_count("REFUND_ISSUED", str(bid)), 1)
        pending = adm.get("/api/admin/payouts/pending").json["experts"]
        self.assertEqual([e for e in pending if e["expertId"] == eid], [])
        self.assertError(adm.post("/api/admin/payouts", {"expertId": eid}), 409,
                         "nothing_to_pay")

    def test_metrics(self):
        adm, a, expert_user = admin(), register(), register()
        self.assertError(a.get("/api/admin/metrics"), 403)
        eid = new_expert(100, user=expert_user)
        self.completed(a, expert_user, eid)             # fee 300, owed 2700
        j = self.created(a, eid)
        emu_decline(j["booking"]["paymentIntentId"])
        status_is(j["booking"]["id"], "awaiting_payment", "failed")
        self.created(a, new_expert(0))                  # free, scheduled

        def expected():
            q = db_scalar
            total = q("SELECT COUNT(*) FROM bookings")
            paid = q("SELECT COUNT(*) FROM bookings WHERE status IN ('scheduled','completed')")
            succ = q("SELECT COUNT(*) FROM payments WHERE status = 'succeeded'")
            refd = q("SELECT COUNT(*) FROM payments WHERE status = 'refunded'")
            failed = q("SELECT COUNT(*) FROM payments WHERE status = 'failed'")
            part = q("SELECT COUNT(*) FROM payments WHERE status = 'partially_refunded'")
            revenue = q("SELECT COALESCE(SUM(b.platform_fee_cents - b.fee_refunded_cents), 0)"
                        " FROM bookings b JOIN payments p ON p.booking_id = b.id"
                        " WHERE p.status IN ('succeeded', 'partially_refunded')")
            # per expert, what each booking earns now less what payouts paid for
            # it; an expert owing back counts as owed nothing
            owed = q("SELECT COALESCE(SUM(GREATEST(due, 0)), 0) FROM (SELECT b.expert_id,"
                     " SUM(IF((b.status = 'completed' OR (b.status ="
                     " 'cancelled_by_user' AND b.refunded_cents = b.cancel_refund_cents))"
                     " AND p.status IN ('succeeded', 'partially_refunded')"
                     " AND (b.dispute_status IS NULL OR b.dispute_status = 'won'),"
                     " CAST(b.payout_cents AS SIGNED) - b.payout_refunded_cents, 0)"
                     " - (SELECT COALESCE(SUM(i.amount_cents), 0) FROM payout_items i"
                     " WHERE i.booking_id = b.id)) AS due"
                     " FROM bookings b JOIN payments p ON p.booking_id = b.id"
                     " WHERE b.destination_account IS NULL GROUP BY b.expert_id) x")
            return {"total": total, "paid": paid, "rateBps": paid * 10000 // total,
                    "succeeded": succ, "failed": failed, "refunded": refd,
                    "successRateBps": (succ + refd + part) * 10000 // (succ + refd + part + failed),
                    "revenue": int(revenue), "owed": int(owed)}

        def got():
            m = adm.get("/api/admin/metrics").json
            return {"total": m["bookings"]["total"], "paid": m["bookings"]["paid"],
                    "rateBps": m["bookings"]["rateBps"],
                    "succeeded": m["payments"]["succeeded"], "failed": m["payments"]["failed"],
                    "refunded": m["payments"]["refunded"],
                    "successRateBps": m["payments"]["successRateBps"],
                    "revenue": m["platformRevenueCents"], "owed": m["pendingPayoutsCents"]}

        wait_until(lambda: got() == expected(), message="metrics match the database")
        before = got()
        self.created(a, new_expert(0))
        after = got()
        self.assertEqual(after["total"], before["total"] + 1)
        self.assertEqual(after["paid"], before["paid"] + 1)
        self.assertGreaterEqual(after["revenue"], 300)
        self.assertGreaterEqual(after["owed"], 2700)
