/*
 * The invariants that prove the books: each one is a single set-based SQL
 * statement that returns the rows breaking it (empty when it holds), so the
 * whole database is checked in a few aggregate passes however many users it
 * has.  creditdesk-check runs them and reports every row as a finding.
 */
#ifndef CD_INVARIANTS_H
#define CD_INVARIANTS_H

#include <stdbool.h>
#include <jansson.h>

#include "db.h"

/* At most this many findings are reported per invariant. */
#define INV_LIMIT	1000

typedef struct cd_invariant {
	const char	*code;		/* the finding's "check" */
	const char	*what;		/* what must hold, for people */
	cd_sql		*sql;		/* returns one row per violation */
	bool		 stripe;	/* takes Stripe's list (--stripe) */
	/*
	 * Optional: one row {n} where n = 0 proves the invariant holds (when
	 * quick_alone, by itself; otherwise provided the invariant before it
	 * in the table found nothing); sql then runs only to name the rows
	 * when n is not 0.
	 */
	cd_sql		*quick;
	bool		 quick_alone;
} cd_invariant;

extern const cd_invariant invariants[];
extern const size_t ninvariants;

/*
 * Runs the invariants of part (INV_ALL: every one; INV_LEDGER: those that
 * read the whole ledger; INV_REST: the others), those marked stripe only
 * when stripe_json, the list check_stripe_list() made, is not NULL, and
 * appends one object per violation to findings: {"check": code, ...the
 * row's columns}.  counts gets one {"check","what","findings","ms"} per
 * invariant run.
 */
enum inv_part { INV_ALL, INV_LEDGER, INV_REST };
cd_err	 invariants_run_part(const char *stripe_json, enum inv_part part,
	    json_t *findings, json_t *counts);
/*
 * Every invariant, the two parts at once on two connections (a child
 * process runs INV_LEDGER), merged in the order of invariants[]: the same
 * result as INV_ALL in about the time of the longer part (check_parallel.c).
 * Opens the database connection.
 */
cd_err	 invariants_run_parallel(const char *stripe_json, json_t *findings,
	    json_t *counts);
/* Stores this run and its findings in integrity_runs. */
cd_err	 check_record(const json_t *findings);
/* Writes the node-exporter textfile with the run's and the books' gauges. */
cd_err	 check_write_metrics(const char *path, const json_t *counts,
	    size_t findings);
/* Stripe's Checkout Sessions as [{"id","paid"}], for the stripe invariants. */
cd_err	 check_stripe_list(char **json);

#endif
