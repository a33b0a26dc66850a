"""
Chat push on the three-machine cluster: each machine's nginx holds the
subscriptions made through it, and the sessions responders of every machine
publish each message to every machine's nginx (scripts/cluster.sh,
CD_CHAT_PUBLISH).  A subscriber on machine 1, one on machine 2, and an
EventSource and a WebSocket through the front (which passes the upgrade on)
all get a message posted through machine 3, exactly.
"""

import os

from tests.integration import lib
from tests.integration.lib import Case
from tests.integration.test_chat_push import EventStream, WebSocketStream, subscribers
from tests.integration.test_consultations import admin, bought_chat, mechanic

from .common import machines, on


def publisher(machine):
    """Machine N's (1-based) nginx publisher socket, next to its http.sock."""
    return os.path.join(os.path.dirname(machines()[machine - 1]), "publish", "chat-publish.sock")


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
                    self.assertEqual(s.next_event(), sent.json["message"], f"stream {n}, post {i}")
                self.assertEqual(ws.next_message(), sent.json["message"], f"websocket, post {i}")
        finally:
            for s in streams:
                s.close()
            ws.close()
