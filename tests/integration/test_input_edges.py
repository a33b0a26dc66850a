"""Input edges through nginx: Stripe-Signature headers exactly as Stripe's
libraries accept them, signed events whose ids do not fit our columns (400,
never a 503 that Stripe would retry for days), and JSON bodies whose
Content-Type is application/json and nothing longer."""

import time

from . import lib
from .lib import Case, make_event, post_webhook, signature


def event_rows(event_id):
    return lib.db_scalar("SELECT COUNT(*) FROM stripe_events WHERE event_id = %s", event_id)


class SignatureHeaderTests(Case):

    def test_headers_stripe_libraries_refuse_are_400_and_not_stored(self):
        eid, body = make_event("creditdesk.test_ping")
        now = int(time.time())
        mac = signature(body, t=now)
        cases = {
            "upper-case hex v1": f"t={now},v1={mac.upper()}",
            "empty item": f"t={now},,v1={mac}",
            "trailing comma": f"t={now},v1={mac},",
            "item without =": f"t={now},foo,v1={mac}",
            "item with two =": f"t={now},v0=a=b,v1={mac}",
            "space after comma": f"t={now}, v1={mac}",
            "signed t": f"t=+{now},v1={mac}",
        }
        for what, header in cases.items():
            with self.subTest(what):
                self.assertError(post_webhook(body, signature_header=header), 400,
                                 "invalid_signature", what)
                self.assertEqual(event_rows(eid), 0, what)

    def test_headers_stripe_libraries_accept_are_200(self):
        now = int(time.time())
        eid, body = make_event("creditdesk.test_ping")
        mac = signature(body, t=now)
        header = f"t={now},v0=ignored,v2=x,=y,v1=,v1={mac.upper()},v1={mac}"
        r = post_webhook(body, signature_header=header)
        self.assertStatus(r, 200, "unknown schemes and bad v1 values beside a good v1")
        self.assertEqual(r.json, {"received": True, "duplicate": False})
        self.assertEqual(event_rows(eid), 1)


class OversizedEventTests(Case):

    def assertRefused(self, eid, body, what):
        sizes = lib.log_sizes()
        r = post_webhook(body)
        self.assertError(r, 400, "invalid_event", what)
        self.assertEqual(event_rows(eid), 0, f"{what}: stored")
        logged = lib.wait_until(lambda: "\n".join(
            lib.log_since(sizes, ["webhook.log"]).get("webhook.log", [])).count("event refused"),
            timeout=5, what=f"{what}: the refusal in webhook.log")
        self.assertEqual(logged, 1)

    def test_signed_events_that_do_not_fit_are_400_and_logged(self):
        eid, body = make_event("x." + "y" * 99)            # type: 101 > 100
        self.assertRefused(eid, body, "type too long")
        eid, body = make_event("creditdesk.test_ping", obj={"id": "ch_" + "a" * 253})
        self.assertRefused(eid, body, "object id too long")       # 256 > 255
        eid, body = make_event("creditdesk.test_ping", event_id="evt_" + "b" * 251)
        self.assertRefused(eid, body, "event id too long")        # 255 >= 255
        eid, body = make_event("creditdesk.test_ping", obj={"id": 12345})
        self.assertRefused(eid, body, "object id not a string")
        eid, body = make_event("")
        self.assertRefused(eid, body, "empty type")
        # A NUL inside a string never gets past the JSON parser.
        for what, (eid, body) in (
                ("object id with a NUL", make_event("x.y", obj={"id": "ch_1\u0000x"})),
                ("type with a NUL", make_event("x.y\u0000z"))):
            self.assertError(post_webhook(body), 400, "invalid_json", what)
            self.assertEqual(event_rows(eid), 0, what)

    def test_the_longest_ids_that_fit_are_stored(self):
        eid, body = make_event("x." + "y" * 98, obj={"id": "ch_" + "a" * 252},
                               event_id="evt_" + "b" * 250)
        r = post_webhook(body)
        self.assertStatus(r, 200)
        row = lib.stripe_event_row(eid)
        self.assertEqual((len(row["event_id"]), len(row["type"]), len(row["object_id"])),
                         (254, 100, 255))


class ContentTypeTests(Case):

    def test_only_application_json_is_parsed(self):
        b = lib.register()
        before = len(lib.checkout_rows(b.id))
        for ct in ("application/jsonx", "application/json-seq", "application/jsonp",
                   "text/json", "application/x-www-form-urlencoded", "text/plain",
                   "application/json, text/plain"):
            with self.subTest(ct):
                r = b.request("POST", "/api/buy/live_help", data='{"quantity": 1}',
                              content_type=ct)
                self.assertError(r, 415, "unsupported_media_type", ct)
        self.assertEqual(len(lib.checkout_rows(b.id)), before, "a refused body started a checkout")
        for ct in ("application/json", "application/json; charset=utf-8",
                   "Application/JSON;charset=UTF-8"):
            with self.subTest(ct):
                r = b.request("POST", "/api/buy/live_help", data='{"quantity": 1}',
                              content_type=ct)
                self.assertStatus(r, 200, ct)
        self.assertEqual(len(lib.checkout_rows(b.id)), before + 3)


class NginxRefusalTests(Case):
    """What nginx refuses itself, before any responder: its own status, and
    on /api/ the SPEC's JSON error (a page elsewhere)."""

    def test_refusals_on_the_api_are_json(self):
        base = lib.base_url()
        cases = [("TRACE", "/api/auth/logout", {}, 405, "method_not_allowed"),
                 ("GET", "/api/me", {"Cookie": "x=" + "a" * 9000}, 400, "bad_request")]
        for method, path, headers, status, code in cases:
            with self.subTest(f"{method} {path}"):
                r = lib.http_request(method, base + path, headers=headers)
                self.assertError(r, status, code)
        r = lib.http_request("TRACE", base + "/dashboard")
        self.assertEqual(r.status, 405)
        self.assertTrue(r.header("content-type", "").startswith("text/html"), r)
        self.assertIn("<h1>Not allowed</h1>", r.text)
