/*
 * Voice AI Therapy minutes shared by the credits responder, the refund path
 * and the periodic job: the per-user guard row, what a session is charged,
 * and ending sessions (by the user, or by the server once overdue).
 *
 * A session is charged by the server's clock: the seconds between its start
 * and its end, capped at the minutes available at start.  The client's
 * secondsUsed may lower that by at most the grace
 * (platform_settings.voice_grace_seconds).  A session still open after its
 * available minutes plus the grace is ended by the server and charged in
 * full.  Minutes are whole: charged seconds rounded up.
 */
#ifndef CD_VOICE_H
#define CD_VOICE_H

#include "error.h"

/*
 * Writes the user's guard row (creating it the first time).  Call it first
 * in every transaction that opens, ends or changes a user's voice minutes:
 * concurrent ones then queue on the row and each reads what the one before
 * it committed.
 */
cd_err	 voice_guard(long long user_id);

/*
 * Seconds to charge for a session that ran elapsed seconds by the server's
 * clock with available minutes; client < 0 means no client report.
 */
long long voice_charge_seconds(long long elapsed, long long client,
	    long long available_minutes, long long grace);

/*
 * Ends the user's open sessions that are past their minutes plus the grace,
 * charging them in full.  Call inside a db_tx, after voice_guard.
 */
cd_err	 voice_end_overdue(long long user_id);

/* voice_end_overdue in its own transaction, if the user has any (cheap read first). */
cd_err	 voice_settle(long long user_id);

/* Every user's overdue sessions (the periodic job); *users = users settled. */
cd_err	 voice_sweep(long long *users);

/*
 * Ends open session session_id, charging charged_seconds (rounded up to
 * minutes) from the user's credits; client_seconds < 0 records none.
 * *deducted = minutes taken (less than charged if credits ran out).
 */
cd_err	 voice_close(long long user_id, long long session_id,
	    long long charged_seconds, long long client_seconds,
	    const char *summary, const char *ended_by, long long *deducted);

/* platform_settings.voice_grace_seconds. */
cd_err	 voice_grace(long long *seconds);

#endif
