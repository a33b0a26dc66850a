/*
 * POST /api/bookings/{id}/reschedule {startTime}: the customer moves a
 * scheduled booking to another free time of the same expert, for the same
 * length and so the same price: no money moves.  Allowed while cancelling
 * would still refund in full, so that moving is never a way round the
 * cancellation policy, and while its payment is not charged back
 * (BOOKING_MOVABLE); a move to the time it has already changes nothing.
 *
 * One transaction: the expert's guard row is written first, as a new hold
 * does (create.c), so a move and a hold racing for the same time are
 * serialized and one of them finds it taken; the booking's own row guards
 * it against a cancel deciding at the same time.  An audit row
 * BOOKING_RESCHEDULED keeps both times (the replay of the books moves the
 * booking at that moment).
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "booking_pay.h"
#include "booking_store.h"
#include "bookings.h"
#include "calc.h"
#include "db.h"

static const cd_field fields[] = {
	{ "startTime", F_STR, F_REQUIRED, 1, 64, NULL },
};

struct move {
	cd_req		*r;
	long long	 id, expert_id;
	char		 start[20], end[20];	/* "YYYY-MM-DD HH:MM:SS" UTC */
};

static cd_err
not_scheduled(cd_req *r)
{
	return req_fail(r, CD_CONFLICT, "booking_not_movable",
	    "Only a scheduled booking can be moved.");
}

/* Why a booking that was found cannot move now. */
static cd_err
not_movable(cd_req *r, const booking_moving *m)
{
	if (!m->scheduled)
		return not_scheduled(r);
	if (m->charged_back)
		return booking_refuse_disputed(r, "moved");
	return req_fail(r, CD_CONFLICT, "too_late_to_move", arena_printf(
	    r->arena, "This booking starts in less than %lld hours, so it can"
	    " no longer be moved.", m->full_hours));
}

static cd_err
move_tx(void *arg)
{
	struct move *m = arg;
	booking_moving now;
	long long n;
	bool found, moved;
	cd_err err;

	/* The guard row first: every read below sees the expert's holds. */
	if ((err = booking_guard_expert(m->expert_id, true, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(m->r, CD_CONFLICT, "booking_not_movable",
		    "This expert no longer takes bookings, so it cannot be moved.");
	if ((err = bstore_moving(m->r->arena, m->id, &now, &found)) != CD_OK)
		return err;
	if (!found)
		return CD_NOT_FOUND;
	if (!now.movable)
		return not_movable(m->r, &now);
	if (strcmp(now.start, m->start) == 0)
		return CD_OK;
	if ((err = bstore_overlaps(m->expert_id, m->start, m->end, m->id, &n)) !=
	    CD_OK)
		return err;
	if (n > 0)
		return req_fail(m->r, CD_CONFLICT, "booking_conflict",
		    "The expert is already booked for part of this time.");
	if ((err = bstore_move(m->id, m->start, m->end, &moved)) != CD_OK)
		return err;
	if (!moved)		/* a cancel decided since */
		return not_scheduled(m->r);
	return audit_write("BOOKING_RESCHEDULED", "booking",
	    arena_printf(m->r->arena, "%lld", m->id), m->r->user->id,
	    req_own(m->r, json_pack("{s:s,s:s}", "startTime", m->start,
	    "from", now.start)), "info");
}

cd_err
booking_reschedule(cd_req *r)
{
	struct move m = { r, r->ids[0], 0, "", "" };
	cd_value v[sizeof(fields) / sizeof(fields[0])];
	booking_moving b;
	long long start;
	bool found;
	cd_err err;

	/* Whose it is and its expert (neither changes): the guard row to write. */
	if ((err = req_fields(r, fields, sizeof(fields) / sizeof(fields[0]), v)) !=
	    CD_OK || (err = booking_start(r, v[0].s, &start)) != CD_OK ||
	    (err = bstore_moving(r->arena, m.id, &b, &found)) != CD_OK)
		return err;
	if (!found || b.user_id != r->user->id)
		return req_fail(r, CD_NOT_FOUND, "booking_not_found",
		    "No booking with this id.");
	m.expert_id = b.expert_id;
	booking_format_time(start, m.start);
	booking_format_time(start + b.minutes * 60, m.end);
	if ((err = db_tx(move_tx, &m)) != CD_OK)
		return err;
	return booking_respond(r, 200, m.id, NULL, false);
}
