/*
 * creditdesk-check: proves the books.  Runs every invariant (invariants.c)
 * against the database and, with --stripe, against Stripe's own list of
 * Checkout Sessions, and prints each violation with the ids involved.
 *
 *	creditdesk-check [--json] [--stripe] [--record] [--metrics FILE]
 *
 * --json prints one object for machines: {"ok", "checks": [{"check",
 * "what", "findings", "ms"}], "findings": [{"check", ...ids and values}]};
 * otherwise a table for people.  --record also stores the run in
 * integrity_runs (see record.c) for /admin; --metrics FILE writes the
 * gauges for Prometheus' node exporter (check_metrics.c).
 *
 * Exit status: 0 every invariant holds, 1 findings, 2 the check could not
 * run (database or Stripe unreachable).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "db.h"
#include "invariants.h"
#include "log.h"
#include "print.h"

struct opts {
	bool	json;
	bool	stripe;
	bool	record;
	const char *metrics;
};

static int
usage(void)
{
	fprintf(stderr, "usage: creditdesk-check [--json] [--stripe] [--record]"
	    " [--metrics FILE]\n");
	return 2;
}

static int
parse(int argc, char **argv, struct opts *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			o->json = true;
		else if (strcmp(argv[i], "--stripe") == 0)
			o->stripe = true;
		else if (strcmp(argv[i], "--record") == 0)
			o->record = true;
		else if (strcmp(argv[i], "--metrics") == 0 && i + 1 < argc)
			o->metrics = argv[++i];
		else
			return -1;
	}
	return 0;
}

static void
print_table(const json_t *counts, const json_t *findings, double secs)
{
	json_t *c, *f;
	size_t i;

	printf("%-6s %-24s %8s %7s  %s\n", "", "invariant", "findings", "ms",
	    "what must hold");
	json_array_foreach(counts, i, c)
		printf("%-6s %-24s %8lld %7lld  %s\n", jint(c, "findings") ? "FAIL" : "ok",
		    jstr(c, "check"), jint(c, "findings"), jint(c, "ms"), jstr(c, "what"));
	if (json_array_size(findings) > 0) {
		printf("\nfindings:\n");
		json_array_foreach(findings, i, f)
			print_row(f, "check", 24, NULL, 0);
	}
	printf("\n%zu invariants checked in %.2f s: %zu finding%s\n",
	    json_array_size(counts), secs, json_array_size(findings),
	    json_array_size(findings) == 1 ? "" : "s");
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	json_t *findings = json_array(), *counts = json_array(), *out;
	char *listed = NULL;
	struct opts o;
	double t0 = now();
	cd_err err;

	log_init("creditdesk-check");
	if (parse(argc, argv, &o) != 0)
		return usage();
	if (cfg_load() != 0)
		return 2;
	if (o.stripe && (err = check_stripe_list(&listed)) != CD_OK) {
		log_error("check: listing Stripe's Checkout Sessions failed");
		return 2;
	}
	/* Opens this process's connection (and the ledger part's own). */
	if ((err = invariants_run_parallel(listed, findings, counts)) != CD_OK) {
		log_error("check: an invariant could not be evaluated");
		return 2;
	}
	if ((o.record && check_record(findings) != CD_OK) ||
	    (o.metrics != NULL && check_write_metrics(o.metrics, counts,
	    json_array_size(findings)) != CD_OK))
		return 2;
	if (o.json) {
		out = json_pack("{s:b,s:O,s:O}", "ok", json_array_size(findings) == 0,
		    "checks", counts, "findings", findings);
		json_dumpf(out, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(out);
	} else
		print_table(counts, findings, now() - t0);
	free(listed);
	db_close();
	return json_array_size(findings) > 0 ? 1 : 0;
}
