/*
 * The credits family's statements: the boost packs on sale and the user's
 * subscriptions (lists that go out as they are, their columns named as the
 * API names them), and the Live Help summary's own session lookup, whose
 * row is a C struct.  Every statement of the family is declared once in
 * credits_store.c; the rest of its reads are the billing layer's.
 */
#ifndef CD_CREDITS_STORE_H
#define CD_CREDITS_STORE_H

#include <jansson.h>

#include "error.h"
#include "session.h"

/* The active boost packs, in their sort order, as the API's objects. */
cd_err	 crstore_packs_json(json_t **rows);
/* The user's subscriptions, newest first (at most 100), as the API's objects. */
cd_err	 crstore_subscriptions_json(long long user_id, json_t **rows);

/*
 * GET /api/live-help-hour in one round trip: the session check, the user's
 * totals (has_totals 0: no row yet) and the stamp of the upcoming slots
 * (slots.h), whose list the child keeps while the stamp says it holds.
 */
typedef struct live_help_row {
	cd_session_row	 s;
	long long	 has_totals, total, used, frozen, slots_version, now;
} live_help_row;
extern cd_session_sql live_help_session_sql;

#endif
