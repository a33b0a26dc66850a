"""
Chat push on the three-machine cluster: each machine's nginx holds the
subscriptions made through it, and the sessions responders of every machine
publish each message to every machine's nginx (scripts/cluster.sh,
CD_CHAT_PUBLISH).  A subscriber on machine 1, one on machine 2, and an
EventSource and a WebSocket through the front (which passes the upgrade on)
all get a message posted through machine 3, exactly.  A machine whose nginx
hangs delays neither the sender nor the other machines' subscribers.  A
sign-out on one machine ends the user's streams held by every machine.
"""

import os
import signal
import time

from tests.integration import lib
from tests.integration.lib import Case
from tests.integration.test_chat_push import (EventStream, WebSocketStream, nginx_workers,
                                              subscribers)
from tests.integration.test_consultations import admin, bought_chat, mechanic

from .common import machines, on


def publisher(machine):
    """Machine N's (1-based) nginx publisher socket, next to its http.sock."""
    return os.path.join(os.path.dirname(machines()[machine - 1]), "publish", "chat-publish.sock")


def nginx_processes(machine):
    """Machine N's nginx master and workers."""
    run = os.path.dirname(machines()[machine - 1])
    with open(os.path.join(os.path.dirname(run), "nginx", "nginx.pid")) as f:
        master = int(f.read())
    return [master] + [int(p) for p in nginx_workers(master)]


def held(session_id):
    """Subscribers of the room summed over every machine's nginx."""
    return sum(subscribers(session_id, publisher(m)) for m in range(1, len(machines()) + 1))


class ChatPush(Case):

    def test_a_message_posted_on_machine_3_reaches_subscribers_everywhere(self):
        owner, mech = lib.register(), mechanic()
        sess = bought_chat(owner)
        lib.check_status(admin().post(f"/api/admin/sessions/{sess}/participants",
                                      {"userId": mech.id, "role": "mechanic"}), 201)
        streams = [EventStream(on(owner, 1), sess), EventStream(on(mech, 2), sess),
                   EventStream(owner, sess)]     # the last one through the front
        ws = WebSocketStream(mech, sess)         # through the front too
        try:
            for s in streams:
                self.assertEqual(s.status, 200)
            self.assertTrue(ws.head.startswith(b"HTTP/1.1 101"), ws.head)
            lib.wait_until(lambda: subscribers(sess, publisher(1)) >= 1, timeout=10,
                           message="machine 1 holds the first subscriber")
            lib.wait_until(lambda: subscribers(sess, publisher(2)) >= 1, timeout=10,
                           message="machine 2 holds the second subscriber")
            lib.wait_until(lambda: held(sess) == 4, timeout=10, message="four subscribers")
            path = f"/api/sessions/{sess}/messages"
            for i, (who, body) in enumerate(((mech, "posted on machine 3"),
                                             (owner, "and a reply, also on 3"))):
                sent = on(who, 3).post(path, {"body": body})
                self.assertStatus(sent, 201, f"post {i}")
                for n, s in enumerate(streams):
                    self.assertEqual(s.next_event()["message"], sent.json["message"],
                                     f"stream {n}, post {i}")
                self.assertEqual(ws.next_message()["message"], sent.json["message"],
                                 f"websocket, post {i}")
        finally:
            for s in streams:
                s.close()
            ws.close()

    def test_a_sign_out_on_machine_3_ends_the_streams_held_everywhere(self):
        owner = lib.register()
        sess = bought_chat(owner)
        streams = [EventStream(on(owner, m), sess) for m in (1, 2)]
        try:
            for s in streams:
                self.assertEqual(s.status, 200)
            lib.wait_until(lambda: held(sess) == 2, timeout=10, message="two subscribers")
            self.assertStatus(on(owner, 3).post("/api/auth/logout", {}), 204)
            for n, s in enumerate(streams):
                s.sock.settimeout(5)
                with self.assertRaises(EOFError, msg=f"the stream on machine {n + 1}"):
                    s.next_event()
            self.assertEqual(held(sess), 0)
        finally:
            for s in streams:
                s.close()


class ChatPushPastAHungMachine(Case):
    """Runs after ChatPush (the loader takes the classes by name), whose
    tests count each machine's subscribers: once, right after this stopped
    and resumed machine 1's nginx, that nginx reported fewer subscribers of
    a new room than it held for more than 10 s (nchan passes the counts
    between its workers)."""

    def test_a_hung_machine_delays_neither_the_sender_nor_the_others(self):
        """Machine 1's nginx stopped (its publisher socket takes connections
        and answers nothing; it is the first publisher every machine lists):
        a message posted on machine 3 is answered at once and reaches a
        subscriber on machine 2 at once, not after the push's 1 s timeout."""
        owner, mech = lib.register(), mechanic()
        sess = bought_chat(owner)
        lib.check_status(admin().post(f"/api/admin/sessions/{sess}/participants",
                                      {"userId": mech.id, "role": "mechanic"}), 201)
        stream = EventStream(on(owner, 2), sess)
        hung = nginx_processes(1)
        try:
            self.assertEqual(stream.status, 200)
            lib.wait_until(lambda: subscribers(sess, publisher(2)) >= 1, timeout=10,
                           message="machine 2 holds the subscriber")
            for pid in hung:
                os.kill(pid, signal.SIGSTOP)
            t0 = time.monotonic()
            sent = on(mech, 3).post(f"/api/sessions/{sess}/messages",
                                    {"body": "machine 1 hangs"})
            answered = time.monotonic() - t0
            self.assertStatus(sent, 201)
            self.assertEqual(stream.next_event()["message"], sent.json["message"])
            delivered = time.monotonic() - t0
            self.assertLess(answered, 0.7, "the sender waited for the hung machine")
            self.assertLess(delivered, 0.7, "machine 2 waited for the hung machine")
        finally:
            for pid in hung:
                os.kill(pid, signal.SIGCONT)
            stream.close()
