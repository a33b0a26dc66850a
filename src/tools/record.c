/*
 * Recording a run of the books check: one integrity_runs row with its
 * findings and the number of events reconcile recovered since the previous
 * run (stripe_events reconcile processed after that run, whether it stored
 * them or the webhook stored them and could not act on them, that a handler
 * acted on: effect_at; events no handler acts on, which reconcile lists
 * too, recover nothing), counted in the same statement so two runs never
 * count an event twice or miss one.
 */
#include <stdlib.h>

#include "db.h"
#include "invariants.h"

static cd_sql q_record = CD_SQL(
    "INSERT INTO integrity_runs (ran_at, events_recovered, findings, details)"
    " SELECT UTC_TIMESTAMP(6), COUNT(*), ?, ? FROM stripe_events"
    " WHERE processed_by = 'reconcile' AND effect_at IS NOT NULL AND processed_at >"
    "  (SELECT COALESCE(MAX(ran_at), '1970-01-01') FROM integrity_runs)");

cd_err
check_record(const json_t *findings)
{
	char *details = json_dumps(findings, JSON_COMPACT);
	cd_err err;

	if (details == NULL)
		return CD_INTERNAL;
	err = db_exec(&q_record, NULL, "is", (long long)json_array_size(findings),
	    details);
	free(details);
	return err;
}
