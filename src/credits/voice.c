/*
 * Voice AI Therapy minutes: what is left, starting a session, and ending it.
 * A session is charged by the server's clock (see billing/voice.h); every
 * request first ends the user's overdue sessions, so what it reports and
 * uses is what is really left.
 */
#include <string.h>

#include "audit.h"
#include "credits.h"
#include "db.h"
#include "holdings.h"
#include "voice.h"

/* Usable: active, unexpired, with minutes left beyond any frozen by a dispute. */
#define ACTIVE " user_id = ? AND is_active = 1 AND expires_at > UTC_TIMESTAMP(6)" \
    " AND minutes_remaining > minutes_frozen"

static cd_sql q_credits = CD_SQL(
    "SELECT id, minutes_purchased, minutes_remaining - minutes_frozen AS minutes_remaining,"
    " purchased_at, expires_at"
    " FROM voice_therapy_credits WHERE" ACTIVE " ORDER BY expires_at, id");
static cd_sql q_start = CD_SQL(
    "INSERT INTO voice_therapy_sessions (user_id, persona, available_minutes)"
    " VALUES (?, ?, ?)");
static cd_sql q_session = CD_SQL(
    "SELECT id, status, minutes_deducted, available_minutes,"
    " TIMESTAMPDIFF(SECOND, started_at, UTC_TIMESTAMP(6)) AS elapsed"
    " FROM voice_therapy_sessions WHERE id = ? AND user_id = ?");

cd_err
voice_credits(cd_req *r)
{
	long long total = 0;
	json_t *rows, *row, *list = json_array();
	size_t i;
	cd_err err;

	if ((err = voice_settle(r->user->id)) != CD_OK)
		return err;
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

struct starting {
	cd_req		*r;
	const char	*persona;
	long long	 minutes, id;
};

/*
 * The minutes are read after the guard row is written, in the transaction
 * that opens the session: an end running at the same time has committed
 * what it took by then.
 */
static cd_err
start_tx(void *arg)
{
	struct starting *s = arg;
	bool fresh;
	cd_err err;

	if ((err = voice_guard(s->r->user->id)) != CD_OK ||
	    (err = voice_end_overdue(s->r->user->id)) != CD_OK ||
	    (err = voice_available(s->r->user->id, &s->minutes)) != CD_OK)
		return err;
	if (s->minutes == 0)
		return req_fail(s->r, CD_PAYMENT_REQUIRED, "no_voice_credits",
		    "You have no Voice AI Therapy minutes left. Buy a pack to start a session.");
	if ((err = db_insert_once(&q_start, &fresh, &s->id, "isi",
	    s->r->user->id, s->persona, s->minutes)) != CD_OK)
		return err;
	if (!fresh)
		return req_fail(s->r, CD_CONFLICT, "session_already_open",
		    "You already have a Voice AI Therapy session open. End it first.");
	return CD_OK;
}

cd_err
voice_start(cd_req *r)
{
	struct starting s = { r, NULL, 0, 0 };
	cd_value v[1];
	cd_err err;

	if ((err = req_fields(r, start_fields, 1, v)) != CD_OK)
		return err;
	s.persona = v[0].s;
	if ((err = db_tx(start_tx, &s)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:I,s:I}", "sessionId", (json_int_t)s.id,
	    "availableMinutes", (json_int_t)s.minutes));
	return CD_OK;
}

struct ending {
	cd_req		*r;
	long long	 session_id, seconds;
	const char	*summary;
	long long	 deducted;
};

static cd_err
end_tx(void *arg)
{
	struct ending *e = arg;
	long long user_id = e->r->user->id, grace, charged;
	json_t *s;
	cd_err err;

	e->deducted = 0;
	if ((err = voice_guard(user_id)) != CD_OK ||
	    (err = voice_end_overdue(user_id)) != CD_OK ||
	    (err = voice_grace(&grace)) != CD_OK ||
	    (err = db_row(&q_session, &s, "ii", e->session_id, user_id)) != CD_OK)
		return err;
	if (s == NULL)
		return req_fail(e->r, CD_NOT_FOUND, "session_not_found",
		    "No Voice AI Therapy session with this id.");
	if (strcmp(jstr(s, "status"), "ended") == 0) {
		e->deducted = jint(s, "minutes_deducted");	/* ended already */
		json_decref(s);
		return CD_OK;
	}
	charged = voice_charge_seconds(jint(s, "elapsed"), e->seconds,
	    jint(s, "available_minutes"), grace);
	json_decref(s);
	return voice_close(user_id, e->session_id, charged, e->seconds,
	    e->summary, "user", &e->deducted);
}

static const cd_field end_fields[] = {
	{ "sessionId", F_INT, F_REQUIRED, 1, CD_MAX_ID, NULL },
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
	    (err = voice_available(r->user->id, &left)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:I,s:I}", "minutesDeducted",
	    (json_int_t)e.deducted, "remainingMinutes", (json_int_t)left));
	return CD_OK;
}
