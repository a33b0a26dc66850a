#!/usr/bin/env python3
"""
selftest.py -- end-to-end checks of stripe_emulator.py (standard library only).

Starts the emulator on 127.0.0.1:12190 (EMU_SELFTEST_PORT overrides) with a
small webhook receiver on an ephemeral port that verifies every
Stripe-Signature with hmac, then drives the API, the hosted checkout page and
the /_emu controls the way creditdesk and its tests will.  Prints
"N passed, N failed" and exits non-zero on any failure.

  python3 emulator/selftest.py
"""

import hashlib
import hmac
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, urlencode, urlsplit, parse_qs

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import stripe_emulator  # noqa: E402  (for the form parser unit checks)

PORT = int(os.environ.get("EMU_SELFTEST_PORT", "12190"))
KEY = "sk_test_selftest_0123456789abcdef"
SECRETS = ["whsec_selftest_first", "whsec_selftest_second"]

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")
    return cond


def wait_for(pred, timeout=5.0, step=0.02):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# ---------------------------------------------------------------------------
# Webhook receiver
# ---------------------------------------------------------------------------

class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.got = []          # {"id", "type", "valid", "body", "event"}
        self.fail_next = 0     # answer 500 to this many deliveries
        rec = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                valid = verify(self.headers.get("Stripe-Signature"), body, SECRETS[0])
                try:
                    evt = json.loads(body)
                except ValueError:
                    evt = {}
                with rec.lock:
                    fail = rec.fail_next > 0
                    if fail:
                        rec.fail_next -= 1
                    rec.got.append({"id": evt.get("id"), "type": evt.get("type"),
                                    "valid": valid, "body": body, "event": evt,
                                    "ctype": self.headers.get("Content-Type"),
                                    "answered": 500 if fail else 200})
                status = 500 if fail else (200 if valid else 400)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, etype=None, eid=None):
        with self.lock:
            return [g for g in self.got if (etype is None or g["type"] == etype)
                    and (eid is None or g["id"] == eid)]

    def clear(self):
        with self.lock:
            self.got.clear()
            self.fail_next = 0


def verify(header, body, secret, tolerance=300):
    if not header:
        return False
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    ts = [v for k, v in parts if k == "t"]
    sigs = [v for k, v in parts if k == "v1"]
    if not ts or not sigs or not ts[0].isdigit():
        return False
    if abs(time.time() - int(ts[0])) > tolerance:
        return False
    want = hmac.new(secret.encode(), ts[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(want, s) for s in sigs)


# ---------------------------------------------------------------------------
# HTTP client
# ---------------------------------------------------------------------------

def form_pairs(obj, prefix=""):
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += form_pairs(v, f"{prefix}[{k}]" if prefix else k)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += form_pairs(v, f"{prefix}[{i}]")
    else:
        out.append((prefix, str(obj).lower() if isinstance(obj, bool) else str(obj)))
    return out


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


def call(method, path, params=None, key=KEY, idem=None, body=None, ctype=None,
         query=None, extra_headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=15)
    headers = {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if idem:
        headers["Idempotency-Key"] = idem
    if params is not None:
        body = urlencode(form_pairs(params))
        ctype = "application/x-www-form-urlencoded"
    if query:
        path += "?" + (query if isinstance(query, str) else urlencode(form_pairs(query)))
    if ctype:
        headers["Content-Type"] = ctype
    headers.update(extra_headers or {})
    data = body.encode() if isinstance(body, str) else body
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    resp = Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    conn.close()
    return resp


def api(method, path, params=None, **kw):
    return call(method, path, params, **kw)


def emu(method, path, data=None):
    return call(method, path, key=None, body=json.dumps(data) if data is not None else None,
                ctype="application/json" if data is not None else None)


def session_params(mode="payment", **over):
    p = {
        "mode": mode,
        "line_items": [{"price_data": {"currency": "usd", "unit_amount": 999,
                                       "product_data": {"name": "Voice AI Therapy",
                                                        "description": "15 minutes"}},
                        "quantity": 2},
                       {"price_data": {"currency": "usd", "unit_amount": 500,
                                       "product_data": {"name": "Extra <b>"}},
                        "quantity": 1}],
        "metadata": {"user_id": 5, "product": "voice"},
        "success_url": "http://127.0.0.1:9/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:9/cancel",
        "payment_intent_data": {"metadata": {"user_id": 5, "kind": "pi"}},
        "client_reference_id": "ref-1",
    }
    if mode == "subscription":
        p["line_items"] = [{"price_data": {"currency": "usd", "unit_amount": 1500,
                                           "product_data": {"name": "Monthly plan"},
                                           "recurring": {"interval": "month"}},
                            "quantity": 1}]
        del p["payment_intent_data"]
        p["subscription_data"] = {"metadata": {"user_id": 7, "plan": "pro"}}
    p.update(over)
    return {k: v for k, v in p.items() if v is not None}


def new_session(mode="payment", **over):
    r = api("POST", "/v1/checkout/sessions", session_params(mode, **over))
    assert r.status == 200, r.text
    return r.json


def event_types():
    r = api("GET", "/v1/events", query={"limit": 100})
    return [e["type"] for e in r.json["data"]]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def t_form_parser():
    pf = stripe_emulator.parse_form
    got = pf("line_items[0][price_data][unit_amount]=999&line_items[0][quantity]=2"
             "&line_items[1][quantity]=3&metadata[user_id]=5&expand[]=a&expand[]=b.c"
             "&name=A+B%26C&types[]=x&empty=")
    check("form: nested list of dicts",
          got["line_items"] == [{"price_data": {"unit_amount": "999"}, "quantity": "2"},
                                {"quantity": "3"}], got)
    check("form: hash and [] arrays", got["metadata"] == {"user_id": "5"}
          and got["expand"] == ["a", "b.c"] and got["types"] == ["x"], got)
    check("form: decoding and blanks", got["name"] == "A B&C" and got["empty"] == "", got)
    check("form: index order", pf("a[1]=y&a[0]=x&a[10]=z")["a"] == ["x", "y", "z"])
    try:
        pf("a=1&a[b]=2")
        check("form: scalar vs hash conflict is an error", False)
    except stripe_emulator.StripeError as e:
        check("form: scalar vs hash conflict is an error", e.status == 400)


def t_basics():
    r = emu("GET", "/_emu/health")
    check("health", r.status == 200 and r.json == {"ok": True}, r.text)
    r = api("GET", "/v1/events", key=None)
    check("no key -> 401 Stripe shape", r.status == 401
          and r.json["error"]["type"] == "invalid_request_error", r.text)
    r = api("GET", "/v1/events", key="sk_test_wrong_key_123456")
    check("wrong key -> 401, key not echoed in full", r.status == 401
          and "sk_test_wrong_key_123456" not in r.text, r.text)
    r = api("GET", "/v1/checkout/sessions/cs_test_nope")
    check("unknown id -> 404 resource_missing", r.status == 404
          and r.json["error"]["code"] == "resource_missing", r.text)
    r = api("POST", "/v1/customers", {"email": "a@example.com", "name": "Ann",
                                       "metadata": {"user_id": 3}, "bogus": "ignored"})
    c = r.json
    check("customer create", r.status == 200 and c["id"].startswith("cus_")
          and c["object"] == "customer" and c["livemode"] is False
          and c["metadata"] == {"user_id": "3"} and isinstance(c["created"], int), r.text)
    r = api("GET", f"/v1/customers/{c['id']}")
    check("customer retrieve", r.status == 200 and r.json["email"] == "a@example.com")
    r = api("POST", "/v1/checkout/sessions", {"mode": "payment", "success_url": "http://x/"})
    check("missing line_items -> 400 parameter_missing", r.status == 400
          and r.json["error"].get("param") == "line_items", r.text)
    r = api("POST", "/v1/checkout/sessions", session_params(
        line_items=[{"price_data": {"currency": "usd", "unit_amount": "9.99",
                                    "product_data": {"name": "x"}}, "quantity": 1}]))
    check("non-integer amount -> 400", r.status == 400, r.text)


def t_hosted_checkout(rcv):
    cs = new_session()
    check("session shape", cs["id"].startswith("cs_test_") and len(cs["id"]) == 32
          and cs["amount_total"] == 2 * 999 + 500 and cs["currency"] == "usd"
          and cs["status"] == "open" and cs["payment_status"] == "unpaid"
          and cs["payment_intent"] is None and cs["subscription"] is None
          and cs["invoice"] is None and cs["client_secret"] is None
          and cs["metadata"] == {"user_id": "5", "product": "voice"}
          and cs["url"] == f"http://127.0.0.1:{PORT}/checkout/pay/{cs['id']}", cs)
    r = api("GET", f"/v1/checkout/sessions/{cs['id']}/line_items")
    check("line_items list", r.status == 200 and len(r.json["data"]) == 2
          and r.json["data"][0]["quantity"] == 2
          and r.json["data"][0]["price"]["unit_amount"] == 999, r.text)
    r = api("GET", f"/v1/checkout/sessions/{cs['id']}", query="expand[]=line_items")
    check("expand[]=line_items", r.json.get("line_items", {}).get("object") == "list", r.text)

    path = urlsplit(cs["url"]).path
    r = call("GET", path, key=None)
    check("hosted page GET shows items, total, card input, Pay",
          r.status == 200 and "Pay</button>" in r.text and 'name="card"' in r.text
          and "Voice AI Therapy" in r.text and "$24.98" in r.text
          and "Extra &lt;b&gt;" in r.text and "4242 4242 4242 4242" in r.text, r.text[:400])
    r = call("POST", path, key=None, body="card=1234", ctype="application/x-www-form-urlencoded")
    check("invalid card -> 400 page", r.status == 400 and "Your card number is invalid." in r.text)
    r = call("POST", path, key=None, body="card=4242+4242+4242+4242",
             ctype="application/x-www-form-urlencoded")
    want = f"http://127.0.0.1:9/success?session_id={cs['id']}"
    check("Pay with 4242 -> 303 to success_url with the id",
          r.status == 303 and r.headers.get("location") == want, (r.status, r.headers))
    s = api("GET", f"/v1/checkout/sessions/{cs['id']}").json
    check("session paid", s["status"] == "complete" and s["payment_status"] == "paid"
          and s["payment_intent"].startswith("pi_"), s)
    pi = api("GET", f"/v1/payment_intents/{s['payment_intent']}").json
    check("payment intent succeeded with payment_intent_data metadata",
          pi["status"] == "succeeded" and pi["amount"] == 2498
          and pi["metadata"] == {"user_id": "5", "kind": "pi"}
          and pi["latest_charge"].startswith("ch_"), pi)
    ch = api("GET", f"/v1/charges/{pi['latest_charge']}").json
    check("charge", ch["status"] == "succeeded" and ch["paid"] is True and ch["amount"] == 2498
          and ch["amount_refunded"] == 0 and ch["payment_intent"] == pi["id"], ch)
    got = wait_for(lambda: [g for g in rcv.events("checkout.session.completed")
                            if g["event"]["data"]["object"]["id"] == cs["id"]])
    check("webhook checkout.session.completed received with valid signature",
          bool(got) and got[0]["valid"] and got[0]["ctype"].startswith("application/json")
          and got[0]["event"]["data"]["object"]["payment_status"] == "paid"
          and got[0]["event"]["object"] == "event"
          and got[0]["event"]["api_version"] == "2024-06-20", got[:1])
    if got:
        r = api("GET", f"/v1/events/{got[0]['id']}")
        check("event retrieve", r.status == 200 and r.json["type"] == "checkout.session.completed")
        wait_for(lambda: api("GET", f"/v1/events/{got[0]['id']}").json["pending_webhooks"] == 0)
        d = emu("GET", f"/_emu/deliveries?event_id={got[0]['id']}").json["data"]
        check("delivery recorded", len(d) == 1 and d[0]["status"] == 200 and d[0]["attempt"] == 1, d)
    n_events = len(event_types())
    r = call("POST", path, key=None, body="card=4242424242424242",
             ctype="application/x-www-form-urlencoded")
    check("paying twice just redirects again", r.status == 303
          and r.headers.get("location") == want)
    check("... and creates no events", len(event_types()) == n_events)


def t_decline():
    cs = new_session()
    path = f"/checkout/pay/{cs['id']}"
    r = call("POST", path, key=None, body="card=4000+0000+0000+0002",
             ctype="application/x-www-form-urlencoded")
    check("declined card -> 402 page with message", r.status == 402
          and "Your card was declined." in r.text and "Pay</button>" in r.text, r.status)
    s = api("GET", f"/v1/checkout/sessions/{cs['id']}").json
    check("declined session stays open/unpaid", s["status"] == "open"
          and s["payment_status"] == "unpaid", s)
    r = emu("POST", f"/_emu/checkout/sessions/{cs['id']}/pay", {"card": "4000000000000002"})
    check("control pay declined -> 402 card_error", r.status == 402
          and r.json["error"]["type"] == "card_error"
          and r.json["error"]["code"] == "card_declined", r.text)
    r = emu("POST", f"/_emu/checkout/sessions/{cs['id']}/pay", {"card": "42"})
    check("control pay invalid -> 400", r.status == 400, r.text)
    r = emu("POST", f"/_emu/checkout/sessions/{cs['id']}/pay", {"card": "4242424242424242"})
    check("control pay ok -> session json", r.status == 200
          and r.json["payment_status"] == "paid" and r.json["id"] == cs["id"], r.text)


def t_idempotency():
    p = {"email": "idem@example.com", "metadata": {"n": 1}}
    r1 = api("POST", "/v1/customers", p, idem="key-one")
    r2 = api("POST", "/v1/customers", p, idem="key-one")
    check("idempotent replay: identical body", r1.status == 200 and r1.body == r2.body)
    check("idempotent replay header", r2.headers.get("idempotent-replayed") == "true")
    r3 = api("POST", "/v1/customers", {"email": "other@example.com"}, idem="key-one")
    check("same key, different params -> 400 idempotency_error", r3.status == 400
          and r3.json["error"]["type"] == "idempotency_error", r3.text)
    r4 = api("POST", "/v1/refunds", {"charge": "ch_x"}, idem="key-one")
    check("same key, other endpoint -> 400 idempotency_error", r4.status == 400
          and r4.json["error"]["type"] == "idempotency_error", r4.text)
    bad = api("POST", "/v1/payment_intents", {"amount": 1000}, idem="fix-me")
    good = api("POST", "/v1/payment_intents", {"amount": 1000, "currency": "usd"}, idem="fix-me")
    check("a validation error is not kept under the key (as Stripe)", bad.status == 400
          and good.status == 200 and good.json["amount"] == 1000, good.text)
    before = emu("GET", "/_emu/state").json["checkout_sessions"]
    results = []
    params = session_params()

    def go():
        results.append(api("POST", "/v1/checkout/sessions", params, idem="concurrent-key"))
    threads = [threading.Thread(target=go) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = emu("GET", "/_emu/state").json["checkout_sessions"]
    ids = {r.json["id"] for r in results if r.status == 200}
    check("12 concurrent identical requests -> one object", after - before == 1
          and len(ids) == 1 and all(r.status == 200 for r in results), (after - before, ids))
    # errors are replayed too (a 402 from confirm)
    pi = api("POST", "/v1/payment_intents", {"amount": 1000, "currency": "usd"}, idem="pi-k").json
    a = api("POST", f"/v1/payment_intents/{pi['id']}/confirm",
            {"payment_method": "pm_card_chargeDeclined"}, idem="confirm-k")
    b = api("POST", f"/v1/payment_intents/{pi['id']}/confirm",
            {"payment_method": "pm_card_chargeDeclined"}, idem="confirm-k")
    check("error responses replay exactly", a.status == 402 and b.status == 402
          and a.body == b.body)


def t_events_pagination():
    emu("POST", "/_emu/reset")
    for i in range(7):
        api("POST", "/v1/customers", {"email": f"p{i}@example.com"})
    t0 = int(time.time())
    r = api("GET", "/v1/events", query={"limit": 3})
    j = r.json
    check("events list shape", r.status == 200 and j["object"] == "list"
          and j["url"] == "/v1/events" and len(j["data"]) == 3 and j["has_more"] is True, j)
    seen, after, pages = [], None, 0
    while True:
        q = {"limit": 3}
        if after:
            q["starting_after"] = after
        j = api("GET", "/v1/events", query=q).json
        seen += [e["id"] for e in j["data"]]
        pages += 1
        if not j["has_more"]:
            break
        after = j["data"][-1]["id"]
    emails = [api("GET", f"/v1/events/{e}").json["data"]["object"]["email"] for e in seen]
    check("starting_after pages cover all, newest first",
          pages == 3 and len(seen) == 7 and len(set(seen)) == 7
          and emails == [f"p{i}@example.com" for i in range(6, -1, -1)], (pages, emails))
    j = api("GET", "/v1/events", query={"limit": 2, "ending_before": seen[4]}).json
    check("ending_before", [e["id"] for e in j["data"]] == seen[2:4] and j["has_more"] is True,
          j["data"])
    j = api("GET", "/v1/events", query={"limit": 100, "type": "customer.*"}).json
    check("type wildcard", len(j["data"]) == 7)
    j = api("GET", "/v1/events", query="types[]=customer.created&types[]=invoice.paid&limit=100").json
    check("types[]", len(j["data"]) == 7)
    j = api("GET", "/v1/events", query={"type": "invoice.paid"}).json
    check("type filter none", j["data"] == [] and j["has_more"] is False)
    j = api("GET", "/v1/events", query={"created": {"gte": t0 - 60}, "limit": 100}).json
    k = api("GET", "/v1/events", query={"created": {"gt": t0 + 60}, "limit": 100}).json
    check("created[gte]/[gt]", len(j["data"]) == 7 and k["data"] == [])
    r = api("GET", "/v1/events", query={"limit": 101})
    check("limit > 100 -> 400", r.status == 400)
    r = api("GET", "/v1/events", query={"starting_after": "evt_nope"})
    check("unknown cursor -> resource_missing", r.status in (400, 404)
          and r.json["error"]["code"] == "resource_missing")


def t_retry(rcv):
    emu("POST", "/_emu/reset")
    emu("POST", "/_emu/webhooks/config", {"retry_schedule": [0.2, 0.2]})
    rcv.clear()
    with rcv.lock:
        rcv.fail_next = 1
    cus = api("POST", "/v1/customers", {"email": "retry@example.com"}).json
    evs = api("GET", "/v1/events", query={"type": "customer.created"}).json["data"]
    eid = evs[0]["id"]
    ok = wait_for(lambda: [g for g in rcv.events(eid=eid) if g["answered"] == 200], 5)
    got = rcv.events(eid=eid)
    check("retry after 500: second attempt succeeds",
          bool(ok) and [g["answered"] for g in got] == [500, 200]
          and all(g["valid"] for g in got), [g["answered"] for g in got])
    check("same body on every attempt", len({g["body"] for g in got}) == 1)
    d = wait_for(lambda: len(emu("GET", f"/_emu/deliveries?event_id={eid}").json["data"]) == 2
                 and emu("GET", f"/_emu/deliveries?event_id={eid}").json["data"])
    check("deliveries record both attempts", [x["status"] for x in d] == [500, 200]
          and [x["attempt"] for x in d] == [1, 2] and d[1]["time"] - d[0]["time"] >= 0.15, d)
    # give up after the schedule: 3 attempts, then listed as undelivered
    with rcv.lock:
        rcv.fail_next = 100
    api("POST", "/v1/customers", {"email": "giveup@example.com"})
    eid2 = api("GET", "/v1/events", query={"limit": 1}).json["data"][0]["id"]
    wait_for(lambda: len(emu("GET", f"/_emu/deliveries?event_id={eid2}").json["data"]) >= 3, 5)
    time.sleep(0.5)
    d = emu("GET", f"/_emu/deliveries?event_id={eid2}").json["data"]
    check("gives up after the schedule (1 + 2 retries)", [x["status"] for x in d] == [500] * 3, d)
    und = api("GET", "/v1/events", query={"delivery_success": "false"}).json["data"]
    dele = api("GET", "/v1/events", query={"delivery_success": "true"}).json["data"]
    check("delivery_success=false lists it", [e["id"] for e in und] == [eid2], und)
    check("delivery_success=true lists the delivered one", [e["id"] for e in dele] == [eid], dele)
    with rcv.lock:
        rcv.fail_next = 0
    r = emu("POST", f"/_emu/events/{eid2}/deliver", {"times": 2, "delay_ms": 0})
    check("manual redelivery x2 -> statuses", r.status == 200
          and r.json["statuses"] == [200, 200], r.text)
    check("receiver got the duplicates", len([g for g in rcv.events(eid=eid2)
                                                if g["answered"] == 200]) == 2)
    und = api("GET", "/v1/events", query={"delivery_success": "false"}).json["data"]
    check("now delivered", und == [])
    emu("POST", "/_emu/webhooks/config", {"enabled": False})
    api("POST", "/v1/customers", {"email": "disabled@example.com"})
    time.sleep(0.3)
    ev = api("GET", "/v1/events", query={"limit": 1}).json["data"][0]
    check("disabled endpoint: nothing sent, event undelivered",
          not rcv.events(eid=ev["id"]) and ev["pending_webhooks"] == 0
          and [e["id"] for e in api("GET", "/v1/events",
                                    query={"delivery_success": "false"}).json["data"]] == [ev["id"]])
    emu("POST", "/_emu/webhooks/config", {"enabled": True})


def t_hold_release(rcv):
    emu("POST", "/_emu/reset")
    rcv.clear()
    emu("POST", "/_emu/webhooks/hold")
    for i in range(3):
        api("POST", "/v1/customers", {"email": f"h{i}@example.com"})
    time.sleep(0.3)
    check("held: nothing delivered", rcv.events() == [])
    st = emu("GET", "/_emu/state").json
    check("state shows held events", st["held_events"] == 3 and st["holding"] is True, st)
    r = emu("POST", "/_emu/webhooks/release", {"order": "reverse", "delay_ms": 0})
    emails = [g["event"]["data"]["object"]["email"] for g in rcv.events()]
    check("release reverse: delivered newest first", r.status == 200
          and r.json["statuses"] == [200] * 3
          and emails == ["h2@example.com", "h1@example.com", "h0@example.com"], emails)
    rcv.clear()
    emu("POST", "/_emu/webhooks/hold")
    for i in range(2):
        api("POST", "/v1/customers", {"email": f"f{i}@example.com"})
    r = emu("POST", "/_emu/webhooks/release", {"order": "fifo", "delay_ms": 100})
    wait_for(lambda: len(rcv.events()) == 2, 3)
    emails = [g["event"]["data"]["object"]["email"] for g in rcv.events()]
    check("release fifo with delay", emails == ["f0@example.com", "f1@example.com"], emails)
    api("POST", "/v1/customers", {"email": "after@example.com"})
    check("after release, delivery resumes", wait_for(lambda: len(rcv.events()) == 3, 3))


def t_refunds(rcv):
    emu("POST", "/_emu/reset")
    rcv.clear()
    cs = new_session()
    emu("POST", f"/_emu/checkout/sessions/{cs['id']}/pay", {"card": "4242424242424242"})
    pi_id = api("GET", f"/v1/checkout/sessions/{cs['id']}").json["payment_intent"]
    emu("POST", "/_emu/slow", {"count": 1, "ms": 500, "path": "/v1/refunds",
                               "method": "POST"})
    t0 = time.time()
    r = api("POST", "/v1/refunds", {"payment_intent": pi_id, "amount": 1000,
                                     "reason": "requested_by_customer",
                                     "metadata": {"booking": 9}}, idem="refund-1")
    check("a slow POST: its event before its answer", time.time() - t0 >= 0.5
          and rcv.events("charge.refunded"), r.text)
    re1 = r.json
    check("partial refund", r.status == 200 and re1["id"].startswith("re_")
          and re1["amount"] == 1000 and re1["status"] == "succeeded"
          and re1["payment_intent"] == pi_id and re1["metadata"] == {"booking": "9"}, r.text)
    ch = api("GET", f"/v1/charges/{re1['charge']}").json
    check("charge amount_refunded", ch["amount_refunded"] == 1000 and ch["refunded"] is False)
    r = api("POST", "/v1/refunds", {"charge": ch["id"], "amount": 5000})
    check("refund more than remaining -> 400", r.status == 400
          and r.json["error"]["code"] == "amount_too_large", r.text)
    r = api("POST", "/v1/refunds", {"charge": ch["id"]})
    check("refund the rest by default", r.status == 200 and r.json["amount"] == 1498, r.text)
    ch = api("GET", f"/v1/charges/{ch['id']}").json
    check("charge fully refunded", ch["amount_refunded"] == 2498 and ch["refunded"] is True
          and len(ch["refunds"]["data"]) == 2, ch)
    j = api("GET", "/v1/refunds", query={"limit": 100}).json
    check("refunds list, newest first", j["object"] == "list" and j["url"] == "/v1/refunds"
          and [x["id"] for x in j["data"]][-1] == re1["id"] and len(j["data"]) == 2
          and j["has_more"] is False, j)
    j = api("GET", "/v1/refunds", query={"limit": 1, "charge": ch["id"]}).json
    k = api("GET", "/v1/refunds", query={"limit": 1, "starting_after": j["data"][0]["id"]}).json
    check("refunds list pages by starting_after", j["has_more"] is True and k["has_more"] is False
          and k["data"][0]["id"] == re1["id"], (j, k))
    j = api("GET", "/v1/refunds", query={"payment_intent": "pi_other"}).json
    check("refunds list filters by payment_intent", j["data"] == [], j)
    j = api("GET", "/v1/payment_intents", query={"limit": 100, "created": {"gte": 0}}).json
    check("payment_intents list", j["url"] == "/v1/payment_intents"
          and pi_id in [x["id"] for x in j["data"]], j)
    r = api("GET", "/v1/invoices", query={"starting_after": "in_nope"})
    check("invoices list: unknown cursor -> resource_missing", r.status in (400, 404)
          and r.json["error"]["code"] == "resource_missing", r.text)
    r = api("POST", "/v1/refunds", {"charge": ch["id"], "amount": 1})
    check("refund a fully refunded charge -> 400 charge_already_refunded", r.status == 400
          and r.json["error"]["code"] == "charge_already_refunded", r.text)
    got = wait_for(lambda: len(rcv.events("charge.refunded")) == 2 and rcv.events("charge.refunded"))
    last = got[-1]["event"]["data"]["object"] if got else {}
    check("charge.refunded webhooks carry the charge and its refunds list",
          bool(got) and all(g["valid"] for g in got) and last.get("object") == "charge"
          and last.get("refunds", {}).get("object") == "list"
          and len(last["refunds"]["data"]) in (1, 2), [g["type"] for g in rcv.events()])
    check("refund.created emitted", wait_for(lambda: len(rcv.events("refund.created")) == 2))
    r = api("GET", f"/v1/refunds/{re1['id']}")
    check("refund retrieve", r.status == 200 and r.json["amount"] == 1000)
    r = emu("POST", f"/_emu/charges/{ch['id']}/dispute", {"amount": 500})
    check("dispute control", r.status == 200 and r.json["id"].startswith("dp_")
          and r.json["status"] == "needs_response" and r.json["reason"] == "fraudulent", r.text)
    check("charge.dispute.created delivered",
          wait_for(lambda: rcv.events("charge.dispute.created")))
    check("dispute retrieve", api("GET", f"/v1/disputes/{r.json['id']}").json["amount"] == 500)
    dp = r.json["id"]
    r = emu("POST", f"/_emu/disputes/{dp}/close", {"status": "warning_closed"})
    check("a chargeback does not close as an inquiry", r.status == 400, r.text)
    q = emu("POST", f"/_emu/charges/{ch['id']}/dispute", {"amount": 100, "inquiry": True})
    check("inquiry control", q.status == 200 and q.json["status"] == "warning_needs_response",
          q.text)
    r = emu("POST", f"/_emu/disputes/{q.json['id']}/close", {"status": "won"})
    check("an inquiry is not won", r.status == 400, r.text)
    r = emu("POST", f"/_emu/disputes/{dp}/escalate")
    check("a chargeback is not escalated", r.status == 400, r.text)
    r = emu("POST", f"/_emu/disputes/{q.json['id']}/close", {"status": "warning_closed"})
    check("inquiry closed", r.status == 200 and r.json["status"] == "warning_closed", r.text)
    r = emu("POST", f"/_emu/disputes/{q.json['id']}/close", {"status": "warning_closed"})
    check("a closed inquiry stays closed", r.status == 400, r.text)
    r = emu("POST", f"/_emu/disputes/{dp}/close", {"status": "prevented"})
    check("a chargeback can be prevented", r.status == 200 and r.json["status"] == "prevented",
          r.text)
    dp = emu("POST", f"/_emu/charges/{ch['id']}/dispute", {"amount": 300}).json["id"]
    r = api("POST", f"/v1/disputes/{dp}", {"evidence": {"uncategorized_text": "Refunded."},
                                           "submit": "false"})
    check("evidence staged: still awaiting a response", r.status == 200
          and r.json["status"] == "needs_response" and r.json["evidence_details"]["has_evidence"]
          and r.json["evidence_details"]["submission_count"] == 0, r.text)
    r = api("POST", f"/v1/disputes/{dp}", {"evidence": {"bogus": {"x": "1"}}})
    check("evidence that is not text -> 400", r.status == 400, r.text)
    r = api("POST", f"/v1/disputes/{dp}", {"evidence": {"uncategorized_text": "Refunded in full."}},
            idem="evidence-1")
    check("evidence submitted: under review", r.status == 200
          and r.json["status"] == "under_review"
          and r.json["evidence"]["uncategorized_text"] == "Refunded in full."
          and r.json["evidence_details"]["submission_count"] == 1, r.text)
    check("charge.dispute.updated for the submission", wait_for(
        lambda: [e for e in rcv.events("charge.dispute.updated")
                 if e["event"]["data"]["object"]["id"] == dp
                 and e["event"]["data"]["object"]["status"] == "under_review"]))
    r2 = api("POST", f"/v1/disputes/{dp}", {"evidence": {"uncategorized_text": "Refunded in full."}},
             idem="evidence-1")
    check("the same submission again: the same answer", r2.status == 200
          and r2.json == r.json, r2.text)
    r = api("POST", f"/v1/disputes/{dp}", {"evidence": {"uncategorized_text": "More."}})
    check("evidence after submission -> 400", r.status == 400, r.text)
    r = emu("POST", f"/_emu/disputes/{dp}/close", {"status": "won"})
    check("a chargeback under review is decided", r.status == 200 and r.json["status"] == "won",
          r.text)
    r = api("POST", f"/v1/disputes/{dp}", {"evidence": {"uncategorized_text": "More."}})
    check("evidence for a closed dispute -> 400", r.status == 400, r.text)
    q = emu("POST", f"/_emu/charges/{ch['id']}/dispute", {"amount": 100, "inquiry": True}).json
    r = api("POST", f"/v1/disputes/{q['id']}", {"evidence": {"uncategorized_text": "Refunded."}})
    check("an inquiry answered: warning_under_review", r.status == 200
          and r.json["status"] == "warning_under_review", r.text)
    r = emu("POST", f"/_emu/disputes/{q['id']}/escalate")
    check("an answered inquiry can still become a chargeback", r.status == 200
          and r.json["status"] == "needs_response", r.text)
    emu("POST", f"/_emu/disputes/{q['id']}/close", {"status": "won"})
    cs = new_session()
    emu("POST", f"/_emu/checkout/sessions/{cs['id']}/pay", {"card": "4242424242424242"})
    pi_id = api("GET", f"/v1/checkout/sessions/{cs['id']}").json["payment_intent"]
    ch = api("GET", f"/v1/payment_intents/{pi_id}").json["latest_charge"]
    q = emu("POST", f"/_emu/charges/{ch}/dispute", {"inquiry": True})
    r = api("POST", "/v1/refunds", {"payment_intent": pi_id, "amount": 100})
    check("an inquiry's charge can be refunded", r.status == 200, r.text)
    r = emu("POST", f"/_emu/disputes/{q.json['id']}/escalate")
    check("an inquiry escalated: the same dispute, now a chargeback",
          r.status == 200 and r.json["id"] == q.json["id"]
          and r.json["status"] == "needs_response", r.text)
    check("charge.dispute.updated delivered", wait_for(
        lambda: [e for e in rcv.events("charge.dispute.updated")
                 if e["event"]["data"]["object"]["id"] == q.json["id"]]))
    r = api("POST", "/v1/refunds", {"payment_intent": pi_id, "amount": 100})
    check("an escalated inquiry's charge -> 400 charge_disputed", r.status == 400
          and r.json["error"]["code"] == "charge_disputed", r.text)
    emu("POST", f"/_emu/disputes/{q.json['id']}/close", {"status": "won"})
    dp = emu("POST", f"/_emu/charges/{ch}/dispute", {"amount": 200}).json["id"]
    r = api("POST", "/v1/refunds", {"payment_intent": pi_id, "amount": 100})
    check("a charged-back charge -> 400 charge_disputed", r.status == 400
          and r.json["error"]["code"] == "charge_disputed", r.text)
    emu("POST", f"/_emu/disputes/{dp}/close", {"status": "won"})
    r = api("POST", "/v1/refunds", {"payment_intent": pi_id, "amount": 100})
    check("a chargeback won: the charge can be refunded again", r.status == 200, r.text)


def t_subscription(rcv):
    emu("POST", "/_emu/reset")
    rcv.clear()
    cs = new_session("subscription", customer_email="sub@example.com")
    r = emu("POST", f"/_emu/checkout/sessions/{cs['id']}/pay", {"card": "4242424242424242"})
    s = r.json
    check("subscription session paid", r.status == 200 and s["status"] == "complete"
          and s["payment_status"] == "paid" and s["subscription"].startswith("sub_")
          and s["invoice"].startswith("in_") and s["customer"].startswith("cus_"), r.text)
    sub = api("GET", f"/v1/subscriptions/{s['subscription']}").json
    check("subscription", sub["status"] == "active" and sub["customer"] == s["customer"]
          and sub["metadata"] == {"user_id": "7", "plan": "pro"}
          and sub["items"]["data"][0]["price"]["unit_amount"] == 1500
          and sub["current_period_end"] > sub["current_period_start"], sub)
    inv = api("GET", f"/v1/invoices/{s['invoice']}").json
    check("first invoice", inv["status"] == "paid" and inv["paid"] is True
          and inv["amount_paid"] == 1500 and inv["billing_reason"] == "subscription_create"
          and inv["subscription"] == sub["id"] and inv["lines"]["data"][0]["amount"] == 1500
          and inv["payment_intent"].startswith("pi_"), inv)
    types = list(reversed(event_types()))
    check("invoice.paid before checkout.session.completed",
          "invoice.paid" in types and "checkout.session.completed" in types
          and types.index("invoice.paid") < types.index("checkout.session.completed"), types)
    check("webhooks invoice.paid and checkout.session.completed",
          wait_for(lambda: rcv.events("invoice.paid") and rcv.events("checkout.session.completed")))
    r = emu("POST", f"/_emu/subscriptions/{sub['id']}/renew")
    inv2 = r.json
    check("renew -> subscription_cycle invoice", r.status == 200 and inv2["id"] != inv["id"]
          and inv2["billing_reason"] == "subscription_cycle" and inv2["paid"] is True
          and inv2["amount_paid"] == 1500, r.text)
    sub2 = api("GET", f"/v1/subscriptions/{sub['id']}").json
    check("renew advances the period", sub2["current_period_start"] == sub["current_period_end"]
          and sub2["latest_invoice"] == inv2["id"])
    check("renewal invoice.paid delivered",
          wait_for(lambda: [g for g in rcv.events("invoice.paid")
                            if g["event"]["data"]["object"]["id"] == inv2["id"]]))
    # a plan change: a new Price, the item on it from the next renewal
    r = api("POST", "/v1/prices", {"currency": "usd", "unit_amount": 2500,
                                   "recurring": {"interval": "month"},
                                   "product_data": {"name": "Pro"}})
    price = r.json
    check("price created", r.status == 200 and price["id"].startswith("price_")
          and price["unit_amount"] == 2500 and price["recurring"]["interval"] == "month"
          and price["product"].startswith("prod_"), r.text)
    item = sub2["items"]["data"][0]["id"]
    r = api("POST", f"/v1/subscriptions/{sub['id']}",
            {"items": [{"id": item, "price": price["id"]}],
             "proration_behavior": "create_prorations", "metadata": {"plan": "max"}})
    check("prorations refused, nothing changed", r.status == 400
          and api("GET", f"/v1/subscriptions/{sub['id']}").json["metadata"]["plan"] == "pro",
          r.text)
    r = api("POST", f"/v1/subscriptions/{sub['id']}",
            {"items": [{"id": "si_nope", "price": price["id"]}], "proration_behavior": "none"})
    check("unknown item refused", r.status == 400, r.text)
    r = api("POST", f"/v1/subscriptions/{sub['id']}",
            {"items": [{"id": item, "price": price["id"]}], "proration_behavior": "none",
             "metadata": {"plan": "max"}})
    check("item on the new price", r.status == 200
          and r.json["items"]["data"][0]["price"]["id"] == price["id"]
          and r.json["items"]["data"][0]["id"] == item and r.json["metadata"]["plan"] == "max",
          r.text)
    inv3 = emu("POST", f"/_emu/subscriptions/{sub['id']}/renew").json
    check("the next renewal charges the new price", inv3["amount_paid"] == 2500
          and inv3["lines"]["data"][0]["description"] == "1 \u00d7 Pro"
          and inv3["subscription_details"]["metadata"]["plan"] == "max", inv3)
    # embedded mode
    es = new_session("subscription", ui_mode="embedded", success_url=None, cancel_url=None,
                     return_url="http://127.0.0.1:9/return?session_id={CHECKOUT_SESSION_ID}")
    check("embedded session: url null, client_secret", es["url"] is None
          and es["client_secret"].startswith(es["id"] + "_secret_"), es)
    r = call("POST", f"/checkout/pay/{es['id']}", key=None, body="card=4242424242424242",
             ctype="application/x-www-form-urlencoded")
    check("embedded pay redirects to return_url", r.status == 303
          and r.headers["location"] == f"http://127.0.0.1:9/return?session_id={es['id']}")


def t_payment_intents(rcv):
    emu("POST", "/_emu/reset")
    rcv.clear()
    r = api("POST", "/v1/payment_intents", {"amount": 4500, "currency": "usd",
                                             "metadata": {"booking_id": 12},
                                             "automatic_payment_methods": {"enabled": True}},
            idem="pi-create-1")
    pi = r.json
    check("payment intent create", r.status == 200 and pi["id"].startswith("pi_")
          and pi["status"] == "requires_payment_method"
          and pi["client_secret"].startswith(pi["id"] + "_secret_")
          and pi["automatic_payment_methods"] == {"enabled": True}
          and pi["metadata"] == {"booking_id": "12"}, r.text)
    r = api("POST", "/v1/payment_intents", {"amount": 10, "currency": "usd"})
    check("amount below minimum -> 400", r.status == 400)
    r = api("POST", f"/v1/payment_intents/{pi['id']}/confirm",
            {"payment_method": "pm_card_chargeDeclined"})
    check("confirm declined -> 402 card_error", r.status == 402
          and r.json["error"]["type"] == "card_error"
          and r.json["error"]["payment_intent"]["status"] == "requires_payment_method", r.text)
    p = api("GET", f"/v1/payment_intents/{pi['id']}").json
    check("declined PI has last_payment_error", p["status"] == "requires_payment_method"
          and p["last_payment_error"]["code"] == "card_declined")
    r = api("POST", f"/v1/payment_intents/{pi['id']}/confirm", {"payment_method": "pm_card_visa"},
            query="expand[]=latest_charge")
    p = r.json
    check("confirm pm_card_visa succeeds", r.status == 200 and p["status"] == "succeeded"
          and p["latest_charge"]["status"] == "succeeded" and p["latest_charge"]["paid"] is True
          and p["latest_charge"]["amount"] == 4500, r.text)
    r = api("POST", f"/v1/payment_intents/{pi['id']}/confirm", {"payment_method": "pm_card_visa"})
    check("confirm twice -> 400 unexpected state", r.status == 400
          and r.json["error"]["code"] == "payment_intent_unexpected_state")
    check("payment_intent.payment_failed and .succeeded delivered",
          wait_for(lambda: rcv.events("payment_intent.payment_failed")
                   and rcv.events("payment_intent.succeeded")
                   and rcv.events("charge.succeeded")))
    pi2 = api("POST", "/v1/payment_intents", {"amount": 900, "currency": "usd"}).json
    r = emu("POST", f"/_emu/payment_intents/{pi2['id']}/succeed")
    check("control succeed", r.status == 200 and r.json["status"] == "succeeded")
    pi3 = api("POST", "/v1/payment_intents", {"amount": 900, "currency": "usd"}).json
    r = emu("POST", f"/_emu/payment_intents/{pi3['id']}/fail")
    check("control fail", r.status == 402
          and api("GET", f"/v1/payment_intents/{pi3['id']}").json["status"]
          == "requires_payment_method")
    r = api("POST", f"/v1/payment_intents/{pi3['id']}/cancel")
    check("cancel", r.status == 200 and r.json["status"] == "canceled")
    # fail injection
    emu("POST", "/_emu/fail", {"count": 1, "status": 500})
    r1 = api("GET", f"/v1/payment_intents/{pi2['id']}")
    r2 = api("GET", f"/v1/payment_intents/{pi2['id']}")
    check("fail injection: next call 500 api_error, then normal", r1.status == 500
          and r1.json["error"]["type"] == "api_error" and r2.status == 200)
    emu("POST", "/_emu/fail", {"count": 1, "status": 503})
    a = api("POST", "/v1/customers", {"email": "x@example.com"}, idem="after-fail")
    b = api("POST", "/v1/customers", {"email": "x@example.com"}, idem="after-fail")
    check("an injected failure is not stored under the idempotency key",
          a.status == 503 and b.status == 200 and "idempotent-replayed" not in b.headers)
    emu("POST", "/_emu/fail", {"count": 1, "status": 500, "path": "/v1/customers"})
    r1 = api("GET", f"/v1/payment_intents/{pi2['id']}")
    r2 = api("POST", "/v1/customers", {"email": "y@example.com"})
    r3 = api("POST", "/v1/customers", {"email": "y@example.com"})
    check("fail injection with a path: other paths pass, the first match fails once",
          r1.status == 200 and r2.status == 500 and r3.status == 200)


def t_async(rcv):
    emu("POST", "/_emu/reset")
    rcv.clear()
    cs = new_session()
    r = emu("POST", f"/_emu/checkout/sessions/{cs['id']}/pay", {"async": True})
    check("async: complete but unpaid", r.status == 200 and r.json["status"] == "complete"
          and r.json["payment_status"] == "unpaid", r.text)
    r = emu("POST", f"/_emu/checkout/sessions/{cs['id']}/async", {"outcome": "succeeded"})
    check("async succeeded -> paid", r.status == 200 and r.json["payment_status"] == "paid")
    pi = api("GET", f"/v1/payment_intents/{r.json['payment_intent']}").json
    check("async PI succeeded with charge", pi["status"] == "succeeded" and pi["latest_charge"])
    check("async_payment_succeeded delivered",
          wait_for(lambda: rcv.events("checkout.session.async_payment_succeeded")))
    cs2 = new_session()
    emu("POST", f"/_emu/checkout/sessions/{cs2['id']}/pay", {"async": True})
    r = emu("POST", f"/_emu/checkout/sessions/{cs2['id']}/async", {"outcome": "failed"})
    check("async failed stays unpaid", r.status == 200 and r.json["payment_status"] == "unpaid")
    check("async_payment_failed delivered",
          wait_for(lambda: rcv.events("checkout.session.async_payment_failed")))
    r = emu("POST", f"/_emu/checkout/sessions/{cs2['id']}/async", {"outcome": "succeeded"})
    check("second outcome -> 400", r.status == 400)


def t_deleted_customer():
    c = api("POST", "/v1/customers", {"email": "gone@example.com"}).json
    r = emu("POST", f"/_emu/customers/{c['id']}/delete")
    check("control deletes a customer", r.status == 200 and r.json == {
        "id": c["id"], "object": "customer", "deleted": True}, r.text)
    r = api("GET", f"/v1/customers/{c['id']}")
    check("deleted customer -> 404 resource_missing", r.status == 404
          and r.json["error"]["code"] == "resource_missing", r.text)
    r = api("POST", "/v1/checkout/sessions", session_params(customer=c["id"]))
    check("session for a deleted customer -> 400 resource_missing on customer",
          r.status == 400 and r.json["error"]["code"] == "resource_missing"
          and r.json["error"]["param"] == "customer", r.text)
    c2 = api("POST", "/v1/customers", {"email": "gone2@example.com"}).json
    r = api("DELETE", f"/v1/customers/{c2['id']}")
    check("DELETE /v1/customers/{id}", r.status == 200 and r.json["deleted"] is True, r.text)
    check("customer.deleted events", event_types().count("customer.deleted") == 2)


def t_restart(emulator):
    """With --state-file a restarted emulator knows what it knew."""
    c = api("POST", "/v1/customers", {"email": "kept@example.com"}, idem="restart-cus").json
    cs = new_session(customer=c["id"])
    events = api("GET", "/v1/events", query={"limit": 100}).json["data"]
    emulator.restart()
    r = api("GET", f"/v1/customers/{c['id']}")
    check("customer survives a restart", r.status == 200 and r.json == c, r.text)
    r = api("POST", "/v1/customers", {"email": "kept@example.com"}, idem="restart-cus")
    check("idempotent result survives a restart", r.status == 200 and r.json["id"] == c["id"]
          and r.headers.get("idempotent-replayed") == "true", r.text)
    r = api("GET", f"/v1/checkout/sessions/{cs['id']}")
    check("session survives a restart", r.status == 200 and r.json == cs, r.text)
    r = api("POST", "/v1/checkout/sessions", session_params(customer=c["id"]))
    check("a new session for the kept customer", r.status == 200, r.text)
    after = api("GET", "/v1/events", query={"limit": 100}).json["data"][-len(events):]
    # pending_webhooks drops to 0 when a delivery lands, which may be after
    # the first list was read: every other field must be as it was.
    kept = lambda es: [{k: v for k, v in e.items() if k != "pending_webhooks"} for e in es]  # noqa: E731
    check("events survive a restart, in order", [e["id"] for e in after]
          == [e["id"] for e in events] and kept(after) == kept(events))


def t_reset(emulator):
    emu("POST", "/_emu/reset")
    st = emu("GET", "/_emu/state").json
    check("reset forgets everything", all(st[k] == 0 for k in (
        "customers", "checkout_sessions", "payment_intents", "charges", "refunds",
        "subscriptions", "invoices", "disputes", "events", "deliveries")), st)
    c = api("POST", "/v1/customers", {"email": "after-reset@example.com"}).json
    emulator.restart()
    st = emu("GET", "/_emu/state").json
    check("a restart after a reset keeps only what came after it",
          st["customers"] == 1 and st["events"] == 1 and st["idempotency_keys"] == 0
          and api("GET", f"/v1/customers/{c['id']}").status == 200, st)


# ---------------------------------------------------------------------------

class Emulator:
    """The emulator under test, saving its state to a file in a temporary dir."""

    def __init__(self, rcv, log, state_dir):
        self.cmd = [sys.executable, "-B", os.path.join(HERE, "stripe_emulator.py"),
                    "--port", str(PORT), "--api-key", KEY,
                    "--webhook-url", f"http://127.0.0.1:{rcv.port}/api/stripe/webhook",
                    "--webhook-secret", ",".join(SECRETS), "--retry-schedule", "0.2,0.2",
                    "--state-file", os.path.join(state_dir, "emulator.sqlite3")]
        self.log = log
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline().strip()
        return check("startup line", line == f"stripe emulator listening on http://127.0.0.1:{PORT}",
                     line) and self.proc.poll() is None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        check("stops on SIGTERM", self.proc.returncode == 0, self.proc.returncode)

    def restart(self):
        self.stop()
        assert self.start(), "restart"


def main():
    import tempfile
    rcv = Receiver()
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"stripe-emu-selftest-{PORT}.log"), "w")
    state_dir = tempfile.TemporaryDirectory(prefix="stripe-emu-selftest-")
    emulator = Emulator(rcv, log, state_dir.name)
    try:
        if not emulator.start():
            print("emulator exited; see", log.name)
            return 1
        for test in (t_form_parser, t_basics, lambda: t_hosted_checkout(rcv), t_decline,
                     t_idempotency, t_events_pagination, lambda: t_retry(rcv),
                     lambda: t_hold_release(rcv), lambda: t_refunds(rcv),
                     lambda: t_subscription(rcv), lambda: t_payment_intents(rcv),
                     lambda: t_async(rcv), t_deleted_customer, lambda: t_restart(emulator),
                     lambda: t_reset(emulator)):
            try:
                test()
            except Exception:
                check(getattr(test, "__name__", "test"), False, traceback.format_exc())
    finally:
        emulator.stop()
        log.close()
        state_dir.cleanup()
    with open(log.name) as f:
        text = f.read()
    check("API key never logged", KEY not in text)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
