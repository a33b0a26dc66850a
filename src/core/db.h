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
 * Code that decides on what it reads takes rows as C structs (db_fetch and
 * the calls after it, below): columns in SELECT order, each bound to a
 * field, so a misspelt column cannot read as 0.  db_rows and db_row give
 * rows as jansson objects keyed by column name, for lists that go out as
 * JSON as they are: integers as integers, DATETIME/TIMESTAMP as
 * "YYYY-MM-DDTHH:MM:SSZ" (the session runs in UTC), NULL as null,
 * everything else as strings.
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
 * certifies the same way.  Three consequences on a cluster:
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
 *    START TRANSACTION do not wait again (db.c: cluster_tx): a wait while
 *    holding a guard row that an incoming write set needs would stall.
 *  - A node's applier can abort an open transaction between two of its
 *    statements without the next statement being told.  db_tx runs a
 *    node's transactions with autocommit off and watches the session's
 *    transaction state: a statement that finds its transaction gone runs
 *    it again from the start, and nothing of the broken attempt stays
 *    (tests/probe/tx_probe.c proves it).
 * Errors that mean "this node cannot serve now" (gone, or not part of the
 * primary component: 1047) drop the connection; the next call connects to
 * the next host of CD_DB_HOST (a comma-separated list, local node first),
 * and a node that is not ready (wsrep_ready OFF) is passed over when
 * connecting.  A node cut off from its peers also refuses a read that must
 * first wait for the cluster with 1205 or 1213 at once: on a node that is
 * not ready these are "go elsewhere" too (db_classify), never a conflict.
 * Lock conflicts that outlast their retries are 503 (CD_DB), like a lost
 * server: a client's 409 means only a business conflict, never "busy".
 * A connection lost at COMMIT is not taken for "not committed": the
 * transaction's commit receipt (db.c) says whether to run it again.
 */
#ifndef CD_DB_H
#define CD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "arena.h"
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
/*
 * What a write did, as distinct results a caller switches on (rather than
 * one CD_CONFLICT told apart by the server's error number).
 */
typedef enum cd_dbres {
	DB_DONE,	/* inserted or changed at least one row */
	DB_ALREADY,	/* a UNIQUE key already held the value (duplicate key) */
	DB_NOT_FOUND,	/* ran, but no row matched */
	DB_RETRY,	/* deadlock, certification conflict (1213) or lock-wait
			   timeout: returning *err from a db_tx function runs the
			   transaction again, exactly as before */
	DB_FOREIGN_KEY,	/* a referenced row is missing, or the row is referenced */
	DB_CHECK,	/* a CHECK constraint refused the row */
	DB_FAILED	/* anything else, *err says what (CD_DB: unreachable) */
} cd_dbres;

/*
 * Runs an INSERT, UPDATE or DELETE and says what it did; *id (may be NULL)
 * gets an INSERT's AUTO_INCREMENT id.  *err is CD_OK for DB_DONE and
 * DB_NOT_FOUND and otherwise the cd_err the older calls would have returned
 * (CD_CONFLICT, CD_DB, CD_INTERNAL), ready to be passed up.
 */
cd_dbres db_write(cd_sql *, long long *id, cd_err *err, const char *fmt, ...);

/* All rows as a new array of objects (caller owns the reference). */
cd_err	 db_rows(cd_sql *, json_t **rows, const char *fmt, ...);
/* The first row as a new object, or *row = NULL when there is none. */
cd_err	 db_row(cd_sql *, json_t **row, const char *fmt, ...);
/* Streams integer-only rows to fn as they arrive; fn returns non-zero to stop. */
cd_err	 db_each(cd_sql *, int (*fn)(void *ctx, const long long *v, size_t n),
	    void *ctx, const char *fmt, ...);

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
/*
 * Until cleared (q NULL), every transaction db_tx commits runs q last, with
 * arg as its one text parameter: the webhook stamps the event whose handler
 * the transaction belongs to with the time its effect took place.
 */
void	 db_tx_epilogue(cd_sql *q, const char *arg);

/*
 * Typed reads: a module declares the columns of a SELECT once, in order,
 * each bound to a field of its C struct, and db_fetch fills an array of
 * those structs: no JSON, no lookup by column name.  DB_COL_INT fields are
 * long long (NULL reads 0); DB_COL_TEXT fields are const char * in arena a
 * (NULL stays NULL; times read as "YYYY-MM-DDTHH:MM:SSZ", as in JSON rows).
 * A SELECT whose column count differs from the declaration is CD_INTERNAL.
 */
typedef enum cd_coltype { DB_COL_INT, DB_COL_TEXT } cd_coltype;
typedef struct cd_col {
	cd_coltype	 type;
	size_t		 offset;	/* offsetof(struct, field) */
} cd_col;
#define DB_INT(st, field)	{ DB_COL_INT, offsetof(st, field) }
#define DB_TEXT(st, field)	{ DB_COL_TEXT, offsetof(st, field) }
#define DB_NCOLS(cols)		(sizeof(cols) / sizeof((cols)[0]))

/*
 * Reads up to max rows into out (structs of size stride); *n = rows kept.
 * Rows beyond max are read and dropped.
 */
cd_err	 db_fetch(cd_sql *, cd_arena *a, const cd_col *, size_t ncols,
	    void *out, size_t stride, size_t max, size_t *n, const char *fmt, ...);

/*
 * All rows, however many: *(T **)rows becomes an array of *n structs in
 * arena a (NULL when there are none), grown as rows arrive.
 */
cd_err	 db_fetch_all(cd_sql *, cd_arena *a, const cd_col *, size_t ncols,
	    size_t stride, void *rows, size_t *n, const char *fmt, ...);
/*
 * A periodic job's pass: fn for each row of q (which takes no parameters),
 * in order, the rows and fn's work in one arena freed at the end.  One row
 * failing does not stop the others: *done counts the rows fn says it did
 * (*did), and the first failure is returned after the last row.
 */
cd_err	 db_each_row(cd_sql *, const cd_col *, size_t ncols, size_t stride,
	    cd_err (*fn)(const void *row, cd_arena *, bool *did),
	    long long *done);
/*
 * The first row into *out, a struct of size bytes (zeroed first, so it
 * reads as zeros and NULLs when there is no row); *found (may be NULL):
 * there was one.
 */
cd_err	 db_fetch_row(cd_sql *, cd_arena *a, const cd_col *, size_t ncols,
	    void *out, size_t size, bool *found, const char *fmt, ...);
/* One integer column, read into a long long. */
extern const cd_col db_int_col[1];
/* The first column of the first row as an integer; 0 when there is no row. */
cd_err	 db_fetch_int(cd_sql *, long long *v, const char *fmt, ...);
/*
 * The first column of the first row as text in arena a; NULL when there is
 * no row or the value is NULL.  *found (may be NULL): there was a row.
 */
cd_err	 db_fetch_text(cd_sql *, cd_arena *a, const char **s, bool *found,
	    const char *fmt, ...);

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
