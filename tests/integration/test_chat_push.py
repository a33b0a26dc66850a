"""
Chat push through nginx (nchan): GET /api/sessions/{id}/stream checks that
the caller takes part, then nginx holds the subscription (EventSource,
WebSocket or long-poll); every committed message is published to it by the
sessions responder.  Who may subscribe, what arrives (exactly the messages
API's JSON), that nginx's internal locations are closed from outside, and
that a message whose transaction rolled back is never pushed.
"""

import base64
import grp
import http.client
import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.parse

from . import lib
from .lib import Case
from .test_consultations import admin, bought_chat, mechanic


def publisher_socket():
    return os.path.join(lib.env("CD_RUN_DIR"), "publish", "chat-publish.sock")


def connect_as(user, group):
    """What connecting to the publisher socket as user:group gives."""
    probe = ("import socket, sys\n"
             "s = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\n    print('connected')\n"
             "except OSError as e:\n    print(type(e).__name__)\n")
    out = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups",
                          sys.executable, "-c", probe, publisher_socket()],
                         capture_output=True, text=True, timeout=10)
    return out.stdout.strip() or out.stderr.strip()


def subscribers(session_id, sock=None):
    """How many subscribers nginx holds for the room (the publisher's GET)."""
    r = lib.http_request("GET", f"http://localhost/internal/chat/publish/{session_id}",
                         headers={"Accept": "application/json"},
                         unix_socket=sock or publisher_socket())
    if r.status == 404:     # no channel yet: nobody has subscribed
        return 0
    lib.check_status(r, 200, "channel info")
    return int(r.json["subscribers"])


def wait_subscribed(session_id, count=1, sock=None):
    lib.wait_until(lambda: subscribers(session_id, sock) >= count, timeout=10,
                   message=f"{count} subscriber(s) of room {session_id}")


class EventStream:
    """One EventSource-like subscription of browser b to room session_id."""

    def __init__(self, browser, session_id, timeout=10):
        u = urllib.parse.urlsplit(browser.base)
        if browser.unix_socket:
            self.conn = lib.UnixHTTPConnection(browser.unix_socket, u.hostname, u.port or 80,
                                               timeout)
        else:
            self.conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
        hdrs = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        jar = browser.cookies.get(u.hostname, {})
        if jar:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        self.conn.request("GET", f"/api/sessions/{session_id}/stream", headers=hdrs)
        self.sock = self.conn.sock     # the response keeps it; the connection lets go
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def next_event(self):
        """The next message event's data as JSON (pings and comments skipped)."""
        data, kind = [], "message"
        while True:
            line = self.resp.readline()
            if not line:
                raise EOFError("stream closed")
            line = line.decode().rstrip("\r\n")
            if line == "":
                if data and kind == "message":
                    return json.loads("\n".join(data))
                data, kind = [], "message"
                continue
            if line.startswith("data:"):
                data.append(line[5:].lstrip(" ") if line.startswith("data: ") else line[5:])
            elif line.startswith("event:"):
                kind = line[6:].strip()

    def nothing_within(self, seconds):
        """True if no event arrives within seconds (the socket times out)."""
        self.sock.settimeout(seconds)
        try:
            got = self.next_event()
        except (socket.timeout, TimeoutError):
            return True
        raise AssertionError(f"unexpected event {got!r}")

    def close(self):
        self.resp.close()
        self.conn.close()


class WebSocketStream:
    """One WebSocket subscription of browser b to room session_id, over TCP."""

    def __init__(self, browser, session_id, timeout=10):
        u = urllib.parse.urlsplit(browser.base)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies[u.hostname].items())
        self.sock.sendall((f"GET /api/sessions/{session_id}/stream HTTP/1.1\r\n"
                           f"Host: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Cookie: {cookie}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            got = self.sock.recv(4096)
            if not got:
                break
            head += got
        self.head, _, self.buf = head.partition(b"\r\n\r\n")

    def next_message(self):
        """The next text frame's payload as JSON."""
        while len(self.buf) < 2 or len(self.buf) < sum(self._frame_len()):
            got = self.sock.recv(65536)
            if not got:
                raise EOFError("websocket closed")
            self.buf += got
        n, off = self._frame_len()
        frame, self.buf = self.buf[:off + n], self.buf[off + n:]
        if frame[0] & 0x0F != 1:
            raise AssertionError(f"not a text frame: {frame[:16]!r}")
        return json.loads(frame[off:])

    def _frame_len(self):
        """(payload length, payload offset) of the unmasked server frame in buf."""
        b = self.buf
        n = b[1] & 0x7F
        if n == 126:
            return (int.from_bytes(b[2:4], "big"), 4) if len(b) >= 4 else (1 << 30, 4)
        if n == 127:
            return (int.from_bytes(b[2:10], "big"), 10) if len(b) >= 10 else (1 << 30, 10)
        return n, 2

    def close(self):
        self.sock.close()


def long_poll(browser, session_id, out, headers=None):
    """One long-poll request (no EventSource/WebSocket headers) into out[0]."""
    out.append(browser.get(f"/api/sessions/{session_id}/stream",
                           headers=dict({"Accept": "application/json"}, **(headers or {})),
                           timeout=20))


class Push(Case):

    def setUp(self):
        super().setUp()
        self.owner, self.mech = lib.register(), mechanic()
        self.sess = bought_chat(self.owner)
        lib.check_status(admin().post(f"/api/admin/sessions/{self.sess}/participants",
                                      {"userId": self.mech.id, "role": "mechanic"}), 201)
        self.path = f"/api/sessions/{self.sess}/messages"
        self.streams = []

    def tearDown(self):
        for s in self.streams:
            s.close()
        super().tearDown()

    def stream(self, browser):
        s = EventStream(browser, self.sess)
        self.streams.append(s)
        return s

    def test_eventsource_gets_the_other_participants_message_exactly(self):
        es = self.stream(self.owner)
        self.assertEqual(es.status, 200)
        self.assertTrue(es.resp.getheader("content-type", "").startswith("text/event-stream"))
        self.assertEqual(es.resp.getheader("x-accel-buffering"), "no", "a proxy in front streams it")
        self.assertEqual(es.resp.getheader("x-content-type-options"), "nosniff")
        wait_subscribed(self.sess)
        body = 'Ünïcode "quoted" <b>&amp;</b>\nsecond line'
        sent = self.mech.post(self.path, {"body": body})
        self.assertStatus(sent, 201)
        got = es.next_event()
        self.assertEqual(got, {"after": 0, "message": sent.json["message"]}, "the room's first")
        self.assertEqual((got["message"]["userId"], got["message"]["body"]), (self.mech.id, body))
        listed = self.owner.get(self.path).json["messages"]
        self.assertEqual(listed, [got["message"]],
                         "the pushed JSON is the messages API's, seq included")
        # The next ones follow in order on the same stream, each naming the one before it.
        ids = [self.owner.post(self.path, {"body": f"n{i}"}).json["message"]["id"] for i in range(3)]
        self.assertEqual([(e["after"], e["message"]["id"]) for e in
                          (es.next_event() for _ in range(3))],
                         list(zip([got["message"]["id"]] + ids[:2], ids)))

    def closes_within(self, es, seconds=5):
        """The stream ends (nchan's 410, then the connection closes) in time."""
        es.sock.settimeout(seconds)
        with self.assertRaises(EOFError):
            es.next_event()

    def test_a_sign_out_ends_that_users_streams_at_once(self):
        """Signed out: the user's streams end, and theirs only; reconnecting
        with the ended session is refused, another of their sessions is let
        in again and gets the next message."""
        elsewhere = lib.Browser()
        elsewhere.login(self.owner.email, self.owner.password)
        mine, theirs, other_tab = (self.stream(self.owner), self.stream(self.mech),
                                   self.stream(elsewhere))
        wait_subscribed(self.sess, 3)
        self.assertStatus(self.owner.post("/api/auth/logout", {}), 204)
        self.closes_within(mine)
        self.closes_within(other_tab)
        self.assertError(self.owner.get(f"/api/sessions/{self.sess}/stream",
                                        headers={"Accept": "text/event-stream"}, timeout=5), 401)
        again = self.stream(elsewhere)
        self.assertEqual(again.status, 200, "a session still valid is let in again")
        wait_subscribed(self.sess, 2)
        sent = self.mech.post(self.path, {"body": "still there?"})
        self.assertStatus(sent, 201)
        for es in (theirs, again):
            self.assertEqual(es.next_event()["message"], sent.json["message"])

    def test_signing_in_over_a_session_ends_its_streams(self):
        """Another person signs in in the same browser: the session the
        browser held ends, and its user's streams with it."""
        es = self.stream(self.owner)
        wait_subscribed(self.sess)
        someone = lib.register()
        self.owner.login(someone.email, someone.password)
        self.closes_within(es)
        self.assertEqual(subscribers(self.sess), 0)

    def test_a_mechanic_demoted_loses_the_stream_of_the_room(self):
        es = self.stream(self.mech)
        wait_subscribed(self.sess)
        self.assertStatus(admin().post(f"/api/admin/users/{self.mech.id}", {"role": "customer"}),
                          200)
        self.closes_within(es)
        self.mech.login()
        self.assertError(self.mech.get(f"/api/sessions/{self.sess}/stream",
                                       headers={"Accept": "text/event-stream"}, timeout=5),
                         404, "session_not_found")
        self.assertEqual(subscribers(self.sess), 0)

    def test_a_message_sent_again_with_its_key_shows_once(self):
        es = self.stream(self.owner)
        wait_subscribed(self.sess)
        key = {"Idempotency-Key": secrets.token_hex(16)}
        first = self.mech.post(self.path, {"body": "Sent once"}, headers=key)
        self.assertStatus(first, 201)
        again = self.mech.post(self.path, {"body": "Sent once"}, headers=key)
        self.assertStatus(again, 200, "sent again with its key")
        self.assertEqual(again.json, first.json)
        # pushed once: the next event after it is the next message
        nxt = self.mech.post(self.path, {"body": "Then this"})
        self.assertEqual([es.next_event() for _ in range(2)],
                         [{"after": 0, "message": first.json["message"]},
                          {"after": first.json["message"]["id"], "message": nxt.json["message"]}])
        # the key is the sender's and goes with its text
        self.assertError(self.mech.post(self.path, {"body": "Other text"}, headers=key), 400,
                         "idempotency_key_reused")
        self.assertStatus(self.owner.post(self.path, {"body": "Sent once"}, headers=key), 201,
                          "another participant's same key")
        self.assertError(self.mech.post(self.path, {"body": "x"},
                                        headers={"Idempotency-Key": "not a key"}),
                         400, "invalid_idempotency_key")
        self.assertEqual([m["body"] for m in self.owner.get(self.path).json["messages"]],
                         ["Sent once", "Then this", "Sent once"])

    def test_concurrent_sends_with_one_key_post_one_message(self):
        key = {"Idempotency-Key": secrets.token_hex(16)}
        results = lib.parallel(lambda _: self.mech.post(self.path, {"body": "Racing"}, headers=key),
                               range(8), threads=8)
        for r in results:
            self.assertNotIsInstance(r, Exception)
        self.assertEqual(sorted(r.status for r in results), [200] * 7 + [201])
        self.assertEqual(len({r.json["message"]["id"] for r in results}), 1)
        self.assertEqual(lib.db_scalar("SELECT COUNT(*) FROM session_messages WHERE session_id = %s",
                                       self.sess), 1)

    def test_long_poll_gets_the_message_with_its_exact_body(self):
        out = []
        t = threading.Thread(target=long_poll, args=(self.mech, self.sess, out))
        t.start()
        wait_subscribed(self.sess)
        sent = self.owner.post(self.path, {"body": "Long-poll hello"})
        self.assertStatus(sent, 201)
        t.join(20)
        self.assertEqual(len(out), 1, "the long-poll never answered")
        self.assertStatus(out[0], 200)
        self.assertEqual(out[0].json, {"after": 0, "message": sent.json["message"]})
        # The next poll, from where this one ended, gets the next message only.
        nxt = {"If-Modified-Since": out[0].header("last-modified"),
               "If-None-Match": out[0].header("etag")}
        more = []
        t = threading.Thread(target=long_poll, args=(self.mech, self.sess, more, nxt))
        t.start()
        wait_subscribed(self.sess)
        second = self.owner.post(self.path, {"body": "and again"})
        t.join(20)
        self.assertEqual([r.json for r in more],
                         [{"after": sent.json["message"]["id"], "message": second.json["message"]}])

    def test_websocket_subscriber_gets_the_message(self):
        ws = WebSocketStream(self.mech, self.sess)
        try:
            self.assertTrue(ws.head.startswith(b"HTTP/1.1 101"), ws.head)
            wait_subscribed(self.sess)
            sent = self.owner.post(self.path, {"body": "over a websocket"})
            self.assertStatus(sent, 201)
            self.assertEqual(ws.next_message(), {"after": 0, "message": sent.json["message"]})
        finally:
            ws.close()

    def test_outsiders_get_the_messages_apis_errors(self):
        other = lib.register()
        stream = f"/api/sessions/{self.sess}/stream"
        for who, status, code in ((other, 404, "session_not_found"),
                                  (lib.Browser(), 401, None)):
            with self.subTest(status=status):
                for accept in ("text/event-stream", "application/json"):
                    r = who.get(stream, headers={"Accept": accept}, timeout=5)
                    self.assertError(r, status, code)
                    self.assertEqual(r.json, who.get(self.path).json)
                    self.assertIsNone(r.header("x-accel-redirect"))
        missing = self.owner.get("/api/sessions/999999999/stream", timeout=5)
        self.assertError(missing, 404, "session_not_found")
        self.assertEqual(subscribers(self.sess), 0, "nobody was subscribed")

    def test_internal_locations_are_closed_from_outside(self):
        for method, path in (("GET", f"/internal/chat/sub/{self.sess}/{self.owner.id}"),
                             ("DELETE", f"/internal/chat/revoke/{self.owner.id}"),
                             ("GET", f"/internal/chat/publish/{self.sess}"),
                             ("POST", f"/internal/chat/publish/{self.sess}")):
            with self.subTest(path=path, method=method):
                r = self.owner.request(method, path, data='{"body":"forged"}',
                                       headers={"Accept": "text/event-stream"}, timeout=5)
                self.assertStatus(r, 404)
        es = self.stream(self.owner)
        wait_subscribed(self.sess)
        forged = self.owner.request("POST", f"/internal/chat/publish/{self.sess}",
                                    data='{"body":"forged"}', timeout=5)
        self.assertStatus(forged, 404)
        self.assertTrue(es.nothing_within(1.5))

    def test_only_the_responders_reach_the_publisher(self):
        """Another account on the machine cannot push into a room."""
        d = os.path.dirname(publisher_socket())
        st = os.stat(d)
        if os.geteuid() != 0:   # everything runs as the caller
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
            self.assertEqual(st.st_uid, os.geteuid())
            return
        # As root the stack runs the responders as nobody:nogroup.
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, grp.getgrgid(st.st_gid).gr_name),
                         (0o750, 0, "nogroup"))
        self.assertEqual(connect_as("nobody", "nogroup"), "connected")
        self.assertEqual(connect_as("daemon", "daemon"), "PermissionError")
        self.assertEqual(connect_as("www-data", "www-data"), "PermissionError")

    def test_a_rolled_back_message_is_never_pushed(self):
        es = self.stream(self.owner)
        wait_subscribed(self.sess)
        lib.db_exec("CREATE TRIGGER chat_push_fail BEFORE INSERT ON session_messages"
                    " FOR EACH ROW BEGIN IF NEW.body = 'roll me back' THEN"
                    " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'; END IF; END")
        try:
            failed = self.mech.post(self.path, {"body": "roll me back"})
        finally:
            lib.db_exec("DROP TRIGGER chat_push_fail")
        self.assertEqual(failed.status, 500, failed)
        # A refused one (closed consultation) rolls back its guard write too.
        lib.db_exec("UPDATE sessions SET status = 'closed' WHERE id = %s", self.sess)
        self.assertError(self.mech.post(self.path, {"body": "too late"}), 409, "session_closed")
        lib.db_exec("UPDATE sessions SET status = 'active' WHERE id = %s", self.sess)
        self.assertEqual(lib.db_scalar("SELECT COUNT(*) FROM session_messages"
                                       " WHERE session_id = %s", self.sess), 0)
        ok = self.mech.post(self.path, {"body": "this one commits"})
        self.assertStatus(ok, 201)
        self.assertEqual(es.next_event(), {"after": 0, "message": ok.json["message"]},
                         "the first event is the committed one, after none")

    def test_publishing_failure_does_not_fail_the_send(self):
        """nginx's publisher unreachable: the send still answers 201, it is
        logged, and the messages API lists the message."""
        sock = publisher_socket()
        hidden = sock + ".away"
        sizes = lib.log_sizes()
        os.rename(sock, hidden)
        try:
            # The responders' kept connections end with the old workers.
            reload_nginx()
            sent = self.owner.post(self.path, {"body": "nobody hears this push"})
        finally:
            os.rename(hidden, sock)
        self.assertStatus(sent, 201)
        self.assertEqual(self.mech.get(self.path).json["messages"], [sent.json["message"]])
        logged = lib.log_since(sizes, ["sessions.log"]).get("sessions.log", [])
        self.assertTrue(any(f"chat push unix:{sock}/internal/chat/publish/{self.sess}" in ln
                            for ln in logged), logged)
        # The next push names the lost one, so a page that missed it catches up.
        es = self.stream(self.owner)
        wait_subscribed(self.sess)
        nxt = self.mech.post(self.path, {"body": "and this one is heard"})
        self.assertStatus(nxt, 201)
        self.assertEqual(es.next_event(), {"after": sent.json["message"]["id"],
                                           "message": nxt.json["message"]})


def nginx_workers(master):
    with open(f"/proc/{master}/task/{master}/children") as f:
        return set(f.read().split())


def reload_nginx():
    """SIGHUP to the stack's nginx; returns once its old workers are gone."""
    with open(os.path.join(lib.env("CD_STATE_DIR"), "nginx", "nginx.pid")) as f:
        master = int(f.read())
    old = nginx_workers(master)
    os.kill(master, signal.SIGHUP)
    lib.wait_until(lambda: not (old & nginx_workers(master)), timeout=15,
                   message="nginx's old workers gone")
