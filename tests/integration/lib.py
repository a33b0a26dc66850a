"""
Helpers for the creditdesk integration tests (standard library + pymysql).

Everything is configured from the environment the stack writes to
$CD_STATE_DIR/env (the runner loads it with --env FILE):

  CD_BASE_URL CD_EMU_URL STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET
  CD_DB_SOCKET CD_DB_HOST CD_DB_PORT CD_DB_NAME CD_DB_ADMIN_USER
  CD_DB_ADMIN_PASSWORD CD_DB_USER CD_DB_PASSWORD CD_STACK CD_REPO ...

Pieces:
  Browser      one browser: own cookie jar, no redirects followed, CSRF
               header on writes once signed in; returns Response objects
               that unpack as (status, headers, json-or-body)
  register()   a new unique user, registered then signed in (keeps the csrfToken)
  db_rows() db_scalar() db_exec()   the database as the admin user
  emu_*()      the Stripe emulator's /_emu/ test controls and /v1 API
  sign() post_webhook() make_event()   webhooks signed exactly like Stripe
  wait_until() polling for asynchronous outcomes (never sleep in asserts)
  promote()    change a user's role/tier through the admin DB user
  stack()      scripts/stack.sh start-db / stop-db with the same environment
"""

import copy
import hashlib
import hmac
import http.client
import itertools
import json
import os
import secrets
import shlex
import socket
import subprocess
import threading
import time
import urllib.parse

import pymysql
import pymysql.cursors

CARD_OK = "4242 4242 4242 4242"
CARD_DECLINE = "4000 0000 0000 0002"


# ---------------------------------------------------------------- environment

def load_env_file(path):
    """Reads `export NAME=value` lines (shell-quoted) into os.environ."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue
            if words and words[0] == "export":
                words = words[1:]
            for w in words:
                if "=" in w:
                    k, v = w.split("=", 1)
                    os.environ[k] = v


def env(name, default=None):
    v = os.environ.get(name)
    if v is None or v == "":
        if default is not None:
            return default
        raise RuntimeError(f"{name} is not set (run with --env $CD_STATE_DIR/env)")
    return v


def base_url():
    return env("CD_BASE_URL").rstrip("/")


def emu_url():
    return env("CD_EMU_URL").rstrip("/")


# ---------------------------------------------------------------- HTTP

class Response:
    """status, headers (lower-case name -> list of values), body bytes; reason:
    the status line's reason phrase."""

    def __init__(self, status, headers, body, reason=""):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self._json = None
        self._json_done = False

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def json(self):
        if not self._json_done:
            self._json_done = True
            try:
                self._json = json.loads(self.body) if self.body else None
            except ValueError:
                self._json = None
        return self._json

    def header(self, name, default=None):
        vals = self.headers.get(name.lower())
        return vals[0] if vals else default

    def header_all(self, name):
        return list(self.headers.get(name.lower(), []))

    @property
    def error_code(self):
        j = self.json
        if isinstance(j, dict) and isinstance(j.get("error"), dict):
            return j["error"].get("code")
        return None

    def __iter__(self):
        return iter((self.status, self.headers, self.json if self.json is not None else self.body))

    def __repr__(self):
        body = self.text
        if len(body) > 300:
            body = body[:300] + "..."
        return f"<{self.status} {body!r}>"


def parse_set_cookie(value):
    """'a=b; Path=/; HttpOnly' -> (name, value, {attr-lower: value-or-True})."""
    parts = [p.strip() for p in value.split(";")]
    name, _, val = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        if not p:
            continue
        k, eq, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip() if eq else True
    return name.strip(), val.strip(), attrs


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP to a server on a unix socket (one machine's nginx in a cluster)."""

    def __init__(self, path, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def http_request(method, url, body=None, headers=None, timeout=30, unix_socket=None):
    """One request on a fresh connection; never follows redirects.  With
    unix_socket, the request for url goes to the server on that socket."""
    u = urllib.parse.urlsplit(url)
    if unix_socket:
        conn = UnixHTTPConnection(unix_socket, u.hostname, u.port or 80, timeout)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        path = u.path or "/"
        if u.query:
            path += "?" + u.query
        hdrs = {"Connection": "close"}
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        out = {}
        for k, v in resp.getheaders():
            out.setdefault(k.lower(), []).append(v)
        return Response(resp.status, out, data, resp.reason)
    finally:
        conn.close()


_WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class Browser:
    """A browser: its own cookie jar (per host), no automatic redirects."""

    def __init__(self, base=None):
        self.base = (base or base_url()).rstrip("/")
        self.cookies = {}          # host -> {name: value}
        self.csrf = None
        self.user = None           # the JSON user from register/login/me
        self.password = None
        self.lock = threading.Lock()
        self.unix_socket = None    # set by via(): one machine of a cluster

    def via(self, unix_socket):
        """The same browser (cookies, CSRF token) talking to the server on
        unix_socket, e.g. one cluster machine's nginx instead of the front."""
        other = copy.copy(self)
        other.unix_socket = unix_socket
        return other

    @property
    def id(self):
        return self.user["id"] if self.user else None

    @property
    def email(self):
        return self.user["email"] if self.user else None

    def url(self, path):
        return path if path.startswith(("http://", "https://")) else self.base + path

    def cookie(self, name, host=None):
        host = host or urllib.parse.urlsplit(self.base).hostname
        return self.cookies.get(host, {}).get(name)

    def set_cookie(self, name, value, host=None):
        host = host or urllib.parse.urlsplit(self.base).hostname
        with self.lock:
            self.cookies.setdefault(host, {})[name] = value

    def _store_cookies(self, host, resp):
        with self.lock:
            jar = self.cookies.setdefault(host, {})
            for sc in resp.header_all("set-cookie"):
                name, val, attrs = parse_set_cookie(sc)
                max_age = attrs.get("max-age")
                expired = max_age is not None and max_age is not True and \
                    max_age.lstrip("-").isdigit() and int(max_age) <= 0
                if expired or val == "":
                    jar.pop(name, None)
                else:
                    jar[name] = val

    def request(self, method, path, json_body=None, data=None, form=None,
                content_type=None, headers=None, csrf=True, timeout=30):
        """json_body: any JSON value; data: raw bytes/str; form: dict (urlencoded)."""
        url = self.url(path)
        host = urllib.parse.urlsplit(url).hostname
        hdrs = {}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        elif form is not None:
            body = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        if body is None and method in _WRITE_METHODS:
            body = b""
        with self.lock:
            jar = dict(self.cookies.get(host, {}))
        if jar:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        if csrf and self.csrf and method in _WRITE_METHODS and url.startswith(self.base):
            hdrs["X-CSRF-Token"] = self.csrf
        hdrs.update(headers or {})
        resp = http_request(method, url, body=body, headers=hdrs, timeout=timeout,
                            unix_socket=self.unix_socket if url.startswith(self.base) else None)
        self._store_cookies(host, resp)
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json_body=None, **kw):
        return self.request("POST", path, json_body=json_body, **kw)

    # --- the product's API
    def signed_in(self, resp):
        j = resp.json or {}
        self.user = {k: j.get(k) for k in ("id", "email", "name", "role", "tier")}
        self.csrf = j.get("csrfToken")
        return resp

    def login(self, email=None, password=None, expect=200):
        resp = self.post("/api/auth/login", {"email": email or self.email,
                                             "password": password or self.password})
        if expect is not None:
            check_status(resp, expect, "login")
        if resp.status == 200:
            self.signed_in(resp)
            self.password = password or self.password
        return resp

    def buy_live_help(self, quantity, **extra):
        body = {"quantity": quantity}
        body.update(extra)
        return self.post("/api/buy/live_help", body)

    def confirm(self, session_id, status="success"):
        q = urllib.parse.urlencode({"status": status, "session_id": session_id})
        return self.get("/api/confirm-payment?" + q)

    def live_help(self):
        return self.get("/api/live-help-hour")

    def book(self, slot_id):
        return self.post(f"/api/live-help-hour/{slot_id}/book", {})


def check_status(resp, expected, what=""):
    exp = expected if isinstance(expected, (tuple, list, set)) else (expected,)
    if resp.status not in exp:
        raise AssertionError(f"{what}: expected HTTP {expected}, got {resp!r}")
    return resp


_counter = itertools.count(1)
_run_tag = secrets.token_hex(3)


def unique_email(prefix="it"):
    return f"{prefix}-{int(time.time())}-{_run_tag}-{next(_counter)}@example.test"


def register(email=None, password=None, name=None, expect=201):
    """A new user through POST /api/auth/register, then signed in through
    POST /api/auth/login (registering never signs in); returns its Browser.
    b.last_response is the register answer, b.login_response the sign-in."""
    b = Browser()
    # Dashes between the random digits: cracklib calls a password systematic
    # when more than four of its neighbouring characters are one apart ("ab", "87").
    b.password = password or "correct horse battery " + "-".join(secrets.token_hex(4))
    email = email or unique_email()
    resp = b.post("/api/auth/register", {"email": email,
                                         "password": b.password,
                                         "name": name or "Integration Tester"})
    if expect is not None:
        check_status(resp, expect, "register")
    b.last_response = resp
    b.login_response = None
    if resp.status == 201:
        b.login_response = b.login(email, b.password)
    return b


# ---------------------------------------------------------------- database

_db_local = threading.local()


def _db_connect():
    kw = dict(user=env("CD_DB_ADMIN_USER"), password=env("CD_DB_ADMIN_PASSWORD"),
              database=env("CD_DB_NAME", "creditdesk"), autocommit=True,
              charset="utf8mb4", cursorclass=pymysql.cursors.DictCursor,
              connect_timeout=5, read_timeout=30, write_timeout=30,
              init_command="SET time_zone = '+00:00'")
    sock = os.environ.get("CD_DB_SOCKET")
    if sock and os.path.exists(sock):
        kw["unix_socket"] = sock
    else:
        kw["host"] = env("CD_DB_HOST", "127.0.0.1")
        kw["port"] = int(env("CD_DB_PORT", "3306"))
    return pymysql.connect(**kw)


def db():
    """This thread's admin connection, reconnected when needed."""
    conn = getattr(_db_local, "conn", None)
    if conn is not None:
        try:
            conn.ping(reconnect=True)
            return conn
        except pymysql.MySQLError:
            try:
                conn.close()
            except Exception:
                pass
            _db_local.conn = None
    conn = _db_connect()
    _db_local.conn = conn
    return conn


def db_close():
    conn = getattr(_db_local, "conn", None)
    _db_local.conn = None
    if conn is not None:
        try:
            conn.close()
        except Exception:
            pass


def db_rows(sql, *args):
    with db().cursor() as cur:
        cur.execute(sql, args or None)
        return list(cur.fetchall())


def db_row(sql, *args):
    rows = db_rows(sql, *args)
    if len(rows) > 1:
        raise AssertionError(f"expected at most one row, got {len(rows)}: {sql}")
    return rows[0] if rows else None


def db_scalar(sql, *args):
    with db().cursor() as cur:
        cur.execute(sql, args or None)
        row = cur.fetchone()
        if row is None:
            return None
        return next(iter(row.values()))


def db_exec(sql, *args):
    """Returns (rowcount, lastrowid)."""
    with db().cursor() as cur:
        n = cur.execute(sql, args or None)
        return n, cur.lastrowid


def promote(user, role=None, tier=None):
    """UPDATE users SET role/tier for a Browser or a user id (admin DB user)."""
    uid = user.id if isinstance(user, Browser) else int(user)
    sets, args = [], []
    if role:
        sets.append("role = %s")
        args.append(role)
    if tier:
        sets.append("tier = %s")
        args.append(tier)
    if not sets:
        return
    n, _ = db_exec(f"UPDATE users SET {', '.join(sets)} WHERE id = %s", *args, uid)
    if n != 1:
        raise AssertionError(f"promote: user {uid} not updated")
    if isinstance(user, Browser) and user.user:
        if role:
            user.user["role"] = role
        if tier:
            user.user["tier"] = tier


# Live Help rows, by the names the tests assert on.

def purchases_for_session(session_id):
    return db_rows("SELECT * FROM live_help_purchases WHERE stripe_session_id = %s", session_id)


def purchases_for_user(user_id):
    return db_rows("SELECT * FROM live_help_purchases WHERE user_id = %s ORDER BY id", user_id)


def totals(user_id):
    return db_row("SELECT hours_total, hours_used FROM user_live_help_totals WHERE user_id = %s",
                  user_id)


def hours_total(user_id):
    t = totals(user_id)
    return t["hours_total"] if t else 0


def audit_count(action, entity_id):
    return db_scalar("SELECT COUNT(*) FROM audit_log WHERE action = %s AND entity_id = %s",
                     action, entity_id)


def checkout_rows(user_id):
    return db_rows("SELECT * FROM checkout_sessions WHERE user_id = %s ORDER BY id", user_id)


def stripe_event_row(event_id):
    return db_row("SELECT id, event_id, type, object_id, source, received_at, processed_at"
                  " FROM stripe_events WHERE event_id = %s", event_id)


def all_processed():
    """Waits until every stored event is processed (a replay replays those, and
    a webhook still in flight would change what a check counts)."""
    wait_until(lambda: db_scalar("SELECT COUNT(*) FROM stripe_events"
                                 " WHERE processed_at IS NULL") == 0, 30,
               message="every stored event processed")


def event_processed(event_id):
    row = stripe_event_row(event_id)
    return row is not None and row["processed_at"] is not None


def new_slot(capacity, days_ahead=30, past=False):
    """A live_help_slots row at a unique time; returns its id."""
    offset = secrets.randbelow(500000) + 60
    if past:
        sql = ("INSERT INTO live_help_slots (starts_at, ends_at, capacity, booked) VALUES"
               " (UTC_TIMESTAMP() - INTERVAL %s SECOND - INTERVAL 2 HOUR,"
               "  UTC_TIMESTAMP() - INTERVAL %s SECOND - INTERVAL 1 HOUR, %s, 0)")
        _, sid = db_exec(sql, offset, offset, capacity)
    else:
        sql = ("INSERT INTO live_help_slots (starts_at, ends_at, capacity, booked) VALUES"
               " (UTC_TIMESTAMP() + INTERVAL %s DAY + INTERVAL %s SECOND,"
               "  UTC_TIMESTAMP() + INTERVAL %s DAY + INTERVAL %s SECOND + INTERVAL 1 HOUR,"
               "  %s, 0)")
        _, sid = db_exec(sql, days_ahead, offset, days_ahead, offset, capacity)
    return sid


def grant_hours(user, hours):
    """Test setup: gives a signed-in user Live Help hours through a real paid
    purchase (checkout, the emulator's payment, confirm-payment and its
    webhook), so the books balance and the stored events can replay them."""
    return bought_live_help(user, hours)


# ---------------------------------------------------------------- emulator

def emu(method, path, body=None, timeout=60):
    """A /_emu/ control (JSON in and out); returns the Response."""
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    return http_request(method, emu_url() + path, body=data if data is not None else
                        (b"" if method == "POST" else None), headers=hdrs, timeout=timeout)


def emu_ok(method, path, body=None, timeout=60):
    r = emu(method, path, body, timeout)
    check_status(r, 200, f"emulator {method} {path}")
    return r.json


def stripe_api(method, path, params=None, idempotency_key=None, timeout=30):
    """The emulator's /v1 API with the secret key (form-encoded like Stripe)."""
    hdrs = {"Authorization": "Bearer " + env("STRIPE_SECRET_KEY")}
    url = emu_url() + path
    body = None
    if params and method == "GET":
        url += "?" + urllib.parse.urlencode(params)
    elif method == "POST":
        body = urllib.parse.urlencode(params or {}).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    if idempotency_key:
        hdrs["Idempotency-Key"] = idempotency_key
    return http_request(method, url, body=body, headers=hdrs, timeout=timeout)



def latest_charge(pi):
    """The id of PaymentIntent pi's latest charge at Stripe."""
    return stripe_api("GET", f"/v1/payment_intents/{pi}").json["latest_charge"]

def emu_pay(session_id, card=CARD_OK, expect=200):
    r = emu("POST", f"/_emu/checkout/sessions/{session_id}/pay", {"card": card.replace(" ", "")})
    if expect is not None:
        check_status(r, expect, f"emulator pay {session_id}")
    return r


def emu_hold():
    return emu_ok("POST", "/_emu/webhooks/hold", {})


def emu_release(order="fifo", delay_ms=0):
    return emu_ok("POST", "/_emu/webhooks/release", {"order": order, "delay_ms": delay_ms})


def emu_deliver(event_id, times=1, delay_ms=0):
    return emu_ok("POST", f"/_emu/events/{event_id}/deliver",
                  {"times": times, "delay_ms": delay_ms})


def emu_deliveries(event_id=None):
    q = "?" + urllib.parse.urlencode({"event_id": event_id}) if event_id else ""
    return emu_ok("GET", "/_emu/deliveries" + q)["data"]


def emu_fail(count=1, status=500, path=""):
    """The next count Stripe API requests (whose path starts with path) fail."""
    return emu_ok("POST", "/_emu/fail", {"count": count, "status": status, "path": path})


def emu_slow(path, ms=1000, count=1, method="GET"):
    """The next count answers to requests of method to paths starting with
    path are made at once (their events sent) and answered ms later."""
    return emu_ok("POST", "/_emu/slow", {"count": count, "ms": ms, "path": path,
                                         "method": method})


def emu_config(**changes):
    if changes:
        return emu_ok("POST", "/_emu/webhooks/config", changes)
    return emu_ok("GET", "/_emu/webhooks/config")


def emu_state():
    return emu_ok("GET", "/_emu/state")


def stripe_session(session_id):
    r = stripe_api("GET", f"/v1/checkout/sessions/{session_id}")
    check_status(r, 200, f"GET /v1/checkout/sessions/{session_id}")
    return r.json


def refund_processed(payment_intent, amount=None):
    """Refunds amount cents (default: what is left) of the PaymentIntent at
    Stripe and waits until its charge.refunded is processed; returns that
    event's id."""
    charge = stripe_api("GET", f"/v1/payment_intents/{payment_intent}").json["latest_charge"]
    seen = {e["id"] for e in events_about(charge, "charge.refunded")}
    body = {"payment_intent": payment_intent}
    if amount is not None:
        body["amount"] = amount
    r = stripe_api("POST", "/v1/refunds", body)
    check_status(r, 200, "refund")
    ev = wait_until(lambda: [e for e in events_about(charge, "charge.refunded")
                             if e["id"] not in seen], 10, message="charge.refunded event")
    wait_until(lambda: event_processed(ev[0]["id"]), 20, message="refund processed")
    return ev[0]["id"]


def list_events(event_type=None, pages=5):
    """Emulator events, newest first (up to pages*100)."""
    out, after = [], None
    for _ in range(pages):
        params = {"limit": 100}
        if event_type:
            params["type"] = event_type
        if after:
            params["starting_after"] = after
        r = stripe_api("GET", "/v1/events", params)
        check_status(r, 200, "GET /v1/events")
        out.extend(r.json["data"])
        if not r.json.get("has_more") or not r.json["data"]:
            break
        after = r.json["data"][-1]["id"]
    return out


def events_about(object_ids, event_type=None):
    """Emulator events whose data.object.id is one of object_ids, oldest first."""
    ids = set([object_ids] if isinstance(object_ids, str) else object_ids)
    evs = [e for e in list_events(event_type) if e["data"]["object"].get("id") in ids]
    evs.reverse()
    return evs


def completed_event(session_id):
    evs = events_about(session_id, "checkout.session.completed")
    if len(evs) != 1:
        raise AssertionError(f"expected one checkout.session.completed for {session_id}, "
                             f"emulator has {len(evs)}")
    return evs[0]


def session_event_ids(session_id):
    """Every emulator event about a session, its PaymentIntent and charge."""
    cs = stripe_session(session_id)
    ids = {session_id}
    if cs.get("payment_intent"):
        ids.add(cs["payment_intent"])
        pi = stripe_api("GET", f"/v1/payment_intents/{cs['payment_intent']}").json or {}
        if pi.get("latest_charge"):
            ids.add(pi["latest_charge"])
    return [e["id"] for e in events_about(ids)]


def reset_webhooks():
    """Leaves the emulator delivering normally: releases holds, enables delivery."""
    try:
        st = emu_state()
        if st.get("holding") or st.get("held_events"):
            emu_release("fifo")
        cfg = emu_config()
        if not cfg.get("enabled"):
            emu_config(enabled=True)
    except Exception:
        pass


# ---------------------------------------------------------------- webhooks

def webhook_secret(index=0):
    return [s.strip() for s in env("STRIPE_WEBHOOK_SECRET").split(",") if s.strip()][index]


def signature(body, secret=None, t=None):
    """The v1 HMAC-SHA256 hex of "<t>.<body>", as Stripe computes it."""
    if isinstance(body, str):
        body = body.encode()
    t = int(time.time()) if t is None else int(t)
    secret = secret or webhook_secret()
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body, secret=None, t=None):
    """A Stripe-Signature header value: t=<unix>,v1=<hex>."""
    t = int(time.time()) if t is None else int(t)
    return f"t={t},v1={signature(body, secret, t)}"


def make_event(event_type="creditdesk.test_ping", obj=None, event_id=None, created=None):
    """(event_id, body bytes) of a Stripe-shaped event."""
    event_id = event_id or "evt_it" + secrets.token_hex(12)
    evt = {
        "id": event_id, "object": "event", "api_version": "2024-06-20",
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj if obj is not None else
                 {"id": "obj_it" + secrets.token_hex(8), "object": "thing"}},
        "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": event_type,
    }
    return event_id, (json.dumps(evt, indent=2) + "\n").encode()


def post_webhook(body, signature_header=None, headers=None, sign_it=True, unix_socket=None):
    """POST /api/stripe/webhook as Stripe does (no cookies)."""
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}
    if signature_header is not None:
        hdrs["Stripe-Signature"] = signature_header
    elif sign_it:
        hdrs["Stripe-Signature"] = sign(body)
    hdrs.update(headers or {})
    return http_request("POST", base_url() + "/api/stripe/webhook", body=body, headers=hdrs,
                        unix_socket=unix_socket)


# ---------------------------------------------------------------- waiting, stack

def wait_until(fn, timeout=20.0, interval=0.05, message=None, what=None):
    """Polls fn() until it returns something truthy; returns that value.

    Exceptions from fn (the database being away, say) count as "not yet".
    On timeout raises AssertionError naming what was awaited and the last
    value or exception seen.
    """
    message = message or what
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 -- reported on timeout
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{message or getattr(fn, '__name__', 'condition')}; "
                                 f"last: {last!r}")
        time.sleep(interval)


def stack(command, timeout=180):
    """Runs scripts/stack.sh <command> with this environment; raises on failure."""
    script = os.environ.get("CD_STACK") or os.path.join(env("CD_REPO"), "scripts", "stack.sh")
    p = subprocess.run(["bash", script, command], env=dict(os.environ),
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"stack.sh {command} exited {p.returncode}: "
                             f"{(p.stdout + p.stderr).strip()[-800:]}")
    return p


def app_env():
    """The responders' environment (for creditdesk-reconcile and friends)."""
    keep = ("CD_DB_SOCKET", "CD_DB_HOST", "CD_DB_PORT", "CD_DB_USER", "CD_DB_PASSWORD",
            "CD_DB_NAME", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "CD_PUBLIC_URL",
            "CD_TEMPLATE_DIR", "CD_STRIPE_TIMEOUT_MS", "CD_WEBHOOK_TOLERANCE")
    e = {"PATH": "/usr/local/bin:/usr/bin:/bin", "TZ": "UTC", "LANG": "C.UTF-8"}
    for k in keep:
        if os.environ.get(k):
            e[k] = os.environ[k]
    e["STRIPE_API_BASE"] = emu_url()
    return e


def run_tool(name, *args, timeout=120):
    path = os.path.join(env("CD_REPO"), name)
    return subprocess.run([path, *args], env=app_env(), capture_output=True, text=True,
                          timeout=timeout)


def books_check(*args):
    """Runs the built creditdesk-check --json against the stack's database;
    returns its parsed report (exit status 0 or 1, anything else raises)."""
    p = run_tool("creditdesk-check", "--json", *args)
    if p.returncode not in (0, 1):
        raise AssertionError(f"creditdesk-check exited {p.returncode}: "
                             f"{(p.stdout + p.stderr).strip()[-800:]}")
    report = json.loads(p.stdout)
    if (p.returncode == 1) != bool(report["findings"]):
        raise AssertionError(f"creditdesk-check exit {p.returncode} disagrees with {report}")
    return report


def assert_books_balance(what=""):
    """Fails with every finding when creditdesk-check finds the books broken."""
    findings = books_check()["findings"]
    if findings:
        shown = "; ".join(json.dumps(f, sort_keys=True) for f in findings[:20])
        raise AssertionError(f"creditdesk-check {what}: {len(findings)} finding(s): {shown}")


def check_books_after(module):
    """Makes the module's teardown run creditdesk-check: a test module that
    leaves the books broken fails, whichever test broke them."""
    own = getattr(module, "tearDownModule", None)
    name = module.__name__.rsplit(".", 1)[-1]

    def tearDownModule():
        try:
            if own is not None:
                own()
        finally:
            assert_books_balance(f"after {name}")
            db_close()
    module.tearDownModule = tearDownModule


def parallel(fn, items, threads=16):
    """Runs fn(item) on a thread pool; returns results in order (exceptions as values)."""
    import concurrent.futures as cf

    def wrap(x):
        try:
            return fn(x)
        except Exception as e:  # noqa: BLE001 -- the caller asserts on it
            return e
        finally:
            db_close()
    with cf.ThreadPoolExecutor(max_workers=threads) as ex:
        return list(ex.map(wrap, items))


# ---------------------------------------------------------------- flows

def start_live_help(browser, quantity, **extra):
    """POST /api/buy/live_help -> session id (asserting 200)."""
    r = browser.buy_live_help(quantity, **extra)
    check_status(r, 200, "buy live_help")
    sid = r.json.get("session_id")
    if not (isinstance(sid, str) and sid.startswith("cs_")):
        raise AssertionError(f"buy live_help: no cs_ session_id in {r!r}")
    return sid


def pay_and_confirm(browser, sid):
    """Pays a Checkout Session on the emulator and confirms it; returns sid."""
    emu_pay(sid)
    r = browser.confirm(sid)
    check_status(r, 200, "confirm-payment")
    if r.json.get("paid") is not True:
        raise AssertionError(f"confirm-payment: not paid: {r!r}")
    return sid


def bought_live_help(browser, quantity):
    """A paid and confirmed Live Help purchase; returns the session id."""
    return pay_and_confirm(browser, start_live_help(browser, quantity))


def statements_during(fn, times, tries=3):
    """Prepared statements the database server ran while fn() was called
    `times` times: the fewest of `tries` runs (the counter is the server's, so
    anything else running adds to it; nothing takes away)."""
    def executed():
        return int(db_rows("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")[0]["Value"])
    counts = []
    for _ in range(tries):
        before = executed()
        for _ in range(times):
            fn()
        counts.append(executed() - before)
    return min(counts)


def _log_dirs():
    """{prefix: directory} of the logs to watch: CD_LOG_DIR's under their own
    names, and on a cluster each other machine's (and the front's) under
    "m2/", "front/"… (CD_MORE_LOG_DIRS, label=dir:…)."""
    dirs = {"": os.environ.get("CD_LOG_DIR")}
    for item in filter(None, os.environ.get("CD_MORE_LOG_DIRS", "").split(":")):
        label, _, d = item.partition("=")
        dirs[label + "/"] = d
    return {p: d for p, d in dirs.items() if d and os.path.isdir(d)}


def log_sizes():
    out = {}
    for prefix, d in _log_dirs().items():
        for name in os.listdir(d):
            if name.endswith(".log"):
                try:
                    out[prefix + name] = os.path.getsize(os.path.join(d, name))
                except OSError:
                    pass
    return out


def log_since(sizes, names=None, max_lines=30):
    """New lines of each log since log_sizes() was taken: {name: [lines]}."""
    dirs = _log_dirs()
    out = {}
    for name, size in log_sizes().items():
        if names and name not in names:
            continue
        start = sizes.get(name, 0)
        if size <= start:
            continue
        prefix, _, base = name.rpartition("/")
        try:
            with open(os.path.join(dirs[prefix + "/" if prefix else ""], base), "rb") as f:
                f.seek(start)
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            continue
        out[name] = lines[-max_lines:]
    return out


# ---------------------------------------------------------------- test base

import re as _re
import unittest as _unittest

_SNAKE = _re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


class Case(_unittest.TestCase):
    """Base for the integration tests: webhooks flow normally around each test."""

    maxDiff = 4000

    def setUp(self):
        reset_webhooks()

    def tearDown(self):
        reset_webhooks()
        db_close()

    def assertStatus(self, resp, status, what=""):
        exp = status if isinstance(status, (tuple, list, set)) else (status,)
        self.assertIn(resp.status, exp, f"{what}: expected HTTP {status}, got {resp!r}")
        return resp

    def assertEachStatus(self, whats, resps, status):
        """Each answer of parallel() (exceptions come as values) has status."""
        for what, r in zip(whats, resps):
            self.assertNotIsInstance(r, Exception, what)
            self.assertStatus(r, status, what)

    def assertError(self, resp, status, code=None, what=""):
        """The SPEC's error shape: {"error":{"code":snake_case,"message":text}}."""
        self.assertStatus(resp, status, what)
        j = resp.json
        self.assertIsInstance(j, dict, f"{what}: error body is not JSON: {resp!r}")
        self.assertIsInstance(j.get("error"), dict, f"{what}: no error object: {resp!r}")
        c, m = j["error"].get("code"), j["error"].get("message")
        self.assertIsInstance(c, str, f"{what}: error.code missing: {resp!r}")
        self.assertRegex(c, _SNAKE, f"{what}: error.code not snake_case: {resp!r}")
        self.assertIsInstance(m, str, f"{what}: error.message missing: {resp!r}")
        self.assertTrue(m.strip(), f"{what}: empty error.message: {resp!r}")
        self.assertTrue((resp.header("content-type") or "").startswith("application/json"),
                        f"{what}: error not application/json: {resp.headers}")
        if code is not None:
            codes = code if isinstance(code, (tuple, list, set)) else (code,)
            self.assertIn(c, codes, f"{what}: expected error.code {code}, got {resp!r}")
        return j["error"]
