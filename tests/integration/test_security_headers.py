"""Security headers through nginx: nosniff and Referrer-Policy exactly once on
every response (API, pages, redirects, static files, nginx's own errors),
and on HTML pages a Content-Security-Policy that runs only our own script
files, with no inline code left in any page."""

import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile

from . import lib
from .lib import Case

NOSNIFF = "nosniff"
REFERRER = "strict-origin-when-cross-origin"
# The pages' policy names exactly one more origin: the one Stripe.js (here
# the emulator's stand-in) is loaded from and frames its forms from.
STRIPE_JS_ORIGIN = lib.env("CD_EMU_URL").rstrip("/")
CSP = (f"default-src 'self'; script-src 'self' {STRIPE_JS_ORIGIN}; style-src 'self'; "
       f"connect-src 'self'; frame-src {STRIPE_JS_ORIGIN}; form-action 'self'; "
       "frame-ancestors 'none'; object-src 'none'; base-uri 'none'")
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

    def test_every_status_line_has_its_reason_phrase(self):
        # RFC 9110 renamed two of Python's older phrases.
        renamed = {413: "Content Too Large", 422: "Unprocessable Content"}
        for what, r, status, _ in self.responses():
            with self.subTest(what):
                self.assertStatus(r, status, what)
                self.assertIn(r.reason, {http.HTTPStatus(status).phrase, renamed.get(status)},
                              what)

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
                          (b, f"/experts/{expert}/schedule"), (b, "/thank-you?session=1"), (b, "/admin"),
                          (b, "/api/checkout?plan=video15"), (b, "/nowhere")):
            with self.subTest(path):
                page = who.get(path)
                self.assertIn(page.status, (200, 404), path)
                scripts = re.findall(r"<script\b[^>]*>", page.text)
                self.assertTrue(scripts, f"{path}: no script at all")
                stripe_js = re.escape(lib.env("CD_EMU_URL").rstrip("/") + "/v3/")
                for tag in scripts:
                    self.assertRegex(tag, rf'src="(/static/[a-z_]+\.js|{stripe_js})"',
                                     f"{path}: {tag}")
                self.assertEqual(re.findall(r"<script\b[^>]*>\s*[^<\s]", page.text), [], path)
                self.assertIsNone(re.search(r"\son[a-z]+\s*=", page.text), f"{path}: a handler")
                self.assertIsNone(re.search(r"\sstyle\s*=|<style", page.text), f"{path}: a style")
                self.assertNotIn("javascript:", page.text.lower(), path)

    def test_session_cookie_over_plain_http_is_not_secure(self):
        # CD_PUBLIC_URL is http here; with https it gets Secure (see the README).
        b = lib.register()
        r = b.login_response
        self.assertStatus(r, 200)
        cookies = [lib.parse_set_cookie(v) for v in r.header_all("set-cookie")]
        self.assertEqual(len(cookies), 1, cookies)
        _, _, attrs = cookies[0]
        self.assertTrue(attrs.get("httponly"))
        self.assertEqual(attrs.get("samesite"), "Lax")
        self.assertNotIn("secure", attrs)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TlsFrontTests(Case):
    """nginx/production.conf.example in front of this stack, with a throw-away
    certificate: HTTP redirects to HTTPS, every HTTPS response has HSTS and
    the common headers exactly once (the inner nginx's copies hidden)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="cd-front-")
        d = cls.dir
        os.chmod(d, 0o755)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=creditdesk.example", "-keyout", f"{d}/key.pem",
                        "-out", f"{d}/cert.pem"], check=True, capture_output=True)
        repo = lib.env("CD_REPO")
        cls.http_port, cls.https_port = free_port(), free_port()
        with open(os.path.join(repo, "nginx", "production.conf.example")) as f:
            site = f.read()
        for old, new in (
                ("/etc/letsencrypt/live/creditdesk.example/fullchain.pem", f"{d}/cert.pem"),
                ("/etc/letsencrypt/live/creditdesk.example/privkey.pem", f"{d}/key.pem"),
                ("/etc/nginx/creditdesk/security-headers.conf",
                 os.path.join(repo, "nginx", "security-headers.conf")),
                ("listen 80;", f"listen 127.0.0.1:{cls.http_port};"),
                ("listen 443 ssl http2;", f"listen 127.0.0.1:{cls.https_port} ssl http2;"),
                ("http://127.0.0.1:8080", lib.base_url()),
                ("ssl_stapling on;", "ssl_stapling off;")):
            assert old in site, old
            site = site.replace(old, new)
        site = "\n".join(line for line in site.splitlines() if "[::]" not in line)
        with open(f"{d}/site.conf", "w") as f:
            f.write(site)
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(f"pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\n"
                    f"http {{\n access_log off;\n client_body_temp_path {d}/body;\n"
                    f" proxy_temp_path {d}/proxy;\n include {d}/site.conf;\n}}\n")
        subprocess.run(["nginx", "-p", d + "/", "-c", f"{d}/nginx.conf"], check=True,
                       capture_output=True)
        lib.wait_until(lambda: os.path.exists(f"{d}/nginx.pid"), timeout=10, what="front nginx")

    @classmethod
    def tearDownClass(cls):
        try:
            with open(f"{cls.dir}/nginx.pid") as f:
                os.kill(int(f.read().strip()), signal.SIGQUIT)
        except (OSError, ValueError):
            pass

    def https(self, method, path, body=None, headers=None):
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, context=ctx, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            out = {}
            for k, v in r.getheaders():
                out.setdefault(k.lower(), []).append(v)
            return lib.Response(r.status, out, r.read())
        finally:
            conn.close()

    def test_http_redirects_to_https(self):
        r = lib.http_request("GET", f"http://127.0.0.1:{self.http_port}/dashboard?x=1",
                             headers={"Host": "creditdesk.example"})
        self.assertStatus(r, 301)
        self.assertEqual(r.header("location"), "https://creditdesk.example/dashboard?x=1")

    def test_every_https_response_has_hsts_and_the_headers_once(self):
        for what, method, path, status in (("page", "GET", "/", 200),
                                           ("redirect", "GET", "/dashboard", 303),
                                           ("API 401", "GET", "/api/me", 401),
                                           ("static", "GET", "/static/app.js", 200),
                                           ("webhook 400", "POST", "/api/stripe/webhook", 400)):
            with self.subTest(what):
                r = self.https(method, path, body=b"{}" if method == "POST" else None,
                               headers={"Content-Type": "application/json"})
                self.assertStatus(r, status, what)
                self.assertEqual(r.header_all("strict-transport-security"),
                                 ["max-age=63072000; includeSubDomains"], what)
                self.assertEqual(r.header_all("x-content-type-options"), [NOSNIFF], what)
                self.assertEqual(r.header_all("referrer-policy"), [REFERRER], what)
