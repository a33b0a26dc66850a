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

static const cd_field start_fields[] = {
	{ "persona", F_STR, 0, 1, 64, NULL },
};

cd_err
voice_credits(cd_req *r)
{
	long long total = 0;
	voice_credit *c;
	json_t *list;
	size_t i, n;
	cd_err err;

	if ((err = voice_settle(r->user->id)) != CD_OK ||
	    (err = voice_credits_of(r->user->id, r->arena, &c, &n)) != CD_OK)
		return err;
	list = json_array();
	for (i = 0; i < n; i++) {
		total += c[i].remaining;
		json_array_append_new(list, json_pack("{s:I,s:I,s:I,s:s?,s:s?}",
		    "id", (json_int_t)c[i].id, "minutesPurchased",
		    (json_int_t)c[i].purchased, "minutesRemaining",
		    (json_int_t)c[i].remaining, "purchasedAt", c[i].purchased_at,
		    "expiresAt", c[i].expires_at));
	}
	resp_json(r, 200, json_pack("{s:b,s:I,s:o}", "hasCredits", total > 0,
	    "remainingMinutes", (json_int_t)total, "credits", list));
	return CD_OK;
}

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
	if ((err = voice_open(s->r->user->id, s->persona, s->minutes, &s->id,
	    &fresh)) != CD_OK)
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
	voice_session s;
	bool found;
	cd_err err;

	e->deducted = 0;
	if ((err = voice_guard(user_id)) != CD_OK ||
	    (err = voice_end_overdue(user_id)) != CD_OK ||
	    (err = voice_grace(&grace)) != CD_OK ||
	    (err = voice_session_of(user_id, e->session_id, &s, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(e->r, CD_NOT_FOUND, "session_not_found",
		    "No Voice AI Therapy session with this id.");
	if (s.ended) {
		e->deducted = s.deducted;	/* ended already */
		return CD_OK;
	}
	charged = voice_charge_seconds(s.elapsed, e->seconds,
	    s.available_minutes, grace);
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
