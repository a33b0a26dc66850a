/*
 * Voice AI Therapy minutes: the per-user guard row, the charge of a session
 * by the server's clock, and ending sessions (see voice.h).
 *
 * Deduction takes from the credit with the most minutes left first and goes
 * on across credits.  Every caller has written the user's guard row first,
 * so deductions of one user never interleave; the credits are also read
 * FOR UPDATE so the values taken are the committed ones.
 */
#include "db.h"
#include "holdings.h"
#include "voice.h"

/* Usable: active, unexpired, with minutes left beyond any frozen by a dispute. */
#define ACTIVE " user_id = ? AND is_active = 1 AND expires_at > UTC_TIMESTAMP(6)" \
    " AND minutes_remaining > minutes_frozen"
/* The stored grace: a subquery, so the statements that need it read it too. */
#define GRACE \
    "(SELECT int_value FROM platform_settings WHERE name = 'voice_grace_seconds')"
/* An open session past its minutes plus the grace. */
#define OVERDUE " status = 'active' AND started_at +" \
    " INTERVAL (available_minutes * 60 + " GRACE ") SECOND < UTC_TIMESTAMP(6)"

static cd_sql q_guard = CD_SQL(
    "INSERT INTO voice_therapy_guards (user_id, version) VALUES (?, 1)"
    " ON DUPLICATE KEY UPDATE version = version + 1");
static cd_sql q_grace = CD_SQL("SELECT " GRACE);
static cd_sql q_lock_credits = CD_SQL(
    "SELECT id, minutes_remaining - minutes_frozen AS usable"
    " FROM voice_therapy_credits WHERE" ACTIVE
    " ORDER BY usable DESC, expires_at, id FOR UPDATE");
static cd_sql q_take = CD_SQL(
    "UPDATE voice_therapy_credits SET minutes_remaining = minutes_remaining - ?,"
    " is_active = (minutes_remaining > 0)"
    " WHERE id = ? AND minutes_remaining - minutes_frozen >= ?");
static cd_sql q_available = CD_SQL(
    "SELECT COALESCE(SUM(minutes_remaining - minutes_frozen), 0) AS minutes"
    " FROM voice_therapy_credits WHERE" ACTIVE);
static cd_sql q_usage = CD_SQL(
    "INSERT INTO voice_therapy_usage (session_id, credit_id, minutes) VALUES (?, ?, ?)");
static cd_sql q_end = CD_SQL(
    "UPDATE voice_therapy_sessions SET status = 'ended', open_slot = NULL,"
    " ended_at = UTC_TIMESTAMP(6), seconds_used = NULLIF(?, -1),"
    " seconds_charged = ?, minutes_requested = ?, minutes_deducted = ?,"
    " summary = ?, ended_by = ? WHERE id = ? AND status = 'active'");
/* Open sessions, as struct open_session reads them. */
#define OPEN_SESSIONS "SELECT id, available_minutes," \
    " TIMESTAMPDIFF(SECOND, started_at, UTC_TIMESTAMP(6))" \
    " FROM voice_therapy_sessions WHERE user_id = ? AND"
static cd_sql q_overdue = CD_SQL(OPEN_SESSIONS OVERDUE " ORDER BY id");
static cd_sql q_open_sessions = CD_SQL(
    OPEN_SESSIONS " status = 'active' ORDER BY id");
static cd_sql q_any_overdue = CD_SQL(
    "SELECT id FROM voice_therapy_sessions WHERE user_id = ? AND" OVERDUE " LIMIT 1");
static cd_sql q_credits = CD_SQL(
    "SELECT id, minutes_purchased, minutes_remaining - minutes_frozen,"
    " purchased_at, expires_at"
    " FROM voice_therapy_credits WHERE" ACTIVE " ORDER BY expires_at, id");
static const cd_col credit_cols[] = {
	DB_INT(voice_credit, id), DB_INT(voice_credit, purchased),
	DB_INT(voice_credit, remaining), DB_TEXT(voice_credit, purchased_at),
	DB_TEXT(voice_credit, expires_at),
};
static cd_sql q_open = CD_SQL(
    "INSERT INTO voice_therapy_sessions (user_id, persona, available_minutes)"
    " VALUES (?, ?, ?)");
static cd_sql q_session = CD_SQL(
    "SELECT status = 'ended', minutes_deducted, available_minutes,"
    " TIMESTAMPDIFF(SECOND, started_at, UTC_TIMESTAMP(6))"
    " FROM voice_therapy_sessions WHERE id = ? AND user_id = ?");
static const cd_col session_cols[] = {
	DB_INT(voice_session, ended), DB_INT(voice_session, deducted),
	DB_INT(voice_session, available_minutes), DB_INT(voice_session, elapsed),
};
static cd_sql q_overdue_users = CD_SQL(
    "SELECT DISTINCT user_id FROM voice_therapy_sessions WHERE" OVERDUE
    " LIMIT 1000");

/* A credit minutes can be taken from; an open session. */
struct usable {
	long long	 id, usable;
};
static const cd_col usable_cols[] = {
	DB_INT(struct usable, id), DB_INT(struct usable, usable),
};
struct open_session {
	long long	 id, available_minutes, elapsed;
};
static const cd_col open_session_cols[] = {
	DB_INT(struct open_session, id), DB_INT(struct open_session, available_minutes),
	DB_INT(struct open_session, elapsed),
};

cd_err
voice_guard(long long user_id)
{
	return db_exec(&q_guard, NULL, "i", user_id);
}

cd_err
voice_grace(long long *seconds)
{
	return db_fetch_int(&q_grace, seconds, "");
}

long long
voice_charge_seconds(long long elapsed, long long client,
    long long available_minutes, long long grace)
{
	long long server = elapsed < 0 ? 0 : elapsed;
	long long cap = available_minutes * 60, floor;

	if (server > cap)
		server = cap;
	if (client < 0 || client >= server)
		return server;
	floor = server - grace;
	return client > floor ? client : (floor > 0 ? floor : 0);
}

/* Takes up to want minutes across credits c[0..n); *took = taken. */
static cd_err
take_from(const struct usable *c, size_t n, long long session_id,
    long long want, long long *took)
{
	unsigned long long changed;
	long long take;
	cd_err err = CD_OK;
	size_t i;

	for (i = 0; i < n && want > 0; i++) {
		take = want < c[i].usable ? want : c[i].usable;
		if ((err = db_exec(&q_take, &changed, "iii", take, c[i].id,
		    take)) != CD_OK || (changed != 1 && (err = db_retry()) !=
		    CD_OK) || (err = db_exec(&q_usage, NULL, "iii", session_id,
		    c[i].id, take)) != CD_OK)
			break;
		*took += take;
		want -= take;
	}
	return err;
}

/* Takes up to want minutes across the user's credits; *took = taken. */
static cd_err
deduct(long long user_id, long long session_id, long long want, long long *took)
{
	cd_arena *a = arena_new();
	struct usable *credits;
	size_t n;
	cd_err err;

	*took = 0;
	if ((err = db_fetch_all(&q_lock_credits, a, usable_cols,
	    DB_NCOLS(usable_cols), sizeof(*credits), &credits, &n, "i",
	    user_id)) == CD_OK)
		err = take_from(credits, n, session_id, want, took);
	arena_free(a);
	return err;
}

cd_err
voice_close(long long user_id, long long session_id, long long charged_seconds,
    long long client_seconds, const char *summary, const char *ended_by,
    long long *deducted)
{
	long long want = (charged_seconds + 59) / 60;
	unsigned long long n;
	cd_err err;

	if ((err = deduct(user_id, session_id, want, deducted)) != CD_OK ||
	    (err = db_exec(&q_end, &n, "iiiissi", client_seconds < 0 ? -1 :
	    client_seconds, charged_seconds, want, *deducted, summary, ended_by,
	    session_id)) != CD_OK)
		return err;
	/*
	 * Guarded: cannot be ended twice.  Matching no row after reading the
	 * session open means another node's end got in between: run again,
	 * and the retry reads it ended.
	 */
	return n == 1 ? CD_OK : db_retry();
}

/* Ends sessions s[0..n), charging each in full. */
static cd_err
close_overdue(long long user_id, const struct open_session *s, size_t n)
{
	long long took;
	cd_err err = CD_OK;
	size_t i;

	for (i = 0; i < n && err == CD_OK; i++)
		err = voice_close(user_id, s[i].id, s[i].available_minutes * 60, -1,
		    NULL, "server", &took);
	return err;
}

cd_err
voice_end_overdue(long long user_id)
{
	cd_arena *a = arena_new();
	struct open_session *sessions;
	size_t n;
	cd_err err;

	if ((err = db_fetch_all(&q_overdue, a, open_session_cols,
	    DB_NCOLS(open_session_cols), sizeof(*sessions), &sessions, &n, "i",
	    user_id)) == CD_OK)
		err = close_overdue(user_id, sessions, n);
	arena_free(a);
	return err;
}

cd_err
voice_end_open(long long user_id)
{
	cd_arena *a = arena_new();
	struct open_session *s;
	long long grace, took;
	size_t i, n = 0;
	cd_err err;

	if ((err = voice_grace(&grace)) == CD_OK)
		err = db_fetch_all(&q_open_sessions, a, open_session_cols,
		    DB_NCOLS(open_session_cols), sizeof(*s), &s, &n, "i", user_id);
	for (i = 0; i < n && err == CD_OK; i++)
		err = voice_close(user_id, s[i].id, voice_charge_seconds(
		    s[i].elapsed, -1, s[i].available_minutes, grace), -1, NULL,
		    "server", &took);
	arena_free(a);
	return err;
}

static cd_err
settle_tx(void *arg)
{
	long long user_id = *(long long *)arg;
	cd_err err;

	if ((err = voice_guard(user_id)) != CD_OK)
		return err;
	return voice_end_overdue(user_id);
}

cd_err
voice_settle(long long user_id)
{
	long long overdue;
	cd_err err;

	if ((err = db_fetch_int(&q_any_overdue, &overdue, "i", user_id)) !=
	    CD_OK || overdue == 0)
		return err;
	return db_tx(settle_tx, &user_id);
}

/* Settles users u[0..n), each in its own transaction; *settled = done. */
static cd_err
settle_each(long long *u, size_t n, long long *settled)
{
	cd_err err = CD_OK;
	size_t i;

	for (i = 0; i < n && (err = db_tx(settle_tx, &u[i])) == CD_OK; i++)
		(*settled)++;
	return err;
}

cd_err
voice_sweep(long long *users)
{
	cd_arena *a = arena_new();
	long long *ids;
	size_t n;
	cd_err err;

	*users = 0;
	if ((err = db_fetch_all(&q_overdue_users, a, db_int_col, 1, sizeof(*ids),
	    &ids, &n, "")) == CD_OK)
		err = settle_each(ids, n, users);
	arena_free(a);
	return err;
}

cd_err
voice_available(long long user_id, long long *minutes)
{
	return db_fetch_int(&q_available, minutes, "i", user_id);
}

cd_err
voice_credits_of(long long user_id, cd_arena *a, voice_credit **rows, size_t *n)
{
	return db_fetch_all(&q_credits, a, credit_cols, DB_NCOLS(credit_cols),
	    sizeof(**rows), rows, n, "i", user_id);
}

cd_err
voice_open(long long user_id, const char *persona, long long minutes,
    long long *session_id, bool *opened)
{
	return db_insert_once(&q_open, opened, session_id, "isi", user_id,
	    persona, minutes);
}

cd_err
voice_session_of(long long user_id, long long session_id, voice_session *s,
    bool *found)
{
	return db_fetch_row(&q_session, NULL, session_cols,
	    DB_NCOLS(session_cols), s, sizeof(*s), found, "ii", session_id,
	    user_id);
}
