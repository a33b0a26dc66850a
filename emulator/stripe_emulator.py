#!/usr/bin/env python3
"""
stripe_emulator.py -- a local stand-in for the Stripe API, for creditdesk.

Stripe cannot be reached from development machines or CI, and the C code
knows Stripe only as a base URL (STRIPE_API_BASE).  Point that URL at this
program and the product talks to it exactly as it would talk to
api.stripe.com: form-encoded requests with Stripe's nested keys, Bearer
auth, Idempotency-Key replay, JSON responses and errors in Stripe's shape,
and signed webhook deliveries (Stripe-Signature: t=...,v1=...) with retries.

Covered subset: customers, Checkout Sessions (payment and subscription mode,
hosted and embedded), PaymentIntents (create, confirm, cancel), charges,
refunds, subscriptions, invoices, disputes (and their evidence) and events
(list + retrieve).
A hosted checkout page (GET/POST /checkout/pay/{cs_id}) plays the part of
checkout.stripe.com: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 declines.
A Stripe.js stand-in (GET /v3/, see stripe_js.py) mounts embedded Checkout
and the payment Element as iframes served from here.
Test controls under /_emu/ (no auth, JSON) pay sessions, make payments
asynchronous, redeliver events, hold and reorder webhooks, inject API
failures, and reset the state.  See emulator/README.md.

Python 3 standard library only.  All state is in memory, guarded by one
lock that is never held while a webhook is on the network; with
--state-file it is also saved to that sqlite3 file shortly after every
change and on shutdown, and loaded on start, so a restarted emulator still
knows every customer, session, event and idempotent result.  Listens on
127.0.0.1 only.

Usage:
  python3 emulator/stripe_emulator.py --port 12111 --api-key sk_test_x \
      --webhook-url http://127.0.0.1:8080/api/stripe/webhook \
      --webhook-secret whsec_x [--retry-schedule 1,2,4,8,16,32] \
      [--public-url http://127.0.0.1:12111] [--webhook-workers 4] \
      [--state-file emulator.sqlite3]
Each option may also come from the environment: EMU_PORT, STRIPE_SECRET_KEY,
EMU_WEBHOOK_URL, STRIPE_WEBHOOK_SECRET (comma-separated: the first signs),
EMU_RETRY_SCHEDULE, EMU_PUBLIC_URL, EMU_WEBHOOK_WORKERS, EMU_STATE_FILE.
"""

import argparse
import calendar
import copy
import datetime
import fnmatch
import hashlib
import heapq
import hmac
import html
import http.client
import itertools
import json
import os
import re
import secrets
import signal
import sqlite3
import string
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from stripe_js import StripeJs

API_VERSION = "2024-06-20"
ALNUM = string.ascii_letters + string.digits
MAX_BODY = 1 << 20

# Cards accepted by the hosted page and PaymentMethods accepted by confirm:
# value = (brand, last4, decline_code or None).
CARD_OK = "4242424242424242"
CARD_DECLINE = "4000000000000002"
TEST_CARDS = {
    CARD_OK: ("visa", "4242", None),
    CARD_DECLINE: ("visa", "0002", "generic_decline"),
}
TEST_PAYMENT_METHODS = {
    "pm_card_visa": ("visa", "4242", None),
    "pm_card_mastercard": ("mastercard", "4444", None),
    "pm_card_amex": ("amex", "8431", None),
    "pm_card_chargeDeclined": ("visa", "0002", "generic_decline"),
    "pm_card_visa_chargeDeclined": ("visa", "0002", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "insufficient_funds"),
}
DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
}
MINIMUM_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50}
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg",
                "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
CURRENCY_SIGN = {"usd": "$", "eur": "\u20ac", "gbp": "\u00a3", "cad": "CA$", "aud": "A$"}


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def new_id(prefix, n=24):
    return prefix + "_" + "".join(secrets.choice(ALNUM) for _ in range(n))


def now():
    return int(time.time())


def dumps(obj):
    """Stripe's responses and webhook bodies are pretty-printed UTF-8 JSON."""
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def view(obj):
    """Public deep copy of a stored object (keys starting with _ are private)."""
    if isinstance(obj, dict):
        return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}
    return copy.deepcopy(obj)


def empty_list(url):
    return {"object": "list", "data": [], "has_more": False, "total_count": 0, "url": url}


def list_of(items, url):
    return {"object": "list", "data": items, "has_more": False,
            "total_count": len(items), "url": url}


def created_bounds(params):
    """created=<ts> or created[gt|gte|lt|lte]=<ts>, as Stripe's list filters."""
    created = params.get("created")
    bounds = {}
    if isinstance(created, dict):
        for op in ("gt", "gte", "lt", "lte"):
            v = p_int(created, op, f"created[{op}]")
            if v is not None:
                bounds[op] = v
    elif created not in (None, ""):
        bounds["eq"] = p_int(params, "created")
    return bounds


def in_bounds(c, bounds):
    return not (("gt" in bounds and not c > bounds["gt"]) or
                ("gte" in bounds and not c >= bounds["gte"]) or
                ("lt" in bounds and not c < bounds["lt"]) or
                ("lte" in bounds and not c <= bounds["lte"]) or
                ("eq" in bounds and c != bounds["eq"]))


def paged_list(objects, params, kind, url, filters=()):
    """One page of a Stripe list endpoint, newest first: `filters` are the
    parameters that must equal the object's field of the same name; created
    bounds; limit (1 to 100, default 10); starting_after or ending_before an
    object id of the list (unknown: resource_missing)."""
    limit = p_int(params, "limit", minimum=1)
    limit = 10 if limit is None else limit
    if limit > 100:
        raise StripeError(400, "This value must be less than or equal to 100.", param="limit")
    after, before = p_str(params, "starting_after"), p_str(params, "ending_before")
    if after is not None and before is not None:
        raise StripeError(400, "You may only specify one of these parameters: "
                          "ending_before, starting_after.")
    wanted = {k: p_str(params, k) for k in filters}
    bounds = created_bounds(params)
    # newest first; within one second, the later created first (the store
    # keeps creation order)
    items = [o for _, o in sorted(
        ((i, o) for i, o in enumerate(objects.values())
         if all(v is None or o.get(k) == v for k, v in wanted.items())
         and in_bounds(o["created"], bounds)),
        key=lambda io: (io[1]["created"], io[0]), reverse=True)]
    keys = [o["id"] for o in items]
    for name, cursor in (("starting_after", after), ("ending_before", before)):
        if cursor is not None and cursor not in keys:
            raise no_such(kind, cursor, param=name, status=400)
    if before is not None:
        newer = items[:keys.index(before)]
        page, has_more = newer[-limit:], len(newer) > limit
    else:
        older = items[keys.index(after) + 1:] if after is not None else items
        page, has_more = older[:limit], len(older) > limit
    out = list_of([view(o) for o in page], url)
    out["has_more"] = has_more
    return out


def format_money(amount, currency):
    cur = currency.lower()
    if cur in ZERO_DECIMAL:
        text = f"{amount}"
    else:
        text = f"{amount // 100}.{amount % 100:02d}" if amount >= 0 else f"-{format_money(-amount, cur)}"
    sign = CURRENCY_SIGN.get(cur, "")
    return f"{sign}{text}" if sign else f"{text} {cur.upper()}"


def add_interval(ts, interval, count):
    if interval == "day":
        return ts + 86400 * count
    if interval == "week":
        return ts + 7 * 86400 * count
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    months = count if interval == "month" else 12 * count
    y, m = divmod(dt.month - 1 + months, 12)
    y += dt.year
    m += 1
    d = min(dt.day, calendar.monthrange(y, m)[1])
    return int(dt.replace(year=y, month=m, day=d).timestamp())


class StripeError(Exception):
    """An error answered in Stripe's shape: {"error": {"type", "message", ...}}."""

    def __init__(self, status, message, type="invalid_request_error", code=None,
                 param=None, **extra):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type, "message": message}}
        if code:
            self.body["error"]["code"] = code
        if param:
            self.body["error"]["param"] = param
        self.body["error"].update(extra)


def no_such(kind, ident, param=None, status=404):
    return StripeError(status, f"No such {kind}: '{ident}'", code="resource_missing",
                       param=param or ("id" if status == 404 else None))


def card_error(decline_code, **extra):
    msg = DECLINE_MESSAGES.get(decline_code, "Your card was declined.")
    return StripeError(402, msg, type="card_error", code="card_declined",
                       decline_code=decline_code, **extra)


# ---------------------------------------------------------------------------
# Stripe's nested form encoding: a[b][0][c]=v, list[]=v  ->  dicts and lists
# ---------------------------------------------------------------------------

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEG_RE = re.compile(r"\[([^\[\]]*)\]")


def parse_form(data):
    """Parses an application/x-www-form-urlencoded string into nested values.

    Bracketed keys build dicts; a dict whose keys are all decimal indexes
    becomes a list ordered by index; "[]" appends.  A key used both as a
    scalar and as a container raises StripeError (Stripe: "Invalid hash").
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    root = {}
    for key, value in parse_qsl(data, keep_blank_values=True):
        m = _KEY_RE.match(key)
        segs = [m.group(1)] + _SEG_RE.findall(m.group(2)) if m else [key]
        _assign(root, segs, value, key)
    return _listify(root)


def _assign(container, segs, value, key):
    seg, rest = segs[0], segs[1:]
    if isinstance(container, list):
        # seg is "" (an append); with more segments, fill the last element
        # while it does not yet have the next key (Rack's rule).
        if not rest:
            container.append(value)
            return
        want = list if rest[0] == "" else dict
        if (want is dict and container and isinstance(container[-1], dict)
                and rest[0] not in container[-1]):
            child = container[-1]
        else:
            child = want()
            container.append(child)
        _assign(child, rest, value, key)
        return
    if not rest:
        if isinstance(container.get(seg), (dict, list)):
            raise StripeError(400, f"Invalid hash: {key}", param=key)
        container[seg] = value
        return
    want = list if rest[0] == "" else dict
    child = container.get(seg)
    if child is None:
        child = want()
        container[seg] = child
    elif not isinstance(child, want):
        raise StripeError(400, f"Invalid {'array' if want is list else 'hash'}: {key}",
                          param=key)
    _assign(child, rest, value, key)


def _listify(node):
    if isinstance(node, list):
        return [_listify(x) for x in node]
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_listify(node[k]) for k in sorted(node, key=int)]
        return {k: _listify(v) for k, v in node.items()}
    return node


# --- typed access to parsed parameters (messages as Stripe words them) ----

def p_str(params, name, label=None, required=False, max_len=5000):
    label = label or name
    v = params.get(name)
    if v is None or v == "":
        if required:
            raise StripeError(400, f"Missing required param: {label}.",
                              code="parameter_missing", param=label)
        return None
    if not isinstance(v, str):
        raise StripeError(400, f"Invalid string: {label}", code="parameter_invalid_string",
                          param=label)
    if len(v) > max_len:
        raise StripeError(400, f"Invalid string: {label} is too long (maximum {max_len})",
                          param=label)
    return v


def p_int(params, name, label=None, required=False, minimum=None):
    label = label or name
    s = p_str(params, name, label, required)
    if s is None:
        return None
    if not re.fullmatch(r"-?\d{1,15}", s):
        raise StripeError(400, f"Invalid integer: {s}", code="parameter_invalid_integer",
                          param=label)
    n = int(s)
    if minimum is not None and n < minimum:
        raise StripeError(400, f"This value must be greater than or equal to {minimum}.",
                          param=label)
    return n


def p_bool(params, name, label=None, default=None):
    s = p_str(params, name, label)
    if s is None:
        return default
    if s not in ("true", "false"):
        raise StripeError(400, f"Invalid boolean: {s}", param=label or name)
    return s == "true"


def p_enum(params, name, allowed, label=None, default=None, required=False):
    s = p_str(params, name, label, required)
    if s is None:
        return default
    if s not in allowed:
        raise StripeError(400, f"Invalid {label or name}: must be one of {', '.join(allowed)}",
                          param=label or name)
    return s


def p_obj(params, name, label=None):
    v = params.get(name)
    if v is None or v == "":
        return {}
    if not isinstance(v, dict):
        raise StripeError(400, f"Invalid object: {label or name}", param=label or name)
    return v


def p_list(params, name, label=None):
    v = params.get(name)
    if v is None or v == "":
        return []
    if isinstance(v, list):
        return v
    raise StripeError(400, f"Invalid array: {label or name}", param=label or name)


def p_metadata(params, name="metadata", label=None):
    """Metadata: a hash of strings; empty values unset a key."""
    label = label or name
    md = p_obj(params, name, label)
    out = {}
    for k, v in md.items():
        if not isinstance(v, str):
            raise StripeError(400, f"Invalid value for {label}[{k}]: metadata values must be strings",
                              param=f"{label}[{k}]")
        if len(k) > 40:
            raise StripeError(400, f"Metadata keys can have up to 40 characters; key '{k}' is too long.",
                              param=f"{label}[{k}]")
        if len(v) > 500:
            raise StripeError(400, f"Metadata values can have up to 500 characters, but you passed in a value that is {len(v)} characters.",
                              param=f"{label}[{k}]")
        if v != "":
            out[k] = v
    if len(out) > 50:
        raise StripeError(400, "You can only specify up to 50 keys in metadata.", param=label)
    return out


def p_currency(params, name, label=None, required=True):
    s = p_str(params, name, label, required)
    if s is None:
        return None
    s = s.lower()
    if not re.fullmatch(r"[a-z]{3}", s):
        raise StripeError(400, f"Invalid currency: {s}", param=label or name)
    return s


def check_minimum(amount, currency, param="amount"):
    minimum = MINIMUM_AMOUNT.get(currency)
    if minimum and amount < minimum:
        raise StripeError(400, f"Amount must be at least {format_money(minimum, currency)} {currency}",
                          code="amount_too_small", param=param)


# ---------------------------------------------------------------------------
# State: one lock, objects by type, events in order, idempotency, deliveries
# ---------------------------------------------------------------------------

class Ctx:
    """Who caused a change: an API request (with its id and key) or a control."""

    def __init__(self, request_id=None, idempotency_key=None):
        self.request_id = request_id
        self.idempotency_key = idempotency_key


CONTROL = Ctx()

OBJECT_TYPES = {
    "customer": "customers", "checkout.session": "checkout_sessions",
    "payment_intent": "payment_intents", "charge": "charges", "refund": "refunds",
    "subscription": "subscriptions", "invoice": "invoices", "dispute": "disputes",
    "event": "events", "account": "accounts", "account_link": "account_links",
    "transfer": "transfers", "transfer_reversal": "transfer_reversals",
    "application_fee": "application_fees", "fee_refund": "fee_refunds",
    "price": "prices",
}


class Store:
    def __init__(self, webhook_defaults):
        self.lock = threading.RLock()
        self.webhook_defaults = dict(webhook_defaults)
        self.generation = 0
        self.deliverer = None
        self.reset()

    def reset(self):
        with self.lock:
            self.generation += 1
            self.objects = {t: {} for t in OBJECT_TYPES}
            self.event_seq = {}           # evt id -> sequence number
            self.event_order = []         # evt ids, oldest first
            self.event_body = {}          # evt id -> bytes sent (serialized once)
            self.event_state = {}         # evt id -> {"delivered", "gave_up", "attempts"}
            self.deliveries = []          # attempt records
            self.idem = {}                # Idempotency-Key -> entry
            self.fail_count = 0
            self.fail_status = 500
            self.fail_path = ""     # only requests whose path starts so fail
            self.slow_count = 0       # answers held back after they are made
            self.slow_ms = 0
            self.slow_path = ""
            self.slow_method = "GET"
            self.webhook = dict(self.webhook_defaults)

    def add(self, obj):
        self.objects[obj["object"]][obj["id"]] = obj
        return obj

    def get(self, otype, ident, kind, param=None):
        """Stored object or StripeError: 404 for a path id, 400 for a param."""
        obj = self.objects[otype].get(ident) if isinstance(ident, str) else None
        if obj is None:
            raise no_such(kind, ident, param=param, status=400 if param else 404)
        return obj

    def webhooks_active(self):
        return bool(self.webhook["url"]) and self.webhook["enabled"]

    def emit(self, ctx, etype, obj):
        """Records an event with a snapshot of obj and queues its delivery."""
        active = self.webhooks_active()
        evt = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": now(),
            "data": {"object": view(obj)},
            "livemode": False,
            "pending_webhooks": 1 if active else 0,
            "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
            "type": etype,
        }
        eid = evt["id"]
        self.objects["event"][eid] = evt
        self.event_seq[eid] = len(self.event_order)
        self.event_order.append(eid)
        self.event_body[eid] = dumps(evt)
        self.event_state[eid] = {"delivered": False, "gave_up": False, "attempts": 0}
        if active and self.deliverer:
            self.deliverer.submit(eid)
        return evt


class Persistence:
    """The store saved in an sqlite3 file, so a restart loses nothing.

    Changes only mark the store dirty; one writer thread saves a moment later
    (coalescing bursts), and flush() saves at shutdown, each save one
    transaction.  What never changes once recorded is only appended: events
    with the bodies they were signed with, and kept idempotent results.  The
    objects and the events' delivery state are rewritten whole (one JSON
    value each).  Not saved: the delivery log, held or scheduled deliveries
    (a restart drops pending retries, like a missed webhook; creditdesk-
    reconcile picks those up), injected failures and webhook settings (they
    come from the command line).
    """

    VERSION = "1"
    QUIET = 0.05          # seconds to wait for more changes before saving

    def __init__(self, store, path):
        self.s = store
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))   # buyers' emails: ours only
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.executescript("""
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = NORMAL;
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL,
                                               body TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, path TEXT NOT NULL,
                fp TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL);
        """)
        self.cond = threading.Condition()
        self.io = threading.Lock()
        self.dirty = False
        self.saved_gen = None      # the store generation the file holds
        self.saved_events = 0      # how many of event_order it holds
        self.saved_idem = set()
        threading.Thread(target=self._writer, name="persist", daemon=True).start()

    def mark(self):
        with self.cond:
            self.dirty = True
            self.cond.notify()

    def _writer(self):
        pause = self.QUIET
        while True:
            with self.cond:
                while not self.dirty:
                    self.cond.wait()
            time.sleep(pause)
            started = time.monotonic()
            try:
                self.flush()
            except sqlite3.Error as e:
                log(f"cannot save state: {e}")
            # A save holds the store lock for a while: keep that to a fifth.
            pause = max(self.QUIET, 4 * (time.monotonic() - started))

    def flush(self):
        with self.io:
            with self.cond:
                self.dirty = False
            with self.s.lock:
                s = self.s
                full = s.generation != self.saved_gen     # first save, or after a reset
                if full:
                    self.saved_events, self.saved_idem = 0, set()
                objects = json.dumps({t: objs for t, objs in s.objects.items() if t != "event"},
                                     separators=(",", ":"))
                states = json.dumps(s.event_state, separators=(",", ":"))
                events = [(i, eid, s.event_body[eid].decode("utf-8"))
                          for i, eid in enumerate(s.event_order[self.saved_events:],
                                                  self.saved_events)]
                idem = [(k, e["path"], e["fp"], e["resp"].status, e["resp"].body.decode("utf-8"))
                        for k, e in s.idem.items()
                        if e["resp"] is not None and k not in self.saved_idem]
                gen, count = s.generation, len(s.event_order)
            with self.db:
                self.db.execute("BEGIN")
                if full:
                    self.db.execute("DELETE FROM events")
                    self.db.execute("DELETE FROM idempotency")
                self.db.executemany("INSERT INTO events VALUES (?, ?, ?)", events)
                self.db.executemany("INSERT INTO idempotency VALUES (?, ?, ?, ?, ?)", idem)
                self.db.executemany("REPLACE INTO meta VALUES (?, ?)", [
                    ("version", self.VERSION), ("objects", objects), ("event_state", states)])
            self.saved_gen, self.saved_events = gen, count
            self.saved_idem.update(row[0] for row in idem)

    def load(self):
        """Restores a saved store; False when nothing was saved yet."""
        meta = dict(self.db.execute("SELECT name, value FROM meta"))
        if not meta:
            return False
        if meta.get("version") != self.VERSION:
            raise ValueError(f"unknown saved state version {meta.get('version')!r}")
        s = self.s
        with s.lock:
            s.reset()
            for t, objs in json.loads(meta["objects"]).items():
                s.objects[t].update(objs)
            states = json.loads(meta["event_state"])
            for _, eid, body in self.db.execute("SELECT seq, id, body FROM events ORDER BY seq"):
                evt = json.loads(body)
                if states[eid]["delivered"]:
                    evt["pending_webhooks"] = 0
                s.objects["event"][eid] = evt
                s.event_seq[eid] = len(s.event_order)
                s.event_order.append(eid)
                s.event_body[eid] = body.encode("utf-8")
                s.event_state[eid] = states[eid]
            for key, path, fp, status, body in self.db.execute("SELECT * FROM idempotency"):
                done = threading.Event()
                done.set()
                s.idem[key] = {"path": path, "fp": fp, "done": done,
                               "resp": Response(status, body.encode("utf-8"))}
                self.saved_idem.add(key)
            self.saved_gen, self.saved_events = s.generation, len(s.event_order)
        return True


class Resource:
    def __init__(self, emu):
        self.emu = emu
        self.s = emu.store


# ---------------------------------------------------------------------------
# Customers
# ---------------------------------------------------------------------------

class Customers(Resource):
    def new(self, ctx, email=None, name=None, metadata=None):
        c = self.s.add({
            "id": new_id("cus"), "object": "customer", "address": None, "balance": 0,
            "created": now(), "currency": None, "default_source": None,
            "delinquent": False, "description": None, "email": email,
            "invoice_settings": {"default_payment_method": None},
            "livemode": False, "metadata": metadata or {}, "name": name, "phone": None,
        })
        self.s.emit(ctx, "customer.created", c)
        return c

    def create(self, ctx, params):
        return self.new(ctx, email=p_str(params, "email", max_len=512),
                        name=p_str(params, "name", max_len=256),
                        metadata=p_metadata(params))

    def retrieve(self, ctx, params, id):
        return self.s.get("customer", id, "customer")

    def delete(self, ctx, params, id):
        """As Stripe: the customer is gone; later references to it are
        resource_missing errors."""
        c = self.s.get("customer", id, "customer")
        del self.s.objects["customer"][id]
        self.s.emit(ctx, "customer.deleted", c)
        return {"id": id, "object": "customer", "deleted": True}


# ---------------------------------------------------------------------------
# Charges and PaymentIntents (the payment engine every flow goes through)
# ---------------------------------------------------------------------------

class Charges(Resource):
    def new(self, pi, card, pm_id, declined):
        brand, last4, decline_code = card
        cid = new_id("ch")
        ok = not declined
        return self.s.add({
            "id": cid, "object": "charge", "amount": pi["amount"],
            "amount_captured": pi["amount"] if ok else 0, "amount_refunded": 0,
            "balance_transaction": None,
            "billing_details": {"address": None, "email": None, "name": None, "phone": None},
            "captured": ok, "created": now(), "currency": pi["currency"],
            "customer": pi["customer"], "description": pi.get("description"),
            "disputed": False,
            "failure_code": None if ok else "card_declined",
            "failure_message": None if ok else DECLINE_MESSAGES.get(decline_code),
            "invoice": pi.get("invoice"), "livemode": False,
            "metadata": dict(pi["metadata"]),
            "outcome": {
                "network_status": "approved_by_network" if ok else "declined_by_network",
                "reason": None if ok else decline_code, "risk_level": "normal",
                "seller_message": "Payment complete." if ok else
                "The bank did not return any further details with this decline.",
                "type": "authorized" if ok else "issuer_declined",
            },
            "paid": ok, "payment_intent": pi["id"], "payment_method": pm_id,
            "payment_method_details": {"card": {"brand": brand, "last4": last4,
                                                "exp_month": 12, "exp_year": 2034,
                                                "country": "US", "funding": "credit"},
                                       "type": "card"},
            "receipt_url": None, "refunded": False,
            "refunds": empty_list(f"/v1/charges/{cid}/refunds"),
            "status": "succeeded" if ok else "failed",
            "application_fee": None, "application_fee_amount": pi.get("application_fee_amount"),
            "transfer": None, "transfer_data": pi.get("transfer_data"),
        })

    def retrieve(self, ctx, params, id):
        return self.s.get("charge", id, "charge")


class PaymentIntents(Resource):
    CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action",
                   "processing")
    CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
                  "requires_action", "processing")

    def new(self, ctx, amount, currency, customer=None, metadata=None, description=None,
            invoice=None, apm=None, emit_created=True):
        pid = new_id("pi")
        pi = self.s.add({
            "id": pid, "object": "payment_intent", "amount": amount,
            "amount_capturable": 0, "amount_received": 0,
            "automatic_payment_methods": apm, "canceled_at": None,
            "cancellation_reason": None, "capture_method": "automatic",
            "client_secret": f"{pid}_secret_{new_id('x', 24)[2:]}",
            "confirmation_method": "automatic", "created": now(), "currency": currency,
            "customer": customer, "description": description, "invoice": invoice,
            "last_payment_error": None, "latest_charge": None, "livemode": False,
            "metadata": metadata or {}, "payment_method": None,
            "payment_method_types": ["card"], "status": "requires_payment_method",
            "application_fee_amount": None, "transfer_data": None,
        })
        if emit_created:
            self.s.emit(ctx, "payment_intent.created", pi)
        return pi

    # --- engine ---
    def succeed(self, ctx, pi, card=TEST_CARDS[CARD_OK]):
        pm = new_id("pm")
        ch = self.emu.charges.new(pi, card, pm, declined=False)
        if pi.get("transfer_data"):
            self.emu.connect.destination_charge(ch, pi)
        pi.update(status="succeeded", amount_received=pi["amount"], latest_charge=ch["id"],
                  last_payment_error=None, payment_method=pm)
        self.s.emit(ctx, "charge.succeeded", ch)
        self.s.emit(ctx, "payment_intent.succeeded", pi)
        return ch

    def decline(self, ctx, pi, card=TEST_CARDS[CARD_DECLINE]):
        """Fails pi with a failed charge; returns the 402 error to answer with."""
        pm = new_id("pm")
        ch = self.emu.charges.new(pi, card, pm, declined=True)
        code = card[2] or "generic_decline"
        pm_obj = {"id": pm, "object": "payment_method", "type": "card",
                  "card": {"brand": card[0], "last4": card[1]}}
        pi.update(status="requires_payment_method", latest_charge=ch["id"], payment_method=None,
                  last_payment_error={
                      "charge": ch["id"], "code": "card_declined", "decline_code": code,
                      "message": DECLINE_MESSAGES.get(code, "Your card was declined."),
                      "payment_method": pm_obj, "type": "card_error"})
        self.s.emit(ctx, "charge.failed", ch)
        self.s.emit(ctx, "payment_intent.payment_failed", pi)
        return card_error(code, charge=ch["id"], payment_intent=view(pi), payment_method=pm_obj)

    def _check_confirmable(self, pi):
        if pi["status"] not in self.CONFIRMABLE:
            raise StripeError(
                400, f"This PaymentIntent's status is {pi['status']}, but must be one of "
                "requires_payment_method, requires_confirmation, or requires_action.",
                code="payment_intent_unexpected_state", payment_intent=view(pi))

    def confirm_with(self, ctx, pi, pm_name):
        """Confirms pi with a test PaymentMethod id; returns pi or raises 402."""
        self._check_confirmable(pi)
        card = TEST_PAYMENT_METHODS.get(pm_name)
        if card is None:
            raise no_such("PaymentMethod", pm_name, param="payment_method", status=400)
        if card[2]:
            raise self.decline(ctx, pi, card)
        self.succeed(ctx, pi, card)
        return pi

    # --- API ---
    def create(self, ctx, params):
        amount = p_int(params, "amount", required=True, minimum=1)
        currency = p_currency(params, "currency")
        check_minimum(amount, currency)
        customer = p_str(params, "customer")
        if customer:
            self.s.get("customer", customer, "customer", param="customer")
        apm = p_obj(params, "automatic_payment_methods")
        apm = {"enabled": p_bool(apm, "enabled", "automatic_payment_methods[enabled]",
                                 default=False)} if apm else None
        pm = p_str(params, "payment_method")
        confirm = p_bool(params, "confirm", default=False)
        if pm and pm not in TEST_PAYMENT_METHODS:
            raise no_such("PaymentMethod", pm, param="payment_method", status=400)
        fee = p_int(params, "application_fee_amount", minimum=0)
        td = p_obj(params, "transfer_data")
        dest = p_str(td, "destination", "transfer_data[destination]") if td else None
        if fee is not None and fee > amount:
            raise StripeError(400, "application_fee_amount cannot exceed the amount.",
                              param="application_fee_amount")
        if dest:
            acct = self.s.get("account", dest, "account", param="transfer_data[destination]")
            if not acct["charges_enabled"]:
                raise StripeError(400, f"The destination account {dest} cannot receive charges.",
                                  param="transfer_data[destination]")
        elif fee is not None:
            raise StripeError(400, "application_fee_amount needs transfer_data[destination] "
                              "(or a Stripe-Account header).", param="application_fee_amount")
        pi = self.new(ctx, amount, currency, customer=customer,
                      metadata=p_metadata(params),
                      description=p_str(params, "description"), apm=apm, emit_created=False)
        pi.update(application_fee_amount=fee,
                  transfer_data={"destination": dest} if dest else None)
        self.s.emit(ctx, "payment_intent.created", pi)
        if pm:
            pi["status"] = "requires_confirmation"
        if confirm:
            if not pm:
                raise StripeError(400, "You cannot confirm this PaymentIntent because it's "
                                  "missing a payment method.", code="payment_intent_unexpected_state")
            return self.confirm_with(ctx, pi, pm)
        return pi

    def retrieve(self, ctx, params, id):
        return self.s.get("payment_intent", id, "payment_intent")

    def update(self, ctx, params, id):
        pi = self.s.get("payment_intent", id, "payment_intent")
        md = p_obj(params, "metadata")
        amount = p_int(params, "amount", minimum=1)
        if amount is not None:
            if pi["status"] == "succeeded":
                raise StripeError(400, "This PaymentIntent's amount could not be updated because "
                                  "it has a status of succeeded.",
                                  code="payment_intent_unexpected_state")
            check_minimum(amount, pi["currency"])
            pi["amount"] = amount
        for k, v in p_metadata({"metadata": {k: v for k, v in md.items() if v}}).items():
            pi["metadata"][k] = v
        for k, v in md.items():
            if v == "":
                pi["metadata"].pop(k, None)
        desc = p_str(params, "description")
        if desc is not None:
            pi["description"] = desc
        return pi

    def confirm(self, ctx, params, id):
        pi = self.s.get("payment_intent", id, "payment_intent")
        self._check_confirmable(pi)
        pm = p_str(params, "payment_method")
        if pm is None:
            raise StripeError(400, "You cannot confirm this PaymentIntent because it's missing "
                              "a payment method. To confirm the PaymentIntent with "
                              f"{pi['customer'] or 'a customer'}, specify a payment method "
                              "attached to this customer along with the customer ID.",
                              code="payment_intent_unexpected_state", payment_intent=view(pi))
        return self.confirm_with(ctx, pi, pm)

    def cancel(self, ctx, params, id):
        pi = self.s.get("payment_intent", id, "payment_intent")
        reason = p_enum(params, "cancellation_reason",
                        ["duplicate", "fraudulent", "requested_by_customer", "abandoned"])
        if pi["status"] not in self.CANCELABLE:
            raise StripeError(
                400, f"You cannot cancel this PaymentIntent because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses may "
                "be canceled: requires_payment_method, requires_capture, "
                "requires_confirmation, requires_action, processing.",
                code="payment_intent_unexpected_state", payment_intent=view(pi))
        pi.update(status="canceled", canceled_at=now(), cancellation_reason=reason)
        self.s.emit(ctx, "payment_intent.canceled", pi)
        return pi


# ---------------------------------------------------------------------------
# Checkout Sessions
# ---------------------------------------------------------------------------

def new_price(pd, lab):
    """A Price from price_data-shaped params (currency, unit_amount,
    product_data[name], recurring): (price, product name, description)."""
    currency = p_currency(pd, "currency", f"{lab}[currency]")
    unit = p_int(pd, "unit_amount", f"{lab}[unit_amount]", required=True, minimum=0)
    prod = p_obj(pd, "product_data", f"{lab}[product_data]")
    if p_str(pd, "product"):
        raise no_such("product", pd["product"], param=f"{lab}[product]", status=400)
    name = p_str(prod, "name", f"{lab}[product_data][name]", required=True)
    desc = p_str(prod, "description", f"{lab}[product_data][description]")
    rec = p_obj(pd, "recurring", f"{lab}[recurring]")
    recurring = None
    if rec:
        recurring = {
            "aggregate_usage": None,
            "interval": p_enum(rec, "interval", ["day", "week", "month", "year"],
                               f"{lab}[recurring][interval]", required=True),
            "interval_count": p_int(rec, "interval_count", f"{lab}[recurring][interval_count]",
                                    minimum=1) or 1,
            "trial_period_days": None, "usage_type": "licensed",
        }
    price = {
        "id": new_id("price"), "object": "price", "active": True, "billing_scheme": "per_unit",
        "created": now(), "currency": currency, "livemode": False, "lookup_key": None,
        "metadata": {}, "nickname": None, "product": new_id("prod"),
        "recurring": recurring, "tax_behavior": "unspecified",
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit, "unit_amount_decimal": str(unit),
    }
    return price, name, desc


class CheckoutSessions(Resource):
    def _line_items(self, params, mode):
        raw = p_list(params, "line_items")
        if not raw:
            raise StripeError(400, "Missing required param: line_items.",
                              code="parameter_missing", param="line_items")
        items = []
        for i, li in enumerate(raw):
            lab = f"line_items[{i}]"
            if not isinstance(li, dict):
                raise StripeError(400, f"Invalid object: {lab}", param=lab)
            if p_str(li, "price", f"{lab}[price]"):
                raise no_such("price", li["price"], param=f"{lab}[price]", status=400)
            pd = p_obj(li, "price_data", f"{lab}[price_data]")
            if not pd:
                raise StripeError(400, f"Missing required param: {lab}[price_data].",
                                  code="parameter_missing", param=f"{lab}[price_data]")
            price, name, desc = new_price(pd, f"{lab}[price_data]")
            currency, unit = price["currency"], price["unit_amount"]
            qty = p_int(li, "quantity", f"{lab}[quantity]", required=True, minimum=1)
            items.append({
                "id": new_id("li"), "object": "item", "amount_discount": 0,
                "amount_subtotal": unit * qty, "amount_tax": 0, "amount_total": unit * qty,
                "currency": currency, "description": name, "price": price, "quantity": qty,
                "_product_description": desc,
            })
        currencies = {li["currency"] for li in items}
        if len(currencies) > 1:
            raise StripeError(400, "All line items must use the same currency.",
                              param="line_items")
        recurring = [li for li in items if li["price"]["recurring"]]
        if mode == "payment" and recurring:
            raise StripeError(400, "You specified `payment` mode but passed a recurring price. "
                              "Either switch to `subscription` mode or use only one-time prices.",
                              param="line_items")
        if mode == "subscription":
            if not recurring:
                raise StripeError(400, "You must provide at least one recurring price in "
                                  "`subscription` mode when using prices.", param="line_items")
            shapes = {(li["price"]["recurring"]["interval"],
                       li["price"]["recurring"]["interval_count"]) for li in recurring}
            if len(shapes) > 1:
                raise StripeError(400, "All prices on a subscription must have the same "
                                  "`recurring.interval` and `recurring.interval_count`.",
                                  param="line_items")
        return items

    def create(self, ctx, params):
        mode = p_enum(params, "mode", ["payment", "setup", "subscription"], required=True)
        if mode == "setup":
            raise StripeError(400, "The emulator supports only payment and subscription mode.",
                              param="mode")
        ui_mode = p_enum(params, "ui_mode", ["hosted", "embedded"], default="hosted")
        success_url = p_str(params, "success_url", max_len=5000)
        cancel_url = p_str(params, "cancel_url", max_len=5000)
        return_url = p_str(params, "return_url", max_len=5000)
        redirect = p_enum(params, "redirect_on_completion", ["always", "if_required", "never"])
        if ui_mode == "hosted":
            if return_url:
                raise StripeError(400, "You can only pass `return_url` when `ui_mode` is "
                                  "`embedded`.", param="return_url")
            if not success_url:
                raise StripeError(400, "Missing required param: success_url.",
                                  code="parameter_missing", param="success_url")
        else:
            for name, val in (("success_url", success_url), ("cancel_url", cancel_url)):
                if val:
                    raise StripeError(400, f"You cannot pass `{name}` when `ui_mode` is "
                                      "`embedded`.", param=name)
            if not return_url and redirect != "never":
                raise StripeError(400, "Missing required param: return_url.",
                                  code="parameter_missing", param="return_url")
        customer = p_str(params, "customer")
        customer_email = p_str(params, "customer_email", max_len=512)
        if customer and customer_email:
            raise StripeError(400, "You may only specify one of these parameters: customer, "
                              "customer_email.", param="customer_email")
        if customer:
            self.s.get("customer", customer, "customer", param="customer")
        pid = p_obj(params, "payment_intent_data")
        sid = p_obj(params, "subscription_data")
        if pid and mode != "payment":
            raise StripeError(400, "You can only specify `payment_intent_data` in `payment` "
                              "mode.", param="payment_intent_data")
        if sid and mode != "subscription":
            raise StripeError(400, "You can only specify `subscription_data` in "
                              "`subscription` mode.", param="subscription_data")
        pi_md = p_metadata(pid, "metadata", "payment_intent_data[metadata]")
        sub_md = p_metadata(sid, "metadata", "subscription_data[metadata]")
        pi_desc = p_str(pid, "description", "payment_intent_data[description]")
        metadata = p_metadata(params)
        ref = p_str(params, "client_reference_id", max_len=200)
        items = self._line_items(params, mode)
        currency = items[0]["currency"]
        total = sum(li["amount_total"] for li in items)
        if mode == "payment":
            check_minimum(total, currency, param="line_items")
        cid = new_id("cs_test")
        created = now()
        cs = {
            "id": cid, "object": "checkout.session", "after_expiration": None,
            "allow_promotion_codes": None, "amount_subtotal": total, "amount_total": total,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": None, "cancel_url": cancel_url,
            "client_reference_id": ref,
            "client_secret": f"{cid}_secret_{new_id('x', 24)[2:]}" if ui_mode == "embedded" else None,
            "created": created, "currency": currency, "customer": customer,
            "customer_creation": "if_required" if mode == "payment" and not customer else None,
            "customer_details": None, "customer_email": customer_email,
            "expires_at": created + 86400, "invoice": None, "livemode": False, "locale": None,
            "metadata": metadata, "mode": mode, "payment_intent": None,
            "payment_method_types": ["card"], "payment_status": "unpaid",
            "redirect_on_completion": redirect or ("always" if ui_mode == "embedded" else None),
            "return_url": return_url, "status": "open", "submit_type": None,
            "subscription": None, "success_url": success_url,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": ui_mode,
            "url": f"{self.emu.public_url}/checkout/pay/{cid}" if ui_mode == "hosted" else None,
            "_line_items": items, "_pi_metadata": pi_md, "_pi_description": pi_desc,
            "_sub_metadata": sub_md, "_async": False,
        }
        return self.s.add(cs)

    def retrieve(self, ctx, params, id):
        return self.s.get("checkout.session", id, "checkout.session")

    def list(self, ctx, params):
        """GET /v1/checkout/sessions, newest first; filters as Stripe's."""
        return paged_list(self.s.objects["checkout.session"], params, "checkout.session",
                          "/v1/checkout/sessions",
                          ("payment_intent", "customer", "subscription", "status"))

    def line_items_list(self, cs):
        return list_of([view(li) for li in cs["_line_items"]],
                       f"/v1/checkout/sessions/{cs['id']}/line_items")

    def line_items(self, ctx, params, id):
        return self.line_items_list(self.s.get("checkout.session", id, "checkout.session"))

    def expire(self, ctx, params, id):
        cs = self.s.get("checkout.session", id, "checkout.session")
        if cs["status"] != "open":
            raise StripeError(400, f"Only Checkout Sessions with a status in [\"open\"] can be "
                              f"expired. This Checkout Session has a status of \"{cs['status']}\".")
        cs.update(status="expired", expires_at=now())
        self.s.emit(ctx, "checkout.session.expired", cs)
        return cs

    # --- paying (hosted page and controls) ---
    def redirect_url(self, cs):
        url = cs["success_url"] if cs["ui_mode"] == "hosted" else cs["return_url"]
        return url.replace("{CHECKOUT_SESSION_ID}", cs["id"]) if url else None

    def _session_pi(self, ctx, cs):
        pi = self.s.objects["payment_intent"].get(cs["payment_intent"] or "")
        if pi is None:
            pi = self.emu.payment_intents.new(
                ctx, cs["amount_total"], cs["currency"], customer=cs["customer"],
                metadata=dict(cs["_pi_metadata"]), description=cs["_pi_description"])
            cs["payment_intent"] = pi["id"]
        return pi

    def _complete(self, cs, paid):
        email = cs["customer_email"]
        if not email and cs["customer"]:
            email = self.s.objects["customer"].get(cs["customer"], {}).get("email")
        cs.update(status="complete", payment_status="paid" if paid else "unpaid",
                  customer_details={"address": None, "email": email, "name": None,
                                    "phone": None, "tax_exempt": "none", "tax_ids": []})

    def pay(self, ctx, cs, card_number):
        """Pays an open session with a card number, as the hosted page does.

        Returns the session; raises StripeError (402 declined, 400 invalid or
        not payable).  A session already complete is returned unchanged.
        """
        if cs["status"] == "complete":
            return cs
        if cs["status"] != "open":
            raise StripeError(400, "This Checkout Session is no longer active.",
                              code="checkout_session_expired")
        digits = re.sub(r"[\s-]", "", card_number or "")
        card = TEST_CARDS.get(digits)
        if card is None:
            raise StripeError(400, "Your card number is invalid.", type="card_error",
                              code="invalid_number", param="card")
        if card[2]:
            if cs["mode"] == "payment":
                err = self.emu.payment_intents.decline(ctx, self._session_pi(ctx, cs), card)
                raise err
            raise card_error(card[2])
        if cs["mode"] == "payment":
            pi = self._session_pi(ctx, cs)
            self.emu.payment_intents.succeed(ctx, pi, card)
            self._complete(cs, paid=True)
        else:
            self.emu.billing.start_subscription(ctx, cs, card)
            self._complete(cs, paid=True)
        self.s.emit(ctx, "checkout.session.completed", cs)
        return cs

    def pay_async(self, ctx, cs):
        """Completes a payment-mode session with a delayed-notification payment."""
        if cs["status"] == "complete":
            return cs
        if cs["status"] != "open":
            raise StripeError(400, "This Checkout Session is no longer active.",
                              code="checkout_session_expired")
        if cs["mode"] != "payment":
            raise StripeError(400, "The emulator makes only payment-mode sessions asynchronous.")
        pi = self._session_pi(ctx, cs)
        pi["status"] = "processing"
        self.s.emit(ctx, "payment_intent.processing", pi)
        cs["_async"] = True
        self._complete(cs, paid=False)
        self.s.emit(ctx, "checkout.session.completed", cs)
        return cs

    def async_outcome(self, ctx, cs, outcome):
        if not cs["_async"] or cs["payment_status"] != "unpaid":
            raise StripeError(400, "This Checkout Session has no asynchronous payment pending.")
        pi = self.s.objects["payment_intent"][cs["payment_intent"]]
        cs["_async"] = False
        if outcome == "succeeded":
            self.emu.payment_intents.succeed(ctx, pi)
            cs["payment_status"] = "paid"
            self.s.emit(ctx, "checkout.session.async_payment_succeeded", cs)
        else:
            self.emu.payment_intents.decline(ctx, pi)
            self.s.emit(ctx, "checkout.session.async_payment_failed", cs)
        return cs


# ---------------------------------------------------------------------------
# Subscriptions and invoices
# ---------------------------------------------------------------------------

class Billing(Resource):
    def start_subscription(self, ctx, cs, card):
        if not cs["customer"]:
            cs["customer"] = self.emu.customers.new(ctx, email=cs["customer_email"])["id"]
        start = now()
        items = cs["_line_items"]
        rec = next(li["price"]["recurring"] for li in items if li["price"]["recurring"])
        sid = new_id("sub")
        sub = self.s.add({
            "id": sid, "object": "subscription", "billing_cycle_anchor": start,
            "cancel_at": None, "cancel_at_period_end": False, "canceled_at": None,
            "collection_method": "charge_automatically", "created": start,
            "currency": cs["currency"],
            "current_period_end": add_interval(start, rec["interval"], rec["interval_count"]),
            "current_period_start": start, "customer": cs["customer"],
            "default_payment_method": None, "description": None, "ended_at": None,
            "items": list_of([{
                "id": new_id("si"), "object": "subscription_item", "created": start,
                "metadata": {}, "price": copy.deepcopy(li["price"]),
                "quantity": li["quantity"], "subscription": sid,
            } for li in items if li["price"]["recurring"]],
                f"/v1/subscription_items?subscription={sid}"),
            "latest_invoice": None, "livemode": False,
            "metadata": dict(cs["_sub_metadata"]), "start_date": start, "status": "active",
            "trial_end": None, "trial_start": None,
            "_interval": (rec["interval"], rec["interval_count"]),
            "_descriptions": {li["price"]["id"]: li["description"] for li in items},
        })
        self.s.emit(ctx, "customer.subscription.created", sub)
        # The first invoice also carries one-time items bought with the subscription.
        inv = self.paid_invoice(ctx, sub, "subscription_create", items)
        cs.update(subscription=sid, invoice=inv["id"])
        return sub

    def paid_invoice(self, ctx, sub, reason, items=None):
        if items is None:
            items = [{"price": si["price"], "quantity": si["quantity"],
                      "description": sub["_descriptions"].get(si["price"]["id"])}
                     for si in sub["items"]["data"]]
        iid = new_id("in")
        period = {"start": sub["current_period_start"], "end": sub["current_period_end"]}
        lines = []
        for li in items:
            amount = li["price"]["unit_amount"] * li["quantity"]
            lines.append({
                "id": new_id("il"), "object": "line_item", "amount": amount,
                "currency": sub["currency"],
                "description": f"{li['quantity']} \u00d7 {li['description']}",
                "discountable": True, "invoice": iid, "livemode": False, "metadata": {},
                "period": dict(period), "price": copy.deepcopy(li["price"]),
                "proration": False, "quantity": li["quantity"],
                "subscription": sub["id"],
                "type": "subscription" if li["price"]["recurring"] else "invoiceitem",
            })
        total = sum(line["amount"] for line in lines)
        cust = self.s.objects["customer"].get(sub["customer"], {})
        pi = self.emu.payment_intents.new(ctx, total, sub["currency"], customer=sub["customer"],
                                          invoice=iid, description="Subscription creation"
                                          if reason == "subscription_create" else
                                          "Subscription update")
        ch = self.emu.payment_intents.succeed(ctx, pi)
        t = now()
        inv = self.s.add({
            "id": iid, "object": "invoice", "account_country": "US",
            "amount_due": total, "amount_paid": total, "amount_remaining": 0,
            "attempt_count": 1, "attempted": True, "billing_reason": reason,
            "charge": ch["id"], "collection_method": "charge_automatically", "created": t,
            "currency": sub["currency"], "customer": sub["customer"],
            "customer_email": cust.get("email"), "hosted_invoice_url": None,
            "lines": list_of(lines, f"/v1/invoices/{iid}/lines"), "livemode": False,
            "metadata": {}, "number": f"EMU-{len(self.s.objects['invoice']) + 1:04d}",
            "paid": True, "paid_out_of_band": False, "payment_intent": pi["id"],
            "period_end": period["end"], "period_start": period["start"],
            "status": "paid", "status_transitions": {"finalized_at": t, "paid_at": t,
                                                     "marked_uncollectible_at": None,
                                                     "voided_at": None},
            "subscription": sub["id"],
            "subscription_details": {"metadata": dict(sub["metadata"])},
            "subtotal": total, "total": total,
        })
        sub["latest_invoice"] = iid
        self.s.emit(ctx, "invoice.paid", inv)
        return inv

    def _next_period(self, sub):
        interval, count = sub["_interval"]
        start = sub["current_period_end"]
        sub.update(current_period_start=start,
                   current_period_end=add_interval(start, interval, count))

    def renew(self, ctx, sub):
        """The next period paid (a past_due subscription recovers: active again)."""
        if sub["status"] not in ("active", "past_due"):
            raise StripeError(400, f"Subscription {sub['id']} is {sub['status']}; only active "
                              "or past_due subscriptions renew.")
        if sub["cancel_at_period_end"]:
            return self.end_period(ctx, sub)
        if sub["status"] == "past_due":
            sub["status"] = "active"
            inv = self.paid_invoice(ctx, sub, "subscription_cycle")
            self.s.emit(ctx, "customer.subscription.updated", sub)
            return inv
        self._next_period(sub)
        return self.paid_invoice(ctx, sub, "subscription_cycle")

    def fail_renewal(self, ctx, sub):
        """The renewal's payment fails: an open invoice, the subscription past_due."""
        if sub["status"] != "active":
            raise StripeError(400, f"Subscription {sub['id']} is {sub['status']}.")
        self._next_period(sub)
        iid, t = new_id("in"), now()
        total = sum(si["price"]["unit_amount"] * si["quantity"] for si in sub["items"]["data"])
        inv = self.s.add({
            "id": iid, "object": "invoice", "amount_due": total, "amount_paid": 0,
            "amount_remaining": total, "attempt_count": 1, "attempted": True,
            "billing_reason": "subscription_cycle", "charge": None, "created": t,
            "currency": sub["currency"], "customer": sub["customer"], "livemode": False,
            "metadata": {}, "paid": False, "payment_intent": None,
            "period_end": sub["current_period_end"], "period_start": sub["current_period_start"],
            "status": "open", "subscription": sub["id"],
            "subscription_details": {"metadata": dict(sub["metadata"])},
            "subtotal": total, "total": total,
        })
        sub.update(status="past_due", latest_invoice=iid)
        self.s.emit(ctx, "invoice.payment_failed", inv)
        self.s.emit(ctx, "customer.subscription.updated", sub)
        return inv

    def end_period(self, ctx, sub):
        """The period ends: a subscription set to cancel at period end is canceled."""
        if not sub["cancel_at_period_end"]:
            return self.renew(ctx, sub)
        t = now()
        sub.update(status="canceled", canceled_at=t, ended_at=t)
        self.s.emit(ctx, "customer.subscription.deleted", sub)
        return sub

    def create_price(self, ctx, params):
        if not p_str(params, "product") and not p_obj(params, "product_data"):
            raise StripeError(400, "Missing required param: product_data.",
                              code="parameter_missing", param="product_data")
        price, name, _ = new_price(params, "")
        self.s.add(dict(price, _name=name))
        return price

    def _new_items(self, params, sub):
        """items[n][id] + items[n][price]: each item of sub on another
        recurring price of its currency and interval, checked before any
        changes (no prorations: the emulator bills a change from the next
        renewal, as proration_behavior=none does)."""
        changes = []
        for i, it in enumerate(p_list(params, "items")):
            lab = f"items[{i}]"
            if not isinstance(it, dict):
                raise StripeError(400, f"Invalid object: {lab}", param=lab)
            si = next((x for x in sub["items"]["data"] if x["id"] == it.get("id")), None)
            if si is None:
                raise no_such("subscription_item", it.get("id"), param=f"{lab}[id]", status=400)
            price = self.s.get("price", p_str(it, "price", f"{lab}[price]", required=True),
                               "price", param=f"{lab}[price]")
            if (price["recurring"] is None or price["currency"] != sub["currency"] or
                    (price["recurring"]["interval"], price["recurring"]["interval_count"])
                    != sub["_interval"]):
                raise StripeError(400, "The price must be recurring, in the subscription's "
                                  "currency and billing interval.", param=f"{lab}[price]")
            changes.append((si, price))
        if changes and p_enum(params, "proration_behavior",
                              ["create_prorations", "none", "always_invoice"]) != "none":
            raise StripeError(400, "The emulator bills a price change from the next renewal "
                              "only: pass proration_behavior=none.", param="proration_behavior")
        return changes

    def update_subscription(self, ctx, params, id):
        sub = self.s.get("subscription", id, "subscription")
        cape = p_bool(params, "cancel_at_period_end")
        if sub["status"] == "canceled":
            raise StripeError(400, f"Subscription {id} is canceled; it cannot be updated.")
        for si, price in self._new_items(params, sub):
            si["price"] = view(price)
            sub["_descriptions"][price["id"]] = price["_name"]
        if cape is not None:
            sub.update(cancel_at_period_end=cape,
                       cancel_at=sub["current_period_end"] if cape else None,
                       canceled_at=now() if cape else None)
        md = p_metadata(params)
        if md:
            sub["metadata"].update(md)
        self.s.emit(ctx, "customer.subscription.updated", sub)
        return sub

    def retrieve_subscription(self, ctx, params, id):
        return self.s.get("subscription", id, "subscription")

    def cancel_subscription(self, ctx, params, id):
        sub = self.s.get("subscription", id, "subscription")
        if sub["status"] == "canceled":
            raise StripeError(400, f"No such subscription: '{id}' is already canceled.",
                              code="resource_missing", param="id")
        t = now()
        sub.update(status="canceled", canceled_at=t, ended_at=t)
        self.s.emit(ctx, "customer.subscription.deleted", sub)
        return sub

    def retrieve_invoice(self, ctx, params, id):
        return self.s.get("invoice", id, "invoice")


# ---------------------------------------------------------------------------
# Refunds and disputes
# ---------------------------------------------------------------------------

class Refunds(Resource):
    CHARGED_BACK = ("needs_response", "under_review", "lost")

    def create(self, ctx, params):
        pi_id = p_str(params, "payment_intent")
        ch_id = p_str(params, "charge")
        if not pi_id and not ch_id:
            raise StripeError(400, "One of the following params should be provided for this "
                              "request: payment_intent or charge.", code="parameter_missing")
        pi = None
        if pi_id:
            pi = self.s.get("payment_intent", pi_id, "payment_intent", param="payment_intent")
            if pi["status"] != "succeeded" or not pi["latest_charge"]:
                raise StripeError(400, f"This PaymentIntent ({pi_id}) does not have a successful "
                                  "charge to refund.", param="payment_intent")
        if ch_id:
            ch = self.s.get("charge", ch_id, "charge", param="charge")
            if pi and ch["payment_intent"] != pi["id"]:
                raise StripeError(400, f"The charge {ch_id} does not belong to the "
                                  f"PaymentIntent {pi_id}.", param="charge")
        else:
            ch = self.s.objects["charge"][pi["latest_charge"]]
        if ch["status"] != "succeeded":
            raise StripeError(400, f"Charge {ch['id']} has not succeeded and cannot be refunded.",
                              param="charge")
        # A chargeback takes the money back through the bank: until it is
        # won, a refund would pay the customer twice (an inquiry, not yet a
        # chargeback, may still be refunded).
        if any(dp["charge"] == ch["id"] and dp["status"] in self.CHARGED_BACK
               for dp in self.s.objects["dispute"].values()):
            raise StripeError(400, f"Charge {ch['id']} has been charged back; "
                              "it cannot be refunded.", code="charge_disputed")
        remaining = ch["amount"] - ch["amount_refunded"]
        if remaining <= 0:
            raise StripeError(400, f"Charge {ch['id']} has already been refunded.",
                              code="charge_already_refunded")
        amount = p_int(params, "amount")
        if amount is None:
            amount = remaining
        if amount <= 0:
            raise StripeError(400, "Invalid positive integer", code="parameter_invalid_integer",
                              param="amount")
        if amount > remaining:
            raise StripeError(400, f"Refund amount ({format_money(amount, ch['currency'])}) is "
                              "greater than unrefunded amount on charge "
                              f"({format_money(remaining, ch['currency'])})",
                              code="amount_too_large", param="amount")
        reason = p_enum(params, "reason", ["duplicate", "fraudulent", "requested_by_customer"])
        metadata = p_metadata(params)
        reverse_transfer = p_bool(params, "reverse_transfer", default=False)
        refund_fee = p_bool(params, "refund_application_fee", default=False)
        if (reverse_transfer or refund_fee) and not ch.get("transfer"):
            raise StripeError(400, "reverse_transfer and refund_application_fee need a "
                              "destination charge.", param="reverse_transfer")
        re_ = self.s.add({
            "id": new_id("re"), "object": "refund", "amount": amount,
            "balance_transaction": None, "charge": ch["id"], "created": now(),
            "currency": ch["currency"], "destination_details": {"type": "card", "card": {}},
            "livemode": False, "metadata": metadata, "payment_intent": ch["payment_intent"],
            "reason": reason, "receipt_number": None, "source_transfer_reversal": None,
            "status": "succeeded", "transfer_reversal": None,
        })
        if reverse_transfer:
            re_["transfer_reversal"] = self.emu.connect.reverse(ch, amount)
        if refund_fee:
            self.emu.connect.refund_fee(ch, amount)
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
        ch["refunds"]["data"].insert(0, view(re_))
        ch["refunds"]["total_count"] += 1
        self.s.emit(ctx, "charge.refunded", ch)
        self.s.emit(ctx, "refund.created", re_)
        return re_

    def retrieve(self, ctx, params, id):
        return self.s.get("refund", id, "refund")


class Connect(Resource):
    """Express accounts, onboarding links, and destination charges: the whole
    amount is transferred to the account and the application fee is taken
    back from it; refunds can reverse the transfer and refund the fee in
    proportion (rounded half up)."""

    def create_account(self, ctx, params):
        kind = p_enum(params, "type", ["express", "standard", "custom"], required=True)
        acct = self.s.add({
            "id": new_id("acct", 16), "object": "account", "type": kind,
            "email": p_str(params, "email"), "country": p_str(params, "country") or "US",
            "charges_enabled": False, "payouts_enabled": False, "details_submitted": False,
            "created": now(), "metadata": p_metadata(params),
            "requirements": {"currently_due": ["external_account", "tos_acceptance.date"],
                             "disabled_reason": "requirements.past_due"},
        })
        return acct

    def retrieve_account(self, ctx, params, id):
        return self.s.get("account", id, "account")

    def create_link(self, ctx, params):
        acct = self.s.get("account", p_str(params, "account", required=True), "account",
                          param="account")
        p_enum(params, "type", ["account_onboarding", "account_update"], required=True)
        for name in ("refresh_url", "return_url"):
            p_str(params, name, required=True)
        t = now()
        # the hosted onboarding page sends the person back to the latest link's return_url
        acct["_return_url"] = p_str(params, "return_url")
        acct["_refresh_url"] = p_str(params, "refresh_url")
        return {"object": "account_link", "created": t, "expires_at": t + 300,
                "url": f"{self.emu.public_url}/connect/onboarding/{acct['id']}"}

    def onboard(self, ctx, acct):
        acct.update(charges_enabled=True, payouts_enabled=True, details_submitted=True,
                    requirements={"currently_due": [], "disabled_reason": None})
        self.s.emit(ctx, "account.updated", acct)
        return acct

    def destination_charge(self, ch, pi):
        dest, fee = pi["transfer_data"]["destination"], pi.get("application_fee_amount") or 0
        tr = self.s.add({
            "id": new_id("tr"), "object": "transfer", "amount": ch["amount"],
            "amount_reversed": 0, "created": now(), "currency": ch["currency"],
            "destination": dest, "source_transaction": ch["id"], "reversed": False,
            "reversals": empty_list("/v1/transfers/reversals"),
        })
        ch.update(transfer=tr["id"], destination=dest)
        if fee:
            af = self.s.add({
                "id": new_id("fee"), "object": "application_fee", "account": dest,
                "amount": fee, "amount_refunded": 0, "charge": ch["id"], "created": now(),
                "currency": ch["currency"], "refunded": False,
                "refunds": empty_list("/v1/application_fees/refunds"),
            })
            ch["application_fee"] = af["id"]

    @staticmethod
    def _share(part, amount, whole):
        return (2 * part * amount + whole) // (2 * whole) if whole else 0

    def _give_back(self, parent, done_key, flag, child_type, prefix, link, ch, amount):
        """A proportional part of parent back to the platform, as a child object."""
        back = min(self._share(parent["amount"], amount, ch["amount"]),
                   parent["amount"] - parent[done_key])
        child = self.s.add({"id": new_id(prefix), "object": child_type, "amount": back,
                            "created": now(), "currency": ch["currency"], link: parent["id"]})
        parent[done_key] += back
        parent[flag] = parent[done_key] >= parent["amount"]
        parent["reversals" if child_type == "transfer_reversal" else "refunds"]["data"] \
            .insert(0, view(child))
        return child["id"]

    def reverse(self, ch, amount):
        tr = self.s.objects["transfer"][ch["transfer"]]
        return self._give_back(tr, "amount_reversed", "reversed", "transfer_reversal", "trr",
                               "transfer", ch, amount)

    def refund_fee(self, ch, amount):
        if not ch.get("application_fee"):
            return None
        af = self.s.objects["application_fee"][ch["application_fee"]]
        return self._give_back(af, "amount_refunded", "refunded", "fee_refund", "fr", "fee",
                               ch, amount)

    def retrieve_transfer(self, ctx, params, id):
        return self.s.get("transfer", id, "transfer")

    def retrieve_fee(self, ctx, params, id):
        return self.s.get("application_fee", id, "application_fee")


class Disputes(Resource):
    # Where each opening status may close: an inquiry (warning_needs_response)
    # is closed without a chargeback; a chargeback is won, lost or prevented.
    CLOSES = {"warning_needs_response": ("warning_closed",),
              "warning_under_review": ("warning_closed",),
              "needs_response": ("won", "lost", "prevented"),
              "under_review": ("won", "lost")}
    # Submitting evidence puts a dispute under the bank's review; evidence
    # can be given only while a response is awaited.
    SUBMITTED = {"warning_needs_response": "warning_under_review",
                 "needs_response": "under_review"}

    def open(self, ctx, ch, amount, inquiry=False):
        if ch["status"] != "succeeded":
            raise StripeError(400, f"Charge {ch['id']} did not succeed; it cannot be disputed.")
        if amount is None:
            amount = ch["amount"]
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= ch["amount"]:
            raise StripeError(400, "amount must be an integer between 1 and the charge amount.",
                              param="amount")
        t = now()
        dp = self.s.add({
            "id": new_id("dp"), "object": "dispute", "amount": amount,
            "balance_transactions": [], "charge": ch["id"], "created": t,
            "currency": ch["currency"], "evidence": {},
            "evidence_details": {"due_by": t + 7 * 86400, "has_evidence": False,
                                 "past_due": False, "submission_count": 0},
            "is_charge_refundable": False, "livemode": False, "metadata": {},
            "payment_intent": ch["payment_intent"], "reason": "fraudulent",
            "status": "warning_needs_response" if inquiry else "needs_response",
        })
        ch["disputed"] = True
        self.s.emit(ctx, "charge.dispute.created", dp)
        return dp

    def retrieve(self, ctx, params, id):
        return self.s.get("dispute", id, "dispute")

    def update(self, ctx, params, id):
        # Stripe's "Update a dispute": evidence (text fields), metadata, and
        # submit (default true), which sends all the evidence to the bank.
        dp = self.s.get("dispute", id, "dispute")
        evidence = params.get("evidence") or {}
        if not isinstance(evidence, dict):
            raise StripeError(400, "Invalid hash", param="evidence")
        for name in evidence:
            p_str(evidence, name, f"evidence[{name}]", max_len=20000)
        submit = p_bool(params, "submit", default=True)
        if dp["status"] not in self.SUBMITTED:
            raise StripeError(400, f"This dispute is {dp['status']}: its evidence can no longer"
                              " be changed or submitted.")
        metadata = params.get("metadata")
        if isinstance(metadata, dict):
            dp["metadata"].update(metadata)
        dp["evidence"].update(evidence)
        details = dp["evidence_details"]
        details["has_evidence"] = bool(dp["evidence"])
        if submit:
            dp["status"] = self.SUBMITTED[dp["status"]]
            details["submission_count"] += 1
        self.s.emit(ctx, "charge.dispute.updated", dp)
        return dp

    def escalate(self, ctx, dp):
        # The bank turns an inquiry into a chargeback: the same dispute, its
        # status moved on (Stripe's charge.dispute.updated), the money taken.
        if not dp["status"].startswith("warning_") or dp["status"] == "warning_closed":
            raise StripeError(400, f"Dispute {dp['id']} is not an open inquiry.")
        dp["status"] = "needs_response"
        self.s.emit(ctx, "charge.dispute.updated", dp)
        return dp

    def close(self, ctx, dp, outcome):
        if dp["status"] not in self.CLOSES:
            raise StripeError(400, f"Dispute {dp['id']} is already {dp['status']}.")
        if outcome not in self.CLOSES[dp["status"]]:
            raise StripeError(400, "status must be one of " + ", ".join(
                self.CLOSES[dp["status"]]) + " for this dispute", param="status")
        dp["status"] = outcome
        self.s.emit(ctx, "charge.dispute.closed", dp)
        return dp


# ---------------------------------------------------------------------------
# Events (list and retrieve)
# ---------------------------------------------------------------------------

class Events(Resource):
    def retrieve(self, ctx, params, id):
        return self.s.get("event", id, "event")

    def _cursor(self, params, name):
        ident = p_str(params, name)
        if ident is None:
            return None
        if ident not in self.s.event_seq:
            raise no_such("event", ident, param=name, status=400)
        return self.s.event_seq[ident]

    def list(self, ctx, params):
        limit = p_int(params, "limit", minimum=1)
        limit = 10 if limit is None else limit
        if limit > 100:
            raise StripeError(400, "This value must be less than or equal to 100.", param="limit")
        after = self._cursor(params, "starting_after")
        before = self._cursor(params, "ending_before")
        if after is not None and before is not None:
            raise StripeError(400, "You may only specify one of these parameters: "
                              "ending_before, starting_after.")
        etype = p_str(params, "type")
        types = p_list(params, "types")
        if etype and types:
            raise StripeError(400, "You may only specify one of these parameters: type, types.")
        if len(types) > 20:
            raise StripeError(400, "You may pass at most 20 types.", param="types")
        patterns = [etype] if etype else [t for t in types if isinstance(t, str)]
        created = params.get("created")
        bounds = {}
        if isinstance(created, dict):
            for op in ("gt", "gte", "lt", "lte"):
                v = p_int(created, op, f"created[{op}]")
                if v is not None:
                    bounds[op] = v
        elif created not in (None, ""):
            bounds["eq"] = p_int(params, "created")
        delivery = p_bool(params, "delivery_success")

        def keep(e):
            if patterns and not any(fnmatch.fnmatchcase(e["type"], p) for p in patterns):
                return False
            c = e["created"]
            if ("gt" in bounds and not c > bounds["gt"]) or \
               ("gte" in bounds and not c >= bounds["gte"]) or \
               ("lt" in bounds and not c < bounds["lt"]) or \
               ("lte" in bounds and not c <= bounds["lte"]) or \
               ("eq" in bounds and c != bounds["eq"]):
                return False
            if delivery is not None and self.s.event_state[e["id"]]["delivered"] != delivery:
                return False
            return True

        objs = self.s.objects["event"]
        newest_first = [objs[i] for i in reversed(self.s.event_order)]
        if before is not None:
            newer = [e for e in newest_first if self.s.event_seq[e["id"]] > before and keep(e)]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            older = [e for e in newest_first
                     if (after is None or self.s.event_seq[e["id"]] < after) and keep(e)]
            page, has_more = older[:limit], len(older) > limit
        return {"object": "list", "data": page, "has_more": has_more, "url": "/v1/events"}


# ---------------------------------------------------------------------------
# Webhook delivery: a worker pool, retries per schedule, hold/release
# ---------------------------------------------------------------------------

class Webhooks:
    """Delivers events to the configured endpoint.

    Lock order: store.lock, then self.cond; the network is touched with
    neither held.  Each attempt signs the event's stored body afresh.
    """

    def __init__(self, emu, workers, timeout):
        self.emu = emu
        self.s = emu.store
        self.timeout = timeout
        self.cond = threading.Condition()
        self.heap = []
        self.seq = itertools.count()
        self.holding = False
        self.held = []
        for i in range(max(1, workers)):
            threading.Thread(target=self._worker, name=f"webhook-{i}", daemon=True).start()

    # called with store.lock held
    def submit(self, event_id):
        with self.cond:
            if self.holding:
                self.held.append(event_id)
            else:
                self._push(0.0, event_id, 1, "initial", self.s.generation)

    def _push(self, delay, event_id, chain_no, kind, gen):
        heapq.heappush(self.heap, (time.monotonic() + delay, next(self.seq),
                                   event_id, chain_no, kind, gen))
        self.cond.notify()

    def reset(self):
        with self.cond:
            self.heap.clear()
            self.held.clear()
            self.holding = False

    def _worker(self):
        while True:
            with self.cond:
                while True:
                    if self.heap:
                        wait = self.heap[0][0] - time.monotonic()
                        if wait <= 0:
                            item = heapq.heappop(self.heap)
                            break
                        self.cond.wait(wait)
                    else:
                        self.cond.wait()
            _, _, event_id, chain_no, kind, gen = item
            try:
                self.attempt(event_id, kind, chain_no=chain_no, gen=gen)
            except Exception:
                traceback.print_exc()

    def attempt(self, event_id, kind, chain_no=None, gen=None):
        """One delivery attempt; chain_no set means failures are retried.

        Returns (status or None, error or None), or None if nothing was sent.
        """
        with self.s.lock:
            if gen is not None and gen != self.s.generation:
                return None
            body = self.s.event_body.get(event_id)
            if body is None:
                return None
            state = self.s.event_state[event_id]
            if kind == "retry" and state["delivered"]:
                return None
            cfg = dict(self.s.webhook)
            gen = self.s.generation
            etype = self.s.objects["event"][event_id]["type"]
        started = time.time()
        if not cfg["url"] or not cfg["enabled"]:
            status, error = None, "webhook endpoint disabled or not configured"
        else:
            status, error = self._post(cfg["url"], cfg["secret"], body)
        elapsed = int((time.time() - started) * 1000)
        ok = status is not None and 200 <= status < 300
        with self.s.lock:
            if gen != self.s.generation:
                return status, error
            state["attempts"] += 1
            self.s.deliveries.append({
                "event_id": event_id, "type": etype, "attempt": state["attempts"],
                "kind": kind, "status": status, "error": error, "time": started,
                "duration_ms": elapsed, "url": cfg["url"],
            })
            evt = self.s.objects["event"][event_id]
            if ok:
                state["delivered"] = True
                evt["pending_webhooks"] = 0
            elif chain_no is not None and cfg["url"] and cfg["enabled"]:
                schedule = cfg["retry_schedule"]
                if chain_no <= len(schedule) and not state["delivered"]:
                    with self.cond:
                        self._push(schedule[chain_no - 1], event_id, chain_no + 1, "retry", gen)
                else:
                    state["gave_up"] = True
        self.emu.changed()
        log(f"webhook {event_id} {etype} {kind} -> {status if status is not None else error} "
            f"({elapsed}ms)")
        return status, error

    def _post(self, url, secret, body):
        t = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Accept": "*/*; q=0.5, application/xml",
            "Cache-Control": "no-cache",
            "Connection": "close",
        }
        if secret:
            mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
            headers["Stripe-Signature"] = f"t={t},v1={mac}"
        u = urlsplit(url)
        cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        conn = None
        try:
            conn = cls(u.hostname, u.port, timeout=self.timeout)
            conn.request("POST", (u.path or "/") + (f"?{u.query}" if u.query else ""),
                         body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status, None
        except (OSError, http.client.HTTPException, ValueError) as e:
            return None, f"{type(e).__name__}: {e}"
        finally:
            if conn is not None:
                conn.close()

    # --- controls ---
    def hold(self):
        with self.cond:
            self.holding = True

    def take_held(self, order):
        with self.cond:
            ids, self.held, self.holding = self.held, [], False
        return list(reversed(ids)) if order == "reverse" else ids


# ---------------------------------------------------------------------------
# Test controls under /_emu/ (JSON in and out, no auth)
# ---------------------------------------------------------------------------

class Controls(Resource):
    def health(self, data):
        return {"ok": True}

    def state(self, data):
        with self.s.lock:
            out = {plural: len(self.s.objects[t]) for t, plural in OBJECT_TYPES.items()}
            out.update(
                deliveries=len(self.s.deliveries),
                undelivered_events=sum(1 for st in self.s.event_state.values()
                                       if not st["delivered"]),
                held_events=len(self.emu.webhooks.held),
                holding=self.emu.webhooks.holding,
                idempotency_keys=len(self.s.idem),
                pending_failures=self.s.fail_count,
            )
            return out

    def reset(self, data):
        with self.s.lock:
            self.s.reset()
            self.emu.webhooks.reset()
        return {"ok": True}

    def fail(self, data):
        count, status = data.get("count", 1), data.get("status", 500)
        path = data.get("path", "")
        if not isinstance(count, int) or count < 0 or not isinstance(status, int) \
                or not 100 <= status <= 599 or not isinstance(path, str):
            raise StripeError(400, "count must be a non-negative integer, status an HTTP "
                              "status and path a string")
        with self.s.lock:
            self.s.fail_count, self.s.fail_status, self.s.fail_path = count, status, path
        return {"count": count, "status": status, "path": path}

    def slow(self, data):
        """The next count answers to requests (GETs unless method says) of
        paths starting with path are made at once (the object as it is then,
        its events sent) and answered ms later, as a slow network would: a
        copy that is stale by the time it arrives, a change whose events
        arrive before its answer."""
        count, ms, path = data.get("count", 1), data.get("ms", 1000), data.get("path", "")
        method = data.get("method", "GET")
        if not isinstance(count, int) or count < 0 or not isinstance(ms, int) \
                or not 0 <= ms <= 60000 or not isinstance(path, str) \
                or method not in ("GET", "POST", "DELETE"):
            raise StripeError(400, "count must be a non-negative integer, ms 0..60000, "
                              "path a string and method GET, POST or DELETE")
        with self.s.lock:
            self.s.slow_count, self.s.slow_ms, self.s.slow_path = count, ms, path
            self.s.slow_method = method
        return {"count": count, "ms": ms, "path": path, "method": method}

    def delete_customer(self, data, id):
        with self.s.lock:
            return self.emu.customers.delete(CONTROL, {}, id)

    def pay_session(self, data, id):
        with self.s.lock:
            cs = self.s.get("checkout.session", id, "checkout.session")
            if data.get("async"):
                return self.emu.sessions.pay_async(CONTROL, cs)
            return self.emu.sessions.pay(CONTROL, cs, str(data.get("card", CARD_OK)))

    def async_session(self, data, id):
        outcome = data.get("outcome")
        if outcome not in ("succeeded", "failed"):
            raise StripeError(400, 'outcome must be "succeeded" or "failed"', param="outcome")
        with self.s.lock:
            cs = self.s.get("checkout.session", id, "checkout.session")
            return self.emu.sessions.async_outcome(CONTROL, cs, outcome)

    def pi_succeed(self, data, id):
        with self.s.lock:
            pi = self.s.get("payment_intent", id, "payment_intent")
            return self.emu.payment_intents.confirm_with(CONTROL, pi, "pm_card_visa")

    def pi_fail(self, data, id):
        with self.s.lock:
            pi = self.s.get("payment_intent", id, "payment_intent")
            return self.emu.payment_intents.confirm_with(CONTROL, pi, "pm_card_chargeDeclined")

    def renew(self, data, id):
        with self.s.lock:
            sub = self.s.get("subscription", id, "subscription")
            return self.emu.billing.renew(CONTROL, sub)

    def fail_renewal(self, data, id):
        with self.s.lock:
            sub = self.s.get("subscription", id, "subscription")
            return self.emu.billing.fail_renewal(CONTROL, sub)

    def end_period(self, data, id):
        with self.s.lock:
            sub = self.s.get("subscription", id, "subscription")
            return self.emu.billing.end_period(CONTROL, sub)

    def dispute(self, data, id):
        with self.s.lock:
            ch = self.s.get("charge", id, "charge")
            return self.emu.disputes.open(CONTROL, ch, data.get("amount"),
                                          data.get("inquiry") is True)

    def onboard(self, data, id):
        with self.s.lock:
            acct = self.s.get("account", id, "account")
            return self.emu.connect.onboard(CONTROL, acct)

    def close_dispute(self, data, id):
        with self.s.lock:
            dp = self.s.get("dispute", id, "dispute")
            return self.emu.disputes.close(CONTROL, dp, data.get("status"))

    def escalate_dispute(self, data, id):
        with self.s.lock:
            dp = self.s.get("dispute", id, "dispute")
            return self.emu.disputes.escalate(CONTROL, dp)

    def deliveries(self, data):
        eid = data.get("event_id")
        with self.s.lock:
            rows = [d for d in self.s.deliveries if not eid or d["event_id"] == eid]
            return {"object": "list", "data": copy.deepcopy(rows)}

    def idempotency_keys(self, data):
        """The Idempotency-Keys the API has seen (optionally for one path)."""
        path = data.get("path")
        with self.s.lock:
            rows = [{"key": k, "path": e["path"]} for k, e in self.s.idem.items()
                    if not path or e["path"] == path]
            return {"object": "list", "data": rows}

    def deliver(self, data, id):
        times, delay_ms = data.get("times", 1), data.get("delay_ms", 0)
        if not isinstance(times, int) or not 1 <= times <= 100 \
                or not isinstance(delay_ms, (int, float)) or delay_ms < 0:
            raise StripeError(400, "times must be 1..100 and delay_ms >= 0")
        with self.s.lock:
            self.s.get("event", id, "event")
            if not self.s.webhook["url"]:
                raise StripeError(400, "No webhook endpoint is configured.")
        wh = self.emu.webhooks
        if delay_ms == 0:
            results = [wh.attempt(id, "manual") or (None, "not sent") for _ in range(times)]
            return {"statuses": [r[0] for r in results], "errors": [r[1] for r in results]}

        def later():
            for _ in range(times):
                time.sleep(delay_ms / 1000.0)
                wh.attempt(id, "manual")
        threading.Thread(target=later, daemon=True).start()
        return {"scheduled": times, "delay_ms": delay_ms}

    def hold(self, data):
        self.emu.webhooks.hold()
        return {"holding": True}

    def release(self, data):
        order = data.get("order", "fifo")
        delay_ms = data.get("delay_ms", 0)
        if order not in ("fifo", "reverse") or not isinstance(delay_ms, (int, float)) \
                or delay_ms < 0:
            raise StripeError(400, 'order must be "fifo" or "reverse" and delay_ms >= 0')
        wh = self.emu.webhooks
        ids = wh.take_held(order)
        if delay_ms == 0:
            results = [wh.attempt(i, "release", chain_no=1) or (None, "not sent") for i in ids]
            return {"released": ids, "statuses": [r[0] for r in results]}

        def later():
            for n, i in enumerate(ids):
                if n:
                    time.sleep(delay_ms / 1000.0)
                wh.attempt(i, "release", chain_no=1)
        threading.Thread(target=later, daemon=True).start()
        return {"released": ids, "delay_ms": delay_ms}

    def config(self, data):
        with self.s.lock:
            wh = self.s.webhook
            if "url" in data:
                if data["url"] is not None and not isinstance(data["url"], str):
                    raise StripeError(400, "url must be a string or null", param="url")
                wh["url"] = data["url"] or None
            if "enabled" in data:
                if not isinstance(data["enabled"], bool):
                    raise StripeError(400, "enabled must be a boolean", param="enabled")
                wh["enabled"] = data["enabled"]
            if "secret" in data:
                wh["secret"] = str(data["secret"] or "").split(",")[0] or None
            if "retry_schedule" in data:
                rs = data["retry_schedule"]
                if isinstance(rs, str):
                    rs = parse_schedule(rs)
                if not isinstance(rs, list) or not all(
                        isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                        for x in rs):
                    raise StripeError(400, "retry_schedule must be a list of seconds",
                                      param="retry_schedule")
                wh["retry_schedule"] = [float(x) for x in rs]
            return {"url": wh["url"], "enabled": wh["enabled"],
                    "retry_schedule": wh["retry_schedule"], "secret_set": bool(wh["secret"]),
                    "holding": self.emu.webhooks.holding}


# ---------------------------------------------------------------------------
# Hosted checkout page: GET/POST /checkout/pay/{cs_id}
# ---------------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Pay {total} - Checkout (Stripe emulator)</title>
<style>body{{font-family:sans-serif;max-width:36em;margin:2em auto}}
table{{border-collapse:collapse;width:100%}}td,th{{padding:.3em;border-bottom:1px solid #ddd;text-align:left}}
.error{{color:#b00;font-weight:bold}}</style></head>
<body>
<h1>Checkout</h1>
<p>Test mode &mdash; Stripe emulator. Session <code>{id}</code></p>
<table><tr><th>Item</th><th>Qty</th><th>Price</th><th>Amount</th></tr>
{rows}
<tr><th colspan="3">Total</th><th id="total">{total}</th></tr></table>
{body}
</body></html>
"""


class HostedPage(Resource):
    def line_rows(self, cs):
        """The session's line items as table rows (HTML)."""
        rows = []
        for li in cs["_line_items"]:
            price = li["price"]
            per = f" / {price['recurring']['interval']}" if price["recurring"] else ""
            desc = li["_product_description"]
            rows.append("<tr><td>{}{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>".format(
                html.escape(li["description"]),
                f"<br><small>{html.escape(desc)}</small>" if desc else "",
                li["quantity"], html.escape(format_money(price["unit_amount"], li["currency"])),
                per, html.escape(format_money(li["amount_total"], li["currency"]))))
        return rows

    def render(self, cs, message=None, status=200):
        rows = self.line_rows(cs)
        action = html.escape(f"/checkout/pay/{cs['id']}")
        if cs["status"] == "complete":
            target = self.emu.sessions.redirect_url(cs)
            body = "<p>This session is already paid.</p>" + (
                f'<p><a href="{html.escape(target)}">Continue</a></p>' if target else "")
        elif cs["status"] != "open":
            body = "<p class=\"error\">This Checkout Session is no longer active.</p>"
        else:
            err = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
            cancel = (f'<p><a href="{html.escape(cs["cancel_url"])}">Cancel</a></p>'
                      if cs["cancel_url"] else "")
            body = (f'{err}<form method="post" action="{action}">'
                    '<label>Card number <input name="card" value="" '
                    'placeholder="4242 4242 4242 4242" inputmode="numeric" autocomplete="off">'
                    '</label> <button type="submit">Pay</button></form>'
                    '<p><small>4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined.'
                    '</small></p>' + cancel)
        page = PAGE.format(id=html.escape(cs["id"]), rows="\n".join(rows), body=body,
                           total=html.escape(format_money(cs["amount_total"], cs["currency"])))
        return Response.html(status, page)

    def not_found(self):
        return Response.html(404, "<!doctype html><title>Not found</title>"
                                  "<p>No such checkout session.</p>")

    def get(self, method, query, headers, body, id):
        with self.s.lock:
            cs = self.s.objects["checkout.session"].get(id)
            return self.not_found() if cs is None else self.render(cs)

    def post(self, method, query, headers, body, id):
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        with self.s.lock:
            cs = self.s.objects["checkout.session"].get(id)
            if cs is None:
                return self.not_found()
            try:
                self.emu.sessions.pay(CONTROL, cs, form.get("card", ""))
            except StripeError as e:
                return self.render(cs, e.body["error"]["message"], e.status)
            target = self.emu.sessions.redirect_url(cs)
            if target is None:
                return self.render(cs)
            return Response(303, b"", [("Location", target)], "text/plain")


class OnboardingPage(Resource):
    """The hosted Express onboarding an Account Link points at: one button
    finishes onboarding (as /_emu/accounts/{id}/onboard does) and returns the
    person to the link's return_url."""

    def render(self, acct):
        done = acct["charges_enabled"] and acct["payouts_enabled"]
        back = acct.get("_return_url")
        if done:
            body = "<p>Your account is set up: charges and payouts are enabled.</p>" + (
                f'<p><a href="{html.escape(back)}">Return</a></p>' if back else "")
        else:
            body = (f'<form method="post" action="/connect/onboarding/{html.escape(acct["id"])}">'
                    '<p>Test mode: no details are needed.</p>'
                    '<button type="submit" id="finish-onboarding">Finish onboarding</button></form>')
        return Response.html(200, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                                  "<title>Set up payouts</title></head><body>"
                                  f"<h1>Set up payouts for {html.escape(acct['id'])}</h1>"
                                  f"{body}</body></html>")

    def not_found(self):
        return Response.html(404, "<!doctype html><title>Not found</title>"
                                  "<p>No such account.</p>")

    def get(self, method, query, headers, body, id):
        with self.s.lock:
            acct = self.s.objects["account"].get(id)
            return self.not_found() if acct is None else self.render(acct)

    def post(self, method, query, headers, body, id):
        with self.s.lock:
            acct = self.s.objects["account"].get(id)
            if acct is None:
                return self.not_found()
            if not (acct["charges_enabled"] and acct["payouts_enabled"]):
                self.emu.connect.onboard(CONTROL, acct)
            back = acct.get("_return_url")
            if back is None:
                return self.render(acct)
            return Response(303, b"", [("Location", back)], "text/plain")


# ---------------------------------------------------------------------------
# HTTP plumbing: responses, the route table, the request handler
# ---------------------------------------------------------------------------

class Response:
    def __init__(self, status, body, headers=None, ctype="application/json"):
        self.status = status
        self.body = body
        self.headers = list(headers or [])
        self.ctype = ctype

    @classmethod
    def json(cls, status, obj, headers=None):
        return cls(status, dumps(obj), headers)

    @classmethod
    def html(cls, status, text):
        return cls(status, text.encode("utf-8"), ctype="text/html; charset=utf-8")


def log(msg):
    ts = time.strftime("%Y-%m-%dT%H:%M:%S")
    sys.stderr.write(f"{ts} stripe-emu {msg}\n")
    sys.stderr.flush()


class Emulator:
    def __init__(self, api_key, public_url, webhook, workers=4, webhook_timeout=10.0,
                 state_file=None):
        self.api_key = api_key
        self.public_url = public_url.rstrip("/")
        self.store = Store(webhook)
        self.customers = Customers(self)
        self.charges = Charges(self)
        self.payment_intents = PaymentIntents(self)
        self.sessions = CheckoutSessions(self)
        self.billing = Billing(self)
        self.refunds = Refunds(self)
        self.disputes = Disputes(self)
        self.connect = Connect(self)
        self.events = Events(self)
        self.controls = Controls(self)
        self.hosted = HostedPage(self)
        self.onboarding = OnboardingPage(self)
        self.stripe_js = StripeJs(self, {
            "Response": Response, "StripeError": StripeError, "TEST_CARDS": TEST_CARDS,
            "CONTROL": CONTROL, "format_money": format_money})
        self.webhooks = Webhooks(self, workers, webhook_timeout)
        self.store.deliverer = self.webhooks
        self.routes = self._compile(self.route_table())
        self.persist = Persistence(self.store, state_file) if state_file else None
        if self.persist and self.persist.load():
            log(f"state loaded from {state_file}: {len(self.store.event_order)} events")

    def changed(self):
        """Called after anything that may have changed the store."""
        if self.persist:
            self.persist.mark()

    def list_of_kind(self, kind, url, filters):
        """A GET list endpoint of one kind of stored object (see paged_list)."""
        def handler(ctx, params):
            return paged_list(self.store.objects[kind], params, kind, url, filters)
        return handler

    def route_table(self):
        """(method, path, handler).  /v1 handlers take (ctx, params, **ids) and
        run under the store lock; /_emu handlers take (data, **ids) and lock
        for themselves; page handlers take the raw request."""
        pi, cs, bl, c = self.payment_intents, self.sessions, self.billing, self.controls
        return [
            ("POST", "/v1/customers", self.customers.create),
            ("GET", "/v1/customers/{id}", self.customers.retrieve),
            ("DELETE", "/v1/customers/{id}", self.customers.delete),
            ("POST", "/v1/checkout/sessions", cs.create),
            ("GET", "/v1/checkout/sessions", cs.list),
            ("GET", "/v1/checkout/sessions/{id}", cs.retrieve),
            ("GET", "/v1/checkout/sessions/{id}/line_items", cs.line_items),
            ("POST", "/v1/checkout/sessions/{id}/expire", cs.expire),
            ("POST", "/v1/payment_intents", pi.create),
            ("GET", "/v1/payment_intents", self.list_of_kind(
                "payment_intent", "/v1/payment_intents", ("customer",))),
            ("GET", "/v1/payment_intents/{id}", pi.retrieve),
            ("POST", "/v1/payment_intents/{id}", pi.update),
            ("POST", "/v1/payment_intents/{id}/confirm", pi.confirm),
            ("POST", "/v1/payment_intents/{id}/cancel", pi.cancel),
            ("GET", "/v1/charges/{id}", self.charges.retrieve),
            ("POST", "/v1/refunds", self.refunds.create),
            ("GET", "/v1/refunds", self.list_of_kind(
                "refund", "/v1/refunds", ("charge", "payment_intent"))),
            ("GET", "/v1/refunds/{id}", self.refunds.retrieve),
            ("GET", "/v1/subscriptions/{id}", bl.retrieve_subscription),
            ("POST", "/v1/subscriptions/{id}", bl.update_subscription),
            ("POST", "/v1/prices", bl.create_price),
            ("DELETE", "/v1/subscriptions/{id}", bl.cancel_subscription),
            ("GET", "/v1/invoices", self.list_of_kind(
                "invoice", "/v1/invoices",
                ("customer", "subscription", "status", "collection_method"))),
            ("GET", "/v1/invoices/{id}", bl.retrieve_invoice),
            ("GET", "/v1/disputes/{id}", self.disputes.retrieve),
            ("POST", "/v1/disputes/{id}", self.disputes.update),
            ("POST", "/v1/accounts", self.connect.create_account),
            ("GET", "/v1/accounts/{id}", self.connect.retrieve_account),
            ("POST", "/v1/account_links", self.connect.create_link),
            ("GET", "/v1/transfers/{id}", self.connect.retrieve_transfer),
            ("GET", "/v1/application_fees/{id}", self.connect.retrieve_fee),
            ("GET", "/v1/events", self.events.list),
            ("GET", "/v1/events/{id}", self.events.retrieve),
            ("GET", "/_emu/health", c.health),
            ("GET", "/_emu/state", c.state),
            ("POST", "/_emu/reset", c.reset),
            ("POST", "/_emu/fail", c.fail),
            ("POST", "/_emu/slow", c.slow),
            ("POST", "/_emu/customers/{id}/delete", c.delete_customer),
            ("POST", "/_emu/checkout/sessions/{id}/pay", c.pay_session),
            ("POST", "/_emu/checkout/sessions/{id}/async", c.async_session),
            ("POST", "/_emu/payment_intents/{id}/succeed", c.pi_succeed),
            ("POST", "/_emu/payment_intents/{id}/fail", c.pi_fail),
            ("POST", "/_emu/subscriptions/{id}/renew", c.renew),
            ("POST", "/_emu/subscriptions/{id}/fail_renewal", c.fail_renewal),
            ("POST", "/_emu/subscriptions/{id}/end_period", c.end_period),
            ("POST", "/_emu/charges/{id}/dispute", c.dispute),
            ("POST", "/_emu/disputes/{id}/close", c.close_dispute),
            ("POST", "/_emu/disputes/{id}/escalate", c.escalate_dispute),
            ("POST", "/_emu/accounts/{id}/onboard", c.onboard),
            ("POST", "/_emu/events/{id}/deliver", c.deliver),
            ("GET", "/_emu/deliveries", c.deliveries),
            ("GET", "/_emu/idempotency_keys", c.idempotency_keys),
            ("POST", "/_emu/webhooks/hold", c.hold),
            ("POST", "/_emu/webhooks/release", c.release),
            ("GET", "/_emu/webhooks/config", c.config),
            ("POST", "/_emu/webhooks/config", c.config),
            ("GET", "/checkout/pay/{id}", self.hosted.get),
            ("POST", "/checkout/pay/{id}", self.hosted.post),
            ("GET", "/connect/onboarding/{id}", self.onboarding.get),
            ("POST", "/connect/onboarding/{id}", self.onboarding.post),
        ] + self.stripe_js.routes()

    @staticmethod
    def _compile(table):
        out = []
        for method, path, fn in table:
            rx = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[A-Za-z0-9_]+)", path) + "$")
            out.append((method, rx, fn, path.split("/")[1]))
        return out

    # --- dispatch ---
    def dispatch(self, method, path, query, headers, body):
        allowed = False
        for m, rx, fn, kind in self.routes:
            match = rx.match(path)
            if not match:
                continue
            if m != method:
                allowed = True
                continue
            args = match.groupdict()
            if kind == "v1":
                return self.api(method, path, query, headers, body, fn, args)
            if kind == "_emu":
                return self.control(query, body, fn, args)
            return fn(method, query, headers, body, **args)
        if path.startswith("/v1/") or path == "/v1":
            return self.api(method, path, query, headers, body, None, {})
        if allowed:
            return Response.json(405, {"error": {"type": "invalid_request_error",
                                                 "message": "Method not allowed."}})
        return Response.json(404, {"error": {"type": "invalid_request_error",
                                             "message": f"Unrecognized request URL ({method}: {path})."}})

    def _auth(self, headers):
        auth = headers.get("Authorization") or ""
        key = None
        if auth.startswith("Bearer "):
            key = auth[7:].strip()
        elif auth.startswith("Basic "):
            import base64
            try:
                key = base64.b64decode(auth[6:].strip()).decode().split(":")[0]
            except Exception:
                key = None
        if not key:
            raise StripeError(401, "You did not provide an API key. You need to provide your API "
                              "key in the Authorization header, using Bearer auth (e.g. "
                              "'Authorization: Bearer YOUR_SECRET_KEY'). See "
                              "https://stripe.com/docs/api#authentication for details, or we can "
                              "help at https://support.stripe.com/.")
        good = (hmac.compare_digest(key.encode(), self.api_key.encode()) if self.api_key
                else key.startswith(("sk_test_", "rk_test_")))
        if not good:
            masked = (key[:8] + "*" * (len(key) - 12) + key[-4:]) if len(key) > 12 \
                else "*" * len(key)
            raise StripeError(401, f"Invalid API Key provided: {masked}")

    def api(self, method, path, query, headers, body, fn, args):
        request_id = new_id("req", 14)
        base = [("Request-Id", request_id), ("Stripe-Version", API_VERSION)]
        s = self.store
        with s.lock:
            if s.fail_count > 0 and path.startswith(s.fail_path):
                s.fail_count -= 1
                status = s.fail_status
                etype = {429: "rate_limit_error", 401: "authentication_error"}.get(
                    status, "api_error" if status >= 500 else "invalid_request_error")
                return Response.json(status, {"error": {
                    "type": etype, "message": "An error occurred with our connection to "
                    "Stripe. (injected by the emulator)"}}, base)
        try:
            self._auth(headers)
            if fn is None:
                raise StripeError(404, f"Unrecognized request URL ({method}: {path}). Please see "
                                  "https://stripe.com/docs or we can help at "
                                  "https://support.stripe.com/.")
            params = parse_form(query)
            if method in ("POST", "DELETE"):
                params.update(parse_form(body))
        except StripeError as e:
            return Response.json(e.status, e.body, base)
        key = headers.get("Idempotency-Key") if method == "POST" else None
        ctx = Ctx(request_id, key)
        if key:
            base.append(("Idempotency-Key", key))
            resp = self._idempotent(key, path, body, query, base,
                                    lambda: self._run(fn, ctx, params, args, base))
        else:
            resp = self._run(fn, ctx, params, args, base)
        with s.lock:
            slow = s.slow_count > 0 and method == s.slow_method and \
                path.startswith(s.slow_path)
            if slow:
                s.slow_count -= 1
        if slow:
            time.sleep(s.slow_ms / 1000.0)
        return resp

    def _run(self, fn, ctx, params, args, headers):
        with self.store.lock:
            try:
                obj = fn(ctx, params, **args)
                status = 200
                out = view(obj)
                expand = params.get("expand")
                if isinstance(expand, list):
                    for path in expand:
                        if isinstance(path, str):
                            self._expand(out, path.split("."))
                body = dumps(out)
            except StripeError as e:
                status, body = e.status, dumps(e.body)
            return Response(status, body, headers)

    EXPANDABLE = {"customer": "customer", "payment_intent": "payment_intent",
                  "latest_charge": "charge", "charge": "charge", "subscription": "subscription",
                  "invoice": "invoice", "latest_invoice": "invoice"}

    def _expand(self, node, parts):
        if isinstance(node, list):
            for x in node:
                self._expand(x, parts)
            return
        if not isinstance(node, dict) or not parts:
            return
        key, rest = parts[0], parts[1:]
        if key == "line_items" and node.get("object") == "checkout.session" and not rest:
            cs = self.store.objects["checkout.session"].get(node.get("id"))
            if cs:
                node["line_items"] = self.sessions.line_items_list(cs)
            return
        if key not in node:
            return
        val = node[key]
        if isinstance(val, str) and key in self.EXPANDABLE:
            target = self.store.objects[self.EXPANDABLE[key]].get(val)
            if target is not None:
                node[key] = view(target)
        self._expand(node[key], rest)

    def _idempotent(self, key, path, body, query, headers, run):
        s = self.store
        if len(key) > 255:
            return Response.json(400, {"error": {
                "type": "idempotency_error",
                "message": "Idempotency keys can be at most 255 characters long."}}, headers)
        fingerprint = hashlib.sha256(
            repr(sorted(parse_qsl(body.decode("utf-8", "replace") + "&" + query,
                                  keep_blank_values=True))).encode()).hexdigest()
        for _ in range(3):
            with s.lock:
                entry = s.idem.get(key)
                owner = entry is None
                if owner:
                    entry = {"path": path, "fp": fingerprint, "done": threading.Event(),
                             "resp": None}
                    s.idem[key] = entry
            if owner:
                resp = None
                try:
                    resp = run()
                    return resp
                finally:
                    with s.lock:
                        # As Stripe: a result is kept once the endpoint ran (success or a
                        # card error); validation failures and 5xx are not kept.
                        if resp is not None and (resp.status < 400 or resp.status == 402):
                            entry["resp"] = resp
                        elif s.idem.get(key) is entry:
                            del s.idem[key]
                    entry["done"].set()
            if entry["path"] != path:
                return Response.json(400, {"error": {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used for the same "
                    f"endpoint they were first used for ('POST {entry['path']}' vs 'POST "
                    f"{path}'). Try using a key other than '{key}' if you meant to execute a "
                    "different request."}}, headers)
            if entry["fp"] != fingerprint:
                return Response.json(400, {"error": {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same "
                    "parameters they were first used with. Try using a key other than "
                    f"'{key}' if you meant to execute a different request."}}, headers)
            entry["done"].wait(60)
            if entry["resp"] is not None:
                r = entry["resp"]
                return Response(r.status, r.body, headers + [("Idempotent-Replayed", "true")])
        return Response.json(409, {"error": {
            "type": "idempotency_error",
            "message": "There is currently another in-progress request using this "
            "Idempotent Key (that probably means you submitted twice, and the other request "
            "is still going through)."}}, headers)

    def control(self, query, body, fn, args):
        try:
            if body.strip():
                data = json.loads(body.decode("utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("not an object")
            else:
                data = {}
            data.update({k: v for k, v in parse_qsl(query)})
            result = fn(data, **args)
            with self.store.lock:
                return Response.json(200, view(result))
        except (ValueError, UnicodeDecodeError):
            return Response.json(400, {"error": {"type": "invalid_request_error",
                                                 "message": "Body must be a JSON object."}})
        except StripeError as e:
            return Response.json(e.status, e.body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-emulator/1.0"
    emu = None

    def log_message(self, fmt, *args):  # one line per request is written by _handle
        pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self, method):
        t0 = time.monotonic()
        url = urlsplit(self.path)
        try:
            body = self._read_body()
            resp = self.emu.dispatch(method, url.path, url.query, self.headers, body)
            if method != "GET":
                self.emu.changed()
        except ValueError:
            self.close_connection = True
            resp = Response.json(413, {"error": {"type": "invalid_request_error",
                                                 "message": "Request body too large."}})
        except Exception:
            traceback.print_exc()
            resp = Response.json(500, {"error": {"type": "api_error",
                                                 "message": "Internal emulator error."}})
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.ctype)
            self.send_header("Content-Length", str(len(resp.body)))
            self.send_header("Cache-Control", "no-cache, no-store")
            for k, v in resp.headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(resp.body)
        except OSError:
            self.close_connection = True
        ms = (time.monotonic() - t0) * 1000
        log(f"{self.client_address[0]} {method} {url.path} {resp.status} {ms:.1f}ms")


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def parse_schedule(text):
    try:
        out = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad retry schedule: {text!r}")
    if any(x < 0 for x in out):
        raise argparse.ArgumentTypeError("retry delays must be >= 0")
    return out


def main(argv=None):
    env = os.environ.get
    ap = argparse.ArgumentParser(description="Local Stripe API emulator for creditdesk.")
    ap.add_argument("--port", type=int, default=int(env("EMU_PORT", "12111")))
    ap.add_argument("--api-key", default=env("STRIPE_SECRET_KEY"),
                    help="required Bearer key (default: any sk_test_ key)")
    ap.add_argument("--webhook-url", default=env("EMU_WEBHOOK_URL"))
    ap.add_argument("--webhook-secret", default=env("STRIPE_WEBHOOK_SECRET"),
                    help="signing secret; if comma-separated, the first is used")
    ap.add_argument("--retry-schedule", type=parse_schedule,
                    default=parse_schedule(env("EMU_RETRY_SCHEDULE", "1,2,4,8,16,32")),
                    help="seconds between delivery attempts, e.g. 1,2,4,8,16,32")
    ap.add_argument("--public-url", default=env("EMU_PUBLIC_URL"),
                    help="base of hosted checkout URLs (default http://127.0.0.1:PORT)")
    ap.add_argument("--webhook-workers", type=int, default=int(env("EMU_WEBHOOK_WORKERS", "4")))
    ap.add_argument("--webhook-timeout", type=float,
                    default=float(env("EMU_WEBHOOK_TIMEOUT", "10")))
    ap.add_argument("--state-file", default=env("EMU_STATE_FILE"),
                    help="sqlite3 file the state is saved to and loaded from (default: memory only)")
    a = ap.parse_args(argv)

    try:
        server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    except OSError as e:
        sys.stderr.write(f"stripe emulator: cannot listen on 127.0.0.1:{a.port}: {e}\n")
        return 1
    server.daemon_threads = True
    port = server.server_address[1]
    secret = (a.webhook_secret or "").split(",")[0].strip() or None
    webhook = {"url": a.webhook_url or None, "enabled": True, "secret": secret,
               "retry_schedule": a.retry_schedule}
    try:
        Handler.emu = Emulator(a.api_key, a.public_url or f"http://127.0.0.1:{port}", webhook,
                               workers=a.webhook_workers, webhook_timeout=a.webhook_timeout,
                               state_file=a.state_file)
    except (sqlite3.Error, ValueError) as e:
        sys.stderr.write(f"stripe emulator: cannot load --state-file {a.state_file}: {e}\n")
        return 1

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    print(f"stripe emulator listening on http://127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if Handler.emu.persist:
            Handler.emu.persist.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
