/*
 * The sessions family's statements and the rows they read; see
 * session_store.h.
 */
#include "db.h"
#include "products.h"
#include "session_store.h"

#define SESSION_SELECT \
    "SELECT s.id, s.type, s.plan, s.status, s.created_at AS createdAt FROM sessions s"
#define MESSAGE_SELECT \
    "SELECT m.id, m.user_id AS userId, u.name, m.body, m.created_at AS createdAt," \
    " m.seq" \
    " FROM session_messages m JOIN users u ON u.id = m.user_id"

static cd_sql q_member = CD_SQL(
    SESSION_SELECT " JOIN session_participants p"
    " ON p.session_id = s.id AND p.user_id = ? AND " PARTICIPANT_STANDS("p")
    " WHERE s.id = ?");
static cd_sql q_session = CD_SQL(SESSION_SELECT " WHERE s.id = ?");
/*
 * One person has a handful of consultations; 100 is a backstop, not paging.
 * Each one's route comes from consultation_route, the rule used after payment.
 */
static cd_sql q_mine = CD_SQL(
    SESSION_SELECT " JOIN session_participants p ON p.session_id = s.id"
    " WHERE p.user_id = ? AND " PARTICIPANT_STANDS("p")
    " ORDER BY s.created_at DESC, s.id DESC LIMIT 100");
static const cd_col session_cols[] = {
	DB_INT(session_row, id), DB_TEXT(session_row, type),
	DB_TEXT(session_row, plan), DB_TEXT(session_row, status),
	DB_TEXT(session_row, created_at),
};
static cd_sql q_status = CD_SQL("SELECT status FROM sessions WHERE id = ?");
static cd_sql q_role_in = CD_SQL(
    "SELECT p.role FROM session_participants p WHERE p.session_id = ?"
    " AND p.user_id = ? AND " PARTICIPANT_STANDS("p"));
static cd_sql q_guard = CD_SQL(
    "UPDATE sessions SET version = version + 1 WHERE id = ?");
/*
 * Waiting, or active with its mechanic demoted: the write that lets one
 * mechanic in (version moves, so the row changes either way).
 */
static cd_sql q_activate = CD_SQL(
    "UPDATE sessions s SET s.status = 'active', s.version = s.version + 1"
    " WHERE s.id = ? AND (s.status = 'waiting'"
    " OR (s.status = 'active' AND NOT " SESSION_HAS_MECHANIC("s") "))");

static cd_sql q_participants = CD_SQL(
    "SELECT p.user_id AS userId, u.name, p.role FROM session_participants p"
    " JOIN users u ON u.id = p.user_id WHERE p.session_id = ?"
    " AND " PARTICIPANT_STANDS("p") " ORDER BY p.joined_at, p.user_id");
static const cd_col participant_cols[] = {
	DB_INT(participant_row, user_id), DB_TEXT(participant_row, name),
	DB_TEXT(participant_row, role),
};
static cd_sql q_user = CD_SQL("SELECT role FROM users WHERE id = ?");
static cd_sql q_add = CD_SQL(
    "INSERT INTO session_participants (session_id, user_id, role)"
    " VALUES (?, ?, 'mechanic')");
/* Back after leaving it: a mechanic again, taking it over again. */
static cd_sql q_rejoin = CD_SQL(
    "UPDATE session_participants SET role = 'mechanic', joined_at = UTC_TIMESTAMP(6)"
    " WHERE session_id = ? AND user_id = ? AND role = 'left'");
/* Its demoted mechanics, as another mechanic takes it over. */
static cd_sql q_retire = CD_SQL(
    "UPDATE session_participants p SET p.role = 'left'"
    " WHERE p.session_id = ? AND p.role = 'mechanic' AND NOT " PARTICIPANT_STANDS("p"));

static cd_sql q_cursor = CD_SQL(
    "SELECT seq FROM session_messages WHERE id = ? AND session_id = ?");
static cd_sql q_after = CD_SQL(
    MESSAGE_SELECT " WHERE m.session_id = ? AND (m.seq > ? OR (m.seq = ? AND m.id > ?))"
    " ORDER BY m.seq, m.id LIMIT 100");
static cd_sql q_after_id = CD_SQL(	/* an id that is not one of this session's */
    MESSAGE_SELECT " WHERE m.session_id = ? AND m.id > ? ORDER BY m.seq, m.id LIMIT 100");
static cd_sql q_latest = CD_SQL(
    "SELECT * FROM (" MESSAGE_SELECT " WHERE m.session_id = ?"
    " ORDER BY m.seq DESC, m.id DESC LIMIT 100) t ORDER BY seq, id");
static const cd_col message_cols[] = {
	DB_INT(message_row, id), DB_INT(message_row, user_id),
	DB_TEXT(message_row, name), DB_TEXT(message_row, body),
	DB_TEXT(message_row, created_at), DB_INT(message_row, seq),
};
static cd_sql q_message = CD_SQL(MESSAGE_SELECT " WHERE m.id = ?");
static cd_sql q_state = CD_SQL(
    "SELECT s.status, s.version, EXISTS (SELECT 1 FROM session_participants p"
    " WHERE p.session_id = s.id AND p.user_id = ? AND " PARTICIPANT_STANDS("p")
    ") AS member,"
    " COALESCE((SELECT m.id FROM session_messages m WHERE m.session_id = s.id"
    " ORDER BY m.seq DESC, m.id DESC LIMIT 1), 0) AS last_id"
    " FROM sessions s WHERE s.id = ?");
static const cd_col state_cols[] = {
	DB_TEXT(chat_state, status), DB_INT(chat_state, version),
	DB_INT(chat_state, member), DB_INT(chat_state, last_id),
};
static cd_sql q_insert = CD_SQL(
    "INSERT INTO session_messages (session_id, user_id, body, seq, idempotency_key)"
    " VALUES (?, ?, ?, ?, ?)");
static cd_sql q_keyed = CD_SQL(
    "SELECT id, body FROM session_messages"
    " WHERE session_id = ? AND user_id = ? AND idempotency_key = ?");
static const cd_col keyed_cols[] = {
	DB_INT(keyed_message, id), DB_TEXT(keyed_message, body),
};
static cd_sql q_plan_name = CD_SQL("SELECT name FROM products WHERE code = ?");

cd_err
sstore_member_session(cd_arena *a, long long user_id, long long session_id,
    session_row *s, bool *found)
{
	return db_fetch_row(&q_member, a, session_cols, DB_NCOLS(session_cols), s,
	    sizeof(*s), found, "ii", user_id, session_id);
}

cd_err
sstore_session(cd_arena *a, long long session_id, session_row *s, bool *found)
{
	return db_fetch_row(&q_session, a, session_cols, DB_NCOLS(session_cols), s,
	    sizeof(*s), found, "i", session_id);
}

cd_err
sstore_sessions_of(cd_arena *a, long long user_id, session_row **rows,
    size_t *n)
{
	return db_fetch_all(&q_mine, a, session_cols, DB_NCOLS(session_cols),
	    sizeof(**rows), rows, n, "i", user_id);
}

cd_err
sstore_status(cd_arena *a, long long session_id, const char **status)
{
	return db_fetch_text(&q_status, a, status, NULL, "i", session_id);
}

cd_err
sstore_role_in(cd_arena *a, long long session_id, long long user_id,
    const char **role)
{
	return db_fetch_text(&q_role_in, a, role, NULL, "ii", session_id, user_id);
}

cd_err
sstore_guard(long long session_id, bool *found)
{
	return db_guard(&q_guard, found, "i", session_id);
}

cd_err
sstore_activate(long long session_id, bool *moved)
{
	unsigned long long n = 0;
	cd_err err;

	err = db_exec(&q_activate, &n, "i", session_id);
	*moved = n > 0;
	return err;
}

cd_err
sstore_participants(cd_arena *a, long long session_id, participant_row **rows,
    size_t *n)
{
	return db_fetch_all(&q_participants, a, participant_cols,
	    DB_NCOLS(participant_cols), sizeof(**rows), rows, n, "i", session_id);
}

cd_err
sstore_user_role(cd_arena *a, long long user_id, const char **role, bool *found)
{
	return db_fetch_text(&q_user, a, role, found, "i", user_id);
}

cd_err
sstore_add_mechanic(long long session_id, long long user_id, bool *added)
{
	unsigned long long n = 0;
	cd_err err;

	if ((err = db_exec(&q_retire, NULL, "i", session_id)) != CD_OK ||
	    (err = db_insert_once(&q_add, added, NULL, "ii", session_id,
	    user_id)) != CD_OK || *added)
		return err;
	err = db_exec(&q_rejoin, &n, "ii", session_id, user_id);
	*added = n > 0;
	return err;
}

cd_err
sstore_latest_messages(cd_arena *a, long long session_id, message_row **rows,
    size_t *n)
{
	return db_fetch_all(&q_latest, a, message_cols, DB_NCOLS(message_cols),
	    sizeof(**rows), rows, n, "i", session_id);
}

cd_err
sstore_latest_messages_json(long long session_id, json_t **rows)
{
	return db_rows(&q_latest, rows, "i", session_id);
}

cd_err
sstore_messages_after_json(long long session, long long after, json_t **rows)
{
	long long seq = -1;
	bool found = false;
	cd_err err;

	if (after > 0 && (err = db_fetch_row(&q_cursor, NULL, db_int_col, 1,
	    &seq, sizeof(seq), &found, "ii", after, session)) != CD_OK)
		return err;
	if (after > 0 && !found)
		return db_rows(&q_after_id, rows, "ii", session, after);
	if (!found)
		seq = -1;
	return db_rows(&q_after, rows, "iiii", session, seq, seq,
	    found ? after : 0);
}

cd_err
sstore_message_json(long long message_id, json_t **row)
{
	return db_row(&q_message, row, "i", message_id);
}

cd_err
sstore_chat_state(cd_arena *a, long long user_id, long long session_id,
    chat_state *s, bool *found)
{
	return db_fetch_row(&q_state, a, state_cols, DB_NCOLS(state_cols), s,
	    sizeof(*s), found, "ii", user_id, session_id);
}

cd_err
sstore_insert_message(long long session_id, long long user_id,
    const char *body, long long seq, const char *key, long long *id)
{
	return db_insert(&q_insert, id, "iisis", session_id, user_id, body, seq,
	    key);
}

cd_err
sstore_keyed_message(cd_arena *a, long long session_id, long long user_id,
    const char *key, keyed_message *m, bool *found)
{
	return db_fetch_row(&q_keyed, a, keyed_cols, DB_NCOLS(keyed_cols), m,
	    sizeof(*m), found, "iis", session_id, user_id, key);
}

cd_err
sstore_plan_name(cd_arena *a, const char *plan, const char **name)
{
	return db_fetch_text(&q_plan_name, a, name, NULL, "s", plan);
}
