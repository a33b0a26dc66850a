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

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
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

/*
 * Ends every open session of the user, charged by the server's clock so far
 * (an overdue one in full), before a refund or dispute takes or freezes
 * minutes.  Call inside a db_tx, after voice_guard.
 */
cd_err	 voice_end_open(long long user_id);

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

/* A usable credit (active, unexpired; minutes frozen by a dispute left out). */
typedef struct voice_credit {
	long long	 id, purchased, remaining;
	const char	*purchased_at, *expires_at;	/* "YYYY-MM-DDTHH:MM:SSZ" */
} voice_credit;
/* The user's usable credits, soonest to expire first, in arena a. */
cd_err	 voice_credits_of(long long user_id, cd_arena *a, voice_credit **rows,
	    size_t *n);

/*
 * Opens a session with minutes available; *opened is false when the user
 * has one open already (UNIQUE open_slot), and nothing changed.  Call inside
 * a db_tx, after voice_guard and voice_end_overdue.
 */
cd_err	 voice_open(long long user_id, const char *persona, long long minutes,
	    long long *session_id, bool *opened);

/* One of the user's sessions, seconds elapsed by the database clock. */
typedef struct voice_session {
	long long	 ended;			/* 1 once ended */
	long long	 deducted;		/* minutes taken, once ended */
	long long	 available_minutes;	/* at its start */
	long long	 elapsed;		/* seconds since its start */
} voice_session;
/* *found is false if the user has no session with this id. */
cd_err	 voice_session_of(long long user_id, long long session_id,
	    voice_session *s, bool *found);

#endif
