/*
 * Stripe events: recorded once, then acted on.  Shared by the webhook
 * responder and the reconcile command, so an event fetched from Stripe's
 * event list is processed exactly like one delivered to the webhook.
 */
#ifndef CD_EVENTS_H
#define CD_EVENTS_H

#include <stdbool.h>
#include <jansson.h>

#include "arena.h"
#include "error.h"

/*
 * Records the event (raw body kept) unless it is already recorded, then
 * processes it unless it was already processed.  *duplicate is true when an
 * earlier delivery had already processed it (no effect this time).
 */
cd_err	 event_accept(const json_t *event, const char *raw, size_t rawlen,
	    const char *source, bool *duplicate);
/* The same in the caller's arena a (the webhook's request), not one of its own. */
cd_err	 event_accept_in(const json_t *event, const char *raw, size_t rawlen,
	    const char *source, bool *duplicate, cd_arena *a);

#endif
