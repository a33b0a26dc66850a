"""
Chat push on the three-machine cluster: each machine's nginx holds the
subscriptions made through it, and the sessions responders of every machine
publish each message to every machine's nginx (scripts/cluster.sh,
CD_CHAT_PUBLISH).  A subscriber on machine 1, one on machine 2, and an
EventSource and a WebSocket through the front (which passes the upgrade on)
all get a message posted through machine 3, exactly.  A machine whose nginx
hangs delays neither the sender nor the other machines' subscribers.  A
sign-out on one machine ends the user's streams held by every machine.

A stream counts as subscribed once it has heard a probe published to every
machine, not by nchan's subscriber counts: for a room stream (two channels,
the room's and the user's) those counts are passed between the workers and
were once seen short of the streams held for more than 10 s.
"""

import os
import queue
import signal
import socket
import threading
import time

from tests.integration import lib
from tests.integration.lib import Case
from tests.integration.test_chat_push import EventStream, WebSocketStream, nginx_workers
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


class Listener:
    """One stream read on its own thread, so that waiting for an event can
    time out without leaving the stream half read.  Probes are counted, not
    passed on."""

    def __init__(self, stream, read):
        self.stream, self.probes, self.events = stream, 0, queue.Queue()
        threading.Thread(target=self._run, args=(read,), daemon=True).start()

    def _run(self, read):
        while True:
            try:
                got = read()
            except Exception as e:  # noqa: BLE001 -- handed to the reader
                self.events.put(e)
                return
            if "probe" in got:
                self.probes += 1
            else:
                self.events.put(got)

    def next(self, timeout=10):
        """The next event that is not a probe; raises what ended the stream."""
        got = self.events.get(timeout=timeout)
        if isinstance(got, Exception):
            raise got
        return got

    def close(self):
        """Shut down first: that wakes the thread blocked reading."""
        try:
            self.stream.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.stream.close()


def listen(stream):
    stream.sock.settimeout(None)    # the listener's get() times out instead
    read = stream.next_message if isinstance(stream, WebSocketStream) else stream.next_event
    return Listener(stream, read)


def until_each_hears(session_id, listeners, on_machines=None, timeout=20):
    """Publishes a probe to the room on every machine (or those listed),
    every 0.2 s, until each listener has heard one."""
    deadline, n = time.monotonic() + timeout, 0
    while not all(l.probes for l in listeners):
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout}s, probes heard: {[l.probes for l in listeners]}")
        n += 1
        for m in on_machines or range(1, len(machines()) + 1):
            lib.check_status(lib.http_request(
                "POST", f"http://localhost/internal/chat/publish/{session_id}",
                body=lib.json.dumps({"probe": n}), unix_socket=publisher(m),
                headers={"Content-Type": "application/json"}), (201, 202), "probe")
        time.sleep(0.2)


class ChatPush(Case):

    def test_a_message_posted_on_machine_3_reaches_subscribers_everywhere(self):
        owner, mech = lib.register(), mechanic()
        sess = bought_chat(owner)
        lib.check_status(admin().post(f"/api/admin/sessions/{sess}/participants",
                                      {"userId": mech.id, "role": "mechanic"}), 201)
        streams = [EventStream(on(owner, 1), sess), EventStream(on(mech, 2), sess),
                   EventStream(owner, sess)]     # the last one through the front
        ws = WebSocketStream(mech, sess)         # through the front too
        listeners = [listen(s) for s in streams + [ws]]
        try:
            for s in streams:
                self.assertEqual(s.status, 200)
            self.assertTrue(ws.head.startswith(b"HTTP/1.1 101"), ws.head)
            until_each_hears(sess, listeners)
            path = f"/api/sessions/{sess}/messages"
            for i, (who, body) in enumerate(((mech, "posted on machine 3"),
                                             (owner, "and a reply, also on 3"))):
                sent = on(who, 3).post(path, {"body": body})
                self.assertStatus(sent, 201, f"post {i}")
                for n, l in enumerate(listeners):
                    self.assertEqual(l.next()["message"], sent.json["message"],
                                     f"stream {n}, post {i}")
        finally:
            for l in listeners:
                l.close()

    def test_a_sign_out_on_machine_3_ends_the_streams_held_everywhere(self):
        owner = lib.register()
        sess = bought_chat(owner)
        streams = [EventStream(on(owner, m), sess) for m in (1, 2)]
        listeners = [listen(s) for s in streams]
        try:
            for s in streams:
                self.assertEqual(s.status, 200)
            until_each_hears(sess, listeners)
            self.assertStatus(on(owner, 3).post("/api/auth/logout", {}), 204)
            for n, l in enumerate(listeners):
                with self.assertRaises(EOFError, msg=f"the stream on machine {n + 1}"):
                    l.next(timeout=5)
        finally:
            for l in listeners:
                l.close()

    def test_a_hung_machine_delays_neither_the_sender_nor_the_others(self):
        """Machine 1's nginx stopped (its publisher socket takes connections
        and answers nothing; it is the first publisher every machine lists):
        a message posted on machine 3 is answered at once and reaches a
        subscriber on machine 2 at once, not after the push's 1 s timeout."""
        owner, mech = lib.register(), mechanic()
        sess = bought_chat(owner)
        lib.check_status(admin().post(f"/api/admin/sessions/{sess}/participants",
                                      {"userId": mech.id, "role": "mechanic"}), 201)
        stream = listen(EventStream(on(owner, 2), sess))
        hung = nginx_processes(1)
        try:
            self.assertEqual(stream.stream.status, 200)
            until_each_hears(sess, [stream], on_machines=[2])
            for pid in hung:
                os.kill(pid, signal.SIGSTOP)
            t0 = time.monotonic()
            sent = on(mech, 3).post(f"/api/sessions/{sess}/messages",
                                    {"body": "machine 1 hangs"})
            answered = time.monotonic() - t0
            self.assertStatus(sent, 201)
            self.assertEqual(stream.next()["message"], sent.json["message"])
            delivered = time.monotonic() - t0
            self.assertLess(answered, 0.7, "the sender waited for the hung machine")
            self.assertLess(delivered, 0.7, "machine 2 waited for the hung machine")
        finally:
            for pid in hung:
                os.kill(pid, signal.SIGCONT)
            stream.close()
