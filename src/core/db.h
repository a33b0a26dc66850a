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
/* All rows as a new array of objects (caller owns the reference). */
cd_err	 db_rows(cd_sql *, json_t **rows, const char *fmt, ...);
/* The first row as a new object, or *row = NULL when there is none. */
cd_err	 db_row(cd_sql *, json_t **row, const char *fmt, ...);

/*
 * Runs fn inside BEGIN … COMMIT.  Any error from fn rolls back.  On deadlock
 * or lock-wait timeout the whole transaction is retried (fn must not keep
 * state in memory that a retry would double), up to a few times.
 */
cd_err	 db_tx(cd_err (*fn)(void *), void *ctx);
bool	 db_in_tx(void);

/* Small accessors for result objects. */
long long jint(const json_t *obj, const char *key);	/* 0 if absent */
const char *jstr(const json_t *obj, const char *key);	/* NULL if absent */

#endif
