/*
 * Live Help hours: what the user has bought and redeemed, the upcoming
 * slots, booking one hour into a slot and cancelling it again (the
 * billing layer's slots.h does both; this turns them into responses).
 */
#include <string.h>

#include "credits.h"
#include "credits_store.h"
#include "holdings.h"
#include "session.h"
#include "slots.h"

/*
 * Hours bought and used (frozen hours of a disputed payment count as used
 * until the dispute closes), by the billing layer's one rule: from the
 * summary's row when it has the totals, summed at once when it says there
 * is no totals row (a user who never bought: one statement, not two), else
 * read.
 */
static cd_err
hours(cd_req *r, const live_help_row *row, long long *total,
    long long *used)
{
	cd_hours h;
	cd_err err;

	if (row != NULL && row->has_totals)
		h = (cd_hours){ row->total, row->used, row->frozen };
	else if ((err = (row != NULL ? live_help_hours_summed :
	    live_help_hours)(r->user->id, &h)) != CD_OK)
		return err;
	*total = h.total;
	*used = h.total - live_help_left(&h);
	return CD_OK;
}

cd_err
live_help_summary(cd_req *r)
{
	const live_help_row *row = r->session_row;
	long long total, used;
	const char *slots;
	char *body;
	cd_err err;

	if (row == NULL)	/* the route's lookup is registered in credits.c */
		return CD_INTERNAL;
	if ((err = hours(r, row, &total, &used)) != CD_OK ||
	    (err = slots_upcoming(row->slots_version, row->now, &slots)) != CD_OK)
		return err;
	body = arena_printf(r->arena, "{\"totalHours\":%lld,\"usedHours\":%lld,"
	    "\"remainingHours\":%lld,\"slots\":%s}", total, used, total - used,
	    slots);
	resp_json_text(r, 200, body, strlen(body));
	return CD_OK;
}

/* Each refused booking or cancel as the SPEC's error, by slot_result. */
static const struct {
	cd_err		 err;
	const char	*code, *message;
} refusals[] = {
	[SLOT_NOT_FOUND] = { CD_NOT_FOUND, "slot_not_found",
	    "No upcoming slot with this id." },
	[SLOT_FULL] = { CD_CONFLICT, "slot_full", "This slot is fully booked." },
	[SLOT_NO_HOURS] = { CD_PAYMENT_REQUIRED, "no_hours_left",
	    "You have no Live Help hours left. Buy more to book a slot." },
	[SLOT_ALREADY_BOOKED] = { CD_CONFLICT, "already_booked",
	    "You have already booked this slot." },
	[SLOT_NOT_BOOKED] = { CD_NOT_FOUND, "booking_not_found",
	    "You have not booked this slot." },
	[SLOT_TOO_LATE] = { CD_CONFLICT, "too_late_to_cancel",
	    "This slot starts too soon to be cancelled; the hour stays booked." },
};

static cd_err
slot_refusal(cd_req *r, slot_result res)
{
	if (slot_done(res))
		return CD_OK;
	return req_fail(r, refusals[res].err, refusals[res].code,
	    refusals[res].message);
}

/* Books (or cancels, with fn = slot_cancel) and answers the hours left. */
static cd_err
seat(cd_req *r, cd_err (*fn)(long long, long long, cd_arena *, slot_result *),
    int status)
{
	long long slot_id = r->ids[0], total, used;
	slot_result res;
	json_t *body;
	cd_err err;

	if ((err = fn(r->user->id, slot_id, r->arena, &res)) != CD_OK ||
	    (err = slot_refusal(r, res)) != CD_OK ||
	    (err = hours(r, NULL, &total, &used)) != CD_OK)
		return err;
	body = json_pack("{s:I,s:I}", "slotId", (json_int_t)slot_id,
	    "remainingHours", (json_int_t)(total - used));
	if (fn == slot_cancel)	/* false: the hour went to a refund owed it */
		json_object_set_new(body, "hourReturned",
		    json_boolean(res == SLOT_DONE));
	resp_json(r, status, body);
	return CD_OK;
}

cd_err
live_help_cancel(cd_req *r)
{
	return seat(r, slot_cancel, 200);
}

cd_err
live_help_book(cd_req *r)
{
	return seat(r, slot_book, 201);
}
