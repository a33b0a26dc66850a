/*
 * Live Help slots: booking one of the user's hours into an upcoming slot and
 * cancelling it again, and the upcoming slots as every user sees them.  This
 * module owns the statements of live_help_slots' seats, of the upcoming list
 * and of live_help_redemptions; the hours they spend are the ones
 * holdings.h reads (user_live_help_totals).
 */
#ifndef CD_SLOTS_H
#define CD_SLOTS_H

#include <stdbool.h>

#include "arena.h"
#include "error.h"

/*
 * What a booking or a cancel did; anything but SLOT_DONE and
 * SLOT_HOUR_REFUNDED changed nothing (slot_done).
 */
typedef enum slot_result {
	SLOT_DONE,		/* booked, or cancelled with the hour given back */
	SLOT_HOUR_REFUNDED,	/* cancelled; the hour went to a refund owed it */
	SLOT_NOT_FOUND,		/* no upcoming slot with this id */
	SLOT_FULL,		/* every seat is taken */
	SLOT_NO_HOURS,		/* the user has no hour left to book with */
	SLOT_ALREADY_BOOKED,	/* the user holds a seat in it already */
	SLOT_NOT_BOOKED,	/* cancel: the user holds no seat in it */
	SLOT_TOO_LATE		/* cancel: it starts within live_help_cancel_hours */
} slot_result;

/*
 * One transaction of three guarded writes: a seat in the slot, an hour of
 * the user's, the redemption row (UNIQUE user and slot), and the audit row
 * (details in arena a).  Concurrent bookings never overfill a slot or spend
 * an hour twice.
 */
cd_err	 slot_book(long long user_id, long long slot_id, cd_arena *a,
	    slot_result *res);
/*
 * Deletes the user's redemption (the guarded write: one cancel wins) while
 * the slot starts more than live_help_cancel_hours from now, and gives the
 * seat and the hour back (to a refund owed it: SLOT_HOUR_REFUNDED), with an
 * audit row, in one transaction.
 */
cd_err	 slot_cancel(long long user_id, long long slot_id, cd_arena *a,
	    slot_result *res);
/* The booking or cancel was made (SLOT_DONE or SLOT_HOUR_REFUNDED). */
bool	 slot_done(slot_result res);

/*
 * The upcoming slots every user sees, kept by each child: a reader's own
 * statement joins SLOTS_STAMP_JOIN and selects SLOTS_STAMP_COLUMNS (the
 * version of live_help_slot_changes, which triggers move with every change
 * to a slot, and the database's clock) and hands both to slots_upcoming(),
 * which reads the slots again only when the version has moved or the first
 * kept slot has started.  So the list is never stale, and a read costs no
 * round trip of its own while nothing changes.
 */
#define SLOTS_STAMP_JOIN " LEFT JOIN live_help_slot_changes slot_changes ON slot_changes.id = 1"
#define SLOTS_STAMP_COLUMNS "slot_changes.version, UNIX_TIMESTAMP()"
/*
 * The upcoming slots (at most 100, by start) as a JSON array of {id,
 * starts_at, ends_at, capacity, booked}; *json is the module's, valid until
 * the next call.  A version of 0 (no row) is never trusted.
 */
cd_err	 slots_upcoming(long long version, long long now, const char **json);

#endif
