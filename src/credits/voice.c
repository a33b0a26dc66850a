/*
 * Voice AI Therapy minutes: what is left, starting a session, and ending it
 * by deducting the minutes used from the user's credits.
 *
 * Deduction takes from the credit with the most minutes left first and goes
 * on across credits.  The credits are locked (FOR UPDATE) in one index order
 * for the whole transaction, so concurrent ends of different sessions queue
 * on them; what guards them (see db.h) is that every deduction writes the
 * credit it takes from, only WHERE minutes_remaining >= what it takes, and
 * the session row it ends, so no credit goes below zero and no session is
 * charged twice, on one server or across cluster nodes.
 */
#include <string.h>

#include "audit.h"
#include "credits.h"
#include "db.h"

#define ACTIVE " user_id = ? AND is_active = 1 AND expires_at > UTC_TIMESTAMP(6)" \
    " AND minutes_remaining > 0"

static cd_sql q_credits = CD_SQL(
    "SELECT id, minutes_purchased, minutes_remaining, purchased_at, expires_at"
    " FROM voice_therapy_credits WHERE" ACTIVE " ORDER BY expires_at, id");
static cd_sql q_available = CD_SQL(
    "SELECT COALESCE(SUM(minutes_remaining), 0) AS minutes"
    " FROM voice_therapy_credits WHERE" ACTIVE);
static cd_sql q_start = CD_SQL(
    "INSERT INTO voice_therapy_sessions (user_id, persona, available_minutes)"
    " VALUES (?, ?, ?)");
static cd_sql q_guard = CD_SQL(
    "UPDATE voice_therapy_sessions SET version = version + 1"
    " WHERE id = ? AND user_id = ?");
static cd_sql q_session = CD_SQL(
    "SELECT id, status, minutes_deducted FROM voice_therapy_sessions"
    " WHERE id = ? AND user_id = ?");
static cd_sql q_lock_credits = CD_SQL(
    "SELECT id, minutes_remaining FROM voice_therapy_credits WHERE" ACTIVE
    " ORDER BY minutes_remaining DESC, expires_at, id FOR UPDATE");
static cd_sql q_take = CD_SQL(
    "UPDATE voice_therapy_credits SET minutes_remaining = minutes_remaining - ?,"
    " is_active = (minutes_remaining > 0) WHERE id = ? AND minutes_remaining >= ?");
static cd_sql q_usage = CD_SQL(
    "INSERT INTO voice_therapy_usage (session_id, credit_id, minutes) VALUES (?, ?, ?)");
static cd_sql q_end = CD_SQL(
    "UPDATE voice_therapy_sessions SET status = 'ended', open_slot = NULL,"
    " ended_at = UTC_TIMESTAMP(6), seconds_used = ?, minutes_requested = ?,"
    " minutes_deducted = ?, summary = ? WHERE id = ?");

static cd_err
available(cd_req *r, long long *minutes)
{
	json_t *row;
	cd_err err;

	if ((err = db_row(&q_available, &row, "i", r->user->id)) != CD_OK)
		return err;
	*minutes = jint(row, "minutes");
	json_decref(row);
	return CD_OK;
}

cd_err
voice_credits(cd_req *r)
{
	long long total = 0;
	json_t *rows, *row, *list = json_array();
	size_t i;
	cd_err err;

	if ((err = db_rows(&q_credits, &rows, "i", r->user->id)) != CD_OK) {
		json_decref(list);
		return err;
	}
	json_array_foreach(rows, i, row) {
		total += jint(row, "minutes_remaining");
		json_array_append_new(list, json_pack("{s:O,s:O,s:O,s:O,s:O}",
		    "id", json_object_get(row, "id"),
		    "minutesPurchased", json_object_get(row, "minutes_purchased"),
		    "minutesRemaining", json_object_get(row, "minutes_remaining"),
		    "purchasedAt", json_object_get(row, "purchased_at"),
		    "expiresAt", json_object_get(row, "expires_at")));
	}
	json_decref(rows);
	resp_json(r, 200, json_pack("{s:b,s:I,s:o}", "hasCredits", total > 0,
	    "remainingMinutes", (json_int_t)total, "credits", list));
	return CD_OK;
}

static const cd_field start_fields[] = {
	{ "persona", F_STR, 0, 1, 64, NULL },
};

cd_err
voice_start(cd_req *r)
{
	long long minutes, id;
	bool fresh;
	cd_value v[1];
	cd_err err;

	if ((err = req_fields(r, start_fields, 1, v)) != CD_OK ||
	    (err = available(r, &minutes)) != CD_OK)
		return err;
	if (minutes == 0)
		return req_fail(r, CD_PAYMENT_REQUIRED, "no_voice_credits",
		    "You have no Voice AI Therapy minutes left. Buy a pack to start a session.");
	if ((err = db_insert_once(&q_start, &fresh, &id, "isi", r->user->id,
	    v[0].s, minutes)) != CD_OK)
		return err;
	if (!fresh)
		return req_fail(r, CD_CONFLICT, "session_already_open",
		    "You already have a Voice AI Therapy session open. End it first.");
	resp_json(r, 200, json_pack("{s:I,s:I}", "sessionId", (json_int_t)id,
	    "availableMinutes", (json_int_t)minutes));
	return CD_OK;
}

struct ending {
	cd_req		*r;
	long long	 session_id, seconds;
	const char	*summary;
	long long	 deducted;
};

/* Takes up to want minutes across the locked credits; returns what it took. */
static cd_err
deduct(struct ending *e, long long want)
{
	unsigned long long n;
	long long take, left;
	json_t *credits, *c;
	size_t i;
	cd_err err;

	if ((err = db_rows(&q_lock_credits, &credits, "i", e->r->user->id)) != CD_OK)
		return err;
	json_array_foreach(credits, i, c) {
		if (want == 0)
			break;
		left = jint(c, "minutes_remaining");
		take = want < left ? want : left;
		if ((err = db_exec(&q_take, &n, "iii", take, jint(c, "id"), take)) !=
		    CD_OK || (n != 1 && (err = db_retry())) ||
		    (err = db_exec(&q_usage, NULL, "iii", e->session_id,
		    jint(c, "id"), take)) != CD_OK)
			break;
		e->deducted += take;
		want -= take;
	}
	json_decref(credits);
	return err;
}

static cd_err
end_tx(void *arg)
{
	struct ending *e = arg;
	long long want = (e->seconds + 59) / 60;
	json_t *s = NULL;
	bool found;
	cd_err err;

	e->deducted = 0;
	/* The session's guard row first (see db.h), then what it says. */
	if ((err = db_guard(&q_guard, &found, "ii", e->session_id,
	    e->r->user->id)) != CD_OK || (found && (err = db_row(&q_session, &s,
	    "ii", e->session_id, e->r->user->id)) != CD_OK))
		return err;
	if (s == NULL)
		return req_fail(e->r, CD_NOT_FOUND, "session_not_found",
		    "No Voice AI Therapy session with this id.");
	if (strcmp(jstr(s, "status"), "ended") == 0) {
		e->deducted = jint(s, "minutes_deducted");	/* ending twice */
		json_decref(s);
		return CD_OK;
	}
	json_decref(s);
	if ((err = deduct(e, want)) != CD_OK)
		return err;
	return db_exec(&q_end, NULL, "iiisi", e->seconds, want, e->deducted,
	    e->summary, e->session_id);
}

static const cd_field end_fields[] = {
	{ "sessionId", F_INT, F_REQUIRED, 1, 9007199254740991LL, NULL },
	{ "secondsUsed", F_INT, F_REQUIRED, 0, 86400, NULL },
	{ "summary", F_STR, 0, 0, 4000, NULL },
};

cd_err
voice_end(cd_req *r)
{
	struct ending e = { r, 0, 0, NULL, 0 };
	long long left;
	cd_value v[3];
	cd_err err;

	if ((err = req_fields(r, end_fields, 3, v)) != CD_OK)
		return err;
	e.session_id = v[0].i;
	e.seconds = v[1].i;
	e.summary = v[2].s;
	if ((err = db_tx(end_tx, &e)) != CD_OK ||
	    (err = available(r, &left)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:I,s:I}", "minutesDeducted",
	    (json_int_t)e.deducted, "remainingMinutes", (json_int_t)left));
	return CD_OK;
}
