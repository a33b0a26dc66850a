/*
 * The chat room: its page, the messages API, and the room's stream.
 *
 * New messages reach the page by push: GET …/stream checks that the caller
 * takes part and hands the request to nginx's nchan subscriber with
 * X-Accel-Redirect, so a waiting browser holds a connection in nginx, never
 * a responder child; each message is published there once it has
 * committed (push.c).  The stream subscribes to the caller's own channel
 * too, which their sign-out ends (push_revoke), so no stream outlives it.
 * The page catches up with GET …/messages?after=<last id seen> when its
 * stream (re)connects, and polls that about once a second where it has no
 * EventSource (templates/static/chat.js).
 *
 * Catching up is only safe if a session's messages become visible in the
 * order they are listed: were the 11th to commit before the 10th, a reader
 * that saw 11 would skip 10 for good.  So a message is inserted in the
 * transaction that writes the session's guard row (db_guard, see db.h), and
 * takes the row's new version as its position (seq): the inserts of one
 * session are strictly sequential and their positions follow commit order,
 * on every node of a cluster.  Messages are listed by (seq, id), and "after=<id>" means after
 * that message's position.  (AUTO_INCREMENT ids alone would not do on a
 * cluster: each node hands out its own interleaved series.)
 *
 * A message posted with an Idempotency-Key and sent again with it (its
 * answer was lost) is answered with the message posted first: it shows once.
 */
#include <stdbool.h>
#include <string.h>

#include "db.h"
#include "page.h"
#include "push.h"
#include "session_store.h"
#include "sessions.h"

/* after=<message id>: the next 100; latest=1: the last 100 (a missed push). */
static const cd_field after_fields[] = {
	{ "after", F_INT, 0, 0, CD_MAX_ID, NULL },
	{ "latest", F_INT, 0, 1, 1, NULL },
};

static const cd_field message_fields[] = {
	{ "body", F_TEXT, F_REQUIRED, 1, 4000,
	    "body is required (1 to 4000 characters)." },
};

cd_err
messages_list(cd_req *r)
{
	session_row session;
	json_t *rows;
	cd_value v[2];
	cd_err err;

	if ((err = req_query_fields(r, after_fields, 2, v)) != CD_OK ||
	    (err = session_for_member(r, &session)) != CD_OK)
		return err;
	if (v[0].present && v[1].present)
		return req_fail(r, CD_BAD_REQUEST, "invalid_query",
		    "Ask for the messages after one, or for the latest, not both.");
	if ((err = v[1].present ? sstore_latest_messages_json(r->ids[0], &rows) :
	    sstore_messages_after_json(r->ids[0], v[0].present ? v[0].i : 0,
	    &rows)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:o}", "messages", rows));
	return CD_OK;
}

struct post {
	cd_req		*r;
	const char	*body;
	const char	*key;		/* the client's Idempotency-Key, or NULL */
	long long	 id;
	long long	 after;		/* the message before it, 0: none */
	bool		 again;		/* id was posted with key before */
};

/*
 * A message sent again with its Idempotency-Key is answered with the one
 * posted first (p->again); the key with another text is refused.
 */
static cd_err
repeated(struct post *p)
{
	keyed_message m;
	bool found;
	cd_err err;

	if (p->key == NULL)
		return CD_OK;
	if ((err = sstore_keyed_message(p->r->arena, p->r->ids[0],
	    p->r->user->id, p->key, &m, &found)) != CD_OK || !found)
		return err;
	if (strcmp(m.body, p->body) != 0)
		return req_key_reused(p->r, "message");
	p->id = m.id;
	p->again = true;
	return CD_OK;
}

static cd_err
post_tx(void *arg)
{
	struct post *p = arg;
	cd_req *r = p->r;
	chat_state s;
	bool found, read = false, closed;
	cd_err err;

	p->again = false;	/* a retried transaction starts over */
	if ((err = sstore_guard(r->ids[0], &found)) != CD_OK ||
	    (found && (err = sstore_chat_state(r->arena, r->user->id, r->ids[0],
	    &s, &read)) != CD_OK))
		return err;
	if (!read)
		memset(&s, 0, sizeof(s));
	closed = s.status != NULL && strcmp(s.status, "closed") == 0;
	if (!s.member)
		return req_fail(r, CD_NOT_FOUND, "session_not_found",
		    "No consultation with this id.");
	if ((err = repeated(p)) != CD_OK || p->again)
		return err;
	if (closed)
		return req_fail(r, CD_CONFLICT, "session_closed",
		    "This consultation is closed; it takes no new messages.");
	p->after = s.last_id;
	return sstore_insert_message(r->ids[0], r->user->id, p->body, s.version,
	    p->key, &p->id);
}

cd_err
messages_post(cd_req *r)
{
	struct post p = { r, NULL, NULL, 0, 0, false };
	json_t *message;
	cd_value v[1];
	cd_err err;

	if ((err = req_fields(r, message_fields, 1, v)) != CD_OK)
		return err;
	p.body = v[0].s;
	if ((err = req_idempotency_key(r, &p.key)) != CD_OK ||
	    (err = db_tx(post_tx, &p)) != CD_OK ||
	    (err = sstore_message_json(p.id, &message)) != CD_OK)
		return err;
	if (message == NULL)
		return CD_INTERNAL;
	if (!p.again)	/* a repeat was pushed the first time */
		push_message(r, r->ids[0], p.after, message);	/* committed: never before */
	resp_json(r, p.again ? 200 : 201, json_pack("{s:o}", "message", message));
	return CD_OK;
}

/*
 * The room's stream: participants only, then nchan holds the connection,
 * subscribed to the room's channel and the caller's.
 */
cd_err
messages_stream(cd_req *r)
{
	session_row session;
	cd_err err;

	if ((err = session_for_member(r, &session)) != CD_OK)
		return err;
	resp_header(r, "X-Accel-Redirect",
	    arena_printf(r->arena, "/internal/chat/sub/%lld/%lld", r->ids[0],
	    r->user->id));
	resp_status(r, 200);
	return CD_OK;
}

/* The messages as the room shows them, the caller's own marked. */
static json_t *
messages_json(const message_row *m, size_t n, long long me)
{
	json_t *out = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(out, json_pack(
		    "{s:I,s:I,s:s?,s:s?,s:s?,s:I,s:b}", "id", (json_int_t)m[i].id,
		    "userId", (json_int_t)m[i].user_id, "name", m[i].name,
		    "body", m[i].body, "createdAt", m[i].created_at,
		    "seq", (json_int_t)m[i].seq, "mine", m[i].user_id == me));
	return out;
}

static bool
has_mechanic(const participant_row *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i].role != NULL && strcmp(p[i].role, "mechanic") == 0)
			return true;
	return false;
}

/* The room: who is in it, the latest 100 messages, and the form. */
cd_err
chat_room(cd_req *r)
{
	session_row session;
	participant_row *people;
	message_row *messages;
	const char *plan_name;
	json_t *data, *who, *room;
	bool closed;
	size_t n, np;
	cd_err err;

	if ((err = session_for_member(r, &session)) != CD_OK ||
	    (err = sstore_participants(r->arena, session.id, &people,
	    &np)) != CD_OK ||
	    (err = sstore_latest_messages(r->arena, r->ids[0], &messages,
	    &n)) != CD_OK ||
	    (err = sstore_plan_name(r->arena, session.plan, &plan_name)) != CD_OK)
		return err;
	if (plan_name == NULL)
		plan_name = session.plan;
	closed = session.status != NULL && strcmp(session.status, "closed") == 0;
	who = req_own(r, participants_json(people, np));
	room = req_own(r, session_json(&session));
	json_object_set(room, "participants", who);
	data = req_own(r, json_pack("{s:s,s:O,s:s,s:O,s:o,s:I,s:b,s:b}",
	    "title", plan_name, "session", room, "planName", plan_name,
	    "participants", who,
	    "messages", messages_json(messages, n, r->user->id),
	    "lastId", (json_int_t)(n ? messages[n - 1].id : 0),
	    "waiting", !closed && !has_mechanic(people, np), "closed", closed));
	return page_render(r, 200, "chat", data);
}
