"""Boost packs, the credit ledger and subscriptions: exact token amounts per
pack, concurrent and repeated fulfilment, bad input, refunds, invoices, one
Stripe customer per user.  After every scenario the ledger invariant is
checked for every user it touched:

  user_credits.balance == SUM(credits_delta), and by id, each row's
  balance_after == balance_before + credits_delta and balance_before ==
  the previous row's balance_after (0 for the first)."""

import json
import os
import signal
import threading

from .lib import (Browser, Case, check_status, checkout_rows, completed_event, db_exec,
                  db_row, db_rows, db_scalar, emu_deliver, emu_fail, emu_hold, emu_ok, emu_pay,
                  emu_release, emu_state, env, event_processed, events_about, list_events,
                  parallel, pay_and_confirm, refund_processed, register, session_event_ids,
                  stack, stripe_api, stripe_session, wait_until)

PACKS = {
    # id: (name, credits, bonus, price_cents, badge)
    "boost-small": ("Quick Boost", 10417, 0, 500, None),
    "boost-medium": ("Power Boost", 20833, 2083, 1000, "POPULAR"),
    "boost-large": ("Mega Boost", 41666, 6250, 2000, "BEST VALUE"),
}
STARTER_CREDITS = 20833


def rate():
    return db_scalar("SELECT int_value FROM platform_settings WHERE name = 'tokens_per_credit'")


def pack_tokens(pack_id):
    _, credits, bonus, _, _ = PACKS[pack_id]
    return (credits + bonus) * rate()


def create_checkout(u, body):
    return u.post("/api/stripe/create-checkout", body)


def start_pack(u, pack_id):
    r = create_checkout(u, {"purchaseType": "boost_pack", "boostPackId": pack_id})
    check_status(r, 200, f"create-checkout {pack_id}")
    sid = r.json.get("sessionId")
    if not (isinstance(sid, str) and sid.startswith("cs_")):
        raise AssertionError(f"create-checkout: no cs_ sessionId in {r!r}")
    return sid


def buy_pack(u, pack_id):
    """A paid, confirmed boost pack; returns the Checkout Session id."""
    return pay_and_confirm(u, start_pack(u, pack_id))


def balance_row(user_id):
    return db_row("SELECT balance, total_earned, total_spent, bonus_earned FROM user_credits"
                  " WHERE user_id = %s", user_id)


def balance(user_id):
    row = balance_row(user_id)
    return row["balance"] if row else 0


def ledger(user_id):
    rows = db_rows("SELECT id, credits_delta, balance_before, balance_after, transaction_type,"
                   " activity_type, description, metadata FROM credit_transactions"
                   " WHERE user_id = %s ORDER BY id", user_id)
    for r in rows:
        r["metadata"] = json.loads(r["metadata"])
    return rows


def purchases(user_id):
    return db_rows("SELECT * FROM boost_pack_purchases WHERE user_id = %s ORDER BY id", user_id)


def consume(user_id, tokens):
    """Test setup only: spends tokens as a consumption would (ledger row + balance)."""
    before = balance(user_id)
    n, _ = db_exec("UPDATE user_credits SET balance = balance - %s, total_spent = total_spent + %s"
                   " WHERE user_id = %s AND balance >= %s", tokens, tokens, user_id, tokens)
    if n != 1:
        raise AssertionError(f"consume: user {user_id} has fewer than {tokens} tokens")
    db_exec("INSERT INTO credit_transactions (user_id, credits_delta, balance_before,"
            " balance_after, transaction_type, activity_type, description, metadata)"
            " VALUES (%s, %s, %s, %s, 'consumption', 'integration_test', 'test spend', '{}')",
            user_id, -tokens, before, before - tokens)


def completed_processed(session_ids):
    marks = ",".join(["%s"] * len(session_ids))
    return db_scalar("SELECT COUNT(*) FROM stripe_events WHERE type ="
                     " 'checkout.session.completed' AND processed_at IS NOT NULL"
                     f" AND object_id IN ({marks})", *session_ids)


def invoice_events(sub_id):
    """invoice.paid events of one subscription, oldest first."""
    evs = [e for e in list_events("invoice.paid")
           if e["data"]["object"].get("subscription") == sub_id]
    evs.reverse()
    return evs


def allocations(sub_id):
    return db_rows("SELECT a.stripe_invoice_id, a.credits FROM subscription_allocations a"
                   " JOIN subscriptions s ON s.id = a.subscription_id"
                   " WHERE s.stripe_subscription_id = %s ORDER BY a.id", sub_id)


class CreditsCase(Case):

    def setUp(self):
        super().setUp()
        self.touched = []

    def tearDown(self):
        # the invariant after every scenario, also when the scenario failed midway
        try:
            self.assertLedger()
        finally:
            super().tearDown()

    def user(self):
        u = register()
        self.touched.append(u.id)
        return u

    def assertLedger(self, *user_ids):
        """The ledger invariant for the given users (default: every user touched)."""
        for uid in user_ids or self.touched:
            rows = ledger(uid)
            bal = balance(uid)
            self.assertEqual(bal, sum(r["credits_delta"] for r in rows),
                             f"user {uid}: balance != SUM(credits_delta)")
            prev = 0
            for r in rows:
                self.assertEqual(r["balance_before"], prev,
                                 f"user {uid}, tx {r['id']}: balance_before breaks the chain")
                self.assertEqual(r["balance_after"], r["balance_before"] + r["credits_delta"],
                                 f"user {uid}, tx {r['id']}: after != before + delta")
                self.assertGreaterEqual(r["balance_after"], 0, f"user {uid}, tx {r['id']}")
                prev = r["balance_after"]
            self.assertEqual(prev, bal, f"user {uid}: last balance_after != balance")
            self.assertGreaterEqual(bal, 0)

    def assertBalanceApi(self, u):
        r = u.get("/api/credits/balance")
        self.assertStatus(r, 200, "GET /api/credits/balance")
        row = balance_row(u.id) or {"balance": 0, "total_earned": 0, "total_spent": 0,
                                    "bonus_earned": 0}
        frozen = db_scalar("SELECT frozen FROM user_credits WHERE user_id = %s", u.id) or 0
        self.assertEqual(r.json, {"balance": row["balance"], "available": max(row["balance"] - frozen, 0),
                                  "frozen": frozen, "totalEarned": row["total_earned"],
                                  "totalSpent": row["total_spent"],
                                  "bonusEarned": row["bonus_earned"]})
        return r.json


class PackTests(CreditsCase):

    def test_boost_pack_catalogue(self):
        r = Browser().get("/api/boost-packs")
        self.assertStatus(r, 200, "GET /api/boost-packs (signed out)")
        want = [{"id": pid, "name": name, "credits": c, "bonusCredits": b,
                 "totalCredits": c + b, "priceCents": p, "currency": "usd", "badge": badge}
                for pid, (name, c, b, p, badge) in PACKS.items()]
        self.assertEqual(r.json, {"packs": want})

    def test_each_pack_credits_its_total_times_rate(self):
        self.assertEqual(rate(), 1000)
        for pack_id, (name, credits, bonus, price, _) in PACKS.items():
            with self.subTest(pack=pack_id):
                u = self.user()
                self.assertEqual(self.assertBalanceApi(u), {"balance": 0, "available": 0,
                                                            "frozen": 0, "totalEarned": 0,
                                                            "totalSpent": 0, "bonusEarned": 0})
                r = create_checkout(u, {"purchaseType": "boost_pack", "boostPackId": pack_id})
                self.assertStatus(r, 200, "create-checkout")
                self.assertEqual(set(r.json), {"sessionId", "clientSecret"})
                sid = r.json["sessionId"]
                ck = checkout_rows(u.id)
                self.assertEqual(len(ck), 1)
                self.assertEqual((ck[0]["stripe_session_id"], ck[0]["product"],
                                  ck[0]["item_code"], ck[0]["quantity"], ck[0]["amount_cents"],
                                  ck[0]["mode"], ck[0]["status"]),
                                 (sid, "boost_pack", pack_id, 1, price, "payment", "open"))
                cus = db_scalar("SELECT stripe_customer_id FROM users WHERE id = %s", u.id)
                self.assertTrue(cus and cus.startswith("cus_"), cus)
                cs = stripe_session(sid)
                self.assertEqual((cs["mode"], cs["ui_mode"], cs["amount_total"], cs["customer"],
                                  cs["client_secret"]),
                                 ("payment", "embedded", price, cus, r.json["clientSecret"]))
                self.assertEqual(cs["metadata"].get("user_id"), str(u.id))
                audit = db_rows("SELECT action, entity_id, user_id, severity, details FROM"
                                " audit_log WHERE action = 'BOOST_PACK_CHECKOUT_INITIATED'"
                                " AND entity_id = %s", sid)
                self.assertEqual(len(audit), 1, audit)
                self.assertEqual((audit[0]["user_id"], audit[0]["severity"]), (u.id, "info"))
                details = json.loads(audit[0]["details"])
                self.assertEqual(details.get("flags"), ["SOC2", "FINANCIAL"], details)
                self.assertEqual(details.get("boostPackId"), pack_id)
                # nothing before payment
                self.assertEqual(ledger(u.id), [])
                self.assertEqual(purchases(u.id), [])

                emu_pay(sid)
                r = u.confirm(sid)
                self.assertStatus(r, 200, "confirm")
                self.assertEqual((r.json["paid"], r.json["product"]), (True, "boost_pack"))
                tokens = (credits + bonus) * 1000
                self.assertEqual(balance_row(u.id), {"balance": tokens, "total_earned": tokens,
                                                     "total_spent": 0,
                                                     "bonus_earned": bonus * 1000})
                pi = stripe_session(sid)["payment_intent"]
                tx = ledger(u.id)
                self.assertEqual(len(tx), 1, tx)
                t = tx[0]
                self.assertEqual((t["credits_delta"], t["balance_before"], t["balance_after"],
                                  t["transaction_type"], t["activity_type"]),
                                 (tokens, 0, tokens, "allocation", "boost_pack_purchase"))
                m = t["metadata"]
                self.assertEqual((m.get("stripeSessionId"), m.get("paymentIntentId"),
                                  m.get("boostPackId"), m.get("amountPaidCents")),
                                 (sid, pi, pack_id, price), m)
                self.assertEqual(t["description"], f"{name}: {credits + bonus:,} Pilot Credits"
                                 + (f" (includes {bonus:,} bonus)" if bonus else ""))
                bp = purchases(u.id)
                self.assertEqual(len(bp), 1)
                self.assertEqual((bp[0]["boost_pack_id"], bp[0]["stripe_session_id"],
                                  bp[0]["payment_intent_id"], bp[0]["amount_cents"],
                                  bp[0]["credits_applied"], bp[0]["credits_refunded"]),
                                 (pack_id, sid, pi, price, tokens, 0))
                self.assertEqual(self.assertBalanceApi(u),
                                 {"balance": tokens, "available": tokens, "frozen": 0,
                                  "totalEarned": tokens, "totalSpent": 0,
                                  "bonusEarned": bonus * 1000})
                r = u.get("/api/credits/transactions")
                self.assertStatus(r, 200)
                self.assertIsNone(r.json["nextCursor"])
                self.assertEqual(len(r.json["transactions"]), 1)
                jt = r.json["transactions"][0]
                self.assertEqual((jt["id"], jt["creditsDelta"], jt["balanceBefore"],
                                  jt["balanceAfter"], jt["transactionType"],
                                  jt["activityType"], jt["metadata"]),
                                 (t["id"], tokens, 0, tokens, "allocation",
                                  "boost_pack_purchase", m))
                # the webhook lands as well: nothing more
                evt = completed_event(sid)
                wait_until(lambda: event_processed(evt["id"]), 20,
                           message="completed event processed")
                self.assertEqual(balance(u.id), tokens)
                self.assertEqual(len(ledger(u.id)), 1)
                self.assertEqual(len(purchases(u.id)), 1)
                self.assertEqual(checkout_rows(u.id)[0]["status"], "fulfilled")
                self.assertLedger(u.id)
        self.assertLedger()

    def test_all_packs_one_user_and_pagination(self):
        u = self.user()
        sids = [buy_pack(u, p) for p in PACKS]
        total = sum(pack_tokens(p) for p in PACKS)
        bonus = sum(b for (_, _, b, _, _) in PACKS.values()) * 1000
        self.assertEqual(balance_row(u.id), {"balance": total, "total_earned": total,
                                             "total_spent": 0, "bonus_earned": bonus})
        tx = ledger(u.id)
        self.assertEqual([t["metadata"]["stripeSessionId"] for t in tx], sids)
        self.assertEqual([t["credits_delta"] for t in tx], [pack_tokens(p) for p in PACKS])
        # newest first, two per page
        r = u.get("/api/credits/transactions?limit=2")
        self.assertStatus(r, 200)
        self.assertEqual([t["id"] for t in r.json["transactions"]], [tx[2]["id"], tx[1]["id"]])
        self.assertEqual(r.json["nextCursor"], tx[1]["id"])
        r = u.get(f"/api/credits/transactions?limit=2&before={r.json['nextCursor']}")
        self.assertStatus(r, 200)
        self.assertEqual([t["id"] for t in r.json["transactions"]], [tx[0]["id"]])
        self.assertIsNone(r.json["nextCursor"])
        r = u.get("/api/credits/transactions?limit=3")
        self.assertEqual([t["id"] for t in r.json["transactions"]],
                         [t["id"] for t in reversed(tx)])
        self.assertIsNone(r.json["nextCursor"])
        self.assertError(u.get("/api/credits/transactions?limit=0"), 400)
        self.assertError(u.get("/api/credits/transactions?limit=abc"), 400)
        # another user sees none of it
        v = self.user()
        r = v.get("/api/credits/transactions")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"transactions": [], "nextCursor": None})
        self.assertError(Browser().get("/api/credits/balance"), 401)
        self.assertError(Browser().get("/api/credits/transactions"), 401)
        self.assertLedger()


class SuccessPageTests(CreditsCase):

    def test_success_page_fulfils_and_goes_to_billing(self):
        u = self.user()
        for body in ({"purchaseType": "boost_pack", "boostPackId": "boost-small"},
                     {"purchaseType": "subscription", "planId": "starter"}):
            r = create_checkout(u, body)
            check_status(r, 200, f"create-checkout {body}")
            sid = r.json["sessionId"]
            emu_pay(sid)
            r = u.get(f"/checkout/success?session_id={sid}")
            self.assertStatus(r, 303, "success page")
            local_id = db_scalar("SELECT id FROM checkout_sessions WHERE stripe_session_id = %s",
                                 sid)
            self.assertEqual(r.header("location"), f"/settings/billing?purchased={local_id}", body)
        self.assertEqual(balance(u.id), (10417 + STARTER_CREDITS) * rate())


class BadInputTests(CreditsCase):

    def test_missing_and_unknown_pack_ids(self):
        u = self.user()
        stripe_before = emu_state()["checkout_sessions"]
        cases = [
            ({"purchaseType": "boost_pack"}, 400, "Boost pack ID is required"),
            ({"purchaseType": "boost_pack", "boostPackId": None}, 400,
             "Boost pack ID is required"),
            ({"purchaseType": "boost_pack", "planId": "starter"}, 400,
             "Boost pack ID is required"),
            ({"purchaseType": "boost_pack", "boostPackId": "boost-huge"}, 404,
             "Boost pack not found"),
            ({"purchaseType": "boost_pack", "boostPackId": "boost-small-x"}, 404,
             "Boost pack not found"),
        ]
        for body, status, message in cases:
            r = create_checkout(u, body)
            err = self.assertError(r, status, None, f"create-checkout {body}")
            self.assertEqual(err["message"], message, f"{body}: {r!r}")
        for body in ({"purchaseType": "boost_pack", "boostPackId": "x' OR '1'='1"},
                     {"purchaseType": "boost_pack", "boostPackId": 7},
                     {"purchaseType": "boost_pack", "boostPackId": ""}):
            self.assertError(create_checkout(u, body), (400, 404), None, f"{body}")
        self.assertEqual(checkout_rows(u.id), [], "a refused request recorded a checkout")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM audit_log WHERE user_id = %s"
                                   " AND action LIKE '%%CHECKOUT%%'", u.id), 0)
        self.assertEqual(emu_state()["checkout_sessions"], stripe_before,
                         "a refused request created a Stripe Checkout Session")
        self.assertEqual(ledger(u.id), [])
        self.assertLedger()

    def test_invalid_purchase_type(self):
        u = self.user()
        for body in ({"purchaseType": "credits", "boostPackId": "boost-small"},
                     {"purchaseType": "BOOST_PACK", "boostPackId": "boost-small"},
                     {"purchaseType": "live_help", "boostPackId": "boost-small"},
                     {"boostPackId": "boost-small"},
                     {"purchaseType": None, "boostPackId": "boost-small"},
                     {"purchaseType": 1, "boostPackId": "boost-small"},
                     {"purchaseType": ["boost_pack"], "boostPackId": "boost-small"},
                     {}):
            self.assertError(create_checkout(u, body), 400, None, f"create-checkout {body}")
        err = self.assertError(create_checkout(u, {"purchaseType": "credits"}), 400)
        self.assertEqual(err["code"], "invalid_purchase_type")
        # subscriptions: missing and unknown plans
        err = self.assertError(create_checkout(u, {"purchaseType": "subscription"}), 400)
        self.assertEqual(err["message"], "Plan ID is required")
        err = self.assertError(create_checkout(u, {"purchaseType": "subscription",
                                                   "planId": "platinum"}), 404)
        self.assertEqual(err["message"], "Plan not found")
        self.assertEqual(checkout_rows(u.id), [])
        self.assertError(Browser().post("/api/stripe/create-checkout",
                                        {"purchaseType": "boost_pack",
                                         "boostPackId": "boost-small"}), 401)
        self.assertError(u.post("/api/stripe/create-checkout",
                                {"purchaseType": "boost_pack", "boostPackId": "boost-small"},
                                csrf=False), 403, None, "no CSRF token")
        self.assertEqual(checkout_rows(u.id), [])
        self.assertLedger()


class RaceTests(CreditsCase):

    def test_fifty_held_webhooks_and_confirms_for_one_user(self):
        u = self.user()
        packs = list(PACKS)
        jobs = [packs[i % 3] for i in range(50)]
        sids = parallel(lambda p: start_pack(u, p), jobs, threads=10)
        errors = [s for s in sids if isinstance(s, Exception)]
        self.assertEqual(errors, [], f"create-checkout failed: {errors[:1]}")
        self.assertEqual(len(set(sids)), 50)
        emu_hold()
        paid = parallel(lambda s: emu_pay(s).status, sids, threads=10)
        self.assertEqual(paid, [200] * 50, paid)
        self.assertEqual(ledger(u.id), [], "credited before any webhook or confirm")
        confirm_some = sids[::3]            # 17 sessions also confirmed by the buyer
        barrier = threading.Barrier(len(confirm_some) + 1)
        results = {}

        def confirm(sid):
            barrier.wait(20)
            return u.confirm(sid)

        def release():
            barrier.wait(20)
            results["release"] = emu_release("fifo")

        rt = threading.Thread(target=release)
        rt.start()
        confirms = parallel(confirm, confirm_some, threads=len(confirm_some))
        rt.join(120)
        for r in confirms:
            self.assertNotIsInstance(r, Exception, f"confirm raised {r!r}")
            self.assertStatus(r, 200, "confirm")
            self.assertIs(r.json["paid"], True)
        rel = results["release"]
        bad = [(e, s) for e, s in zip(rel["released"], rel["statuses"]) if s != 200]
        self.assertEqual(bad, [], f"released deliveries not 200: {bad[:5]}")

        wait_until(lambda: completed_processed(sids) == 50, 60,
                   message="50 completed events processed")
        want = sum(pack_tokens(p) for p in jobs)
        self.assertEqual(balance(u.id), want)
        bp = purchases(u.id)
        self.assertEqual(len(bp), 50)
        self.assertEqual(sorted(b["stripe_session_id"] for b in bp), sorted(sids))
        self.assertEqual(sum(b["credits_applied"] for b in bp), want)
        tx = ledger(u.id)
        self.assertEqual(len(tx), 50)
        self.assertEqual(sorted(t["metadata"]["stripeSessionId"] for t in tx), sorted(sids))
        for t in tx:
            sid = t["metadata"]["stripeSessionId"]
            self.assertEqual(t["credits_delta"], pack_tokens(jobs[sids.index(sid)]), sid)
            self.assertEqual((t["transaction_type"], t["activity_type"]),
                             ("allocation", "boost_pack_purchase"))
        bonus = sum(PACKS[p][2] for p in jobs) * 1000
        self.assertEqual(balance_row(u.id), {"balance": want, "total_earned": want,
                                             "total_spent": 0, "bonus_earned": bonus})
        self.assertEqual([c["status"] for c in checkout_rows(u.id)], ["fulfilled"] * 50)
        marks = ",".join(["%s"] * 50)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM audit_log WHERE action ="
                                   f" 'PAYMENT_FULFILLED' AND entity_id IN ({marks})", *sids), 50)
        self.assertEqual(self.assertBalanceApi(u)["balance"], want)
        self.assertLedger()

    def test_same_event_five_times_racing_confirm(self):
        u = self.user()
        sid = start_pack(u, "boost-medium")
        emu_hold()
        emu_pay(sid)
        evt = completed_event(sid)
        n = 10
        barrier = threading.Barrier(n + 2)
        out = {}

        def confirm(i):
            barrier.wait(20)
            out[i] = u.confirm(sid)

        def deliver():
            barrier.wait(20)
            out["deliver"] = emu_deliver(evt["id"], times=5)

        def release():
            barrier.wait(20)
            out["release"] = emu_release("fifo")

        ts = [threading.Thread(target=confirm, args=(i,)) for i in range(n)]
        ts += [threading.Thread(target=deliver), threading.Thread(target=release)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(out["deliver"]["statuses"], [200] * 5, out["deliver"])
        rel = dict(zip(out["release"]["released"], out["release"]["statuses"]))
        self.assertEqual(rel.get(evt["id"]), 200, out["release"])
        now = 0
        for i in range(n):
            self.assertStatus(out[i], 200, f"confirm {i}")
            self.assertIs(out[i].json["paid"], True)
            now += 1 if out[i].json["fulfilledNow"] else 0
        self.assertLessEqual(now, 1, "more than one confirm said fulfilledNow")
        tokens = pack_tokens("boost-medium")
        self.assertEqual(balance(u.id), tokens)
        self.assertEqual(len(ledger(u.id)), 1)
        self.assertEqual(len(purchases(u.id)), 1)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM stripe_events WHERE event_id = %s",
                                   evt["id"]), 1)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM audit_log WHERE action ="
                                   " 'PAYMENT_FULFILLED' AND entity_id = %s", sid), 1)
        # and again afterwards, sequentially
        self.assertEqual(emu_deliver(evt["id"], times=5)["statuses"], [200] * 5)
        self.assertFalse(u.confirm(sid).json["fulfilledNow"])
        self.assertEqual(balance(u.id), tokens)
        self.assertEqual(len(ledger(u.id)), 1)
        self.assertLedger()

    def test_concurrent_first_purchases_make_one_customer(self):
        u = self.user()
        self.assertIsNone(db_scalar("SELECT stripe_customer_id FROM users WHERE id = %s", u.id))
        before = emu_state()["customers"]
        n = 12
        barrier = threading.Barrier(n)
        bodies = [{"purchaseType": "boost_pack", "boostPackId": list(PACKS)[i % 3]}
                  for i in range(n - 2)]
        bodies += [{"purchaseType": "subscription", "planId": "starter"}] * 2

        def go(body):
            barrier.wait(20)
            return create_checkout(u, body)

        res = parallel(go, bodies, threads=n)
        for r in res:
            self.assertNotIsInstance(r, Exception, f"create-checkout raised {r!r}")
            self.assertStatus(r, 200, "concurrent create-checkout")
        cus = db_scalar("SELECT stripe_customer_id FROM users WHERE id = %s", u.id)
        self.assertTrue(cus and cus.startswith("cus_"), cus)
        customers = {stripe_session(r.json["sessionId"])["customer"] for r in res}
        self.assertEqual(customers, {cus}, "sessions carry different customers")
        self.assertEqual(emu_state()["customers"], before + 1,
                         "concurrent first purchases created more than one Stripe customer")
        c = stripe_api("GET", f"/v1/customers/{cus}")
        self.assertStatus(c, 200)
        self.assertEqual(c.json["email"], u.email)
        self.assertEqual(c.json["metadata"].get("user_id"), str(u.id))
        # the two plan checkouts started at once are one session
        self.assertEqual(len({r.json["sessionId"] for r in res[-2:]}), 1)
        self.assertEqual(len(checkout_rows(u.id)), n - 1)
        # later purchases reuse it
        sid = buy_pack(u, "boost-small")
        self.assertEqual(stripe_session(sid)["customer"], cus)
        self.assertEqual(emu_state()["customers"], before + 1)
        self.assertEqual(balance(u.id), pack_tokens("boost-small"))
        self.assertLedger()


def stored_customer(user_id):
    return db_scalar("SELECT stripe_customer_id FROM users WHERE id = %s", user_id)


def restart_emulator():
    """Stops the Stripe emulator by its recorded PID and lets stack.sh start
    it again (start only starts what is not running)."""
    with open(os.path.join(env("CD_RUN_DIR"), "emulator.pid")) as f:
        pid = int(f.read().strip())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().split()[2] == "Z",
               timeout=15, message="the emulator exits")
    stack("start")
    with open(os.path.join(env("CD_RUN_DIR"), "emulator.pid")) as f:
        if int(f.read().strip()) == pid:
            raise AssertionError("the emulator was not started again")


class StripeCustomerTests(CreditsCase):

    def test_customer_survives_an_emulator_restart(self):
        u = self.user()
        first = buy_pack(u, "boost-small")
        cus = stored_customer(u.id)
        self.assertTrue(cus and cus.startswith("cus_"), cus)
        customers = emu_state()["customers"]
        restart_emulator()
        self.assertEqual(emu_state()["customers"], customers)
        self.assertEqual(stripe_session(first)["customer"], cus)
        second = buy_pack(u, "boost-medium")
        self.assertEqual(stripe_session(second)["customer"], cus)
        self.assertEqual(stored_customer(u.id), cus)
        self.assertEqual(emu_state()["customers"], customers, "no new customer")
        self.assertEqual([(p["stripe_session_id"], p["boost_pack_id"]) for p in purchases(u.id)],
                         [(first, "boost-small"), (second, "boost-medium")])
        self.assertEqual(balance(u.id), pack_tokens("boost-small") + pack_tokens("boost-medium"))
        self.assertLedger()

    def test_deleted_customer_is_replaced(self):
        u = self.user()
        first = buy_pack(u, "boost-small")
        gone = stored_customer(u.id)
        emu_ok("POST", f"/_emu/customers/{gone}/delete")
        self.assertEqual(stripe_api("GET", f"/v1/customers/{gone}").status, 404)

        # Another Stripe failure is a 502 and keeps the stored customer (only
        # the session's creation fails: the purchase's webhooks may still call).
        emu_fail(count=1, status=500, path="/v1/checkout/sessions")
        self.assertError(create_checkout(u, {"purchaseType": "boost_pack",
                                             "boostPackId": "boost-large"}),
                         502, "payment_provider_error", "create-checkout while Stripe fails")
        self.assertEqual(stored_customer(u.id), gone)
        self.assertEqual(len(checkout_rows(u.id)), 1)

        customers = emu_state()["customers"]
        second = buy_pack(u, "boost-large")
        cus = stored_customer(u.id)
        self.assertTrue(cus and cus.startswith("cus_") and cus != gone, cus)
        self.assertEqual(emu_state()["customers"], customers + 1)
        self.assertEqual(stripe_session(second)["customer"], cus)
        c = stripe_api("GET", f"/v1/customers/{cus}")
        self.assertStatus(c, 200)
        self.assertEqual((c.json["email"], c.json["metadata"].get("user_id")),
                         (u.email, str(u.id)))
        self.assertEqual([(r["stripe_session_id"], r["item_code"], r["status"])
                          for r in checkout_rows(u.id)],
                         [(first, "boost-small", "fulfilled"), (second, "boost-large", "fulfilled")])
        self.assertEqual(balance(u.id), pack_tokens("boost-small") + pack_tokens("boost-large"))
        # and it is used from now on
        third = start_pack(u, "boost-small")
        self.assertEqual(stripe_session(third)["customer"], cus)
        self.assertEqual(emu_state()["customers"], customers + 1)
        self.assertLedger()

    def test_concurrent_checkouts_after_deletion_store_one_new_customer(self):
        u = self.user()
        start_pack(u, "boost-small")
        gone = stored_customer(u.id)
        emu_ok("POST", f"/_emu/customers/{gone}/delete")
        customers = emu_state()["customers"]
        n = 8
        barrier = threading.Barrier(n)
        bodies = [{"purchaseType": "boost_pack", "boostPackId": list(PACKS)[i % 3]}
                  for i in range(n - 2)]
        bodies += [{"purchaseType": "subscription", "planId": "starter"}] * 2

        def go(body):
            barrier.wait(20)
            return create_checkout(u, body)

        res = parallel(go, bodies, threads=n)
        for r in res:
            self.assertNotIsInstance(r, Exception, f"create-checkout raised {r!r}")
            self.assertStatus(r, 200, "concurrent create-checkout")
        cus = stored_customer(u.id)
        self.assertTrue(cus and cus.startswith("cus_") and cus != gone, cus)
        self.assertEqual({stripe_session(r.json["sessionId"])["customer"] for r in res}, {cus})
        self.assertEqual(emu_state()["customers"], customers + 1,
                         "concurrent replacements created more than one Stripe customer")
        self.assertEqual(len({r.json["sessionId"] for r in res[-2:]}), 1)
        self.assertEqual(len(checkout_rows(u.id)), n)


class RefundTests(CreditsCase):

    def refund(self, sid):
        pi = db_scalar("SELECT payment_intent_id FROM checkout_sessions"
                       " WHERE stripe_session_id = %s", sid)
        self.assertTrue(pi and pi.startswith("pi_"), pi)
        self.assertEqual(pi, stripe_session(sid)["payment_intent"])
        return pi, refund_processed(pi)

    def test_full_refund_takes_the_pack_back(self):
        u = self.user()
        s1 = buy_pack(u, "boost-medium")
        s2 = buy_pack(u, "boost-small")
        kept = pack_tokens("boost-medium")
        small = pack_tokens("boost-small")
        self.assertEqual(balance(u.id), kept + small)
        pi, eid = self.refund(s2)
        self.assertEqual(balance(u.id), kept)
        tx = ledger(u.id)
        self.assertEqual(len(tx), 3)
        t = tx[-1]
        self.assertEqual((t["credits_delta"], t["balance_before"], t["balance_after"],
                          t["transaction_type"], t["activity_type"]),
                         (-small, kept + small, kept, "refund", "refund"))
        self.assertEqual((t["metadata"].get("stripeSessionId"),
                          t["metadata"].get("paymentIntentId")), (s2, pi))
        bp = db_row("SELECT credits_applied, credits_refunded FROM boost_pack_purchases"
                    " WHERE stripe_session_id = %s", s2)
        self.assertEqual(bp, {"credits_applied": small, "credits_refunded": small})
        self.assertEqual(db_rows("SELECT product, units_reversed FROM payment_reversals"
                                 " WHERE stripe_session_id = %s", s2),
                         [{"product": "boost_pack", "units_reversed": small}])
        self.assertEqual(db_scalar("SELECT status FROM checkout_sessions"
                                   " WHERE stripe_session_id = %s", s2), "refunded")
        self.assertEqual(db_scalar("SELECT status FROM checkout_sessions"
                                   " WHERE stripe_session_id = %s", s1), "fulfilled")
        self.assertEqual(self.assertBalanceApi(u)["balance"], kept)
        jt = u.get("/api/credits/transactions?limit=1").json["transactions"][0]
        self.assertEqual((jt["creditsDelta"], jt["transactionType"], jt["activityType"]),
                         (-small, "refund", "refund"))
        # the refund event again, and the old payment event again: nothing changes
        self.assertEqual(emu_deliver(eid, times=2)["statuses"], [200, 200])
        self.assertEqual(emu_deliver(completed_event(s2)["id"])["statuses"], [200])
        self.assertFalse(u.confirm(s2).json["fulfilledNow"])
        self.assertEqual(balance(u.id), kept)
        self.assertEqual(len(ledger(u.id)), 3)
        self.assertLedger()

    def test_refund_processed_before_fulfilment_grants_nothing(self):
        """Events may arrive out of order: charge.refunded before the
        checkout.session.completed of the same payment.  The refunded payment
        must end up granting nothing (net), whichever order the events come in."""
        u = self.user()
        sid = start_pack(u, "boost-small")
        emu_hold()
        pi = emu_pay(sid).json["payment_intent"]
        r = stripe_api("POST", "/v1/refunds", {"payment_intent": pi})
        self.assertStatus(r, 200, "refund")
        rel = emu_release("reverse")
        self.assertEqual(set(rel["statuses"]), {200}, rel)
        ids = session_event_ids(sid)
        refunded = events_about(r.json["charge"], "charge.refunded")
        self.assertEqual(len(refunded), 1)
        self.assertIn(refunded[0]["id"], ids)
        for eid in ids:
            wait_until(lambda: event_processed(eid), 20, message=f"{eid} processed")
        # the buyer comes back from Checkout afterwards as well
        self.assertStatus(u.confirm(sid), 200)
        self.assertEqual(balance(u.id), 0,
                         "a payment refunded before it was fulfilled still credited the pack")
        self.assertEqual(sum(t["credits_delta"] for t in ledger(u.id)), 0)

    def test_refund_never_takes_balance_below_zero(self):
        u = self.user()
        sid = buy_pack(u, "boost-small")
        small = pack_tokens("boost-small")
        spent = small - 417_000
        consume(u.id, spent)
        self.assertEqual(balance(u.id), 417_000)
        self.assertLedger(u.id)
        self.refund(sid)
        self.assertEqual(balance(u.id), 0)
        tx = ledger(u.id)
        self.assertEqual([(t["credits_delta"], t["transaction_type"]) for t in tx],
                         [(small, "allocation"), (-spent, "consumption"), (-417_000, "refund")])
        self.assertEqual(tx[-1]["balance_after"], 0)
        row = balance_row(u.id)
        self.assertEqual((row["balance"], row["total_spent"]), (0, spent))
        self.assertLedger()


class SubscriptionTests(CreditsCase):

    def subscribe(self, u, plan="starter"):
        r = create_checkout(u, {"purchaseType": "subscription", "planId": plan})
        self.assertStatus(r, 200, "create-checkout subscription")
        sid = r.json["sessionId"]
        cs = stripe_session(sid)
        self.assertEqual((cs["mode"], cs["ui_mode"]), ("subscription", "embedded"))
        ck = checkout_rows(u.id)[-1]
        self.assertEqual((ck["stripe_session_id"], ck["product"], ck["item_code"], ck["mode"]),
                         (sid, "subscription", plan, "subscription"))
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM audit_log WHERE action ="
                                   " 'SUBSCRIPTION_CHECKOUT_INITIATED' AND entity_id = %s",
                                   sid), 1)
        paid = emu_pay(sid).json
        sub = paid.get("subscription")
        self.assertTrue(isinstance(sub, str) and sub.startswith("sub_"), paid)
        return sid, sub

    def test_one_plan_at_a_time(self):
        """A user whose plan Billing shows (active, trialing, past due, or
        cancelled at period end but not ended) cannot start a second one; once
        it has ended, they can."""
        u = self.user()
        _, sub = self.subscribe(u)
        wait_until(lambda: db_scalar("SELECT status FROM subscriptions WHERE"
                                     " stripe_subscription_id = %s", sub) == "active",
                   20, message="subscription recorded")
        sessions = emu_state()["checkout_sessions"]
        try:
            for status in ("trialing", "past_due", "active"):
                db_exec("UPDATE subscriptions SET status = %s WHERE stripe_subscription_id = %s",
                        status, sub)
                for plan in ("starter", "pro"):
                    self.assertError(create_checkout(u, {"purchaseType": "subscription",
                                                         "planId": plan}), 409,
                                     "already_subscribed")
        finally:    # as Stripe has it, which the replay of the books rebuilds
            db_exec("UPDATE subscriptions SET status = 'active' WHERE stripe_subscription_id = %s",
                    sub)
        self.assertEqual(emu_state()["checkout_sessions"], sessions)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM checkout_sessions WHERE user_id = %s"
                                   " AND product = 'subscription'", u.id), 1)
        # a boost pack is still for sale
        self.assertStatus(create_checkout(u, {"purchaseType": "boost_pack",
                                              "boostPackId": "boost-small"}), 200)
        local = db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)
        self.assertStatus(u.post(f"/api/subscriptions/{local}/cancel", {}), 200, "cancel")
        self.assertError(create_checkout(u, {"purchaseType": "subscription", "planId": "pro"}),
                         409, "already_subscribed")
        emu_ok("POST", f"/_emu/subscriptions/{sub}/end_period")
        wait_until(lambda: db_scalar("SELECT status FROM subscriptions WHERE id = %s",
                                     local) == "canceled", 20, message="subscription ended")
        self.subscribe(u, "pro")

    def plan_checkout(self, u, plan):
        r = create_checkout(u, {"purchaseType": "subscription", "planId": plan})
        self.assertStatus(r, 200, f"create-checkout {plan}")
        return r.json["sessionId"]

    def test_one_plan_checkout_can_be_paid_at_a_time(self):
        """Two tabs, two plans: picking the second expires the first at
        Stripe, so only one can be paid; the same plan again is the same
        checkout."""
        u = self.user()
        starter = self.plan_checkout(u, "starter")
        self.assertEqual(self.plan_checkout(u, "starter"), starter, "the same plan again")
        pro = self.plan_checkout(u, "pro")
        self.assertNotEqual(pro, starter)
        self.assertEqual((stripe_session(starter)["status"], stripe_session(pro)["status"]),
                         ("expired", "open"))
        self.assertGreaterEqual(emu_pay(starter, expect=None).status, 400,
                                "paying the expired checkout")
        emu_pay(pro)
        wait_until(lambda: db_scalar("SELECT COUNT(*) FROM subscriptions WHERE user_id = %s"
                                     " AND status = 'active'", u.id) == 1, 20,
                   message="the pro plan recorded")
        self.assertEqual(db_rows("SELECT plan_id FROM subscriptions WHERE user_id = %s", u.id),
                         [{"plan_id": "pro"}])

    def test_a_plan_paid_meanwhile_is_fulfilled_and_the_next_refused(self):
        u = self.user()
        emu_hold()          # its events wait: only the next pick can learn it was paid
        starter = self.plan_checkout(u, "starter")
        emu_pay(starter)
        self.assertError(create_checkout(u, {"purchaseType": "subscription", "planId": "pro"}),
                         409, "already_subscribed")
        self.assertEqual(checkout_rows(u.id)[-1]["status"], "fulfilled")
        self.assertEqual(db_rows("SELECT plan_id FROM subscriptions WHERE user_id = %s", u.id),
                         [{"plan_id": "starter"}])
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM checkout_sessions WHERE user_id = %s"
                                   " AND product = 'subscription'", u.id), 1)
        emu_release()

    def test_plan_checkouts_started_at_once_leave_one_payable(self):
        u = self.user()
        n = 8
        barrier = threading.Barrier(n)
        plans = ["starter", "pro"] * (n // 2)

        def go(plan):
            barrier.wait(20)
            return create_checkout(u, {"purchaseType": "subscription", "planId": plan})

        res = parallel(go, plans, threads=n)
        for r in res:
            self.assertNotIsInstance(r, Exception, f"create-checkout raised {r!r}")
            if r.status != 200:
                self.assertError(r, 409, "checkout_in_progress")
        answered = {r.json["sessionId"] for r in res if r.status == 200}
        self.assertTrue(answered, res)
        recorded = [x["stripe_session_id"] for x in checkout_rows(u.id)]
        open_ = [sid for sid in recorded if stripe_session(sid)["status"] == "open"]
        self.assertEqual(len(open_), 1, f"payable plan checkouts: {open_} of {recorded}")

    def test_a_plan_stripe_has_ended_is_409_before_its_event_comes(self):
        """The period ends at Stripe while its event is held: resuming (or
        cancelling) answers 409 subscription_not_active, not a 502, and the
        row learns the end from Stripe at once."""
        u = self.user()
        _, sub = self.subscribe(u)
        wait_until(lambda: len(allocations(sub)) == 1, 20, message="first invoice allocated")
        local = db_scalar("SELECT id FROM subscriptions WHERE stripe_subscription_id = %s", sub)
        self.assertStatus(u.post(f"/api/subscriptions/{local}/cancel", {}), 200, "cancel")
        emu_hold()
        try:
            emu_ok("POST", f"/_emu/subscriptions/{sub}/end_period")
            self.assertEqual(stripe_api("GET", f"/v1/subscriptions/{sub}").json["status"],
                             "canceled")
            self.assertError(u.post(f"/api/subscriptions/{local}/resume", {}), 409,
                             "subscription_not_active")
            self.assertEqual(db_scalar("SELECT status FROM subscriptions WHERE id = %s", local),
                             "canceled")
            self.assertError(u.post(f"/api/subscriptions/{local}/cancel", {}), 409,
                             "subscription_not_active")
        finally:
            emu_release()
        wait_until(lambda: all(event_processed(e["id"]) for e in events_about(sub)), 20,
                   message="held events processed")
        self.assertEqual(db_scalar("SELECT status FROM subscriptions WHERE id = %s", local),
                         "canceled")

    def test_cancel_at_period_end_then_it_ends(self):
        u, other = self.user(), self.user()
        sid, sub = self.subscribe(u)
        wait_until(lambda: len(allocations(sub)) == 1, 20, message="first invoice allocated")
        local = db_row("SELECT id, status, cancel_at_period_end,"
                       " UNIX_TIMESTAMP(current_period_end) AS ends FROM subscriptions"
                       " WHERE stripe_subscription_id = %s", sub)
        stripe_sub = stripe_api("GET", f"/v1/subscriptions/{sub}").json
        self.assertEqual((local["status"], local["cancel_at_period_end"], int(local["ends"])),
                         ("active", 0, stripe_sub["current_period_end"]))
        path = f"/api/subscriptions/{local['id']}/cancel"
        self.assertStatus(other.post(path, {}), 404, "another user's subscription")
        r = u.post(path, {})
        self.assertStatus(r, 200, "cancel")
        self.assertEqual((r.json["id"], r.json["status"], r.json["cancelAtPeriodEnd"]),
                         (local["id"], "active", True))
        self.assertIs(stripe_api("GET", f"/v1/subscriptions/{sub}").json["cancel_at_period_end"],
                      True)
        self.assertStatus(u.post(path, {}), 200, "cancel again")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM audit_log WHERE action ="
                                   " 'SUBSCRIPTION_CANCEL_REQUESTED' AND entity_id = %s",
                                   str(local["id"])), 1)
        emu_ok("POST", f"/_emu/subscriptions/{sub}/end_period")
        wait_until(lambda: db_scalar("SELECT status FROM subscriptions WHERE id = %s",
                                     local["id"]) == "canceled", 20,
                   message="customer.subscription.deleted processed")
        r = u.post(path, {})
        self.assertStatus(r, 409, "cancel an ended subscription")
        self.assertEqual(r.error_code, "subscription_not_active")
        # a late invoice.paid for it does not bring it back
        self.assertEqual(emu_deliver(invoice_events(sub)[0]["id"])["statuses"], [200])
        self.assertEqual(db_scalar("SELECT status FROM subscriptions WHERE id = %s",
                                   local["id"]), "canceled")

    def test_two_invoices_credit_twice_and_each_once(self):
        u = self.user()
        per = STARTER_CREDITS * rate()
        sid, sub = self.subscribe(u)
        wait_until(lambda: len(allocations(sub)) == 1, 20, message="first invoice allocated")
        self.assertEqual(balance(u.id), per)
        r = u.confirm(sid)
        self.assertStatus(r, 200)
        self.assertIs(r.json["paid"], True)
        wait_until(lambda: completed_processed([sid]) == 1, 20,
                   message="completed event processed")
        row = db_row("SELECT user_id, plan_id, stripe_session_id, status FROM subscriptions"
                     " WHERE stripe_subscription_id = %s", sub)
        self.assertEqual(row, {"user_id": u.id, "plan_id": "starter", "stripe_session_id": sid,
                               "status": "active"})
        self.assertEqual(balance(u.id), per, "the checkout itself must not credit")

        inv2 = emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
        self.assertTrue(inv2["id"].startswith("in_"), inv2)
        wait_until(lambda: len(allocations(sub)) == 2, 20, message="renewal allocated")
        self.assertEqual(balance(u.id), 2 * per)
        evs = invoice_events(sub)
        self.assertEqual(len(evs), 2)
        inv1 = evs[0]["data"]["object"]["id"]
        self.assertEqual(evs[1]["data"]["object"]["id"], inv2["id"])
        self.assertEqual(allocations(sub), [{"stripe_invoice_id": inv1, "credits": per},
                                            {"stripe_invoice_id": inv2["id"], "credits": per}])
        tx = ledger(u.id)
        self.assertEqual([(t["credits_delta"], t["transaction_type"], t["activity_type"],
                           t["metadata"].get("stripeInvoiceId")) for t in tx],
                         [(per, "allocation", "subscription_renewal", inv1),
                          (per, "allocation", "subscription_renewal", inv2["id"])])
        for t in tx:
            self.assertEqual(t["metadata"].get("stripeSubscriptionId"), sub)
            self.assertEqual(t["metadata"].get("planId"), "starter")

        # the same invoices delivered again (twice each): no more credit
        for e in evs:
            wait_until(lambda: event_processed(e["id"]), 20, message=f"{e['id']} processed")
            self.assertEqual(emu_deliver(e["id"], times=2)["statuses"], [200, 200])
        self.assertEqual(emu_deliver(completed_event(sid)["id"])["statuses"], [200])
        self.assertEqual(balance(u.id), 2 * per)
        self.assertEqual(len(ledger(u.id)), 2)
        self.assertEqual(len(allocations(sub)), 2)
        self.assertEqual(self.assertBalanceApi(u),
                         {"balance": 2 * per, "available": 2 * per, "frozen": 0,
                          "totalEarned": 2 * per, "totalSpent": 0,
                          "bonusEarned": 0})
        self.assertLedger()

    def test_events_out_of_order_credit_once(self):
        u = self.user()
        per = STARTER_CREDITS * rate()
        emu_hold()
        sid, sub = self.subscribe(u)
        self.assertEqual(balance(u.id), 0)
        # checkout.session.completed first, invoice.paid after it
        rel = emu_release("reverse")
        self.assertEqual(set(rel["statuses"]), {200}, rel)
        wait_until(lambda: len(allocations(sub)) == 1, 20, message="invoice allocated")
        wait_until(lambda: completed_processed([sid]) == 1, 20,
                   message="completed event processed")
        self.assertEqual(balance(u.id), per)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM subscriptions"
                                   " WHERE stripe_subscription_id = %s", sub), 1)
        self.assertEqual(db_scalar("SELECT stripe_session_id FROM subscriptions"
                                   " WHERE stripe_subscription_id = %s", sub), sid)
        self.assertEqual(len(ledger(u.id)), 1)

    def test_someone_elses_session_grants_nothing(self):
        a, b = self.user(), self.user()
        sid = start_pack(a, "boost-large")
        emu_pay(sid)
        self.assertError(b.confirm(sid), 404, "checkout_not_found", "B confirming A's session")
        self.assertEqual(ledger(b.id), [])
        self.assertIsNone(balance_row(b.id))
        wait_until(lambda: completed_processed([sid]) == 1, 20,
                   message="completed event processed")
        self.assertEqual(balance(a.id), pack_tokens("boost-large"))
        self.assertEqual(balance(b.id), 0)

    def test_same_invoice_delivered_twice_concurrently_credits_once(self):
        u = self.user()
        per = STARTER_CREDITS * rate()
        sid, sub = self.subscribe(u)
        wait_until(lambda: len(allocations(sub)) == 1, 20, message="first invoice allocated")
        emu_hold()
        inv = emu_ok("POST", f"/_emu/subscriptions/{sub}/renew")
        ev = wait_until(lambda: events_about(inv["id"], "invoice.paid"), 10,
                        message="invoice.paid event")
        self.assertEqual(len(ev), 1)
        out = {}
        barrier = threading.Barrier(2)

        def deliver():
            barrier.wait(10)
            out["deliver"] = emu_deliver(ev[0]["id"], times=2)

        def release():
            barrier.wait(10)
            out["release"] = emu_release("fifo")

        ts = [threading.Thread(target=deliver), threading.Thread(target=release)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(out["deliver"]["statuses"], [200, 200], out["deliver"])
        wait_until(lambda: event_processed(ev[0]["id"]), 20, message="invoice event processed")
        self.assertEqual(allocations(sub)[-1], {"stripe_invoice_id": inv["id"], "credits": per})
        self.assertEqual(len(allocations(sub)), 2)
        self.assertEqual(balance(u.id), 2 * per)
        self.assertEqual(len(ledger(u.id)), 2)
        self.assertLedger()
