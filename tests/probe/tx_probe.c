/*
 * A probe of db_tx: no statement ever escapes its transaction.  Run by
 * tests/integration/test_transactions.py and tests/cluster/test_transactions.py
 * against tables they create (probe_counters, probe_log).
 *
 *	tx_probe writer ROUNDS	ROUNDS transactions through db_tx, each
 *				writing the contended row, pausing, logging
 *				its round and counting it on a second row
 *	tx_probe ended ROUNDS	the same, but each round's first attempt has
 *				its transaction rolled back between two
 *				statements without an error, as a cluster
 *				node's applier can do to it
 *	tx_probe hammer SECONDS	writes the contended row in lone statements,
 *				as fast as it can, for SECONDS
 *
 * The writers print "failed N" for each round db_tx reported failed and
 * then "committed N".  A committed round must be logged exactly once, a
 * failed one not at all, and the counters must agree with the log.  With
 * a writer on one cluster node and the hammer on another, the hammer's
 * write sets keep aborting the writer's open transactions.  The database
 * comes from the usual CD_DB_* settings.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "db.h"

static cd_sql q_contend = CD_SQL(
    "UPDATE probe_counters SET n = n + 1 WHERE name = 'contended'");
static cd_sql q_log = CD_SQL("INSERT INTO probe_log (round) VALUES (?)");
static cd_sql q_count = CD_SQL(
    "UPDATE probe_counters SET n = n + 1 WHERE name = 'logged'");
static cd_sql q_end = CD_SQL("ROLLBACK");

struct round {
	long long	 n;
	bool		 end_once;	/* roll the first attempt back mid-way */
};

/* A pause inside the transaction, for other nodes' write sets to land in. */
static void
pause_us(long us)
{
	struct timespec ts = { 0, us * 1000L };

	nanosleep(&ts, NULL);
}

static cd_err
round_tx(void *arg)
{
	struct round *r = arg;
	cd_err err;

	if ((err = db_exec(&q_contend, NULL, "")) != CD_OK)
		return err;
	pause_us(300);
	if (r->end_once) {
		r->end_once = false;
		if ((err = db_exec(&q_end, NULL, "")) != CD_OK)
			return err;
	}
	if ((err = db_exec(&q_log, NULL, "i", r->n)) != CD_OK)
		return err;
	pause_us(300);
	return db_exec(&q_count, NULL, "");
}

static int
writer(long rounds, bool end_once)
{
	struct round r;
	long long committed = 0;

	for (r.n = 1; r.n <= rounds; r.n++) {
		r.end_once = end_once;
		if (db_tx(round_tx, &r) == CD_OK)
			committed++;
		else
			printf("failed %lld\n", r.n);
	}
	printf("committed %lld\n", committed);
	return 0;
}

static int
hammer(long seconds)
{
	time_t end = time(NULL) + seconds;
	long long writes = 0;

	while (time(NULL) < end)
		if (db_exec(&q_contend, NULL, "") == CD_OK)
			writes++;
	printf("hammered %lld\n", writes);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *mode = argc == 3 ? argv[1] : "";
	long n = argc == 3 ? strtol(argv[2], NULL, 10) : 0;

	if (n <= 0 || (strcmp(mode, "writer") != 0 && strcmp(mode, "ended") != 0 &&
	    strcmp(mode, "hammer") != 0)) {
		fprintf(stderr, "usage: tx_probe writer|ended ROUNDS | hammer SECONDS\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (cfg_load() != 0 || db_open() != CD_OK) {
		fprintf(stderr, "tx_probe: no database\n");
		return 1;
	}
	if (strcmp(mode, "hammer") == 0)
		return hammer(n);
	return writer(n, strcmp(mode, "ended") == 0);
}
