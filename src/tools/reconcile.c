/*
 * creditdesk-reconcile: recovers webhook deliveries that never arrived.
 *
 * Lists Stripe's events created since the last run (and any whose delivery
 * has not succeeded), oldest first, and passes each through the same
 * event_accept() the webhook uses.  Events already processed are skipped by
 * their UNIQUE id, so running it twice changes nothing.  The cursor only
 * moves past events that were processed, so a failure is retried next run.
 *
 * It also ends Voice AI Therapy sessions left open past their minutes
 * (charged in full), so a user who never comes back is charged too,
 * finishes booking cancels whose decided refund Stripe did not make, and
 * answers the disputes of payments refunded in full (the refund is the
 * evidence), which the bank would otherwise decide for the customer.
 *
 * Exit status: 0 all processed, 1 some failed (see the log).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "booking_pay.h"
#include "cfg.h"
#include "db.h"
#include "dispute.h"
#include "events.h"
#include "log.h"
#include "stripe.h"
#include "voice.h"

#define PAGE_LIMIT 100
#define MAX_PAGES 1000

static cd_sql q_cursor = CD_SQL(
    "SELECT last_created FROM reconcile_state WHERE name = 'events'");
static cd_sql q_save = CD_SQL(
    "INSERT INTO reconcile_state (name, last_created) VALUES ('events', ?)"
    " ON DUPLICATE KEY UPDATE last_created = GREATEST(last_created, VALUES(last_created)),"
    " updated_at = UTC_TIMESTAMP(6)");

static int
by_created(const void *a, const void *b)
{
	long long x = jint(*(json_t *const *)a, "created");
	long long y = jint(*(json_t *const *)b, "created");

	return (x > y) - (x < y);
}

int
main(void)
{
	long long since = 0, low_failed = -1, high = 0, voice_users = 0,
	    cancels = 0, answers = 0;
	size_t i, n, seen = 0, done = 0, dups = 0, failed = 0;
	json_t *all = json_array(), *base, **events;
	bool dup;

	log_init("creditdesk-reconcile");
	if (cfg_load() != 0 || db_open() != CD_OK ||
	    db_fetch_int(&q_cursor, &since, "") != CD_OK)
		return 1;
	if (voice_sweep(&voice_users) != CD_OK)
		return 1;
	if (voice_users > 0)
		printf("reconcile: ended overdue voice sessions of %lld users\n",
		    voice_users);
	/* a refund Stripe still refuses is tried again next run */
	if (booking_finish_cancels(&cancels) != CD_OK)
		failed++;
	if (cancels > 0)
		printf("reconcile: finished %lld booking cancels whose refund had"
		    " failed\n", cancels);
	if (dispute_answer(&answers) != CD_OK)
		failed++;
	if (answers > 0)
		printf("reconcile: answered %lld disputes with their refund or"
		    " cancel\n", answers);
	base = json_pack("{s:i,s:I}", "limit", PAGE_LIMIT, "created[gte]",
	    (json_int_t)since);
	if (stripe_list("/v1/events", base, MAX_PAGES, all) != CD_OK)
		return 1;
	json_decref(base);
	base = json_pack("{s:i,s:b}", "limit", PAGE_LIMIT, "delivery_success", 0);
	if (stripe_list("/v1/events", base, MAX_PAGES, all) != CD_OK)
		return 1;
	json_decref(base);

	n = json_array_size(all);
	if ((events = calloc(n + 1, sizeof(*events))) == NULL)
		return 1;
	for (i = 0; i < n; i++)
		events[i] = json_array_get(all, i);
	qsort(events, n, sizeof(*events), by_created);
	for (i = 0; i < n; i++) {
		char *raw = json_dumps(events[i], JSON_COMPACT);
		long long created = jint(events[i], "created");

		seen++;
		if (event_accept(events[i], raw, strlen(raw), "reconcile", &dup) != CD_OK) {
			failed++;
			if (low_failed < 0 || created < low_failed)
				low_failed = created;
		} else if (dup)
			dups++;
		else
			done++;
		if (created > high)
			high = created;
		free(raw);
	}
	/* Never move the cursor past an event that failed. */
	if (high > 0 && db_exec(&q_save, NULL, "i",
	    low_failed >= 0 ? low_failed : high) != CD_OK)
		return 1;
	printf("reconcile: %zu events listed, %zu processed now, %zu already"
	    " processed, %zu failed\n", seen, done, dups, failed);
	free(events);
	json_decref(all);
	db_close();
	return failed ? 1 : 0;
}
