/*
 * Reading bookings (one, or the signed-in user's list, as customer and as
 * expert) and the expert marking one completed.
 */
#include <string.h>

#include "audit.h"
#include "booking_store.h"
#include "bookings.h"
#include "db.h"

cd_err
booking_load(cd_req *r, long long id, json_t **booking)
{
	cd_err err;

	err = bstore_booking_json(id, booking);
	req_own(r, *booking);
	return err;
}

cd_err
booking_state_of(cd_req *r, long long id, booking_state *st, bool *found)
{
	return bstore_state(r->arena, id, st, found);
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

	if ((err = booking_load(r, id, &booking)) != CD_OK)
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

	if ((err = bstore_bookings_json(r->user->id, &rows)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:o}", "bookings", rows));
	return CD_OK;
}

struct completion {
	cd_req		*r;
	long long	 id;
	bool		 done;		/* this request completed it */
	bool		 early;		/* scheduled, but it has not started */
	bool		 cancelling;	/* a cancel has decided its refund */
};

static cd_err
complete_tx(void *arg)
{
	struct completion *c = arg;
	bool done;
	cd_err err;

	if ((err = bstore_complete(c->id, &done, &c->cancelling)) != CD_OK)
		return err;
	if (!done) {
		/* loaded as scheduled: so being cancelled, or not started yet */
		c->early = !c->cancelling;
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
	struct completion c = { r, r->ids[0], false, false, false };
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
	if (c.cancelling)
		return req_fail(r, CD_CONFLICT, "booking_cancelled",
		    "The customer has cancelled this booking; it cannot be marked completed.");
	/* An expert is owed a payout only for a session that has happened. */
	if (c.early)
		return req_fail(r, CD_CONFLICT, "booking_not_started",
		    "A booking can be marked completed once it has started.");
	/* The booking's state now, as the answer shows it. */
	if ((err = booking_state_of(r, c.id, &st, &found)) != CD_OK)
		return err;
	if (!found || strcmp(st.status, "completed") != 0)
		return req_fail(r, CD_CONFLICT, "booking_not_completable",
		    "Only a scheduled booking can be marked completed.");
	if ((err = booking_load(r, c.id, &booking)) != CD_OK)
		return err;
	if (booking == NULL)
		return CD_INTERNAL;
	resp_json(r, 200, json_pack("{s:O}", "booking", booking));
	return CD_OK;
}
