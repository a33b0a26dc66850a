"""Accounts and sessions, hardened: session lifetimes and rotation, password
change and sign out everywhere, the password policy, normalised emails, the
per-account sign-in throttle and nginx's rate limits (all through nginx)."""

import hashlib
import threading
import time

from .lib import (Browser, Case, audit_count, db_exec, db_row, db_rows, db_scalar, env,
                  http_request, base_url, parallel, parse_set_cookie, promote, register, run_tool,
                  unique_email)


def session_cookie(resp):
    for sc in resp.header_all("set-cookie"):
        name, value, attrs = parse_set_cookie(sc)
        if name == "cd_session":
            return value, attrs
    return None, None


def token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def sessions_of(user_id):
    return db_scalar("SELECT COUNT(*) FROM auth_sessions WHERE user_id = %s", user_id)


def email_key(email):
    return hashlib.sha256(email.encode()).hexdigest()


def throttle_row(email):
    return db_row("SELECT failures, locked_until,"
                  " TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(6), locked_until) AS lock_left"
                  " FROM signin_throttle WHERE email_hash = %s", email_key(email))


STRONG = "glacier mosaic 7 tundra"


class SessionLifetimeTests(Case):

    def test_idle_session_ends(self):
        a = register()
        idle = int(env("CD_SESSION_IDLE", "1800"))
        db_exec("UPDATE auth_sessions SET last_seen_at = UTC_TIMESTAMP(6) - INTERVAL %s SECOND"
                " WHERE user_id = %s", idle - 120, a.id)
        self.assertStatus(a.get("/api/me"), 200, "used just inside the idle timeout")
        db_exec("UPDATE auth_sessions SET last_seen_at = UTC_TIMESTAMP(6) - INTERVAL %s SECOND"
                " WHERE user_id = %s", idle + 1, a.id)
        self.assertError(a.get("/api/me"), 401, "not_signed_in", "idle past the timeout")
        r = a.get("/dashboard")
        self.assertStatus(r, 303)
        self.assertEqual(r.header("location"), "/login?redirect=%2Fdashboard")

    def test_last_seen_written_at_most_once_a_minute(self):
        a = register()
        db_exec("UPDATE auth_sessions SET last_seen_at = UTC_TIMESTAMP(6) - INTERVAL 30 SECOND"
                " WHERE user_id = %s", a.id)
        before = db_rows("SELECT last_seen_at, expires_at FROM auth_sessions WHERE user_id = %s",
                         a.id)
        for _ in range(5):
            self.assertStatus(a.get("/api/me"), 200)
        self.assertEqual(db_rows("SELECT last_seen_at, expires_at FROM auth_sessions"
                                 " WHERE user_id = %s", a.id), before,
                         "a request within the minute wrote last_seen_at")
        db_exec("UPDATE auth_sessions SET last_seen_at = UTC_TIMESTAMP(6) - INTERVAL 90 SECOND"
                " WHERE user_id = %s", a.id)
        self.assertStatus(a.get("/api/me"), 200)
        row = db_row("SELECT TIMESTAMPDIFF(SECOND, last_seen_at, UTC_TIMESTAMP(6)) AS age,"
                     " expires_at FROM auth_sessions WHERE user_id = %s", a.id)
        self.assertLessEqual(row["age"], 5, "last_seen_at not refreshed after a minute")
        # activity never moves the absolute expiry
        self.assertEqual(row["expires_at"], before[0]["expires_at"])

    def test_absolute_lifetime_12_hours_or_30_days(self):
        a = register()
        r = a.login_response
        value, attrs = session_cookie(r)
        self.assertNotIn("max-age", attrs, "a 12-hour session outlives the browser")
        self.assertEqual(db_scalar("SELECT TIMESTAMPDIFF(SECOND, created_at, expires_at)"
                                   " FROM auth_sessions WHERE token_hash = %s",
                                   token_hash(value)), 12 * 3600)
        b = Browser()
        r = b.post("/api/auth/login", {"email": a.email, "password": a.password,
                                       "remember": True})
        self.assertStatus(r, 200)
        value, attrs = session_cookie(r)
        row = db_row("SELECT remember, TIMESTAMPDIFF(SECOND, created_at, expires_at) AS life"
                     " FROM auth_sessions WHERE token_hash = %s", token_hash(value))
        self.assertEqual(row, {"remember": 1, "life": 30 * 86400})
        self.assertIn(int(attrs["max-age"]), range(30 * 86400 - 5, 30 * 86400 + 1))
        # past the absolute expiry the session is over, however active
        db_exec("UPDATE auth_sessions SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"
                " WHERE token_hash = %s", token_hash(value))
        b.csrf = None
        self.assertError(b.get("/api/me"), 401, "not_signed_in")
        self.assertStatus(a.get("/api/me"), 200, "the other session is independent")

    def test_sign_in_rotates_the_token(self):
        a = register()
        old = a.cookie("cd_session")
        r = a.login(a.email, a.password)
        new = session_cookie(r)[0]
        self.assertNotEqual(new, old)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM auth_sessions WHERE token_hash = %s",
                                   token_hash(old)), 0, "the pre-sign-in token survived")
        self.assertEqual(sessions_of(a.id), 1)
        replay = Browser()
        replay.set_cookie("cd_session", old)
        self.assertError(replay.get("/api/me"), 401, "not_signed_in")
        self.assertStatus(a.get("/api/me"), 200)


class PasswordChangeTests(Case):

    def change(self, b, current, new, **kw):
        return b.post("/api/auth/password", {"currentPassword": current, "newPassword": new},
                      **kw)

    def test_change_password_keeps_this_session_and_ends_the_others(self):
        a = register()
        other = Browser()
        other.login(a.email, a.password)
        bystander = register()
        old_token, old_csrf = a.cookie("cd_session"), a.csrf
        old_hash = db_scalar("SELECT password_hash FROM users WHERE id = %s", a.id)
        old_expiry = db_scalar("SELECT expires_at FROM auth_sessions WHERE token_hash = %s",
                               token_hash(old_token))

        # refused ones change nothing
        self.assertError(self.change(a, a.password, STRONG, csrf=False), 403,
                         "csrf_token_invalid")
        self.assertError(self.change(a, a.password + "x", STRONG), 403, "wrong_password")
        self.assertError(self.change(a, a.password, "short-pw"), 400, "invalid_password")
        self.assertError(self.change(a, a.password, "password123"), 400, "weak_password")
        self.assertError(self.change(a, a.password, "z" * 12), 400, "weak_password")
        # a weak new password is refused before the current one is checked
        self.assertError(self.change(a, "wrong guess 12", "z" * 12), 400, "weak_password")
        self.assertError(self.change(a, a.password, a.password), 400, "same_password")
        self.assertError(a.post("/api/auth/password", {"currentPassword": a.password}), 400,
                         "missing_new_password")
        self.assertEqual(db_scalar("SELECT password_hash FROM users WHERE id = %s", a.id),
                         old_hash)
        self.assertEqual(sessions_of(a.id), 2)
        self.assertEqual(audit_count("PASSWORD_CHANGED", str(a.id)), 0)

        r = self.change(a, a.password, STRONG)
        self.assertStatus(r, 200, "password change")
        self.assertEqual(r.json["id"], a.id)
        new_token = session_cookie(r)[0]
        self.assertIsNotNone(new_token, "the session was not rotated")
        self.assertNotEqual(new_token, old_token)
        self.assertNotEqual(r.json["csrfToken"], old_csrf)
        a.signed_in(r)
        # this browser goes on under the new token, with the same absolute expiry
        self.assertStatus(a.get("/api/me"), 200)
        self.assertEqual(db_rows("SELECT token_hash, expires_at FROM auth_sessions"
                                 " WHERE user_id = %s", a.id),
                         [{"token_hash": token_hash(new_token), "expires_at": old_expiry}])
        # the old token and the other browser are signed out
        replay = Browser()
        replay.set_cookie("cd_session", old_token)
        self.assertError(replay.get("/api/me"), 401, "not_signed_in")
        self.assertError(other.get("/api/me"), 401, "not_signed_in")
        self.assertStatus(bystander.get("/api/me"), 200, "another user's session")
        self.assertEqual(sessions_of(bystander.id), 1)
        self.assertEqual(audit_count("PASSWORD_CHANGED", str(a.id)), 1)
        # only the new password signs in
        Browser().login(a.email, a.password, expect=401)
        Browser().login(a.email, STRONG, expect=200)

    def test_logout_all_ends_every_session_of_the_user(self):
        a = register()
        b, c = Browser(), Browser()
        b.login(a.email, a.password)
        c.login(a.email, a.password)
        bystander = register()
        self.assertEqual(sessions_of(a.id), 3)
        self.assertError(b.post("/api/auth/logout-all", csrf=False), 403, "csrf_token_invalid")
        self.assertEqual(sessions_of(a.id), 3)
        r = b.post("/api/auth/logout-all")
        self.assertStatus(r, 204)
        value, attrs = session_cookie(r)
        self.assertEqual((value, attrs.get("max-age")), ("", "0"))
        self.assertEqual(sessions_of(a.id), 0)
        for x in (a, b, c):
            self.assertError(x.get("/api/me"), 401, "not_signed_in")
        self.assertStatus(bystander.get("/api/me"), 200)
        self.assertError(Browser().post("/api/auth/logout-all"), 401, "not_signed_in")

    def test_role_change_in_admin_tool_ends_sessions(self):
        a = register()
        b = Browser()
        b.login(a.email, a.password)
        self.assertEqual(sessions_of(a.id), 2)
        # a tier change does not touch sessions; a role change ends them all
        p = run_tool("creditdesk-admin", "set-tier", "--email", a.email, "--tier", "firewall")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sessions_of(a.id), 2)
        p = run_tool("creditdesk-admin", "set-role", "--email", " " + a.email.upper(),
                     "--role", "mechanic")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sessions_of(a.id), 0)
        self.assertError(a.get("/api/me"), 401, "not_signed_in")
        self.assertError(b.get("/api/me"), 401, "not_signed_in")
        r = a.login(a.email, a.password)
        self.assertEqual((r.json["role"], r.json["tier"]), ("mechanic", "firewall"))


    def test_role_change_by_an_admin_ends_sessions(self):
        admin, u = register(), register()
        promote(admin, role="admin")
        other = Browser()
        other.login(u.email, u.password)
        self.assertEqual(sessions_of(u.id), 2)
        # a tier change leaves the sessions alone
        self.assertStatus(admin.post(f"/api/admin/users/{u.id}", {"tier": "firewall"}), 200)
        self.assertEqual(sessions_of(u.id), 2)
        self.assertStatus(admin.post(f"/api/admin/users/{u.id}", {"role": "expert"}), 200)
        self.assertEqual(sessions_of(u.id), 0)
        self.assertError(u.get("/api/me"), 401, "not_signed_in")
        self.assertError(other.get("/api/me"), 401, "not_signed_in")
        self.assertStatus(admin.get("/api/me"), 200, "the admin's own session")
        self.assertEqual(u.login(u.email, u.password).json["role"], "expert")


class PasswordPolicyTests(Case):

    def test_register_refuses_weak_passwords(self):
        before = db_scalar("SELECT COUNT(*) FROM users")
        cases = [
            ("Xk4-Pq9zw", "invalid_password"),        # 9 characters
            ("\u00e9\u00e0\u00fc\u00f6\u00e7\u00f1\u00e5\u00f8\u00e6", "invalid_password"),
            ("aaaaaaaaaaaa", "weak_password"),
            ("\u00e9" * 10, "weak_password"),
            ("password123", "weak_password"),
            ("qwertyuiop", "weak_password"),
            ("1234567890", "weak_password"),
            ("football123", "weak_password"),
        ]
        for pw, code in cases:
            email = unique_email("weak")
            r = Browser().post("/api/auth/register", {"email": email, "password": pw,
                                                      "name": "Weak"})
            self.assertError(r, 400, code, f"register with {pw!r}")
            self.assertEqual(db_scalar("SELECT COUNT(*) FROM users WHERE email = %s", email), 0)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM users"), before)
        # ten characters that are not in the dictionary are enough
        register(password="Xk4-Pq9zwW")

    def test_demo_users_still_sign_in(self):
        Browser().login(env("CD_DEMO_EMAIL"), env("CD_DEMO_PASSWORD"), expect=200)


class EmailNormalisationTests(Case):

    def test_register_and_sign_in_normalise_the_email(self):
        local = unique_email("norm").split("@")[0]
        # fullwidth capitals, surrounding spaces (one of them a no-break space)
        fancy = "\u00a0 " + "".join(chr(ord(ch) + 0xFEE0) if ch.isalnum() else ch
                                    for ch in local.upper()) + "@Example.TEST  "
        b = register(email=fancy)
        self.assertEqual(b.user["email"], local + "@example.test")
        self.assertEqual(db_scalar("SELECT email FROM users WHERE id = %s", b.id),
                         local + "@example.test")
        r = Browser().login(" " + local.upper() + "@EXAMPLE.test", b.password)
        self.assertEqual(r.json["id"], b.id)

    def test_look_alike_addresses_are_distinct_accounts(self):
        tag = unique_email("la").split("@")[0]
        pairs = [("paypal-" + tag, "p\u0430ypal-" + tag),        # Cyrillic a
                 ("strasse-" + tag, "stra\u00dfe-" + tag)]         # sharp s
        for plain, look in pairs:
            a = register(email=plain + "@example.test", password="first " + STRONG)
            b = register(email=look + "@example.test", password="second " + STRONG)
            self.assertNotEqual(a.id, b.id)
            self.assertEqual(db_scalar("SELECT email FROM users WHERE id = %s", b.id),
                             look + "@example.test")
            Browser().login(look + "@example.test", "first " + STRONG, expect=401)
            r = Browser().login(plain + "@example.test", "first " + STRONG)
            self.assertEqual(r.json["id"], a.id)

    def test_admin_tool_normalises_the_email(self):
        local = unique_email("adm").split("@")[0]
        p = run_tool("creditdesk-admin", "create-user", "--email", "  " + local.upper() +
                     "@Example.Test ", "--password", STRONG, "--name", "Admin Made")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM users WHERE email = %s",
                                   local + "@example.test"), 1)
        p = run_tool("creditdesk-admin", "create-user", "--email", local + "@example.test",
                     "--password", STRONG, "--name", "Again")
        self.assertEqual(p.returncode, 3, "the same address again is the same user")
        p = run_tool("creditdesk-admin", "create-user", "--email", "x" + local + "@example.test",
                     "--password", "password123", "--name", "Weak")
        self.assertEqual(p.returncode, 2, "a dictionary password was accepted")
        self.assertEqual(db_scalar("SELECT COUNT(*) FROM users WHERE email = %s",
                                   "x" + local + "@example.test"), 0)


class SignInThrottleTests(Case):

    def fail(self, email, password="not the password 1"):
        return Browser().post("/api/auth/login", {"email": email, "password": password})

    def assertThrottled(self, r, most):
        err = self.assertError(r, 429, "too_many_attempts")
        wait = int(r.header("retry-after"))
        self.assertTrue(1 <= wait <= most, f"Retry-After {wait}, expected 1..{most}")
        self.assertIsNone(session_cookie(r)[0])
        return err

    def test_ten_failures_lock_known_and_unknown_accounts_alike(self):
        a = register()
        unknown = unique_email("nobody")
        answers = {}
        for email in (a.email, unknown):
            for i in range(10):
                self.assertError(self.fail(email), 401, "invalid_credentials", f"failure {i + 1}")
            self.assertEqual(throttle_row(email)["failures"], 10)
            # refused now, even with the right password, for about a minute
            r = Browser().post("/api/auth/login", {"email": email, "password": a.password})
            answers[email] = self.assertThrottled(r, 60)
            self.assertError(self.fail(email), 429, "too_many_attempts")
            self.assertEqual(throttle_row(email)["failures"], 10, "a refusal was counted")
        self.assertEqual(answers[a.email]["code"], answers[unknown]["code"])
        self.assertEqual(answers[a.email]["message"].split(" in ")[0],
                         answers[unknown]["message"].split(" in ")[0])
        self.assertEqual(sessions_of(a.id), 1, "a throttled attempt signed in")

        # the lock ends; the next failure locks again for twice as long
        db_exec("UPDATE signin_throttle SET locked_until = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"
                " WHERE email_hash = %s", email_key(a.email))
        self.assertError(self.fail(a.email), 401, "invalid_credentials")
        row = throttle_row(a.email)
        self.assertEqual(row["failures"], 11)
        self.assertIn(row["lock_left"], (118, 119, 120))
        self.assertThrottled(self.fail(a.email), 120)
        # after it, the right password signs in and clears the count
        db_exec("UPDATE signin_throttle SET locked_until = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"
                " WHERE email_hash = %s", email_key(a.email))
        Browser().login(a.email, a.password, expect=200)
        row = throttle_row(a.email)
        self.assertEqual((row["failures"], row["locked_until"]), (0, None))

    def test_quiet_account_starts_counting_again(self):
        email = unique_email("quiet")
        for _ in range(9):
            self.fail(email)
        db_exec("UPDATE signin_throttle SET last_failure_at = UTC_TIMESTAMP(6) - INTERVAL 16 MINUTE"
                " WHERE email_hash = %s", email_key(email))
        self.assertError(self.fail(email), 401, "invalid_credentials")
        self.assertEqual(throttle_row(email)["failures"], 1)

    def test_concurrent_failures_counted_exactly(self):
        email = unique_email("race")
        barrier = threading.Barrier(8)

        def go(_):
            barrier.wait(10)
            return self.fail(email)
        results = parallel(go, range(8), threads=8)
        self.assertEqual([r.status for r in results], [401] * 8, results)
        self.assertEqual(throttle_row(email)["failures"], 8)

        # eight becomes ten: two more are checked, the other ten refused
        barrier = threading.Barrier(12)
        results = parallel(lambda _: (barrier.wait(10), self.fail(email))[1], range(12),
                           threads=12)
        self.assertEqual(sorted(r.status for r in results), [401] * 2 + [429] * 10, results)
        self.assertEqual(throttle_row(email)["failures"], 10)

    def test_password_change_guesses_are_throttled(self):
        a = register()
        for _ in range(10):
            r = a.post("/api/auth/password", {"currentPassword": "wrong guess 12",
                                              "newPassword": STRONG})
            self.assertError(r, 403, "wrong_password")
        r = a.post("/api/auth/password", {"currentPassword": a.password, "newPassword": STRONG})
        self.assertThrottled(r, 60)
        Browser().login(a.email, a.password, expect=429)


class RateLimitTests(Case):
    """nginx's limit_req zones: a burst past rate + burst gets the JSON 429."""

    def limits(self, name, default):
        rate, burst = env(name, default).split(":")
        return int(rate), int(burst)

    def flood(self, path, rate, burst, body):
        n = burst + 2 * rate + 150
        t0 = time.monotonic()
        results = parallel(lambda _: http_request(
            "POST", base_url() + path, body=body,
            headers={"Content-Type": "application/json"}), range(n), threads=32)
        elapsed = time.monotonic() - t0
        limited = [r for r in results if r.status == 429]
        passed = [r for r in results if r.status != 429]
        self.assertTrue(limited, f"{path}: no 429 among {n} requests in {elapsed:.1f}s")
        for r in limited[:20]:
            self.assertError(r, 429, "too_many_requests", path)
            self.assertEqual(r.header("retry-after"), "1")
            self.assertEqual(r.header_all("x-content-type-options"), ["nosniff"])
        # never more through than the burst plus what the rate allowed meanwhile
        self.assertLessEqual(len(passed), burst + rate * (elapsed + 1) + 1, path)
        # the zone counts per client: another one behind the TLS front is not limited
        r = http_request("POST", base_url() + path, body=body,
                         headers={"Content-Type": "application/json",
                                  "X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
        self.assertNotEqual(r.status, 429, f"{path}: another client was limited")
        # the zone empties again at its rate: later tests are not limited
        time.sleep(burst / rate + 1.5)
        r = http_request("POST", base_url() + path, body=body,
                         headers={"Content-Type": "application/json"})
        self.assertNotEqual(r.status, 429, f"{path} still limited")
        return passed

    def test_sign_in_burst_gets_429(self):
        rate, burst = self.limits("CD_LIMIT_SIGNIN", "20:100")
        passed = self.flood("/api/auth/login", rate, burst, b'{"email": ')
        self.assertEqual({r.status for r in passed}, {400})

    def test_registration_burst_gets_429(self):
        rate, burst = self.limits("CD_LIMIT_REGISTER", "10:50")
        passed = self.flood("/api/auth/register", rate, burst, b'{"email": ')
        self.assertEqual({r.status for r in passed}, {400})

    def test_password_change_burst_gets_429(self):
        """Each change checks the current password (a scrypt): limited like signing in."""
        rate, burst = self.limits("CD_LIMIT_SIGNIN", "20:100")
        passed = self.flood("/api/auth/password", rate, burst, b'{"currentPassword": ')
        self.assertEqual({r.status for r in passed}, {401})

    def test_checkout_creation_burst_gets_429(self):
        rate, burst = self.limits("CD_LIMIT_CHECKOUT", "50:300")
        passed = self.flood("/api/buy/live_help", rate, burst, b'{"quantity": 1}')
        self.assertEqual({r.status for r in passed}, {401})
