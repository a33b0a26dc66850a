"""
Paid consultations (Quick Chat chat10, Live Video video15, Diagnostic) and
their chat rooms, end to end: GET /api/checkout?plan= (a page that changes
nothing) → its button's POST /api/checkout {plan} → the emulator's hosted
page → pay → the success page → the room; fulfilment exactly once however
confirm-payment, the success page, resolve-by-stripe and webhooks race;
who may see a room; the mechanic joining; messages between two browsers by
short polling; refunds closing an unstarted consultation.
"""

import time
import urllib.parse

from . import lib
from .lib import Case

WAITING = "Waiting for a mechanic to join"
PLANS = {"chat10": ("chat", 999), "video15": ("video", 2999), "diagnostic": ("diagnostic", 4999)}


def start_plan(browser, plan):
    """The page's button: POST /api/checkout {plan} → (response, its cs_ id)."""
    r = browser.post("/api/checkout", {"plan": plan})
    sid = (r.json or {}).get("session_id") if r.status == 200 else None
    return r, sid


def paid_plan(browser, plan):
    """A started and paid (not yet fulfilled by us) consultation checkout: its cs_ id."""
    r, sid = start_plan(browser, plan)
    lib.check_status(r, 200, f"checkout {plan}")
    lib.emu_pay(sid)
    return sid


def session_rows(sid):
    return lib.db_rows("SELECT * FROM sessions WHERE stripe_session_id = %s", sid)


def participants(session_id):
    return lib.db_rows("SELECT user_id, role FROM session_participants WHERE session_id = %s"
                       " ORDER BY joined_at, user_id", session_id)


def mechanic():
    m = lib.register(name="Mia Mechanic")
    lib.promote(m, role="mechanic")
    return m


def admin():
    a = lib.register(name="Ada Admin")
    lib.promote(a, role="admin")
    return a


class ConsultationCheckout(Case):

    def test_plan_checkout_post_returns_hosted_page(self):
        b = lib.register()
        for plan, (_, cents) in PLANS.items():
            with self.subTest(plan=plan):
                r, sid = start_plan(b, plan)
                self.assertStatus(r, 200, plan)
                self.assertEqual(r.json["url"], lib.emu_url() + "/checkout/pay/" + sid)
                row = lib.db_row("SELECT product, item_code, quantity, amount_cents, status"
                                 " FROM checkout_sessions WHERE stripe_session_id = %s", sid)
                self.assertEqual(row, {"product": "consultation", "item_code": plan,
                                       "quantity": 1, "amount_cents": cents, "status": "open"})
                cs = lib.stripe_session(sid)
                self.assertEqual(cs["amount_total"], cents)
                self.assertEqual(cs["metadata"].get("product"), "consultation")
                self.assertEqual(cs["metadata"].get("item"), plan)
                self.assertEqual(cs["metadata"].get("user_id"), str(b.id))
                self.assertEqual(lib.audit_count("CHECKOUT_STARTED", sid), 1)

    def test_signed_out_checkout_goes_to_login(self):
        r = lib.Browser().get("/api/checkout?plan=chat10")
        self.assertStatus(r, 303)
        self.assertEqual(r.header("location"),
                         "/login?redirect=" + urllib.parse.quote("/api/checkout?plan=chat10", safe=""))

    def test_plan_page_changes_nothing_and_its_button_posts(self):
        b = lib.register()
        before = len(lib.checkout_rows(b.id))
        for plan, (_, cents) in PLANS.items():
            with self.subTest(plan=plan):
                for method in ("GET", "HEAD"):
                    r = b.request(method, "/api/checkout?plan=" + plan)
                    self.assertStatus(r, 200, method)
                    self.assertTrue(r.header("content-type").startswith("text/html"))
                page = b.get("/api/checkout?plan=" + plan).text
                self.assertIn('<form method="post" action="/api/checkout" data-form="plan">', page)
                self.assertIn(f'<input type="hidden" name="plan" value="{plan}">', page)
                self.assertIn(f'<meta name="csrf-token" content="{b.csrf}">', page)
                self.assertIn(f"${cents // 100}.{cents % 100:02d}", page)
        self.assertEqual(len(lib.checkout_rows(b.id)), before, "a GET or HEAD started a checkout")
        self.assertEqual(lib.db_scalar("SELECT COUNT(*) FROM audit_log WHERE user_id = %s"
                                       " AND action = 'CHECKOUT_STARTED'", b.id), 0)
        # The POST needs the CSRF token, as every cookie-authenticated write.
        self.assertError(b.post("/api/checkout", {"plan": "chat10"}, csrf=False), 403,
                         "csrf_token_invalid")
        self.assertError(lib.Browser().post("/api/checkout", {"plan": "chat10"}), 401)
        self.assertEqual(len(lib.checkout_rows(b.id)), before)

    def test_bad_plan_is_a_page_with_a_sentence_and_a_400_error_on_post(self):
        b = lib.register()
        before = len(lib.checkout_rows(b.id))
        for q in ("plan=bogus", "plan=chat10%27", "plan=CHAT10", "plan=live_help",
                  "plan=" + "x" * 40, ""):
            with self.subTest(q=q):
                r = b.get("/api/checkout?" + q)
                self.assertStatus(r, 400, q)
                self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")
                self.assertIn("<h1>", r.text)
                self.assertNotIn('"error"', r.text)
        self.assertIn("There is no consultation plan by that name",
                      b.get("/api/checkout?plan=bogus").text)
        self.assertIn("Choose a consultation plan", b.get("/api/checkout").text)
        for plan in ("bogus", "CHAT10", "live_help", "x" * 40):
            with self.subTest(plan=plan):
                self.assertError(b.post("/api/checkout", {"plan": plan}), 400, "invalid_plan")
        self.assertError(b.post("/api/checkout", {}), 400, "missing_plan")
        self.assertEqual(len(lib.checkout_rows(b.id)), before, "no checkout was created")

    def test_chat_goes_to_its_room_and_others_to_thank_you(self):
        b = lib.register()
        for plan, (kind, cents) in PLANS.items():
            with self.subTest(plan=plan):
                sid = paid_plan(b, plan)
                r = b.get("/checkout/success?session_id=" + sid)
                self.assertStatus(r, 303, "success page")
                rows = session_rows(sid)
                self.assertEqual(len(rows), 1, rows)
                s = rows[0]
                self.assertEqual((s["user_id"], s["type"], s["plan"], s["amount_cents"], s["status"]),
                                 (b.id, kind, plan, cents, "waiting"))
                self.assertEqual(participants(s["id"]), [{"user_id": b.id, "role": "customer"}])
                want = f"/chat/{s['id']}" if kind == "chat" else f"/thank-you?session={s['id']}"
                self.assertEqual(r.header("location"), want)
                if kind == "chat":
                    page = b.get(want)
                    self.assertStatus(page, 200, "room")
                    self.assertIn(WAITING, page.text)

    def test_fulfilled_once_when_everything_races(self):
        b = lib.register()
        lib.emu_hold()
        sid = paid_plan(b, "chat10")
        event = lib.completed_event(sid)["id"]

        def act(what):
            if what == "confirm":
                return b.confirm(sid)
            if what == "success":
                return b.get("/checkout/success?session_id=" + sid)
            if what == "resolve":
                return b.get("/api/sessions/resolve-by-stripe?session_id=" + sid)
            if what == "release":
                return lib.emu_release("fifo")
            return lib.emu_deliver(event, times=2)

        work = ["confirm", "success", "resolve", "release", "deliver"] * 3
        results = lib.parallel(act, work, threads=len(work))
        errors = [x for x in results if isinstance(x, Exception)]
        self.assertEqual(errors, [])
        lib.wait_until(lambda: lib.event_processed(event), message="completed event processed")

        rows = session_rows(sid)
        self.assertEqual(len(rows), 1, rows)
        sess = rows[0]["id"]
        self.assertEqual(participants(sess), [{"user_id": b.id, "role": "customer"}])
        self.assertEqual(lib.audit_count("PAYMENT_FULFILLED", sid), 1)
        self.assertEqual(lib.db_scalar("SELECT status FROM checkout_sessions"
                                       " WHERE stripe_session_id = %s", sid), "fulfilled")
        for what, res in zip(work, results):
            if what == "confirm":
                self.assertStatus(res, 200, "confirm")
                self.assertTrue(res.json["paid"])
                self.assertEqual(res.json["route"], f"/chat/{sess}")
            elif what == "success":
                self.assertStatus(res, 303, "success")
                self.assertEqual(res.header("location"), f"/chat/{sess}")
            elif what == "resolve":
                self.assertStatus(res, 200, "resolve")
                self.assertEqual(res.json, {"id": sess, "type": "chat", "route": f"/chat/{sess}"})
        granted = [r.json["fulfilledNow"] for w, r in zip(work, results) if w == "confirm"]
        self.assertLessEqual(sum(granted), 1, granted)


class ResolveByStripe(Case):

    def test_resolve_fulfils_first_then_answers(self):
        b = lib.register()
        lib.emu_hold()
        sid = paid_plan(b, "video15")
        self.assertEqual(session_rows(sid), [], "nothing granted before anyone asks")
        r = b.get("/api/sessions/resolve-by-stripe?session_id=" + sid)
        self.assertStatus(r, 200)
        sess = session_rows(sid)[0]["id"]
        self.assertEqual(r.json, {"id": sess, "type": "video",
                                  "route": f"/thank-you?session={sess}"})
        lib.emu_release("fifo")
        again = b.get("/api/sessions/resolve-by-stripe?session_id=" + sid)
        self.assertEqual((again.status, again.json), (200, r.json))
        self.assertEqual(len(session_rows(sid)), 1)

    def test_resolve_is_404_for_others_unpaid_and_unknown(self):
        owner, other = lib.register(), lib.register()
        sid = paid_plan(owner, "chat10")
        lib.check_status(owner.get("/checkout/success?session_id=" + sid), 303)
        self.assertError(other.get("/api/sessions/resolve-by-stripe?session_id=" + sid), 404)
        _, unpaid = start_plan(owner, "chat10")
        self.assertError(owner.get("/api/sessions/resolve-by-stripe?session_id=" + unpaid), 404,
                         "consultation_not_found")
        self.assertError(owner.get("/api/sessions/resolve-by-stripe?session_id=cs_test_nope"), 404)
        self.assertError(owner.get("/api/sessions/resolve-by-stripe"), 400, "missing_session_id")
        self.assertError(lib.Browser().get("/api/sessions/resolve-by-stripe?session_id=" + sid), 401)


def bought_chat(browser):
    """A fulfilled chat10 consultation: its sessions.id."""
    sid = paid_plan(browser, "chat10")
    lib.check_status(browser.get("/checkout/success?session_id=" + sid), 303, "success page")
    return session_rows(sid)[0]["id"]


class Room(Case):

    def test_room_is_for_participants_only(self):
        owner, other = lib.register(), lib.register()
        sess = bought_chat(owner)
        mine = owner.get(f"/chat/{sess}")
        self.assertStatus(mine, 200)
        theirs = other.get(f"/chat/{sess}")
        missing = other.get("/chat/999999999")
        self.assertStatus(theirs, 404)
        self.assertEqual((theirs.status, theirs.text), (missing.status, missing.text),
                         "another user's room looks exactly like one that does not exist")
        self.assertNotIn(WAITING, theirs.text)
        out = lib.Browser().get(f"/chat/{sess}")
        self.assertStatus(out, 303)
        self.assertEqual(out.header("location"), f"/login?redirect=%2Fchat%2F{sess}")
        self.assertError(other.get(f"/api/sessions/{sess}"), 404, "session_not_found")
        self.assertError(other.get(f"/api/sessions/{sess}/messages"), 404, "session_not_found")
        self.assertEqual(other.get("/api/sessions").json, {"sessions": []})
        self.assertError(lib.Browser().get(f"/api/sessions/{sess}"), 401)

    def test_waiting_until_an_admin_adds_a_mechanic(self):
        owner, mech, boss = lib.register(), mechanic(), admin()
        sess = bought_chat(owner)
        self.assertIn(WAITING, owner.get(f"/chat/{sess}").text)
        self.assertStatus(mech.get(f"/chat/{sess}"), 404, "room before joining")

        path = f"/api/admin/sessions/{sess}/participants"
        body = {"userId": mech.id, "role": "mechanic"}
        self.assertError(owner.post(path, body), 403)
        self.assertError(mech.post(path, body), 403)
        self.assertError(boss.post(path, {"userId": owner.id, "role": "mechanic"}), 400,
                         "user_not_mechanic")
        self.assertError(boss.post(path, {"userId": 999999999, "role": "mechanic"}), 400,
                         "user_not_found")
        self.assertError(boss.post(path, {"userId": mech.id, "role": "customer"}), 400,
                         "invalid_role")
        self.assertError(boss.post(path, {"role": "mechanic"}), 400, "missing_user_id")
        self.assertError(boss.post("/api/admin/sessions/999999999/participants", body), 404)
        self.assertIn(WAITING, owner.get(f"/chat/{sess}").text)

        r = boss.post(path, body)
        self.assertStatus(r, 201)
        self.assertEqual(r.json["status"], "active")
        self.assertEqual([(p["userId"], p["role"]) for p in r.json["participants"]],
                         [(owner.id, "customer"), (mech.id, "mechanic")])
        self.assertEqual(lib.audit_count("ADMIN_ADD_PARTICIPANT", str(sess)), 1)
        audit = lib.db_row("SELECT user_id, details FROM audit_log"
                           " WHERE action = 'ADMIN_ADD_PARTICIPANT' AND entity_id = %s", str(sess))
        self.assertEqual(audit["user_id"], boss.id)

        again = boss.post(path, body)
        self.assertStatus(again, 200, "second add")
        self.assertEqual(again.json, r.json)
        self.assertEqual(len(participants(sess)), 2)
        self.assertEqual(lib.audit_count("ADMIN_ADD_PARTICIPANT", str(sess)), 1)

        for who in (owner, mech):
            page = who.get(f"/chat/{sess}")
            self.assertStatus(page, 200)
            self.assertNotIn(WAITING, page.text)
            self.assertIn("Mia Mechanic", page.text)
        listed = mech.get("/api/sessions").json["sessions"]
        self.assertEqual([(s["id"], s["status"], s["route"]) for s in listed],
                         [(sess, "active", f"/chat/{sess}")])
        detail = mech.get(f"/api/sessions/{sess}").json
        self.assertEqual(set(detail), {"id", "type", "plan", "status", "createdAt", "participants"})
        self.assertEqual((detail["type"], detail["plan"]), ("chat", "chat10"))

    def test_the_thank_you_page_is_the_buyers_only_and_says_what_they_bought(self):
        """It never says "Payment received" for a payment nobody made: signed
        out it asks to sign in, a consultation of someone else's or none at
        all does not exist; a chat's page leads to its room."""
        owner, other = lib.register(), lib.register()
        sess = bought_chat(owner)
        path = f"/thank-you?session={sess}"
        out = lib.Browser().get(path)
        self.assertStatus(out, 303)
        self.assertEqual(out.header("location"), "/login?redirect=" + urllib.parse.quote(path, ""))
        for who, p in ((other, path), (owner, "/thank-you?session=999999999"),
                       (owner, "/thank-you?session=abc"), (owner, "/thank-you")):
            page = who.get(p)
            self.assertStatus(page, 404, p)
            self.assertNotIn("Payment received", page.text, p)
            self.assertIn("<title>Not found · creditdesk</title>", page.text, p)
            self.assertIn("<h1>Not found</h1>", page.text, p)
        page = owner.get(path)
        self.assertStatus(page, 200)
        self.assertIn("<h1>Payment received</h1>", page.text)
        self.assertIn(f'<a class="button" href="/chat/{sess}">Open the chat room</a>', page.text)
        self.assertNotIn("diagnostic", page.text)

    def test_my_sessions_newest_first(self):
        b = lib.register()
        first = bought_chat(b)
        sid = paid_plan(b, "diagnostic")
        lib.check_status(b.get("/checkout/success?session_id=" + sid), 303)
        second = session_rows(sid)[0]["id"]
        got = b.get("/api/sessions").json["sessions"]
        self.assertEqual([(s["id"], s["type"], s["plan"], s["status"], s["route"]) for s in got],
                         [(second, "diagnostic", "diagnostic", "waiting",
                           f"/thank-you?session={second}"),
                          (first, "chat", "chat10", "waiting", f"/chat/{first}")])
        self.assertRegex(got[0]["createdAt"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class Messages(Case):

    def setUp(self):
        super().setUp()
        self.owner, self.mech, self.boss = lib.register(), mechanic(), admin()
        self.sess = bought_chat(self.owner)
        lib.check_status(self.boss.post(f"/api/admin/sessions/{self.sess}/participants",
                                        {"userId": self.mech.id, "role": "mechanic"}), 201)
        self.path = f"/api/sessions/{self.sess}/messages"

    def test_a_message_reaches_the_other_browser_within_two_seconds(self):
        seen = self.mech.get(self.path).json["messages"]
        last = seen[-1]["id"] if seen else 0
        sent = self.owner.post(self.path, {"body": "My car makes a noise."})
        self.assertStatus(sent, 201)
        t0 = time.monotonic()
        got = []
        while time.monotonic() - t0 < 2.0 and not got:   # the page polls once a second
            r = self.mech.get(f"{self.path}?after={last}")
            self.assertStatus(r, 200)
            got = r.json["messages"]
            if not got:
                time.sleep(0.25)
        self.assertEqual(got, [sent.json["message"]])
        m = got[0]
        self.assertEqual((m["userId"], m["name"], m["body"]),
                         (self.owner.id, "Integration Tester", "My car makes a noise."))
        reply = self.mech.post(self.path, {"body": "Which kind of noise?"})
        self.assertStatus(reply, 201)
        r = self.owner.get(f"{self.path}?after={m['id']}")
        self.assertEqual([x["body"] for x in r.json["messages"]], ["Which kind of noise?"])
        everything = self.owner.get(self.path).json["messages"]
        self.assertEqual([x["id"] for x in everything], sorted(x["id"] for x in everything))
        page = self.mech.get(f"/chat/{self.sess}")
        self.assertIn("My car makes a noise.", page.text)
        self.assertIn(f'data-last-id="{reply.json["message"]["id"]}"', page.text)

    def test_concurrent_posts_are_never_skipped_by_polling(self):
        """Every message is seen by a poller that only ever asks for after=<last>."""
        seen, last, stop = [], 0, [False]

        def post(i):
            who = self.owner if i % 2 else self.mech
            return who.post(self.path, {"body": f"m{i}"})

        import threading

        def poller():
            nonlocal last
            while not stop[0]:
                for m in self.owner.get(f"{self.path}?after={last}").json["messages"]:
                    seen.append(m["id"])
                    last = m["id"]
        t = threading.Thread(target=poller)
        t.start()
        try:
            results = lib.parallel(post, range(40), threads=8)
        finally:
            time.sleep(0.5)
            stop[0] = True
            t.join()
        for m in self.owner.get(f"{self.path}?after={last}").json["messages"]:
            seen.append(m["id"])
        ids = sorted(r.json["message"]["id"] for r in results)
        self.assertEqual(seen, ids)

    def test_message_validation(self):
        o = self.owner
        for body in ({}, {"body": ""}, {"body": "   \n\t"}, {"body": "x" * 4001},
                     {"body": "é" * 4001}, {"body": 5}, {"body": None}):
            with self.subTest(body=str(body)[:30]):
                self.assertError(o.post(self.path, body), 400)
        self.assertError(o.post(self.path, {"body": "x" * 4001}), 400, "invalid_body")
        self.assertStatus(o.post(self.path, {"body": "é" * 4000}), 201, "4000 two-byte characters")
        self.assertStatus(o.post(self.path, {"body": "x" * 4000}), 201)
        for q in ("after=-1", "after=abc", "after=1.5", "after=", "after=99999999999999999999"):
            with self.subTest(q=q):
                self.assertError(o.get(f"{self.path}?{q}"), 400, ("invalid_after",))
        self.assertError(o.post(self.path, {"body": "hi"}, csrf=False), 403, "csrf_token_invalid")
        self.assertError(o.request("POST", self.path, data="body=hi",
                                   content_type="application/x-www-form-urlencoded"), 415)

    def test_at_most_100_ascending_and_after_pages_on(self):
        first = self.owner.post(self.path, {"body": "first"}).json["message"]["id"]
        for i in range(104):
            # Positions after "first", as the product gives them (seq).
            lib.db_exec("INSERT INTO session_messages (session_id, user_id, body, seq)"
                        " VALUES (%s, %s, %s, %s)", self.sess, self.mech.id, f"bulk {i}", 1000 + i)
        page1 = self.owner.get(self.path).json["messages"]
        self.assertEqual(len(page1), 100)
        self.assertEqual(page1[0]["id"], first)
        ids = [m["id"] for m in page1]
        self.assertEqual(ids, sorted(ids))
        page2 = self.owner.get(f"{self.path}?after={ids[-1]}").json["messages"]
        self.assertEqual([m["body"] for m in page2], [f"bulk {i}" for i in range(99, 104)])

    def test_latest_is_the_last_100_where_a_missed_push_is(self):
        """A page that missed a push asks for ?latest=1: in a room of more
        than 100 messages, the newest 100, oldest first."""
        for i in range(130):
            lib.db_exec("INSERT INTO session_messages (session_id, user_id, body, seq)"
                        " VALUES (%s, %s, %s, %s)", self.sess, self.mech.id, f"bulk {i}", 1000 + i)
        latest = self.owner.get(f"{self.path}?latest=1")
        self.assertStatus(latest, 200, "latest")
        self.assertEqual([m["body"] for m in latest.json["messages"]],
                         [f"bulk {i}" for i in range(30, 130)])
        self.assertEqual([m["body"] for m in self.owner.get(self.path).json["messages"]][:1],
                         ["bulk 0"])
        self.assertError(self.owner.get(f"{self.path}?latest=1&after=1"), 400, "invalid_query")
        self.assertError(self.owner.get(f"{self.path}?latest=2"), 400)
        self.assertError(lib.register().get(f"{self.path}?latest=1"), 404, "session_not_found")

    def test_outsiders_cannot_post_or_read(self):
        other = lib.register()
        self.assertError(other.post(self.path, {"body": "let me in"}), 404, "session_not_found")
        self.assertError(other.get(self.path), 404, "session_not_found")
        self.assertError(other.post("/api/sessions/999999999/messages", {"body": "x"}), 404)
        self.assertError(lib.Browser().post(self.path, {"body": "x"}), 401)
        self.assertEqual(lib.db_scalar("SELECT COUNT(*) FROM session_messages WHERE session_id = %s",
                                       self.sess), 0)

    def test_messages_are_escaped_in_the_room(self):
        evil = '<script>alert("x")</script> & <b>'
        self.assertStatus(self.mech.post(self.path, {"body": evil}), 201)
        page = self.owner.get(f"/chat/{self.sess}").text
        self.assertNotIn("<script>alert", page)
        self.assertIn("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;", page)

    def test_a_closed_session_takes_no_messages(self):
        self.assertStatus(self.owner.post(self.path, {"body": "before"}), 201)
        lib.db_exec("UPDATE sessions SET status = 'closed' WHERE id = %s", self.sess)
        # put back as the app has it: the replay of the books rebuilds the status
        self.addCleanup(lib.db_exec, "UPDATE sessions SET status = 'active' WHERE id = %s",
                        self.sess)
        self.assertError(self.owner.post(self.path, {"body": "after"}), 409, "session_closed")
        self.assertEqual([m["body"] for m in self.owner.get(self.path).json["messages"]], ["before"])
        page = self.owner.get(f"/chat/{self.sess}")
        self.assertStatus(page, 200)
        self.assertNotIn("data-chat-form", page.text)
        self.assertError(self.boss.post(f"/api/admin/sessions/{self.sess}/participants",
                                        {"userId": self.mech.id, "role": "mechanic"}),
                         409, "session_closed")


class Refunds(Case):

    def refund(self, sid):
        pi = lib.stripe_session(sid)["payment_intent"]
        lib.check_status(lib.stripe_api("POST", "/v1/refunds", {"payment_intent": pi}), 200, "refund")

    def test_a_full_refund_closes_an_unstarted_consultation(self):
        b = lib.register()
        sess = bought_chat(b)
        sid = lib.db_scalar("SELECT stripe_session_id FROM sessions WHERE id = %s", sess)
        self.refund(sid)
        lib.wait_until(lambda: lib.db_scalar("SELECT status FROM sessions WHERE id = %s", sess)
                       == "closed", message="session closed after the refund")
        self.assertError(b.post(f"/api/sessions/{sess}/messages", {"body": "hi"}), 409)
        # a mechanic whose queue page still showed it is told it closed, not that it was taken
        self.assertError(mechanic().post(f"/api/sessions/{sess}/take", {}), 409, "session_closed")
        page = b.get(f"/thank-you?session={sess}")
        self.assertStatus(page, 200, "thank-you page")
        self.assertIn("<h1>Consultation refunded</h1>", page.text)
        self.assertIn(f"was refunded before a mechanic took it, so consultation #{sess} is closed.",
                      page.text)
        self.assertNotIn("A mechanic will take your consultation", page.text)

    def test_a_refund_leaves_a_started_consultation_alone(self):
        b, mech, boss = lib.register(), mechanic(), admin()
        sess = bought_chat(b)
        sid = lib.db_scalar("SELECT stripe_session_id FROM sessions WHERE id = %s", sess)
        lib.check_status(boss.post(f"/api/admin/sessions/{sess}/participants",
                                   {"userId": mech.id, "role": "mechanic"}), 201)
        self.refund(sid)
        lib.wait_until(lambda: lib.audit_count("PAYMENT_REFUNDED", sid) == 1,
                       message="refund processed")
        self.assertEqual(lib.db_scalar("SELECT status FROM sessions WHERE id = %s", sess), "active")


class MechanicQueue(Case):
    """POST /api/sessions/{id}/take: one mechanic wins a consultation."""

    def test_concurrent_takes_one_wins(self):
        import threading
        b = lib.register()
        sess = bought_chat(b)
        mechanics = [mechanic() for _ in range(4)]
        barrier = threading.Barrier(len(mechanics))

        def take(m):
            barrier.wait(10)
            return m.post(f"/api/sessions/{sess}/take", {})

        results = lib.parallel(take, mechanics, threads=len(mechanics))
        self.assertEqual(sorted(r.status for r in results), [201, 409, 409, 409],
                         [repr(r) for r in results])
        winner = mechanics[[r.status for r in results].index(201)]
        for r in results:
            if r.status == 409:
                self.assertEqual(r.error_code, "already_taken")
        ok = [r for r in results if r.status == 201][0]
        self.assertEqual((ok.json["id"], ok.json["status"], ok.json["route"]),
                         (sess, "active", f"/chat/{sess}"))
        self.assertEqual(participants(sess), [{"user_id": b.id, "role": "customer"},
                                              {"user_id": winner.id, "role": "mechanic"}])
        self.assertEqual(lib.db_scalar("SELECT COUNT(*) FROM audit_log WHERE action ="
                                       " 'MECHANIC_TOOK_SESSION' AND entity_id = %s",
                                       str(sess)), 1)

    def test_a_mechanic_cannot_take_their_own_consultation(self):
        m = mechanic()
        sess = bought_chat(m)
        self.assertError(m.post(f"/api/sessions/{sess}/take", {}), 409, "own_consultation")
        self.assertError(admin().post(f"/api/admin/sessions/{sess}/participants",
                                      {"userId": m.id, "role": "mechanic"}), 409,
                         "own_consultation")
        self.assertEqual(lib.db_scalar("SELECT status FROM sessions WHERE id = %s", sess),
                         "waiting")
        self.assertEqual(participants(sess), [{"user_id": m.id, "role": "customer"}])
        self.assertEqual(lib.audit_count("MECHANIC_TOOK_SESSION", str(sess)), 0)
        other = mechanic()
        self.assertStatus(other.post(f"/api/sessions/{sess}/take", {}), 201, "another takes it")
        self.assertEqual(participants(sess), [{"user_id": m.id, "role": "customer"},
                                              {"user_id": other.id, "role": "mechanic"}])

    def test_only_mechanics_take_and_only_waiting(self):
        b = lib.register()
        sess = bought_chat(b)
        r = b.post(f"/api/sessions/{sess}/take", {})
        self.assertStatus(r, 403)
        self.assertEqual(r.error_code, "not_mechanic")
        m = mechanic()
        self.assertStatus(m.post("/api/sessions/999999999/take", {}), 404)
        a = admin()
        lib.check_status(a.post(f"/api/admin/sessions/{sess}/participants",
                                {"userId": m.id, "role": "mechanic"}), 201, "admin assigns")
        r = mechanic().post(f"/api/sessions/{sess}/take", {})
        self.assertStatus(r, 409, "take an assigned consultation")
        self.assertEqual(participants(sess), [{"user_id": b.id, "role": "customer"},
                                              {"user_id": m.id, "role": "mechanic"}])


class DemotedMechanic(Case):
    """A mechanic demoted leaves the rooms they took: they can no longer read,
    write or subscribe; the customer's consultation is back in the queue (it
    stays started), and one mechanic of those racing for it takes it."""

    def test_a_demoted_mechanic_leaves_their_rooms_and_one_other_takes_over(self):
        import threading
        owner, m, boss = lib.register(), mechanic(), admin()
        sess = bought_chat(owner)
        self.assertStatus(m.post(f"/api/sessions/{sess}/take", {}), 201, "take")
        self.assertStatus(m.post(f"/api/sessions/{sess}/messages", {"body": "On it."}), 201)
        self.assertStatus(boss.post(f"/api/admin/users/{m.id}", {"role": "customer"}), 200)
        m.login()
        for path in (f"/api/sessions/{sess}", f"/api/sessions/{sess}/messages",
                     f"/api/sessions/{sess}/stream"):
            self.assertError(m.get(path), 404, "session_not_found")
        self.assertError(m.post(f"/api/sessions/{sess}/messages", {"body": "Still here?"}),
                         404, "session_not_found")
        self.assertStatus(m.get(f"/chat/{sess}"), 404, "the room")
        self.assertEqual(m.get("/api/sessions").json, {"sessions": []})
        self.assertIn(f"/chat/{sess}", owner.get("/dashboard").text)
        self.assertNotIn(f"/chat/{sess}", m.get("/dashboard").text)
        # the customer's room: no mechanic any more, waiting again, the history kept
        detail = owner.get(f"/api/sessions/{sess}").json
        self.assertEqual((detail["status"], [p["userId"] for p in detail["participants"]]),
                         ("active", [owner.id]))
        room = owner.get(f"/chat/{sess}").text
        self.assertIn(WAITING, room)
        self.assertIn("On it.", room)
        self.assertEqual(participants(sess), [{"user_id": owner.id, "role": "customer"},
                                              {"user_id": m.id, "role": "mechanic"}])
        # in the queue again; of two mechanics taking it at once, one wins
        takers = [mechanic(), mechanic()]
        self.assertIn(f'data-session="{sess}"', takers[0].get("/mechanic/queue").text)
        barrier = threading.Barrier(2)

        def take(t):
            barrier.wait(10)
            return t.post(f"/api/sessions/{sess}/take", {})

        results = lib.parallel(take, takers, threads=2)
        self.assertEqual(sorted((r.status, r.error_code) for r in results),
                         [(201, None), (409, "already_taken")], [repr(r) for r in results])
        winner = takers[[r.status for r in results].index(201)]
        self.assertEqual(participants(sess), [{"user_id": owner.id, "role": "customer"},
                                              {"user_id": m.id, "role": "left"},
                                              {"user_id": winner.id, "role": "mechanic"}])
        self.assertEqual(lib.audit_count("MECHANIC_TOOK_SESSION", str(sess)), 2)
        self.assertNotIn(f'data-session="{sess}"', takers[0].get("/mechanic/queue").text)
        self.assertNotIn(WAITING, owner.get(f"/chat/{sess}").text)
        self.assertStatus(winner.get(f"/api/sessions/{sess}/messages"), 200)
        # made a mechanic again after the takeover: the room is no longer theirs
        self.assertStatus(boss.post(f"/api/admin/users/{m.id}", {"role": "mechanic"}), 200)
        m.login()
        self.assertError(m.get(f"/api/sessions/{sess}"), 404, "session_not_found")
        self.assertEqual([p["userId"] for p in owner.get(f"/api/sessions/{sess}").json[
            "participants"]], [owner.id, winner.id])

    def test_a_mechanic_made_one_again_before_a_takeover_keeps_their_room(self):
        owner, m, boss = lib.register(), mechanic(), admin()
        sess = bought_chat(owner)
        self.assertStatus(m.post(f"/api/sessions/{sess}/take", {}), 201, "take")
        for role, status in (("customer", 404), ("mechanic", 200)):
            self.assertStatus(boss.post(f"/api/admin/users/{m.id}", {"role": role}), 200)
            m.login()
            self.assertStatus(m.get(f"/api/sessions/{sess}"), status, role)
        self.assertEqual(participants(sess), [{"user_id": owner.id, "role": "customer"},
                                              {"user_id": m.id, "role": "mechanic"}])
        self.assertNotIn(WAITING, owner.get(f"/chat/{sess}").text)

    def test_takes_of_an_abandoned_consultation_race_to_one(self):
        """Ten rounds: a consultation whose mechanic was demoted, three
        mechanics taking it at once, exactly one joins each time."""
        import threading
        for _ in range(10):
            owner, m = lib.register(), mechanic()
            sess = bought_chat(owner)
            self.assertStatus(m.post(f"/api/sessions/{sess}/take", {}), 201)
            lib.promote(m, role="customer")
            takers = [mechanic() for _ in range(3)]
            barrier = threading.Barrier(3)

            def take(t):
                barrier.wait(10)
                return t.post(f"/api/sessions/{sess}/take", {})

            results = lib.parallel(take, takers, threads=3)
            self.assertEqual(sorted(r.status for r in results), [201, 409, 409],
                             [repr(r) for r in results])
            self.assertEqual([p["role"] for p in participants(sess)],
                             ["customer", "left", "mechanic"])
