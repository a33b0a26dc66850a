"""Security headers through nginx: nosniff and Referrer-Policy exactly once on
every response (API, pages, redirects, static files, nginx's own errors),
and on HTML pages a Content-Security-Policy that runs only our own script
files, with no inline code left in any page."""

import re

from . import lib
from .lib import Case

NOSNIFF = "nosniff"
REFERRER = "strict-origin-when-cross-origin"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-src 'none'; frame-ancestors 'none'; object-src 'none'; "
       "base-uri 'none'")
NGINX_PAGE_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


class SecurityHeaderTests(Case):

    def assertCommonHeaders(self, r, what):
        self.assertEqual(r.header_all("x-content-type-options"), [NOSNIFF], f"{what}: {r!r}")
        self.assertEqual(r.header_all("referrer-policy"), [REFERRER], f"{what}: {r!r}")

    def responses(self):
        """(what, response, expected status, HTML page?) for every kind of response."""
        b = lib.register()
        anon = lib.Browser()
        big = b"{" + b" " * (2 << 20) + b"}"
        return [
            ("page", b.get("/dashboard"), 200, True),
            ("public page", anon.get("/"), 200, True),
            ("plan page", b.get("/api/checkout?plan=chat10"), 200, True),
            ("HTML error page", anon.get("/no-such-page"), 404, True),
            ("HEAD of a page", b.request("HEAD", "/dashboard"), 200, True),
            ("redirect to sign in", anon.get("/dashboard"), 303, False),
            ("API 200", b.get("/api/me"), 200, False),
            ("API 401", anon.get("/api/me"), 401, False),
            ("API 404", b.get("/api/no-such-thing"), 404, False),
            ("API 405", b.request("PUT", "/api/me"), 405, False),
            ("API 415", b.request("POST", "/api/buy/live_help", data="{}",
                                  content_type="text/plain"), 415, False),
            ("API POST 200", b.post("/api/checkout", {"plan": "chat10"}), 200, False),
            ("webhook 400", lib.post_webhook(b"{}", signature_header="t=1"), 400, False),
            ("static css", anon.get("/static/app.css"), 200, False),
            ("static js", anon.get("/static/app.js"), 200, False),
            ("static 404", anon.get("/static/nope.js"), 404, False),
            ("nginx 413 JSON", anon.request("POST", "/api/auth/login", data=big,
                                            content_type="application/json"), 413, False),
            ("nginx 413 HTML", anon.request("POST", "/login", data=big,
                                            content_type="application/json"), 413, False),
        ]

    def test_every_response_has_nosniff_and_referrer_policy_once(self):
        for what, r, status, _ in self.responses():
            with self.subTest(what):
                self.assertStatus(r, status, what)
                self.assertCommonHeaders(r, what)

    def test_pages_have_a_csp_without_unsafe_inline_and_others_none(self):
        for what, r, _, html in self.responses():
            with self.subTest(what):
                csp = r.header_all("content-security-policy")
                if what == "nginx 413 HTML":
                    self.assertEqual(csp, [NGINX_PAGE_CSP], what)
                elif html:
                    self.assertEqual(csp, [CSP], what)
                else:
                    self.assertEqual(csp, [], what)
                for value in csp:
                    self.assertNotIn("unsafe", value)

    def test_pages_have_no_inline_script_or_handler(self):
        b = lib.register()
        lib.promote(b, role="admin")
        b.login()
        anon = lib.Browser()
        expert = lib.db_scalar("SELECT MIN(id) FROM experts")
        for who, path in ((b, "/"), (anon, "/login"), (anon, "/register"), (b, "/dashboard"),
                          (b, "/settings/billing"), (b, "/experts"),
                          (b, f"/experts/{expert}/schedule"), (b, "/thank-you"), (b, "/admin"),
                          (b, "/api/checkout?plan=video15"), (b, "/nowhere")):
            with self.subTest(path):
                page = who.get(path)
                self.assertIn(page.status, (200, 404), path)
                scripts = re.findall(r"<script\b[^>]*>", page.text)
                self.assertTrue(scripts, f"{path}: no script at all")
                for tag in scripts:
                    self.assertRegex(tag, r'src="/static/[a-z_]+\.js"', f"{path}: {tag}")
                self.assertEqual(re.findall(r"<script\b[^>]*>\s*[^<\s]", page.text), [], path)
                self.assertIsNone(re.search(r"\son[a-z]+\s*=", page.text), f"{path}: a handler")
                self.assertIsNone(re.search(r"\sstyle\s*=|<style", page.text), f"{path}: a style")
                self.assertNotIn("javascript:", page.text.lower(), path)

    def test_session_cookie_over_plain_http_is_not_secure(self):
        # CD_PUBLIC_URL is http here; with https it gets Secure (see the README).
        b = lib.Browser()
        r = b.post("/api/auth/register", {"email": lib.unique_email(), "password": "pw-" + "x" * 12,
                                          "name": "Cookie"})
        self.assertStatus(r, 201)
        cookies = [lib.parse_set_cookie(v) for v in r.header_all("set-cookie")]
        self.assertEqual(len(cookies), 1, cookies)
        _, _, attrs = cookies[0]
        self.assertTrue(attrs.get("httponly"))
        self.assertEqual(attrs.get("samesite"), "Lax")
        self.assertNotIn("secure", attrs)
