"""Metrics for Prometheus: each family's counters, shared by all its children,
at /internal/metrics/<family> (nginx passes it from loopback only), move by
exactly the requests sent: requests by route and status, the latency
histogram, webhook events received/duplicate/failed and Stripe errors."""

from .lib import (Browser, Case, base_url, emu_fail, http_request, make_event,
                  post_webhook, register)


def metrics(family):
    """The family's samples as {"name{labels}": value}."""
    r = http_request("GET", f"{base_url()}/internal/metrics/{family}")
    if r.status != 200 or not (r.header("content-type") or "").startswith("text/plain"):
        raise AssertionError(f"/internal/metrics/{family}: {r!r}")
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def moved(before, after):
    """Samples that changed, with how much."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def requests(family, route, status):
    return (f'creditdesk_http_requests_total{{family="{family}",route="{route}",'
            f'status="{status}"}}')


def latency(family, suffix):
    return f'creditdesk_http_request_duration_seconds_{suffix}{{family="{family}"}}'


class RequestCounterTests(Case):

    def test_counters_move_by_exactly_the_requests_sent(self):
        before = metrics("credits")
        for _ in range(7):
            self.assertStatus(Browser().get("/api/boost-packs"), 200)
        for _ in range(3):
            self.assertStatus(Browser().get("/api/live-help-hour"), 401)
        after = metrics("credits")
        changed = moved(before, after)
        self.assertEqual(changed.pop(requests("credits", "GET /api/boost-packs", 200)), 7)
        self.assertEqual(changed.pop(requests("credits", "GET /api/live-help-hour", 401)), 3)
        self.assertEqual(changed.pop(latency("credits", "count")), 10)
        self.assertEqual(changed.pop('creditdesk_http_request_duration_seconds_bucket'
                                     '{family="credits",le="+Inf"}'), 10)
        self.assertGreater(changed.pop(latency("credits", "sum")), 0)
        # the finite buckets moved by at most 10 each, and nothing else moved
        for key, n in changed.items():
            self.assertTrue(key.startswith(
                'creditdesk_http_request_duration_seconds_bucket{family="credits",le='), key)
            self.assertLessEqual(n, 10, key)

    def test_unknown_families_and_other_internal_paths_are_not_served(self):
        for path in ("/internal/metrics/nope", "/internal/metrics/credits/x",
                     "/internal/other"):
            r = http_request("GET", base_url() + path)
            self.assertEqual(r.status, 404, f"{path}: {r!r}")


class WebhookCounterTests(Case):

    def test_received_duplicate_and_rejected_events(self):
        before = metrics("webhook")
        _, first = make_event()
        _, second = make_event()
        for body in (first, second, first):
            self.assertStatus(post_webhook(body), 200)
        self.assertError(post_webhook(second, signature_header="t=1,v1=00"), 400,
                         "invalid_signature")
        changed = moved(before, metrics("webhook"))
        route = "POST /api/stripe/webhook"
        self.assertEqual({k: v for k, v in changed.items()
                          if not k.startswith("creditdesk_http_request_duration")}, {
            requests("webhook", route, 200): 3,
            requests("webhook", route, 400): 1,
            'creditdesk_webhook_events_total{family="webhook",outcome="received"}': 3,
            'creditdesk_webhook_events_total{family="webhook",outcome="duplicate"}': 1,
        })
        self.assertEqual(changed[latency("webhook", "count")], 4)


class StripeErrorCounterTests(Case):

    def test_a_failed_stripe_call_is_counted_once(self):
        b = register()
        before = metrics("checkout")
        emu_fail(count=1, status=500)
        self.assertError(b.buy_live_help(1), 502, "payment_provider_error")
        changed = moved(before, metrics("checkout"))
        self.assertEqual(changed['creditdesk_stripe_errors_total{family="checkout"}'], 1)
        self.assertEqual(changed[requests("checkout", "POST /api/buy/live_help", 502)], 1)
