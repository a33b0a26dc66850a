"""
stripe_js.py -- the emulator's stand-in for Stripe.js and the iframes it
mounts, for the pages of creditdesk that take a card.

  GET  /v3/                    the script (stripe_js.js beside this file)
  GET  /embedded/{cs_id}       embedded Checkout, in the page's iframe
  POST /embedded/{cs_id}       pays it (card field), then tells the page
  GET  /elements/{pi_id}       the payment Element's card field
  POST /elements/{pi_id}/confirm   confirms the PaymentIntent with that card

Every iframe URL carries the object's client secret, checked as Stripe
does.  A declined card answers Stripe's error shape (type card_error, code
card_declined, decline_code, message).  Pages talk to the iframes only with
postMessage, so the page's CSP needs the emulator as script and frame
origin and nothing else.
"""

import hmac
import html
import json
import os
import re
from urllib.parse import parse_qsl

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stripe_js.js")

FRAME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:15px/1.45 system-ui,sans-serif;margin:0;padding:.6em;color:#1d2330}}
table{{border-collapse:collapse;width:100%;margin-bottom:.8em}}
td,th{{padding:.3em;border-bottom:1px solid #e3e6ec;text-align:left}}
label{{display:block;color:#5f6878;font-size:.9em}}
input{{display:block;width:100%;box-sizing:border-box;font:inherit;padding:.5em .6em;margin:.2em 0 .6em;
border:1px solid #c9ced8;border-radius:8px}}
button{{font:inherit;font-weight:600;color:#fff;background:#635bff;border:0;border-radius:8px;
padding:.55em 1.2em;cursor:pointer;width:100%}}
.error{{color:#b42318;font-weight:600}}.muted{{color:#5f6878;font-size:.85em}}</style></head>
<body>{body}
<script>
(function () {{
  function size() {{
    parent.postMessage({{type: 'stripe-emu:resize',
      height: document.documentElement.scrollHeight + 4}}, '*');
  }}
  window.addEventListener('load', size);
  size();
  {script}
}})();
</script></body></html>
"""

COMPLETE = """parent.postMessage({type: 'stripe-emu:complete', session: %s, returnUrl: %s}, '*');"""

CONFIRM = """
  var card = document.getElementById('card');
  var err = document.getElementById('err');
  window.addEventListener('message', function (ev) {
    if (ev.source !== parent || !ev.data || ev.data.type !== 'stripe-emu:confirm') return;
    var nonce = ev.data.nonce;
    err.textContent = '';
    fetch(location.pathname + '/confirm', {method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({secret: %s, card: card.value})})
      .then(function (r) { return r.json(); })
      .then(function (result) {
        if (result.error) { err.textContent = result.error.message; }
        size();
        parent.postMessage({type: 'stripe-emu:result', nonce: nonce, result: result}, '*');
      }, function () {
        parent.postMessage({type: 'stripe-emu:result', nonce: nonce, result: {error: {
          type: 'api_connection_error', message: 'We could not reach Stripe. Please try again.'}}}, '*');
      });
  });
"""

CARD_HINT = ('<p class="muted">Test mode: 4242 4242 4242 4242 pays; '
             '4000 0000 0000 0002 is declined.</p>')


def js_str(s):
    """A JSON string literal that is safe inside <script>."""
    return json.dumps(s).replace("<", "\\u003c").replace(">", "\\u003e")


class StripeJs:
    def __init__(self, emu, lib):
        """lib: the emulator's Response, StripeError, TEST_CARDS, CONTROL and
        format_money (passed in: the emulator runs as __main__)."""
        self.emu = emu
        self.s = emu.store
        self.Response = lib["Response"]
        self.StripeError = lib["StripeError"]
        self.cards = lib["TEST_CARDS"]
        self.CONTROL = lib["CONTROL"]
        self.money = lib["format_money"]

    def routes(self):
        return [
            ("GET", "/v3/", self.script),
            ("GET", "/v3", self.script),
            ("GET", "/embedded/{id}", self.checkout_get),
            ("POST", "/embedded/{id}", self.checkout_post),
            ("GET", "/elements/{id}", self.element_get),
            ("POST", "/elements/{id}/confirm", self.element_confirm),
        ]

    # --- helpers ---
    def _page(self, status, title, body, script=""):
        text = FRAME.format(title=html.escape(title), body=body, script=script)
        return self.Response.html(status, text)

    def _gone(self):
        return self._page(404, "Not found", '<p class="error">This payment form is no longer '
                          'available. Close it and try again.</p>')

    @staticmethod
    def _secret_ok(obj, secret):
        want = obj.get("client_secret") or ""
        return bool(want) and hmac.compare_digest(want.encode(), (secret or "").encode())

    def _session(self, id, query):
        cs = self.s.objects["checkout.session"].get(id)
        secret = dict(parse_qsl(query)).get("secret", "")
        if cs is None or cs["ui_mode"] != "embedded" or not self._secret_ok(cs, secret):
            return None, secret
        return cs, secret

    # --- the script ---
    def script(self, method, query, headers, body):
        with open(SCRIPT, "rb") as f:
            text = f.read().replace(b"__ORIGIN__", self.emu.public_url.encode())
        return self.Response(200, text, [("Access-Control-Allow-Origin", "*")],
                             "application/javascript; charset=utf-8")

    # --- embedded Checkout ---
    def _checkout_form(self, cs, secret, message=None, status=200):
        rows = "\n".join(self.emu.hosted.line_rows(cs))
        total = html.escape(self.money(cs["amount_total"], cs["currency"]))
        err = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
        action = html.escape(f"/embedded/{cs['id']}?secret={secret}")
        body = (f"<table><tr><th>Item</th><th>Qty</th><th>Price</th><th>Amount</th></tr>{rows}"
                f'<tr><th colspan="3">Total</th><th>{total}</th></tr></table>{err}'
                f'<form method="post" action="{action}"><label>Card number'
                '<input name="card" inputmode="numeric" autocomplete="off" '
                'placeholder="4242 4242 4242 4242"></label>'
                f'<button type="submit">Pay {total}</button></form>{CARD_HINT}')
        return self._page(status, "Checkout", body)

    def _checkout_done(self, cs):
        url = self.emu.sessions.redirect_url(cs)
        link = (f'<p><a href="{html.escape(url)}" target="_top">Continue</a></p>'
                if url else "")
        return self._page(200, "Paid", f"<p><strong>Payment complete.</strong></p>{link}",
                          COMPLETE % (js_str(cs["id"]), js_str(url)))

    def checkout_get(self, method, query, headers, body, id):
        with self.s.lock:
            cs, secret = self._session(id, query)
            if cs is None or cs["status"] == "expired":
                return self._gone()
            if cs["status"] == "complete":
                return self._checkout_done(cs)
            return self._checkout_form(cs, secret)

    def checkout_post(self, method, query, headers, body, id):
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        with self.s.lock:
            cs, secret = self._session(id, query)
            if cs is None:
                return self._gone()
            try:
                self.emu.sessions.pay(self.CONTROL, cs, form.get("card", ""))
            except self.StripeError as e:
                return self._checkout_form(cs, secret, e.body["error"]["message"], e.status)
            return self._checkout_done(cs)

    # --- the payment Element ---
    def element_get(self, method, query, headers, body, id):
        secret = dict(parse_qsl(query)).get("secret", "")
        with self.s.lock:
            pi = self.s.objects["payment_intent"].get(id)
            if pi is None or not self._secret_ok(pi, secret):
                return self._gone()
        body = ('<label>Card number<input id="card" inputmode="numeric" autocomplete="off" '
                'placeholder="4242 4242 4242 4242"></label>'
                f'<p id="err" class="error" role="alert"></p>{CARD_HINT}')
        return self._page(200, "Payment", body, CONFIRM % js_str(secret))

    def element_confirm(self, method, query, headers, body, id):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {}
        digits = re.sub(r"[\s-]", "", str(data.get("card") or ""))
        with self.s.lock:
            pi = self.s.objects["payment_intent"].get(id)
            if pi is None or not self._secret_ok(pi, str(data.get("secret") or "")):
                return self._error(404, {"type": "invalid_request_error",
                                         "code": "resource_missing",
                                         "message": "This payment can no longer be made."})
            if pi["status"] == "succeeded":
                return self._intent(pi)
            card = self.cards.get(digits)
            if card is None:
                return self._error(400, {"type": "validation_error", "code": "incomplete_number"
                                         if not digits else "invalid_number",
                                         "message": "Your card number is incomplete."
                                         if not digits else "Your card number is invalid."})
            try:
                self.emu.payment_intents._check_confirmable(pi)
                if card[2]:
                    raise self.emu.payment_intents.decline(self.CONTROL, pi, card)
                self.emu.payment_intents.succeed(self.CONTROL, pi, card)
            except self.StripeError as e:
                return self._error(e.status, e.body["error"])
            return self._intent(pi)

    def _intent(self, pi):
        out = {k: pi[k] for k in ("id", "object", "amount", "currency", "status",
                                  "client_secret", "created", "livemode")}
        return self.Response(200, json.dumps({"paymentIntent": out}).encode())

    def _error(self, status, err):
        return self.Response(status, json.dumps({"error": err}).encode())

