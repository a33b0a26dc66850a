"""Auth, sessions, CSRF and the signed-out redirects (issue 2, test 1)."""

import json
import re
import threading

from . import lib
from .lib import (Browser, Case, base_url, checkout_rows, db_row, db_scalar,
                  emu_state, parallel, parse_set_cookie, promote, register,
                  unique_email)


def session_cookie(resp):
    for sc in resp.header_all("set-cookie"):
        name, value, attrs = parse_set_cookie(sc)
        if name == "cd_session":
            return value, attrs
    return None, None


class AuthTests(Case):

    def test_a_name_is_counted_in_characters_and_cannot_be_blank(self):
        for name in ("é" * 100, "名" * 100, "Ada"):
            with self.subTest(name[:3]):
                b = register(name=name)
                self.assertEqual(db_scalar("SELECT name FROM users WHERE id = %s", b.id), name)
        for name in ("é" * 101, " ", "\t\n ", "\u00a0\u3000\u200b"):
            with self.subTest(repr(name[:3])):
                r = Browser().post("/api/auth/register", {"email": unique_email(),
                                                          "password": "a fine long passphrase 7",
                                                          "name": name})
                self.assertError(r, 400, "invalid_name")
                self.assertEqual(r.json["error"]["message"],
                                 "name must be text of 1 to 100 characters, not only spaces.")

    def test_register_then_sign_in_sets_session_cookie(self):
        email = unique_email("Reg").replace("Reg", "ReG")
        b = register(email=email, name="Ada <Tester>")
        # registering answers a neutral message and signs nobody in
        reg = b.last_response
        self.assertStatus(reg, 201, "register")
        self.assertEqual(list(reg.json.keys()), ["message"], reg)
        self.assertIsNone(session_cookie(reg)[0], "register set a session cookie")
        r = b.login_response
        self.assertStatus(r, 200, "sign-in after register")
        j = r.json
        self.assertEqual(j["email"], email.lower(), "email is stored lower-case")
        self.assertEqual(j["name"], "Ada <Tester>")
        self.assertEqual(j["role"], "customer")
        self.assertEqual(j["tier"], "free")
        self.assertIsInstance(j["id"], int)
        self.assertIsInstance(j.get("csrfToken"), str)
        self.assertGreaterEqual(len(j["csrfToken"]), 32)
        self.assertNotIn("password", r.text.lower())
        self.assertNotIn("password_hash", r.text)

        value, attrs = session_cookie(r)
        self.assertIsNotNone(value, f"no cd_session cookie: {r.headers}")
        self.assertRegex(value, r"^[A-Za-z0-9_-]{32,}$")
        self.assertIn("httponly", attrs, f"cookie not HttpOnly: {attrs}")
        self.assertEqual(str(attrs.get("samesite", "")).lower(), "lax", f"{attrs}")
        self.assertEqual(attrs.get("path"), "/", f"{attrs}")
        self.assertNotIn("secure", attrs, "Secure on plain http would drop the cookie")
        self.assertNotIn("domain", attrs)

        row = db_row("SELECT email, name, role, tier, password_hash FROM users WHERE id = %s",
                     j["id"])
        self.assertEqual(row["email"], email.lower())
        self.assertNotEqual(row["password_hash"], b.password)
        self.assertNotIn(b.password, row["password_hash"])
        # Only a hash of the cookie token is stored.
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM auth_sessions WHERE user_id = %s",
                                   j["id"]), 1)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM auth_sessions WHERE token_hash = %s",
                                   value), 0, "the raw cookie token is stored")

        me = b.get("/api/me")
        self.assertStatus(me, 200, "/api/me after register")
        self.assertEqual(me.json["id"], j["id"])
        self.assertEqual(me.json["email"], email.lower())

    def test_unicode_name_round_trips(self):
        a = register(name="Zo\u00eb \U0001F680 \u6771\u4eac")
        me = a.get("/api/me")
        self.assertStatus(me, 200)
        self.assertEqual(me.json["name"], "Zo\u00eb \U0001F680 \u6771\u4eac")
        self.assertEqual(db_scalar("SELECT name FROM users WHERE id = %s", a.id),
                         "Zo\u00eb \U0001F680 \u6771\u4eac")

    def test_register_duplicate_email_answers_like_a_new_one(self):
        a = register()
        fresh = Browser().post("/api/auth/register", {"email": unique_email(),
                                                      "password": "another-pass-1",
                                                      "name": "Fresh"})
        self.assertStatus(fresh, 201, "fresh registration")
        row_before = db_row("SELECT id, name, password_hash FROM users WHERE id = %s", a.id)
        before = db_scalar("SELECT COUNT(*) FROM users")
        for email in (a.email, a.email.upper(), "  " + a.email + " "):
            r = Browser().post("/api/auth/register", {"email": email, "password": "another-pass-1",
                                                      "name": "Dup"})
            self.assertStatus(r, 201, f"duplicate {email!r}")
            self.assertEqual(r.json, fresh.json, "a taken address answers differently")
            self.assertIsNone(session_cookie(r)[0], "a cookie was set for a taken address")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM users WHERE email = %s",
                                   a.email.lower()), 1)
        # the existing account is unchanged and its own password still works
        self.assertEqual(db_row("SELECT id, name, password_hash FROM users WHERE id = %s", a.id),
                         row_before)
        Browser().login(a.email, "another-pass-1", expect=401)
        Browser().login(a.email, a.password, expect=200)
        # the tests run one at a time, so nothing else adds users meanwhile
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM users"), before)

    def test_register_bad_input_400(self):
        good = {"email": unique_email(), "password": "long-enough-1", "name": "Bad Input"}
        cases = [
            ("email", "not-an-email", "invalid_email"),
            ("email", "a@b", "invalid_email"),
            ("email", "two@@example.test", "invalid_email"),
            ("email", 12345, "invalid_email"),
            ("password", "short7!", "invalid_password"),
            ("password", "", "invalid_password"),
            ("name", "", "invalid_name"),
            ("name", "x" * 101, "invalid_name"),
        ]
        users_before = db_scalar("SELECT COUNT(*) FROM users")
        for field, value, code in cases:
            body = dict(good, email=unique_email())
            body[field] = value
            r = Browser().post("/api/auth/register", body)
            self.assertError(r, 400, code, f"register with {field}={value!r}")
            self.assertIsNone(session_cookie(r)[0])
        for field in ("email", "password", "name"):
            body = dict(good, email=unique_email())
            del body[field]
            r = Browser().post("/api/auth/register", body)
            self.assertError(r, 400, f"missing_{field}", f"register without {field}")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM users"), users_before,
                         "a refused sign-up created a user")

    def test_login_logout_and_me(self):
        a = register()
        # wrong password, unknown email: the same 401, no cookie
        for email, pw in ((a.email, a.password + "x"), (unique_email(), a.password)):
            b = Browser()
            r = b.post("/api/auth/login", {"email": email, "password": pw})
            self.assertError(r, 401, "invalid_credentials", "bad login")
            self.assertIsNone(session_cookie(r)[0])
            self.assertError(b.get("/api/me"), 401, "not_signed_in")
        r = Browser().post("/api/auth/login", {"email": a.email})
        self.assertError(r, 400, "missing_password")

        # a second browser signs in (email case does not matter)
        b = Browser()
        r = b.post("/api/auth/login", {"email": a.email.upper(), "password": a.password})
        self.assertStatus(r, 200, "login")
        value, attrs = session_cookie(r)
        self.assertIsNotNone(value)
        self.assertIn("httponly", attrs)
        self.assertEqual(str(attrs.get("samesite")).lower(), "lax")
        self.assertEqual(attrs.get("path"), "/")
        b.signed_in(r)
        self.assertEqual(r.json["id"], a.id)
        self.assertIsInstance(r.json.get("csrfToken"), str)
        me = b.get("/api/me")
        self.assertStatus(me, 200)
        self.assertEqual({k: me.json[k] for k in ("id", "email", "name", "role", "tier")}, a.user)
        self.assertNotIn("password", me.text.lower())

        # logout needs the CSRF token like every cookie-authenticated write
        r = b.post("/api/auth/logout", csrf=False)
        self.assertError(r, 403, "csrf_token_invalid", "logout without X-CSRF-Token")
        self.assertStatus(b.get("/api/me"), 200, "still signed in after a refused logout")

        old_token = b.cookie("cd_session")
        r = b.post("/api/auth/logout")
        self.assertStatus(r, 204, "logout")
        self.assertEqual(r.body, b"")
        value, attrs = session_cookie(r)
        self.assertTrue(value == "" or attrs.get("max-age") == "0",
                        f"logout did not clear the cookie: {r.headers.get('set-cookie')}")
        self.assertError(b.get("/api/me"), 401, "not_signed_in", "/api/me after logout")
        # the old token is dead on the server, not only forgotten by the browser
        replay = Browser()
        replay.set_cookie("cd_session", old_token)
        self.assertError(replay.get("/api/me"), 401, "not_signed_in", "replayed old cookie")
        # the first browser's session is independent and still valid
        self.assertStatus(a.get("/api/me"), 200, "other session survives logout")

    def test_garbage_cookie_is_signed_out(self):
        b = Browser()
        for v in ("x", "A" * 43, "../../etc/passwd", "A" * 5000):
            b.set_cookie("cd_session", v)
            self.assertError(b.get("/api/me"), 401, "not_signed_in", f"cookie {v[:20]!r}")

    def test_csrf_token_required_for_cookie_writes(self):
        a = register()
        sessions_before = emu_state()["checkout_sessions"]

        r = a.post("/api/buy/live_help", {"quantity": 1}, csrf=False)
        self.assertError(r, 403, "csrf_token_invalid", "buy without X-CSRF-Token")
        r = a.post("/api/buy/live_help", {"quantity": 1}, csrf=False,
                   headers={"X-CSRF-Token": "A" * len(a.csrf)})
        self.assertError(r, 403, "csrf_token_invalid", "buy with a wrong X-CSRF-Token")
        other = register()
        r = a.post("/api/buy/live_help", {"quantity": 1}, csrf=False,
                   headers={"X-CSRF-Token": other.csrf})
        self.assertError(r, 403, "csrf_token_invalid", "buy with another user's token")
        r = a.post("/api/buy/live_help", {"quantity": 1},
                   headers={"Origin": "https://evil.example"})
        self.assertError(r, 403, "cross_site_request", "buy with a foreign Origin")
        r = a.post("/api/buy/live_help", {"quantity": 1},
                   headers={"Origin": base_url().replace("127.0.0.1", "localhost")})
        self.assertError(r, 403, "cross_site_request", "buy with another host's Origin")

        self.assertEqual(checkout_rows(a.id), [], "a refused request recorded a checkout")
        self.assertEqual(emu_state()["checkout_sessions"], sessions_before,
                         "a refused request created a Stripe Checkout Session")

        # the same request with the token (and a same-origin Origin) goes through
        r = a.post("/api/buy/live_help", {"quantity": 1}, headers={"Origin": base_url()})
        self.assertStatus(r, 200, "buy with token and same Origin")
        self.assertEqual(len(checkout_rows(a.id)), 1)

    def test_foreign_origin_refused_for_sign_in(self):
        a = register()
        b = Browser()
        r = b.post("/api/auth/login", {"email": a.email, "password": a.password},
                   headers={"Origin": "https://evil.example"})
        self.assertError(r, 403, "cross_site_request", "login from a foreign Origin")
        self.assertIsNone(session_cookie(r)[0])
        email = unique_email()
        r = Browser().post("/api/auth/register", {"email": email, "password": "long-enough-1",
                                                  "name": "X"},
                           headers={"Origin": "http://evil.example"})
        self.assertError(r, 403, "cross_site_request", "register from a foreign Origin")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM users WHERE email = %s", email), 0)

    def test_signed_out_redirects_and_401(self):
        b = Browser()
        r = b.get("/dashboard")
        self.assertStatus(r, 303, "signed-out /dashboard")
        self.assertEqual(r.header("location"), "/login?redirect=%2Fdashboard")
        r = b.get("/checkout/success?session_id=cs_test_nothing")
        self.assertStatus(r, 303, "signed-out success page")
        self.assertTrue(r.header("location", "").startswith("/login?redirect="),
                        r.header("location"))
        self.assertError(b.get("/api/live-help-hour"), 401, "not_signed_in")
        self.assertError(b.get("/api/confirm-payment?status=success&session_id=cs_x1"), 401,
                         "not_signed_in")
        self.assertError(b.post("/api/buy/live_help", {"quantity": 1}), 401, "not_signed_in")
        self.assertError(b.post("/api/auth/logout"), 401, "not_signed_in")

    def test_role_pages_are_for_their_role_only(self):
        for path, role, sentence in (("/expert/bookings", "expert", "This page is for experts."),
                                     ("/mechanic/queue", "mechanic", "This page is for mechanics.")):
            r = Browser().get(path)
            self.assertStatus(r, 303, f"signed-out {path}")
            self.assertTrue(r.header("location", "").startswith("/login?redirect="), path)
            u = register()
            r = u.get(path)
            self.assertStatus(r, 403, f"a customer on {path}")
            self.assertIn(sentence, r.text)
            promote(u, role=role)
            self.assertStatus(u.get(path), 200, f"the {role} on {path}")

    def test_dashboard_signed_in_shows_zero_hours(self):
        a = register(name="Zoe <script>alert(1)</script>")
        r = a.get("/dashboard")
        self.assertStatus(r, 200, "dashboard")
        self.assertIn("Total Live Help Purchased: 0 hours", r.text)
        self.assertNotIn("<script>alert(1)</script>", r.text, "user name not escaped")

    def test_unknown_route_and_method(self):
        a = register()
        self.assertError(a.get("/api/auth/register"), 405, "method_not_allowed")
        self.assertError(a.get("/api/auth/nope"), 404)
        r = a.request("DELETE", "/api/me")
        self.assertError(r, 405, "method_not_allowed")

    def test_error_responses_leak_nothing(self):
        r = Browser().post("/api/auth/login", data='{"email": "x@example.test", "password": ',
                           content_type="application/json")
        self.assertError(r, 400, "invalid_json")
        low = r.text.lower()
        for word in ("select ", "insert ", "mariadb", "mysql", "sql", "trace", ".c:"):
            self.assertNotIn(word, low, f"error body leaks {word!r}: {r.text}")
        self.assertFalse(re.search(r"sk_test_|whsec_", r.text))


class SessionEdgeTests(Case):

    def test_concurrent_registration_of_one_email(self):
        import threading
        from .lib import parallel
        email = unique_email("race")
        barrier = threading.Barrier(8)

        def reg(i):
            barrier.wait(10)
            return Browser().post("/api/auth/register", {"email": email,
                                                         "password": f"password-{i}-long",
                                                         "name": f"Racer {i}"})

        results = parallel(reg, range(8), threads=8)
        # every one is answered alike; exactly one account exists, with one of the passwords
        self.assertEqual([r.status for r in results], [201] * 8, [repr(r) for r in results])
        self.assertEqual(len({r.body for r in results}), 1)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM users WHERE email = %s", email), 1)
        name = db_scalar("SELECT name FROM users WHERE email = %s", email)
        winner = int(name.split()[1])
        Browser().login(email, f"password-{winner}-long", expect=200)
        Browser().login(email, f"password-{(winner + 1) % 8}-long", expect=401)

    def test_expired_session_is_signed_out(self):
        from .lib import db_exec
        a = register()
        self.assertStatus(a.get("/api/me"), 200)
        db_exec("UPDATE auth_sessions SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"
                " WHERE user_id = %s", a.id)
        self.assertError(a.get("/api/me"), 401, "not_signed_in")
        r = a.get("/dashboard")
        self.assertStatus(r, 303)
        self.assertEqual(r.header("location"), "/login?redirect=%2Fdashboard")

    def test_csrf_token_belongs_to_its_session(self):
        a = register()
        b = Browser()
        b.login(a.email, a.password)
        self.assertNotEqual(a.csrf, b.csrf, "two sign-ins share one CSRF token")
        r = b.post("/api/buy/live_help", {"quantity": 1}, csrf=False,
                   headers={"X-CSRF-Token": a.csrf})
        self.assertError(r, 403, "csrf_token_invalid", "token of the user's other session")
        self.assertEqual(checkout_rows(a.id), [])


class LongTextRowTests(Case):
    """Rows whose text outgrows the first fetch buffer (256 bytes), followed
    by more rows: every row arrives whole and the responder survives."""

    def test_admin_page_lists_long_audit_details_between_short_ones(self):
        admin = lib.register(name="Long Rows Admin")
        lib.promote(admin, role="admin")
        admin.login()
        marks = []
        for i, size in enumerate((10, 3000, 20, 70000, 5, 400, 8)):
            mark = f"it-long-{i}-{size}-" + lib.secrets.token_hex(4)
            marks.append(mark)
            lib.db_exec("INSERT INTO audit_log (action, entity_type, entity_id, details)"
                        " VALUES ('IT_LONG_ROW', 'test', %s, JSON_OBJECT('pad', %s))",
                        mark, "x" * size)
        for _ in range(4):      # every child, more than once
            r = admin.get("/admin")
            self.assertStatus(r, 200)
            for mark in marks:
                self.assertIn(mark, r.text)
            self.assertIn("x" * 70000, r.text)


class AuditFilterTests(Case):

    def test_the_user_filter_is_an_id_only_when_all_digits(self):
        admin, x = lib.register(), lib.register()
        lib.promote(admin, role="admin")
        mark = "it-filter-" + lib.secrets.token_hex(4)
        lib.db_exec("INSERT INTO audit_log (action, entity_type, entity_id, user_id, details)"
                    " VALUES ('IT_FILTER', 'test', %s, %s, '{}')", mark, x.id)
        for user, shown in ((str(x.id), True), (x.email, True),
                            (f"{x.id}eleven@example.test", False)):
            r = admin.get("/admin?" + lib.urllib.parse.urlencode({"user": user}))
            self.assertStatus(r, 200, user)
            self.assertEqual(mark in r.text, shown, user)


class AdminUserTests(Case):
    """POST /api/admin/users/{id}: role and tier changes, audited, admins only."""

    def test_change_role_and_tier(self):
        admin, u = register(), register()
        promote(admin, role="admin")
        r = u.post(f"/api/admin/users/{admin.id}", {"role": "customer"})
        self.assertStatus(r, 403, "a customer changing roles")
        r = admin.post(f"/api/admin/users/{u.id}", {"role": "mechanic", "tier": "firewall"})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["user"], {"id": u.id, "email": u.email, "role": "mechanic",
                                          "tier": "firewall"})
        self.assertEqual(db_row("SELECT role, tier FROM users WHERE id = %s", u.id),
                         {"role": "mechanic", "tier": "firewall"})
        row = db_row("SELECT user_id, details FROM audit_log WHERE action = 'ADMIN_USER_UPDATED'"
                     " AND entity_id = %s", str(u.id))
        self.assertEqual(row["user_id"], admin.id)
        self.assertEqual(json.loads(row["details"]),
                         {"before": {"role": "customer", "tier": "free"},
                          "after": {"role": "mechanic", "tier": "firewall"}})
        for body, code in (({"role": "root"}, "invalid_role"), ({"tier": "gold"}, "invalid_tier"),
                           ({}, "nothing_to_change")):
            r = admin.post(f"/api/admin/users/{u.id}", body)
            self.assertStatus(r, 400, body)
            self.assertEqual(r.error_code, code)
        self.assertStatus(admin.post("/api/admin/users/999999999", {"tier": "free"}), 404)
        r = admin.post(f"/api/admin/users/{admin.id}", {"role": "customer"})
        self.assertStatus(r, 409, "an admin demoting themselves")
        self.assertEqual(r.error_code, "own_role")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM audit_log WHERE action ="
                                   " 'ADMIN_USER_UPDATED' AND entity_id = %s", str(u.id)), 1)

    def test_the_audit_date_filter_uses_the_viewers_days(self):
        """From and To are days in the viewer's zone (tz, minutes east of UTC),
        as the rows' times are shown: a row belongs to its local day."""
        import datetime
        admin, u = register(), register()
        promote(admin, role="admin")
        self.assertStatus(admin.post(f"/api/admin/users/{u.id}", {"tier": "firewall"}), 200)
        at = db_scalar("SELECT created_at FROM audit_log WHERE action = 'ADMIN_USER_UPDATED'"
                       " AND entity_id = %s", str(u.id))
        for tz in (-720, 720):
            local = (at + datetime.timedelta(minutes=tz)).date()
            for day, shown in ((local, True), (local + datetime.timedelta(days=1), False),
                               (local - datetime.timedelta(days=1), False)):
                q = lib.urllib.parse.urlencode({"action": "ADMIN_USER_UPDATED", "user": admin.email,
                                                "from": day.isoformat(), "to": day.isoformat(),
                                                "tz": tz})
                r = admin.get("/admin?" + q)
                self.assertStatus(r, 200)
                self.assertEqual(f'title="user {u.id}"' in r.text, shown, (tz, day, at))

    def test_an_expert_demoted_leaves_the_marketplace(self):
        """The experts row makes the marketplace: a demotion takes it off, in
        the same transaction; a booking already made stays the expert's."""
        admin, ex, customer = register(), register(), register()
        promote(admin, role="admin")
        promote(ex, role="expert")
        _, eid = lib.db_exec(
            "INSERT INTO experts (user_id, name, headline, bio, rate_cents_per_minute, active)"
            " VALUES (%s, 'Demoted expert', 'Soon gone', 'Made by test_platform.', 0, 1)", ex.id)
        self.assertIn(eid, [e["id"] for e in customer.get("/api/experts").json["experts"]])
        r = admin.post(f"/api/admin/users/{ex.id}", {"tier": "firewall"})
        self.assertStatus(r, 200, "a tier change")
        self.assertEqual(db_scalar("SELECT active FROM experts WHERE id = %s", eid), 1)
        r = admin.post(f"/api/admin/users/{ex.id}", {"role": "customer"})
        self.assertStatus(r, 200, "the demotion")
        self.assertEqual(db_scalar("SELECT active FROM experts WHERE id = %s", eid), 0)
        self.assertNotIn(eid, [e["id"] for e in customer.get("/api/experts").json["experts"]])
        self.assertStatus(customer.get(f"/api/experts/{eid}"), 404, "the demoted expert's page")

    def test_two_admins_demoting_each_other_leave_one(self):
        """Each change writes its actor's row, still an admin: one of the two demotions wins."""
        rounds, won = 12, 0
        for n in range(rounds):
            a, b = register(), register()
            promote(a, role="admin")
            promote(b, role="admin")
            barrier = threading.Barrier(2)

            def demote(pair):
                actor, target = pair
                barrier.wait(10)
                return actor.post(f"/api/admin/users/{target.id}", {"role": "customer"})
            results = parallel(demote, [(a, b), (b, a)], threads=2)
            roles = [db_scalar("SELECT role FROM users WHERE id = %s", u.id) for u in (a, b)]
            self.assertEqual(sorted(roles), ["admin", "customer"], (n, results))
            loser = (a, b)[roles.index("customer")]
            winner = (a, b)[roles.index("admin")]
            statuses = {u.id: r.status for u, r in zip((a, b), results)}
            self.assertEqual(statuses[winner.id], 200, results)
            # the demoted admin's request met its ended session (401) or its guard (403)
            self.assertIn(statuses[loser.id], (401, 403), results)
            if statuses[loser.id] == 403:
                won += 1
                self.assertEqual(results[(a, b).index(loser)].error_code, "not_admin")
            self.assertEqual(db_scalar("SELECT COUNT(*) FROM audit_log WHERE action ="
                                       " 'ADMIN_USER_UPDATED' AND entity_id IN (%s, %s)",
                                       str(a.id), str(b.id)), 1)
        print(f"    {won} of {rounds} races reached the guard", flush=True)
