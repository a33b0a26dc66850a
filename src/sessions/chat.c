/*
 * The chat room: its page, the messages API, and the room's stream.
 *
 * New messages reach the page by push: GET …/stream checks that the caller
 * takes part and hands the request to nginx's nchan subscriber with
 * X-Accel-Redirect, so a waiting browser holds a connection in nginx, never
 * a responder child; each message is published there once it has
 * committed (push.c).  The page catches up with GET …/messages?after=<last
 * id seen> when its stream (re)connects, and polls that about once a
 * second where it has no EventSource (templates/static/chat.js).
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
 */
#include <stdbool.h>
#include <string.h>

#include "db.h"
#include "page.h"
#include "sessions.h"

#define BODY_RULE "body must be text of 1 to 4000 characters."
#define MESSAGE_SELECT \
    "SELECT m.id, m.user_id AS userId, u.name, m.body, m.created_at AS createdAt," \
    " m.seq" \
    " FROM session_messages m JOIN users u ON u.id = m.user_id"

static const cd_field after_fields[] = {
	{ "after", F_INT, 0, 0, CD_MAX_ID, NULL },
};

/* Bytes here (4 per character at most); characters are counted below. */
static const cd_field message_fields[] = {
	{ "body", F_STR, F_REQUIRED, 1, 4 * 4000,
	    "body is required (1 to 4000 characters)." },
};

static cd_sql q_cursor = CD_SQL(
    "SELECT seq FROM session_messages WHERE id = ? AND session_id = ?");
static cd_sql q_after = CD_SQL(
    MESSAGE_SELECT " WHERE m.session_id = ? AND (m.seq > ? OR (m.seq = ? AND m.id > ?))"
    " ORDER BY m.seq, m.id LIMIT 100");
static cd_sql q_after_id = CD_SQL(	/* an id that is not one of this session's */
    MESSAGE_SELECT " WHERE m.session_id = ? AND m.id > ? ORDER BY m.seq, m.id LIMIT 100");
static cd_sql q_latest = CD_SQL(
    "SELECT id, userId, name, body, createdAt, seq FROM (SELECT m.id,"
    " m.user_id AS userId, u.name, m.body, m.created_at AS createdAt, m.seq"
    " FROM session_messages m JOIN users u ON u.id = m.user_id"
    " WHERE m.session_id = ? ORDER BY m.seq DESC, m.id DESC LIMIT 100) t"
    " ORDER BY seq, id");
static cd_sql q_message = CD_SQL(MESSAGE_SELECT " WHERE m.id = ?");
static cd_sql q_guard = CD_SQL(
    "UPDATE sessions SET version = version + 1 WHERE id = ?");
static cd_sql q_state = CD_SQL(
    "SELECT s.status, s.version, EXISTS (SELECT 1 FROM session_participants p"
    " WHERE p.session_id = s.id AND p.user_id = ?) AS member"
    " FROM sessions s WHERE s.id = ?");
static cd_sql q_insert = CD_SQL(
    "INSERT INTO session_messages (session_id, user_id, body, seq) VALUES (?, ?, ?, ?)");
static cd_sql q_plan_name = CD_SQL("SELECT name FROM products WHERE code = ?");

/* 1 to 4000 UTF-8 characters (jansson has checked the encoding), not all blank. */
static bool
body_ok(const char *s)
{
	size_t chars = 0;
	bool text = false;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xC0) != 0x80)
			chars++;
		if (!strchr(" \t\r\n", *s))
			text = true;
	}
	return text && chars <= 4000;
}

/* The messages after message `after` of this session (all when 0). */
static cd_err
messages_after(long long session, long long after, json_t **rows)
{
	json_t *cursor = NULL;
	long long seq;
	cd_err err;

	if (after > 0 && (err = db_row(&q_cursor, &cursor, "ii", after,
	    session)) != CD_OK)
		return err;
	if (after > 0 && cursor == NULL)
		return db_rows(&q_after_id, rows, "ii", session, after);
	seq = cursor ? jint(cursor, "seq") : -1;
	json_decref(cursor);
	return db_rows(&q_after, rows, "iiii", session, seq, seq,
	    cursor ? after : 0);
}

cd_err
messages_list(cd_req *r)
{
	json_t *session, *rows;
	cd_value v[1];
	cd_err err;

	if ((err = req_query_fields(r, after_fields, 1, v)) != CD_OK ||
	    (err = session_for_member(r, &session)) != CD_OK ||
	    (err = messages_after(r->ids[0], v[0].present ? v[0].i : 0,
	    &rows)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:o}", "messages", rows));
	return CD_OK;
}

struct post {
	cd_req		*r;
	const char	*body;
	long long	 id;
};

static cd_err
post_tx(void *arg)
{
	struct post *p = arg;
	cd_req *r = p->r;
	json_t *s = NULL;
	bool found, member, closed;
	long long seq;
	cd_err err;

	if ((err = db_guard(&q_guard, &found, "i", r->ids[0])) != CD_OK ||
	    (found && (err = db_row(&q_state, &s, "ii", r->user->id,
	    r->ids[0])) != CD_OK))
		return err;
	member = s != NULL && jint(s, "member");
	closed = s != NULL && strcmp(jstr(s, "status"), "closed") == 0;
	seq = s != NULL ? jint(s, "version") : 0;
	json_decref(s);
	if (!member)
		return req_fail(r, CD_NOT_FOUND, "session_not_found",
		    "No consultation with this id.");
	if (closed)
		return req_fail(r, CD_CONFLICT, "session_closed",
		    "This consultation is closed; it takes no new messages.");
	return db_insert(&q_insert, &p->id, "iisi", r->ids[0], r->user->id, p->body,
	    seq);
}

cd_err
messages_post(cd_req *r)
{
	struct post p = { r, NULL, 0 };
	json_t *message;
	cd_value v[1];
	cd_err err;

	err = req_fields(r, message_fields, 1, v);
	if (err == CD_BAD_REQUEST && r->err_code != NULL &&
	    strcmp(r->err_code, "invalid_body") == 0)	/* say characters, not bytes */
		return req_fail(r, err, "invalid_body", BODY_RULE);
	if (err != CD_OK)
		return err;
	if (!body_ok(v[0].s))
		return req_fail(r, CD_BAD_REQUEST, "invalid_body", BODY_RULE);
	p.body = v[0].s;
	if ((err = db_tx(post_tx, &p)) != CD_OK ||
	    (err = db_row(&q_message, &message, "i", p.id)) != CD_OK)
		return err;
	if (message == NULL)
		return CD_INTERNAL;
	chat_push(r->ids[0], message);	/* committed: never before */
	resp_json(r, 201, json_pack("{s:o}", "message", message));
	return CD_OK;
}

/* The room's stream: participants only, then nchan holds the connection. */
cd_err
messages_stream(cd_req *r)
{
	json_t *session;
	cd_err err;

	if ((err = session_for_member(r, &session)) != CD_OK)
		return err;
	resp_header(r, "X-Accel-Redirect",
	    arena_printf(r->arena, "/internal/chat/sub/%lld", r->ids[0]));
	resp_status(r, 200);
	return CD_OK;
}

/* Marks the caller's own messages, for the page to tell them apart. */
static void
mark_mine(json_t *messages, long long me)
{
	json_t *m;
	size_t i;

	json_array_foreach(messages, i, m)
		json_object_set_new(m, "mine", json_boolean(jint(m, "userId") == me));
}

static bool
has_mechanic(const json_t *participants)
{
	const char *role;
	json_t *p;
	size_t i;

	json_array_foreach(participants, i, p)
		if ((role = jstr(p, "role")) != NULL && strcmp(role, "mechanic") == 0)
			return true;
	return false;
}

/* The room: who is in it, the latest 100 messages, and the form. */
cd_err
chat_room(cd_req *r)
{
	json_t *session, *people, *messages, *plan, *data;
	const char *plan_name;
	long long last_id;
	bool closed;
	size_t n;
	cd_err err;

	if ((err = session_for_member(r, &session)) != CD_OK ||
	    (err = session_add_participants(r, session)) != CD_OK ||
	    (err = db_rows(&q_latest, &messages, "i", r->ids[0])) != CD_OK)
		return err;
	req_own(r, messages);
	if ((err = db_row(&q_plan_name, &plan, "s", jstr(session, "plan"))) != CD_OK)
		return err;
	req_own(r, plan);
	mark_mine(messages, r->user->id);
	n = json_array_size(messages);
	last_id = n ? jint(json_array_get(messages, n - 1), "id") : 0;
	people = json_object_get(session, "participants");
	closed = strcmp(jstr(session, "status"), "closed") == 0;
	plan_name = plan ? jstr(plan, "name") : jstr(session, "plan");
	data = req_own(r, json_pack("{s:s,s:O,s:s,s:O,s:O,s:I,s:b,s:b}",
	    "title", plan_name, "session", session, "planName", plan_name,
	    "participants", people, "messages", messages,
	    "lastId", (json_int_t)last_id,
	    "waiting", !closed && !has_mechanic(people), "closed", closed));
	return page_render(r, 200, "chat", data);
}
