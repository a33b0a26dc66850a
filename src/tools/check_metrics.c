/*
 * The books check's gauges for Prometheus, as a node-exporter textfile:
 * findings per invariant, the webhook backlog (unprocessed events and the
 * age of the oldest) and the prepaid liability (what users paid for and
 * have not used yet).  The file is written beside its final name and
 * renamed into place, so the exporter never reads half of it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "invariants.h"
#include "log.h"

static cd_sql q_gauges = CD_SQL(
    "SELECT (SELECT COUNT(*) FROM stripe_events WHERE processed_at IS NULL) AS unprocessed,"
    " (SELECT COALESCE(TIMESTAMPDIFF(SECOND, MIN(received_at), UTC_TIMESTAMP(6)), 0)"
    "  FROM stripe_events WHERE processed_at IS NULL) AS oldest_age,"
    " (SELECT COALESCE(SUM(hours_total - hours_used), 0) FROM user_live_help_totals)"
    "  AS live_help_hours,"
    " (SELECT COALESCE(SUM(hours_total - hours_used), 0) * MAX(p.unit_amount_cents)"
    "  FROM user_live_help_totals, products p WHERE p.code = 'live_help') AS live_help_cents,"
    " (SELECT COALESCE(SUM(minutes_remaining), 0) FROM voice_therapy_credits"
    "  WHERE is_active = 1 AND expires_at > UTC_TIMESTAMP(6)) AS voice_minutes,"
    " (SELECT COALESCE(FLOOR(SUM(minutes_remaining * amount_cents / minutes_purchased)), 0)"
    "  FROM voice_therapy_credits WHERE is_active = 1 AND expires_at > UTC_TIMESTAMP(6)"
    "  AND minutes_purchased > 0) AS voice_cents,"
    " (SELECT COALESCE(SUM(balance), 0) FROM user_credits) AS credit_tokens");
struct gauges {
	long long	 unprocessed, oldest_age, live_help_hours, live_help_cents;
	long long	 voice_minutes, voice_cents, credit_tokens;
};
static const cd_col gauge_cols[] = {
	DB_INT(struct gauges, unprocessed), DB_INT(struct gauges, oldest_age),
	DB_INT(struct gauges, live_help_hours), DB_INT(struct gauges, live_help_cents),
	DB_INT(struct gauges, voice_minutes), DB_INT(struct gauges, voice_cents),
	DB_INT(struct gauges, credit_tokens),
};

static void
write_gauges(FILE *f, const struct gauges *g)
{
	fprintf(f, "# HELP creditdesk_stripe_events_unprocessed Verified events not yet processed.\n"
	    "# TYPE creditdesk_stripe_events_unprocessed gauge\n"
	    "creditdesk_stripe_events_unprocessed %lld\n", g->unprocessed);
	fprintf(f, "# HELP creditdesk_stripe_events_oldest_unprocessed_age_seconds"
	    " Age of the oldest unprocessed event (0 when none).\n"
	    "# TYPE creditdesk_stripe_events_oldest_unprocessed_age_seconds gauge\n"
	    "creditdesk_stripe_events_oldest_unprocessed_age_seconds %lld\n",
	    g->oldest_age);
	fprintf(f, "# HELP creditdesk_prepaid_unused Paid for and not used yet, in the product's unit.\n"
	    "# TYPE creditdesk_prepaid_unused gauge\n"
	    "creditdesk_prepaid_unused{product=\"live_help\",unit=\"hours\"} %lld\n"
	    "creditdesk_prepaid_unused{product=\"voice_therapy\",unit=\"minutes\"} %lld\n"
	    "creditdesk_prepaid_unused{product=\"credits\",unit=\"tokens\"} %lld\n",
	    g->live_help_hours, g->voice_minutes, g->credit_tokens);
	fprintf(f, "# HELP creditdesk_prepaid_liability_cents Unused prepaid time at the price paid.\n"
	    "# TYPE creditdesk_prepaid_liability_cents gauge\n"
	    "creditdesk_prepaid_liability_cents{product=\"live_help\"} %lld\n"
	    "creditdesk_prepaid_liability_cents{product=\"voice_therapy\"} %lld\n",
	    g->live_help_cents, g->voice_cents);
}

static void
write_findings(FILE *f, const json_t *counts, size_t findings)
{
	json_t *c;
	size_t i;

	fprintf(f, "# HELP creditdesk_books_findings Violations found by the last books check.\n"
	    "# TYPE creditdesk_books_findings gauge\n");
	json_array_foreach(counts, i, c)
		fprintf(f, "creditdesk_books_findings{check=\"%s\"} %lld\n",
		    jstr(c, "check"), jint(c, "findings"));
	fprintf(f, "# HELP creditdesk_books_findings_total All findings of the last books check.\n"
	    "# TYPE creditdesk_books_findings_total gauge\n"
	    "creditdesk_books_findings_total %zu\n", findings);
	fprintf(f, "# HELP creditdesk_books_last_run_timestamp_seconds When the last check ran.\n"
	    "# TYPE creditdesk_books_last_run_timestamp_seconds gauge\n"
	    "creditdesk_books_last_run_timestamp_seconds %lld\n", (long long)time(NULL));
}

cd_err
check_write_metrics(const char *path, const json_t *counts, size_t findings)
{
	char tmp[4096];
	struct gauges g;
	cd_err err;
	FILE *f;

	if ((err = db_fetch_row(&q_gauges, NULL, gauge_cols, DB_NCOLS(gauge_cols),
	    &g, sizeof(g), NULL, "")) != CD_OK)
		return err;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
	    (f = fopen(tmp, "w")) == NULL) {
		log_error("check: cannot write %s", path);
		return CD_INTERNAL;
	}
	write_findings(f, counts, findings);
	write_gauges(f, &g);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		log_error("check: cannot write %s", path);
		return CD_INTERNAL;
	}
	return CD_OK;
}
