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
	/* Instead of sql: computes the rows in this process (a streamed pass). */
	cd_err		(*pass)(json_t **rows);
	bool		 second;	/* runs on the second connection */
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
/*
 * credit_balance and ledger_chain from one streamed pass over the ledger
 * (check_ledger.c): the first makes the pass, the second takes its rows.
 */
cd_err	 check_ledger_balance(json_t **rows);
cd_err	 check_ledger_chain(json_t **rows);
/*
 * Integer rows kept in order for a merge: width columns each, row i at
 * v[i * width]; next is the first row not merged yet.  int_list_add is a
 * db_each() callback.
 */
typedef struct int_list {
	long long	*v;
	size_t		 width, n, cap, next;
} int_list;
int	 int_list_add(void *list, const long long *v, size_t n);
/* The row next points at, or NULL when every row is merged. */
const long long *int_list_peek(const int_list *);
/* live_help_hours from the three tables grouped by user and merged (check_hours.c). */
cd_err	 check_live_help_hours(json_t **rows);
/* Stores this run and its findings in integrity_runs. */
cd_err	 check_record(const json_t *findings);
/* Writes the node-exporter textfile with the run's and the books' gauges. */
cd_err	 check_write_metrics(const char *path, const json_t *counts,
	    size_t findings);
/* Stripe's Checkout Sessions as [{"id","paid"}], for the stripe invariants. */
cd_err	 check_stripe_list(char **json);

#endif
