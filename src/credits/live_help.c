/*
 * Live Help hours: what the user has bought and redeemed, the upcoming
 * slots, booking one hour into a slot and cancelling it again.
 */
#include <string.h>

#include "audit.h"
#include "credits.h"
#include "db.h"
#include "holdings.h"
#include "session.h"

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
static cd_sql q_take_seat = CD_SQL(
    "UPDATE live_help_slots SET booked = booked + 1"
    " WHERE id = ? AND booked < capacity AND starts_at > UTC_TIMESTAMP()");
static cd_sql q_slot_exists = CD_SQL(
    "SELECT id, starts_at > UTC_TIMESTAMP() AS upcoming FROM live_help_slots WHERE id = ?");
static cd_sql q_take_hour = CD_SQL(
    "UPDATE user_live_help_totals SET hours_used = hours_used + 1"
    " WHERE user_id = ? AND hours_used + hours_frozen < hours_total");
static cd_sql q_redeem = CD_SQL(
    "INSERT INTO live_help_redemptions (user_id, slot_id) VALUES (?, ?)");

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

struct booking {
	cd_req		*r;
	long long	 slot_id;
};

/*
 * Three guarded writes in one transaction: a seat in the slot, an hour from
 * the user's balance, and the redemption row.  Each guard is in the UPDATE's
 * WHERE (or a UNIQUE key), so concurrent bookings can never overfill a slot
 * or spend an hour twice.
 */
static cd_err
book_tx(void *arg)
{
	struct booking *b = arg;
	cd_req *r = b->r;
	unsigned long long n;
	json_t *slot, *details;
	cd_err err;

	if ((err = db_exec(&q_take_seat, &n, "i", b->slot_id)) != CD_OK)
		return err;
	if (n == 0) {
		if ((err = db_row(&q_slot_exists, &slot, "i", b->slot_id)) != CD_OK)
			return err;
		err = slot == NULL || !jint(slot, "upcoming") ?
		    req_fail(r, CD_NOT_FOUND, "slot_not_found", "No upcoming slot with this id.") :
		    req_fail(r, CD_CONFLICT, "slot_full", "This slot is fully booked.");
		json_decref(slot);
		return err;
	}
	if ((err = db_exec(&q_take_hour, &n, "i", r->user->id)) != CD_OK)
		return err;
	if (n == 0)
		return req_fail(r, CD_PAYMENT_REQUIRED, "no_hours_left",
		    "You have no Live Help hours left. Buy more to book a slot.");
	switch (db_write(&q_redeem, NULL, &err, "ii", r->user->id, b->slot_id)) {
	case DB_DONE:
		break;
	case DB_ALREADY:	/* the UNIQUE (user, slot) key: one seat each */
		return req_fail(r, CD_CONFLICT, "already_booked",
		    "You have already booked this slot.");
	default:		/* DB_RETRY: db_tx runs the booking again */
		return err;
	}
	details = json_pack("{s:I}", "slotId", (json_int_t)b->slot_id);
	err = audit_write("LIVE_HELP_BOOKED", "live_help_slot",
	    arena_printf(r->arena, "%lld", b->slot_id), r->user->id, details, "info");
	json_decref(details);
	return err;
}

/*
 * Cancelling: deleting the user's redemption is the guarded write (one
 * cancel wins; a second finds no row), and only while the slot starts more
 * than live_help_cancel_hours from now.  The seat and the hour go back in
 * the same transaction, with an audit row that keeps the history.
 */
static cd_sql q_unredeem = CD_SQL(
    "DELETE r FROM live_help_redemptions r"
    " JOIN live_help_slots s ON s.id = r.slot_id"
    " JOIN platform_settings p ON p.name = 'live_help_cancel_hours'"
    " WHERE r.user_id = ? AND r.slot_id = ?"
    " AND s.starts_at > UTC_TIMESTAMP() + INTERVAL p.int_value HOUR");
static cd_sql q_my_redemption = CD_SQL(
    "SELECT hours FROM live_help_redemptions WHERE user_id = ? AND slot_id = ?");
static cd_sql q_give_seat = CD_SQL(
    "UPDATE live_help_slots SET booked = booked - 1 WHERE id = ? AND booked > 0");
static cd_sql q_give_hour = CD_SQL(
    "UPDATE user_live_help_totals SET hours_used = hours_used - 1"
    " WHERE user_id = ? AND hours_used > 0");

static cd_err
cancel_tx(void *arg)
{
	struct booking *b = arg;
	cd_req *r = b->r;
	unsigned long long n;
	json_t *row, *details;
	bool booked;
	cd_err err;

	if ((err = db_exec(&q_unredeem, &n, "ii", r->user->id, b->slot_id)) != CD_OK)
		return err;
	if (n == 0) {
		if ((err = db_row(&q_my_redemption, &row, "ii", r->user->id,
		    b->slot_id)) != CD_OK)
			return err;
		booked = row != NULL;
		json_decref(row);
		return !booked ?
		    req_fail(r, CD_NOT_FOUND, "booking_not_found",
		    "You have not booked this slot.") :
		    req_fail(r, CD_CONFLICT, "too_late_to_cancel",
		    "This slot starts too soon to be cancelled; the hour stays booked.");
	}
	if ((err = db_exec(&q_give_seat, &n, "i", b->slot_id)) != CD_OK ||
	    (err = db_exec(&q_give_hour, &n, "i", r->user->id)) != CD_OK)
		return err;
	details = json_pack("{s:I,s:i}", "slotId", (json_int_t)b->slot_id,
	    "hoursReturned", 1);
	err = audit_write("LIVE_HELP_CANCELLED", "live_help_slot",
	    arena_printf(r->arena, "%lld", b->slot_id), r->user->id, details, "info");
	json_decref(details);
	return err;
}

cd_err
live_help_cancel(cd_req *r)
{
	struct booking b = { r, r->ids[0] };
	long long total, used;
	cd_err err;

	if ((err = db_tx(cancel_tx, &b)) != CD_OK ||
	    (err = hours(r, &total, &used)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:I,s:I}", "slotId", (json_int_t)b.slot_id,
	    "remainingHours", (json_int_t)(total - used)));
	return CD_OK;
}

cd_err
live_help_book(cd_req *r)
{
	struct booking b = { r, r->ids[0] };
	long long total, used;
	cd_err err;

	if ((err = db_tx(book_tx, &b)) != CD_OK ||
	    (err = hours(r, &total, &used)) != CD_OK)
		return err;
	resp_json(r, 201, json_pack("{s:I,s:I}", "slotId", (json_int_t)b.slot_id,
	    "remainingHours", (json_int_t)(total - used)));
	return CD_OK;
}
