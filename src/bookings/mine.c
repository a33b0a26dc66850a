/*
 * Reading bookings (one, or the signed-in user's list, as customer and as
 * expert) and the expert marking one completed.
 */
#include <string.h>

#include "audit.h"
#include "bookings.h"
#include "db.h"

/* Column aliases are the API's field names, so a row is the JSON as is. */
#define BOOKING_COLUMNS \
    "b.id, b.user_id AS userId, b.expert_id AS expertId, e.name AS expertName," \
    " b.start_time AS startTime, b.end_time AS endTime," \
    " b.duration_minutes AS durationMinutes, b.price_cents AS priceCents," \
    " b.platform_fee_cents AS platformFeeCents, b.payout_cents AS payoutCents," \
    " b.status, p.status AS paymentStatus, b.payment_intent_id AS paymentIntentId," \
    " p.last_payment_error AS lastPaymentError," \
    " b.created_at AS createdAt, b.updated_at AS updatedAt"

static cd_sql q_one = CD_SQL(
    "SELECT " BOOKING_COLUMNS ", e.user_id AS expertUserId"
    " FROM bookings b JOIN experts e ON e.id = b.expert_id"
    " LEFT JOIN payments p ON p.booking_id = b.id WHERE b.id = ?");
static cd_sql q_mine = CD_SQL(
    "SELECT " BOOKING_COLUMNS ","
    " CASE WHEN b.user_id = ? THEN 'customer' ELSE 'expert' END AS role"
    " FROM bookings b JOIN experts e ON e.id = b.expert_id"
    " LEFT JOIN payments p ON p.booking_id = b.id"
    " WHERE b.user_id = ? OR e.user_id = ?"
    " ORDER BY b.created_at DESC, b.id DESC LIMIT 200");
static cd_sql q_state = CD_SQL(
    "SELECT b.id, b.user_id, e.user_id, b.status, p.status, b.payment_intent_id,"
    " b.stripe_nonce FROM bookings b JOIN experts e ON e.id = b.expert_id"
    " LEFT JOIN payments p ON p.booking_id = b.id WHERE b.id = ?");
static const cd_col state_cols[] = {
	DB_INT(booking_state, id), DB_INT(booking_state, user_id),
	DB_INT(booking_state, expert_user_id), DB_TEXT(booking_state, status),
	DB_TEXT(booking_state, payment_status),
	DB_TEXT(booking_state, payment_intent), DB_TEXT(booking_state, nonce),
};
static cd_sql q_complete = CD_SQL(
    "UPDATE bookings SET status = 'completed' WHERE id = ? AND status = 'scheduled'"
    " AND start_time <= UTC_TIMESTAMP()");

cd_err
booking_load(cd_req *r, long long id, json_t **booking, long long *expert_user)
{
	json_t *row;
	cd_err err;

	*booking = NULL;
	if (expert_user != NULL)
		*expert_user = 0;
	if ((err = db_row(&q_one, &row, "i", id)) != CD_OK || row == NULL)
		return err;
	if (expert_user != NULL)
		*expert_user = jint(row, "expertUserId");
	json_object_del(row, "expertUserId");
	*booking = req_own(r, row);
	return CD_OK;
}

cd_err
booking_state_of(cd_req *r, long long id, booking_state *st, bool *found)
{
	return db_fetch_row(&q_state, r->arena, state_cols, DB_NCOLS(state_cols),
	    st, sizeof(*st), found, "i", id);
}

cd_err
booking_own_state(cd_req *r, long long id, booking_state *st)
{
	bool found;
	cd_err err;

	if ((err = booking_state_of(r, id, st, &found)) != CD_OK)
		return err;
	if (!found || st->user_id != r->user->id)
		return req_fail(r, CD_NOT_FOUND, "booking_not_found",
		    "No booking with this id.");
	return CD_OK;
}

cd_err
booking_respond(cd_req *r, int status, long long id, const char *secret,
    bool with_secret)
{
	json_t *booking, *body;
	cd_err err;

	if ((err = booking_load(r, id, &booking, NULL)) != CD_OK)
		return err;
	if (booking == NULL)
		return CD_INTERNAL;
	body = json_pack("{s:O}", "booking", booking);
	if (with_secret)
		json_object_set_new(body, "clientSecret",
		    secret ? json_string(secret) : json_null());
	resp_json(r, status, body);
	return CD_OK;
}

cd_err
bookings_list(cd_req *r)
{
	json_t *rows;
	cd_err err;

	if ((err = db_rows(&q_mine, &rows, "iii", r->user->id, r->user->id,
	    r->user->id)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:o}", "bookings", rows));
	return CD_OK;
}

struct completion {
	cd_req		*r;
	long long	 id;
	bool		 done;		/* this request completed it */
	bool		 early;		/* scheduled, but it has not started */
};

static cd_err
complete_tx(void *arg)
{
	struct completion *c = arg;
	unsigned long long n;
	cd_err err;

	if ((err = db_exec(&q_complete, &n, "i", c->id)) != CD_OK)
		return err;
	if (n == 0) {
		c->early = true;	/* loaded as scheduled, so not started yet */
		return CD_OK;
	}
	c->done = true;
	return audit_write("BOOKING_COMPLETED", "booking",
	    arena_printf(c->r->arena, "%lld", c->id), c->r->user->id, NULL, "info");
}

/*
 * Only the booking's expert completes it, and only once it has started.
 * The customer knows the booking exists, so they get 403; anyone else gets
 * 404.  Completing a completed booking again answers its state unchanged.
 */
cd_err
booking_complete(cd_req *r)
{
	struct completion c = { r, r->ids[0], false, false };
	booking_state st;
	json_t *booking;
	bool found;
	cd_err err;

	if ((err = booking_state_of(r, c.id, &st, &found)) != CD_OK)
		return err;
	if (!found || (st.expert_user_id != r->user->id &&
	    st.user_id != r->user->id))
		return req_fail(r, CD_NOT_FOUND, "booking_not_found",
		    "No booking with this id.");
	if (st.expert_user_id != r->user->id)
		return req_fail(r, CD_FORBIDDEN, "not_the_expert",
		    "Only the expert of this booking can mark it completed.");
	if (strcmp(st.status, "scheduled") == 0 &&
	    (err = db_tx(complete_tx, &c)) != CD_OK)
		return err;
	/* An expert is owed a payout only for a session that has happened. */
	if (c.early)
		return req_fail(r, CD_CONFLICT, "booking_not_started",
		    "A booking can be marked completed once it has started.");
	if ((err = booking_load(r, c.id, &booking, NULL)) != CD_OK)
		return err;
	if (booking == NULL || strcmp(jstr(booking, "status"), "completed") != 0)
		return req_fail(r, CD_CONFLICT, "booking_not_completable",
		    "Only a scheduled booking can be marked completed.");
	resp_json(r, 200, json_pack("{s:O}", "booking", booking));
	return CD_OK;
}
