/*
 * Live Help hours: what the user has bought and redeemed, the upcoming
 * slots, booking one hour into a slot and cancelling it again (the
 * billing layer's slots.h does both; this turns them into responses).
 */
#include <string.h>

#include "credits.h"
#include "db.h"
#include "holdings.h"
#include "session.h"
#include "slots.h"

static cd_sql q_slots = CD_SQL(
    "SELECT id, starts_at, ends_at, capacity, booked FROM live_help_slots"
    " WHERE starts_at > UTC_TIMESTAMP() ORDER BY starts_at, id LIMIT 100");
/*
 * GET /api/live-help-hour in one round trip: the session check, the user's
 * totals and the upcoming slots, the slots as one JSON array built by the
 * server (the shape db_rows gives: column names as keys, times as
 * "YYYY-MM-DDTHH:MM:SSZ"), so no row becomes an object here.
 */
#define SLOT_TIME(c) "DATE_FORMAT(" c ", '%Y-%m-%dT%H:%i:%sZ')"
cd_sql live_help_session_sql = CD_SQL(
    "SELECT " CD_SESSION_COLUMNS ", t.user_id IS NOT NULL AS has_totals,"
    " t.hours_total, t.hours_used, t.hours_frozen,"
    " (SELECT JSON_ARRAYAGG(JSON_OBJECT('id', id, 'starts_at', " SLOT_TIME("starts_at") ","
    "  'ends_at', " SLOT_TIME("ends_at") ", 'capacity', capacity, 'booked', booked)"
    "  ORDER BY starts_at, id LIMIT 100)"
    "  FROM live_help_slots WHERE starts_at > UTC_TIMESTAMP()) AS slots"
    CD_SESSION_FROM " LEFT JOIN user_live_help_totals t ON t.user_id = u.id"
    CD_SESSION_WHERE);
/*
 * Hours bought and used (frozen hours of a disputed payment count as used
 * until the dispute closes), by the billing layer's one rule.
 */
static cd_err
hours(cd_req *r, long long *total, long long *used)
{
	cd_hours h;
	cd_err err;

	if ((err = live_help_hours(r->user->id, &h)) != CD_OK)
		return err;
	*total = h.total;
	*used = h.total - live_help_left(&h);
	return CD_OK;
}

/* The summary from the session row (live_help_session_sql), as text. */
static cd_err
summary_from_session(cd_req *r)
{
	const json_t *row = r->session_row;
	const char *slots = jstr(row, "slots");
	long long total, used;
	char *body;
	cd_err err;

	if (jint(row, "has_totals")) {
		cd_hours h = { jint(row, "hours_total"), jint(row, "hours_used"),
		    jint(row, "hours_frozen") };

		total = h.total;
		used = h.total - live_help_left(&h);
	} else if ((err = hours(r, &total, &used)) != CD_OK)
		return err;
	body = arena_printf(r->arena, "{\"totalHours\":%lld,\"usedHours\":%lld,"
	    "\"remainingHours\":%lld,\"slots\":%s}", total, used, total - used,
	    slots != NULL ? slots : "[]");
	resp_header(r, "Cache-Control", "no-store");
	resp_typed(r, 200, "application/json", body, strlen(body));
	return CD_OK;
}

cd_err
live_help_summary(cd_req *r)
{
	long long total, used;
	json_t *slots;
	cd_err err;

	if (r->session_row != NULL && json_object_get(r->session_row, "slots"))
		return summary_from_session(r);
	if ((err = hours(r, &total, &used)) != CD_OK ||
	    (err = db_rows(&q_slots, &slots, "")) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:I,s:I,s:I,s:o}", "totalHours",
	    (json_int_t)total, "usedHours", (json_int_t)used, "remainingHours",
	    (json_int_t)(total - used), "slots", slots));
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
	if (res == SLOT_DONE)
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
	cd_err err;

	if ((err = fn(r->user->id, slot_id, r->arena, &res)) != CD_OK ||
	    (err = slot_refusal(r, res)) != CD_OK ||
	    (err = hours(r, &total, &used)) != CD_OK)
		return err;
	resp_json(r, status, json_pack("{s:I,s:I}", "slotId", (json_int_t)slot_id,
	    "remainingHours", (json_int_t)(total - used)));
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
