/*
 * The database layer.  Each FastCGI child holds one MariaDB connection and
 * prepares each statement once, on first use; both are reused for the life
 * of the child.  When the server goes away (restart, kill) the connection and
 * every cached statement are dropped and reopened on the next call; a call
 * that cannot reach the server returns CD_DB (503) so clients and Stripe
 * retry.
 *
 * Statements are declared once, where they are used:
 *
 *	static cd_sql q_totals = CD_SQL("SELECT hours_total FROM … WHERE user_id = ?");
 *
 * Parameters are passed after a format string, one letter each:
 *	i  long long
 *	s  const char *	(NULL binds SQL NULL)
 *	b  const void *, size_t	(binary)
 *
 * Result rows come back as jansson objects keyed by column name: integers as
 * integers, DATETIME/TIMESTAMP as "YYYY-MM-DDTHH:MM:SSZ" (the session runs in
 * UTC), NULL as null, everything else as strings.
 *
 * Mutual exclusion: the one rule, on one server and on a Galera cluster.
 * A transaction that must exclude another (two bookings of one expert's
 * time, two messages of one consultation, two refunds of one purchase)
 * WRITES the row that guards the invariant before it reads what it decides
 * on: an UPDATE of a counter or of the guarded value itself, or
 * db_guard()'s "UPDATE t SET version = version + 1 WHERE id = ?".  A read
 * lock alone (SELECT … FOR UPDATE / LOCK IN SHARE MODE) is never the guard:
 * Galera certifies only the rows a transaction writes, so a row that is
 * locked on one node and not written does not stop a transaction on another
 * node.  A written row does: on one server the second writer waits for the
 * row lock; on a cluster the transaction that commits second fails
 * certification with 1213 (at any statement or at COMMIT), and db_tx runs
 * it again from the start, now seeing the first one's rows.  Fulfilment
 * itself stays guarded by UNIQUE keys (db_insert_once), which a cluster
 * certifies the same way.  Two consequences on a cluster:
 *  - AUTO_INCREMENT ids of one table are unique but interleave between
 *    nodes (each node takes its own offset).  Where order matters (a
 *    consultation's messages) the inserts of one thing are serialized by
 *    its guard row, so each starts only once the previous one is applied
 *    on its node, and the node's counter is past every id applied there:
 *    ids of one guarded thing still grow in commit order.
 *  - A plain read on one node may not yet see a row just committed on
 *    another; the cluster runs with wsrep_sync_wait=1 so every read, and
 *    every START TRANSACTION, first waits until its node has applied
 *    everything committed before it.  Inside db_tx the statements after
 *    START TRANSACTION do not wait again (db.c: causal_reads): a wait while
 *    holding a guard row that an incoming write set needs would stall.
 * Errors that mean "this node cannot serve now" (gone, or not part of the
 * primary component: 1047) drop the connection; the next call connects to
 * the next host of CD_DB_HOST (a comma-separated list, local node first),
 * and a node that is not ready (wsrep_ready OFF) is passed over when
 * connecting.  A node cut off from its peers also refuses a read that must
 * first wait for the cluster with 1205 or 1213 at once: on a node that is
 * not ready these are "go elsewhere" too (db_classify), never a conflict.
 * Lock conflicts that outlast their retries are 503 (CD_DB), like a lost
 * server: a client's 409 means only a business conflict, never "busy".
 */
#ifndef CD_DB_H
#define CD_DB_H

#include <stdbool.h>
#include <jansson.h>

#include "error.h"

typedef struct cd_sql {
	const char	*text;
	void		*stmt;		/* MYSQL_STMT *, owned by db.c */
	unsigned	 generation;	/* connection it was prepared on */
} cd_sql;

#define CD_SQL(t) { (t), NULL, 0 }

/* Connects now (start-up check); later calls reconnect as needed. */
cd_err	 db_open(void);
void	 db_close(void);

/* Runs a statement that returns no rows; *affected may be NULL. */
cd_err	 db_exec(cd_sql *, unsigned long long *affected, const char *fmt, ...);
/* As db_exec, also returning the AUTO_INCREMENT id it created. */
cd_err	 db_insert(cd_sql *, long long *id, const char *fmt, ...);
/*
 * An INSERT guarded by a UNIQUE key: *inserted is true if this call created
 * the row, false if the key already existed (never an error).  This is how
 * every fulfilment decides whether it is the one that counts.
 */
cd_err	 db_insert_once(cd_sql *, bool *inserted, long long *id,
	    const char *fmt, ...);
/*
 * Writes a guard row (an "UPDATE … SET version = version + 1 WHERE …"
 * statement, see the rule above); *found is true if a row matched.
 */
cd_err	 db_guard(cd_sql *, bool *found, const char *fmt, ...);
/* All rows as a new array of objects (caller owns the reference). */
cd_err	 db_rows(cd_sql *, json_t **rows, const char *fmt, ...);
/* The first row as a new object, or *row = NULL when there is none. */
cd_err	 db_row(cd_sql *, json_t **row, const char *fmt, ...);

/*
 * Runs fn inside BEGIN … COMMIT.  Any error from fn rolls back.  On deadlock,
 * a cluster's certification conflict (1213, also at COMMIT) or a lock-wait
 * timeout the whole transaction is retried (fn must not keep
 * state in memory that a retry would double), up to a few times.
 */
cd_err	 db_tx(cd_err (*fn)(void *), void *ctx);
/*
 * For fn inside db_tx: a guarded UPDATE (… WHERE balance >= ?) matched no
 * row although this transaction had just read one that qualified, i.e. a
 * write from another cluster node got in between: returns CD_CONFLICT
 * marked like a certification conflict, so db_tx runs fn again.
 */
cd_err	 db_retry(void);
bool	 db_in_tx(void);

/* What a failed call's server or client error number means (db_fail). */
typedef enum db_fault {
	DB_FAULT_GONE,		/* this server cannot serve now: reconnect, 503 */
	DB_FAULT_BUSY,		/* deadlock, certification, lock wait: retry */
	DB_FAULT_KEY,		/* UNIQUE/foreign key or CHECK: 409 */
	DB_FAULT_BROKEN		/* anything else: 500 */
} db_fault;

/*
 * cluster: the server is a Galera node; ready: its wsrep_ready (asked only
 * for a lock error on a cluster node).  Pure, for the unit tests.
 */
db_fault db_classify(unsigned err, bool cluster, bool ready);

/* Small accessors for result objects. */
long long jint(const json_t *obj, const char *key);	/* 0 if absent */
const char *jstr(const json_t *obj, const char *key);	/* NULL if absent */

#endif
