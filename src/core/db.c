/*
 * MariaDB access for one FastCGI child; see db.h.
 *
 * State is the one connection and the statements prepared on it.  Every
 * cd_sql is registered the first time it is prepared so that a lost
 * connection can invalidate them all at once; they are prepared again, on
 * the new connection, when next used.
 *
 * CD_DB_HOST may list several servers (the nodes of a cluster, the local
 * one first): a connection goes to the first that answers, starting with
 * the one after the server that last failed us.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "cfg.h"
#include "crypto.h"
#include "db.h"
#include "log.h"

#define MAX_PARAMS	32
#define MAX_COLUMNS	48
#define MAX_STMTS	256
#define TX_ATTEMPTS	8
#define MAX_HOSTS	8

static MYSQL	*conn;
static unsigned	 generation;	/* bumped on every new connection */
static bool	 in_tx;
static bool	 tx_wrote;	/* the open transaction ran a statement that writes */
static bool	 wsrep;		/* the server is a Galera node (wsrep_on) */
static unsigned	 last_errno;	/* of the last failed call, for db_tx */
static cd_sql	*epilogue;	/* db_tx_epilogue */
static const char *epilogue_arg;
static cd_sql	*registry[MAX_STMTS];
static size_t	 nregistry;
static char	*hosts[MAX_HOSTS];	/* CD_DB_HOST, split at commas */
static size_t	 nhosts, host_at;	/* host_at: the one to try first */
static time_t	 unreachable_until[MAX_HOSTS];	/* see db_connect */

static bool
is_conn_error(unsigned e)
{
	return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST ||
	    e == CR_CONNECTION_ERROR || e == CR_CONN_HOST_ERROR ||
	    e == CR_SERVER_LOST_EXTENDED || e == ER_CONNECTION_KILLED ||
	    e == ER_SERVER_SHUTDOWN || e == CR_COMMANDS_OUT_OF_SYNC ||
	    e == ER_UNKNOWN_COM_ERROR ||	/* a cluster node outside the primary component */
	    e == ER_ERROR_DURING_COMMIT;	/* … or one that lost it while committing */
}

db_fault
db_classify(unsigned e, bool cluster, bool ready)
{
	if (is_conn_error(e))
		return DB_FAULT_GONE;
	switch (e) {
	case ER_LOCK_DEADLOCK:
	case ER_LOCK_WAIT_TIMEOUT:
		/* A node outside the primary component fails causal reads so. */
		return cluster && !ready ? DB_FAULT_GONE : DB_FAULT_BUSY;
	case ER_DUP_ENTRY:
	case ER_CONSTRAINT_FAILED:
	case ER_NO_REFERENCED_ROW_2:
	case ER_ROW_IS_REFERENCED_2:
		return DB_FAULT_KEY;
	}
	return DB_FAULT_BROKEN;
}

/* Forgets the connection and every statement prepared on it. */
static void
db_drop(void)
{
	size_t i;

	if (conn != NULL)
		mysql_close(conn);	/* detaches its statements first */
	conn = NULL;
	in_tx = false;
	for (i = 0; i < nregistry; i++) {
		if (registry[i]->stmt != NULL)
			mysql_stmt_close(registry[i]->stmt);
		registry[i]->stmt = NULL;
	}
}

/* Splits CD_DB_HOST into hosts[] once. */
static void
split_hosts(void)
{
	char *list, *h, *save = NULL;

	if (nhosts > 0)
		return;
	if ((list = strdup(cfg->db_host ? cfg->db_host : "127.0.0.1")) == NULL)
		abort();
	for (h = strtok_r(list, ",", &save); h != NULL && nhosts < MAX_HOSTS;
	    h = strtok_r(NULL, ",", &save))
		hosts[nhosts++] = h;
	if (nhosts == 0)
		hosts[nhosts++] = list;
}

/* One connection attempt to host (NULL with a socket). */
static MYSQL *
connect_to(const char *host)
{
	unsigned timeout = 3, io_timeout = (unsigned)cfg->db_timeout;
	char init[128];
	MYSQL *c;

	if ((c = mysql_init(NULL)) == NULL)
		return NULL;
	mysql_optionsv(c, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_optionsv(c, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
	mysql_optionsv(c, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
	mysql_optionsv(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	/*
	 * UTC everywhere; and a lock wait gives up (error 1205, which db_tx
	 * retries) well before the client's read timeout would drop the
	 * connection.
	 */
	snprintf(init, sizeof(init), "SET time_zone = '+00:00', "
	    "innodb_lock_wait_timeout = %u, "
	    "session_track_transaction_info = 'STATE'", io_timeout / 3);
	mysql_optionsv(c, MYSQL_INIT_COMMAND, init);
	if (mysql_real_connect(c, host, cfg->db_user, cfg->db_password,
	    cfg->db_name, cfg->db_socket ? 0 : cfg->db_port, cfg->db_socket,
	    CLIENT_FOUND_ROWS) == NULL) {
		last_errno = mysql_errno(c);
		log_error("db: connect to %s failed (error %u)",
		    host ? host : "socket", last_errno);
		mysql_close(c);
		return NULL;
	}
	return c;
}

/*
 * Whether a SHOW … LIKE 'name' on c says ON: 1, 0 (OFF or no such name,
 * as on a server built without wsrep), -1 if the query failed.  SHOW, not
 * SELECT @@…: a node outside the primary component still answers it.
 */
static int
show_on(MYSQL *c, const char *sql)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	int on = 0;

	if (mysql_query(c, sql) != 0 || (res = mysql_store_result(c)) == NULL) {
		last_errno = mysql_errno(c);
		return -1;
	}
	if ((row = mysql_fetch_row(res)) != NULL && row[1] != NULL)
		on = strcasecmp(row[1], "ON") == 0;
	mysql_free_result(res);
	return on;
}

/* Whether c's server is a Galera node that can serve now (wsrep_ready). */
static int
node_ready(MYSQL *c)
{
	return show_on(c, "SHOW STATUS LIKE 'wsrep_ready'");
}

/*
 * Sets wsrep for a new connection to one of CD_DB_HOST; false if its server
 * is a cluster node that cannot serve now (cut off, still joining), to be
 * passed over for the next host.
 */
static bool
usable_node(MYSQL *c, const char *host)
{
	int on = show_on(c, "SHOW VARIABLES LIKE 'wsrep_on'");

	wsrep = on == 1;
	if (on == 1 && node_ready(c) != 1) {
		log_warn("db: %s is not ready (not in the primary component)",
		    host);
		last_errno = ER_UNKNOWN_COM_ERROR;
		return false;
	}
	return on >= 0;
}

/*
 * Connects to the first usable host of CD_DB_HOST, from host_at on.  A
 * host that could not be reached at all (a machine cut off from the others
 * waits out the connect timeout for each of them) is passed over for
 * UNREACHABLE_PAUSE seconds, so that while it lasts a request that has no
 * node to go to is answered 503 at once instead of after the timeouts.  A
 * node that answers but is not ready is asked again each time: it is cheap
 * to ask, and it is the first to serve again once it rejoins.
 *
 * A connection to any host but the first (the machine's own node) is given
 * up between transactions once it is FAILBACK_AFTER seconds old, and the
 * first is tried again: a responder that went elsewhere while its node was
 * away returns to it, instead of staying on another machine's node, where
 * a later fault of that machine would hold its statements (a CI run saw a
 * node cut off stall the machines that had failed over to it).  A
 * connection idle for as long is pinged first: one whose server went away
 * meanwhile (its node was restarted) is replaced from the first host on,
 * instead of failing its next statement and moving on to another host,
 * which may be the one now cut off (a CI run saw such a child wait out the
 * connect timeout while its own node served again).
 */
#define UNREACHABLE_PAUSE	5
#define FAILBACK_AFTER		5

static time_t connected_at, used_at;

/* Whether the connection stays for the next statement (see above). */
static bool
keep_connection(void)
{
	time_t now;

	if (in_tx)
		return true;
	now = time(NULL);
	if (host_at != 0 && now >= connected_at + FAILBACK_AFTER)
		return false;
	if (now >= used_at + FAILBACK_AFTER && mysql_ping(conn) != 0)
		return false;
	used_at = now;
	return true;
}

static cd_err
db_connect(void)
{
	time_t now;
	size_t i;

	if (conn != NULL) {
		if (keep_connection())
			return CD_OK;
		db_drop();
		host_at = 0;
	}
	if (cfg->db_socket != NULL) {
		if ((conn = connect_to(NULL)) == NULL)
			return CD_DB;
		generation++;
		return CD_OK;
	}
	split_hosts();
	now = time(NULL);
	for (i = 0; i < nhosts && conn == NULL; i++) {
		const char *host = hosts[host_at];

		if (nhosts == 1 || now >= unreachable_until[host_at]) {
			if ((conn = connect_to(host)) == NULL)
				unreachable_until[host_at] = now + UNREACHABLE_PAUSE;
			else if (!usable_node(conn, host)) {
				mysql_close(conn);
				conn = NULL;
			}
		}
		if (conn == NULL)
			host_at = (host_at + 1) % nhosts;
	}
	if (conn == NULL)
		return CD_DB;
	connected_at = used_at = now;
	generation++;
	return CD_OK;
}

cd_err
db_open(void)
{
	return db_connect();
}

void
db_close(void)
{
	db_drop();
}

bool
db_in_tx(void)
{
	return in_tx;
}

/* Maps a server or client error to cd_err, dropping a dead connection. */
static cd_err
db_fail(const char *what, unsigned e, const char *msg)
{
	bool lock = e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT;
	db_fault f = db_classify(e, wsrep, !(wsrep && lock) || node_ready(conn) == 1);

	last_errno = e;		/* after node_ready, which may set it */
	switch (f) {
	case DB_FAULT_GONE:
		log_warn("db: connection lost during %s (%u)", what, e);
		db_drop();
		if (nhosts > 0)		/* the next connection tries another */
			host_at = (host_at + 1) % nhosts;
		return CD_DB;
	case DB_FAULT_BUSY:
		/*
		 * A Galera node that aborts an idle transaction for a
		 * conflicting write set can leave the connection's replies one
		 * behind (a later statement then waits for a reply that never
		 * comes): the retry starts on a fresh connection.
		 */
		if (e == ER_LOCK_DEADLOCK && wsrep)
			db_drop();
		return CD_CONFLICT;	/* retried; busy(): 503 when they run out */
	case DB_FAULT_KEY:
		return CD_CONFLICT;
	case DB_FAULT_BROKEN:
		break;
	}
	/* Server messages can quote SQL or row data: log the number only. */
	log_error("db: %s failed (error %u)", what, e);
	(void)msg;
	return CD_INTERNAL;
}

static cd_err
prepare(cd_sql *q, MYSQL_STMT **out)
{
	MYSQL_STMT *st;
	cd_err err;

	if ((err = db_connect()) != CD_OK)
		return err;
	if (q->stmt != NULL && q->generation == generation) {
		*out = q->stmt;
		return CD_OK;
	}
	if (q->stmt == NULL && q->generation == 0) {
		if (nregistry == MAX_STMTS) {
			log_error("db: more than %d statements", MAX_STMTS);
			return CD_INTERNAL;
		}
		registry[nregistry++] = q;
	}
	if ((st = mysql_stmt_init(conn)) == NULL)
		return db_fail("stmt_init", mysql_errno(conn), mysql_error(conn));
	if (mysql_stmt_prepare(st, q->text, strlen(q->text)) != 0) {
		unsigned e = mysql_stmt_errno(st);
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", mysql_stmt_error(st));
		mysql_stmt_close(st);
		return db_fail("prepare", e, msg);
	}
	q->stmt = st;
	q->generation = generation;
	*out = st;
	return CD_OK;
}

/* Parameter values live here while a statement executes. */
struct params {
	MYSQL_BIND	 bind[MAX_PARAMS];
	long long	 ints[MAX_PARAMS];
	my_bool		 nulls[MAX_PARAMS];
	unsigned long	 lens[MAX_PARAMS];
	size_t		 n;
};

static int
bind_params(struct params *p, const char *fmt, va_list ap)
{
	const char *s;
	size_t i;

	memset(p, 0, sizeof(*p));
	for (i = 0; fmt[i] != '\0'; i++) {
		MYSQL_BIND *b = &p->bind[i];

		if (i == MAX_PARAMS)
			return -1;
		b->is_null = &p->nulls[i];
		b->length = &p->lens[i];
		switch (fmt[i]) {
		case 'i':
			p->ints[i] = va_arg(ap, long long);
			b->buffer_type = MYSQL_TYPE_LONGLONG;
			b->buffer = &p->ints[i];
			break;
		case 's':
			s = va_arg(ap, const char *);
			b->buffer_type = MYSQL_TYPE_STRING;
			b->buffer = (void *)s;
			p->nulls[i] = s == NULL;
			p->lens[i] = s ? strlen(s) : 0;
			break;
		case 'b':
			b->buffer_type = MYSQL_TYPE_BLOB;
			b->buffer = va_arg(ap, void *);
			p->lens[i] = va_arg(ap, size_t);
			break;
		default:
			return -1;
		}
	}
	p->n = i;
	return 0;
}

/* Whether the last error was a deadlock or a lock-wait timeout. */
static bool
lock_conflict(void)
{
	return last_errno == ER_LOCK_DEADLOCK || last_errno == ER_LOCK_WAIT_TIMEOUT;
}

/*
 * What a caller gets for err once its retries are spent: a deadlock,
 * certification conflict or lock wait that kept failing is the server being
 * busy (503, the client retries), never a 409, which means a business
 * conflict.
 */
static cd_err
busy(cd_err err)
{
	if (err != CD_CONFLICT || !lock_conflict())
		return err;
	log_warn("db: still conflicting after retries (%u)", last_errno);
	return CD_DB;
}

/* Prepares (or reuses) q, binds the parameters and executes it, once. */
static cd_err
execute_once(cd_sql *q, const char *fmt, va_list ap, MYSQL_STMT **out)
{
	struct params p;
	MYSQL_STMT *st = NULL;
	cd_err err;
	va_list cp;

	if ((err = prepare(q, &st)) != CD_OK)
		return err;
	va_copy(cp, ap);
	err = bind_params(&p, fmt, cp) != 0 || p.n != mysql_stmt_param_count(st) ?
	    CD_INTERNAL : CD_OK;
	va_end(cp);
	if (err != CD_OK) {
		log_error("db: parameters do not match statement %p", (void *)q);
		return err;
	}
	if (mysql_stmt_bind_param(st, p.bind) != 0 || mysql_stmt_execute(st) != 0) {
		if (is_conn_error(mysql_stmt_errno(st)))	/* which statement: SQL text, no data */
			log_warn("db: lost during %.60s", q->text);
		return db_fail("execute", mysql_stmt_errno(st), mysql_stmt_error(st));
	}
	*out = st;
	return CD_OK;
}

/*
 * Inside a transaction every error goes up, so that db_tx retries the whole
 * transaction.  Outside one, a lone statement is its own transaction: a lost
 * connection is reopened once, and a deadlock or lock-wait timeout is tried
 * again a few times.
 */
static cd_err
execute(cd_sql *q, const char *fmt, va_list ap, MYSQL_STMT **out)
{
	int reconnects = 0, conflicts = 0;
	bool tx = in_tx;	/* a failure may drop the connection and clear in_tx */
	cd_err err;

	if (tx && strncasecmp(q->text, "SELECT", 6) != 0)
		tx_wrote = true;
	for (;;) {
		err = execute_once(q, fmt, ap, out);
		if (err == CD_OK || tx)
			return err;
		if (err == CD_DB && reconnects++ == 0)
			continue;
		if (err == CD_CONFLICT && lock_conflict() && conflicts++ < 3)
			continue;
		return busy(err);
	}
}

/*
 * Whether the transaction db_tx began is still the one the last statement
 * ran in.  The server reports each change of the session's transaction
 * state (session_track_transaction_info): 'T' first while a transaction
 * begun by START TRANSACTION is open, 'I' or '_' once the server ended it
 * under us (see db_tx).
 */
static bool
tx_intact(void)
{
	const char *state;
	size_t len;

	if (mysql_session_track_get_first(conn, SESSION_TRACK_TRANSACTION_STATE,
	    &state, &len) != 0)
		return true;	/* unchanged */
	return len > 0 && state[0] == 'T';
}

/* Executes q and reports what it changed; either output may be NULL. */
static cd_err
vrun(cd_sql *q, unsigned long long *affected, long long *id, const char *fmt,
    va_list ap)
{
	MYSQL_STMT *st = NULL;
	cd_err err;

	if ((err = execute(q, fmt, ap, &st)) != CD_OK)
		return err;
	if (in_tx && !tx_intact()) {
		log_warn("db: the server ended the transaction under %.60s; running it again",
		    q->text);
		db_drop();	/* with autocommit off, what ran since is undone */
		return db_retry();
	}
	if (affected != NULL)
		*affected = mysql_stmt_affected_rows(st);
	if (id != NULL)
		*id = (long long)mysql_stmt_insert_id(st);
	return CD_OK;
}

cd_err
db_exec(cd_sql *q, unsigned long long *affected, const char *fmt, ...)
{
	va_list ap;
	cd_err err;

	va_start(ap, fmt);
	err = vrun(q, affected, NULL, fmt, ap);
	va_end(ap);
	return err;
}

cd_err
db_insert(cd_sql *q, long long *id, const char *fmt, ...)
{
	va_list ap;
	cd_err err;

	va_start(ap, fmt);
	err = vrun(q, NULL, id, fmt, ap);
	va_end(ap);
	return err;
}

cd_err
db_guard(cd_sql *q, bool *found, const char *fmt, ...)
{
	unsigned long long n = 0;
	va_list ap;
	cd_err err;

	va_start(ap, fmt);
	err = vrun(q, &n, NULL, fmt, ap);
	va_end(ap);
	*found = err == CD_OK && n > 0;
	return err;
}

/* What the server's error number of a failed write means to its caller. */
static cd_dbres
classify(cd_err err)
{
	if (err == CD_OK)
		return DB_DONE;
	if (err != CD_CONFLICT)
		return DB_FAILED;
	if (lock_conflict())
		return DB_RETRY;
	switch (last_errno) {
	case ER_DUP_ENTRY:
		return DB_ALREADY;
	case ER_NO_REFERENCED_ROW_2:
	case ER_ROW_IS_REFERENCED_2:
		return DB_FOREIGN_KEY;
	case ER_CONSTRAINT_FAILED:
		return DB_CHECK;
	}
	return DB_FAILED;
}

cd_dbres
db_write(cd_sql *q, long long *id, cd_err *err, const char *fmt, ...)
{
	unsigned long long n = 0;
	cd_dbres res;
	va_list ap;

	va_start(ap, fmt);
	*err = vrun(q, &n, id, fmt, ap);
	va_end(ap);
	if ((res = classify(*err)) == DB_DONE && n == 0)
		res = DB_NOT_FOUND;
	return res;
}

cd_err
db_insert_once(cd_sql *q, bool *inserted, long long *id, const char *fmt, ...)
{
	unsigned long long n = 0;
	va_list ap;
	cd_err err;

	va_start(ap, fmt);
	err = vrun(q, &n, id, fmt, ap);
	va_end(ap);
	*inserted = err == CD_OK && n == 1;
	if (classify(err) == DB_ALREADY)
		return CD_OK;	/* the key exists: someone else's insert counts */
	return err;
}

/* One result column: where it is bound and how to turn it into JSON. */
struct column {
	const char	*name;
	enum { C_INT, C_TIME, C_TEXT, C_DECIMAL } kind;
	long long	 i;
	MYSQL_TIME	 t;
	char		*text;
	unsigned long	 cap, len;
	my_bool		 null, error;
};

static int
column_kind(const MYSQL_FIELD *f)
{
	switch (f->type) {
	case MYSQL_TYPE_TINY: case MYSQL_TYPE_SHORT: case MYSQL_TYPE_LONG:
	case MYSQL_TYPE_INT24: case MYSQL_TYPE_LONGLONG: case MYSQL_TYPE_YEAR:
		return C_INT;
	case MYSQL_TYPE_DATETIME: case MYSQL_TYPE_TIMESTAMP: case MYSQL_TYPE_DATE:
		return C_TIME;
	case MYSQL_TYPE_NEWDECIMAL: case MYSQL_TYPE_DECIMAL:
		/* SUM() of integers is DECIMAL with no scale: keep it an integer. */
		return f->decimals == 0 ? C_DECIMAL : C_TEXT;
	default:
		return C_TEXT;
	}
}

static json_t *
column_json(struct column *c)
{
	char iso[32];

	if (c->null)
		return json_null();
	switch (c->kind) {
	case C_INT:
		return json_integer(c->i);
	case C_TIME:
		snprintf(iso, sizeof(iso), "%04u-%02u-%02uT%02u:%02u:%02uZ",
		    c->t.year, c->t.month, c->t.day, c->t.hour, c->t.minute,
		    c->t.second);
		return json_string(iso);
	case C_DECIMAL:
		return json_integer(strtoll(c->text, NULL, 10));
	default:
		return json_stringn(c->text, c->len);
	}
}

static void
bind_column(MYSQL_BIND *b, struct column *c, const MYSQL_FIELD *f)
{
	memset(b, 0, sizeof(*b));
	c->name = f->name;
	c->kind = column_kind(f);
	b->is_null = &c->null;
	b->error = &c->error;
	b->length = &c->len;
	switch (c->kind) {
	case C_INT:
		b->buffer_type = MYSQL_TYPE_LONGLONG;
		b->buffer = &c->i;
		break;
	case C_TIME:
		b->buffer_type = MYSQL_TYPE_DATETIME;
		b->buffer = &c->t;
		break;
	default:
		c->cap = 256;
		if ((c->text = malloc(c->cap)) == NULL)
			abort();
		b->buffer_type = MYSQL_TYPE_STRING;
		b->buffer = c->text;
		b->buffer_length = c->cap;
	}
}

/* Re-reads text columns that did not fit their buffer. */
static int
refetch_truncated(MYSQL_STMT *st, MYSQL_BIND *binds, struct column *cols,
    size_t n)
{
	bool grown = false;
	size_t i;

	for (i = 0; i < n; i++) {
		struct column *c = &cols[i];

		if (!c->error || c->kind == C_INT || c->kind == C_TIME)
			continue;
		if ((c->text = realloc(c->text, c->len + 1)) == NULL)
			abort();
		c->cap = c->len + 1;
		binds[i].buffer = c->text;
		binds[i].buffer_length = c->cap;
		if (mysql_stmt_fetch_column(st, &binds[i], (unsigned)i, 0) != 0)
			return -1;
		c->error = 0;
		grown = true;
	}
	/*
	 * The statement still holds the old, freed buffers: bind the grown
	 * ones, or the next row's fetch writes into freed memory.
	 */
	return grown && mysql_stmt_bind_result(st, binds) != 0 ? -1 : 0;
}

/* Called with each fetched row's columns; an error stops the fetch. */
typedef cd_err (*row_fn)(void *ctx, struct column *cols, size_t n);

/* Fetches every row of an executed statement, handing each to fn. */
static cd_err
fetch_rows(MYSQL_STMT *st, row_fn fn, void *ctx)
{
	MYSQL_BIND binds[MAX_COLUMNS];
	struct column cols[MAX_COLUMNS];
	MYSQL_RES *meta;
	MYSQL_FIELD *fields;
	cd_err err = CD_OK;
	size_t i, n;
	int rc;

	if ((meta = mysql_stmt_result_metadata(st)) == NULL)
		return CD_OK;
	n = mysql_num_fields(meta);
	fields = mysql_fetch_fields(meta);
	if (n > MAX_COLUMNS) {
		mysql_free_result(meta);
		return CD_INTERNAL;
	}
	memset(cols, 0, sizeof(cols));
	for (i = 0; i < n; i++)
		bind_column(&binds[i], &cols[i], &fields[i]);
	if (mysql_stmt_bind_result(st, binds) != 0 ||
	    mysql_stmt_store_result(st) != 0) {
		err = db_fail("fetch", mysql_stmt_errno(st), mysql_stmt_error(st));
		goto out;
	}
	while ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
		if (rc == MYSQL_DATA_TRUNCATED &&
		    refetch_truncated(st, binds, cols, n) != 0) {
			err = db_fail("fetch", mysql_stmt_errno(st),
			    mysql_stmt_error(st));
			goto out;
		}
		if ((err = fn(ctx, cols, n)) != CD_OK)
			goto out;
	}
	if (rc != MYSQL_NO_DATA)
		err = db_fail("fetch", mysql_stmt_errno(st), mysql_stmt_error(st));
out:
	mysql_stmt_free_result(st);
	mysql_free_result(meta);
	for (i = 0; i < n; i++)
		free(cols[i].text);
	return err;
}

/* A row as a JSON object keyed by column name, appended to the array ctx. */
static cd_err
append_json(void *ctx, struct column *cols, size_t n)
{
	json_t *row = json_object();
	size_t i;

	for (i = 0; i < n; i++)
		json_object_set_new(row, cols[i].name, column_json(&cols[i]));
	json_array_append_new(ctx, row);
	return CD_OK;
}

/* Fetches every row of an executed statement into a new array. */
static cd_err
fetch_all(MYSQL_STMT *st, json_t **rows)
{
	cd_err err;

	*rows = json_array();
	if ((err = fetch_rows(st, append_json, *rows)) != CD_OK) {
		json_decref(*rows);
		*rows = NULL;
	}
	return err;
}

/* Where db_fetch puts the rows it reads. */
struct typed {
	cd_arena	*arena;
	const cd_col	*cols;
	size_t		 ncols, stride, max, n;
	char		*out;
	bool		 grow;		/* db_fetch_all: out grows in arena */
};

/* A column's value as an integer field (NULL reads as 0). */
static long long
column_int(const struct column *c)
{
	if (c->null)
		return 0;
	if (c->kind == C_TIME)
		return 0;
	return c->kind == C_INT ? c->i : strtoll(c->text, NULL, 10);
}

/* A column's value as text in the arena, times as in JSON (NULL: NULL). */
static const char *
column_text(cd_arena *a, const struct column *c)
{
	if (c->null)
		return NULL;
	if (c->kind == C_TIME)
		return arena_printf(a, "%04u-%02u-%02uT%02u:%02u:%02uZ",
		    c->t.year, c->t.month, c->t.day, c->t.hour, c->t.minute,
		    c->t.second);
	if (c->kind == C_INT)
		return arena_printf(a, "%lld", c->i);
	return arena_strndup(a, c->text, c->len);
}

/* Doubles db_fetch_all's array (the old one stays in the arena until reset). */
static void
grow_rows(struct typed *t)
{
	size_t max = t->max < 8 ? 8 : t->max * 2;
	char *out = arena_alloc(t->arena, max * t->stride);

	if (t->n > 0)
		memcpy(out, t->out, t->n * t->stride);
	t->out = out;
	t->max = max;
}

static cd_err
store_typed(void *ctx, struct column *cols, size_t n)
{
	struct typed *t = ctx;
	char *row;
	size_t i;

	if (n != t->ncols) {
		log_error("db: %zu columns where %zu are declared", n, t->ncols);
		return CD_INTERNAL;
	}
	if (t->n == t->max && t->grow)
		grow_rows(t);
	if (t->n == t->max)
		return CD_OK;		/* the rest is drained, not kept */
	row = t->out + t->n++ * t->stride;
	for (i = 0; i < n; i++) {
		void *field = row + t->cols[i].offset;

		if (t->cols[i].type == DB_COL_INT)
			*(long long *)field = column_int(&cols[i]);
		else
			*(const char **)field = column_text(t->arena, &cols[i]);
	}
	return CD_OK;
}

/* Runs q and stores its rows as t says; *n = rows kept. */
static cd_err
vfetch(cd_sql *q, struct typed *t, size_t *n, const char *fmt, va_list ap)
{
	MYSQL_STMT *st;
	cd_err err;

	if ((err = execute(q, fmt, ap, &st)) == CD_OK)
		err = fetch_rows(st, store_typed, t);
	*n = err == CD_OK ? t->n : 0;
	return err;
}

cd_err
db_fetch(cd_sql *q, cd_arena *a, const cd_col *cols, size_t ncols, void *out,
    size_t stride, size_t max, size_t *n, const char *fmt, ...)
{
	struct typed t = { a, cols, ncols, stride, max, 0, out, false };
	va_list ap;
	cd_err err;

	va_start(ap, fmt);
	err = vfetch(q, &t, n, fmt, ap);
	va_end(ap);
	return err;
}

cd_err
db_fetch_all(cd_sql *q, cd_arena *a, const cd_col *cols, size_t ncols,
    size_t stride, void *rows, size_t *n, const char *fmt, ...)
{
	struct typed t = { a, cols, ncols, stride, 0, 0, NULL, true };
	va_list ap;
	cd_err err;

	va_start(ap, fmt);
	err = vfetch(q, &t, n, fmt, ap);
	va_end(ap);
	*(void **)rows = err == CD_OK ? t.out : NULL;
	return err;
}

cd_err
db_each_row(cd_sql *q, const cd_col *cols, size_t ncols, size_t stride,
    cd_err (*fn)(const void *, cd_arena *, bool *), long long *done)
{
	cd_arena *a = arena_new();
	cd_err err, first;
	size_t i, n = 0;
	char *rows;
	bool did;

	*done = 0;
	first = db_fetch_all(q, a, cols, ncols, stride, &rows, &n, "");
	for (i = 0; i < n; i++) {
		did = false;
		if ((err = fn(rows + i * stride, a, &did)) != CD_OK &&
		    first == CD_OK)
			first = err;
		*done += did;
	}
	arena_free(a);
	return first;
}

const cd_col db_int_col[1] = { { DB_COL_INT, 0 } };
static const cd_col text_col[1] = { { DB_COL_TEXT, 0 } };

/* The first row into out (a struct of size bytes); *found: there was one. */
static cd_err
fetch_one(cd_sql *q, cd_arena *a, const cd_col *cols, size_t ncols, void *out,
    size_t size, bool *found, const char *fmt, va_list ap)
{
	struct typed t = { a, cols, ncols, size, 1, 0, out, false };
	size_t n;
	cd_err err;

	err = vfetch(q, &t, &n, fmt, ap);
	if (found != NULL)
		*found = n == 1;
	return err;
}

cd_err
db_fetch_row(cd_sql *q, cd_arena *a, const cd_col *cols, size_t ncols,
    void *out, size_t size, bool *found, const char *fmt, ...)
{
	va_list ap;
	cd_err err;

	memset(out, 0, size);
	va_start(ap, fmt);
	err = fetch_one(q, a, cols, ncols, out, size, found, fmt, ap);
	va_end(ap);
	return err;
}

cd_err
db_fetch_text(cd_sql *q, cd_arena *a, const char **s, bool *found,
    const char *fmt, ...)
{
	va_list ap;
	cd_err err;

	*s = NULL;
	va_start(ap, fmt);
	err = fetch_one(q, a, text_col, 1, s, sizeof(*s), found, fmt, ap);
	va_end(ap);
	return err;
}

cd_err
db_fetch_int(cd_sql *q, long long *v, const char *fmt, ...)
{
	va_list ap;
	cd_err err;

	*v = 0;
	va_start(ap, fmt);
	err = fetch_one(q, NULL, db_int_col, 1, v, sizeof(*v), NULL, fmt, ap);
	va_end(ap);
	return err;
}

static cd_err
vquery(cd_sql *q, json_t **rows, const char *fmt, va_list ap)
{
	MYSQL_STMT *st;
	cd_err err;

	*rows = NULL;
	if ((err = execute(q, fmt, ap, &st)) != CD_OK)
		return err;
	return fetch_all(st, rows);
}

cd_err
db_rows(cd_sql *q, json_t **rows, const char *fmt, ...)
{
	va_list ap;
	cd_err err;

	va_start(ap, fmt);
	err = vquery(q, rows, fmt, ap);
	va_end(ap);
	return err;
}

/*
 * Streams the rows of q, all of whose columns are integers, to fn one at a
 * time as they arrive (no result set held in memory): for passes over
 * millions of rows that a client computes on.  fn returns non-zero to stop
 * early (the rest of the result is read and dropped).
 */
cd_err
db_each(cd_sql *q, int (*fn)(void *ctx, const long long *v, size_t n),
    void *ctx, const char *fmt, ...)
{
	MYSQL_BIND binds[MAX_COLUMNS];
	long long v[MAX_COLUMNS];
	my_bool null[MAX_COLUMNS];
	MYSQL_STMT *st;
	cd_err err;
	size_t i, n;
	va_list ap;
	int rc, stop = 0;

	va_start(ap, fmt);
	err = execute(q, fmt, ap, &st);
	va_end(ap);
	if (err != CD_OK)
		return err;
	if ((n = mysql_stmt_field_count(st)) > MAX_COLUMNS)
		return CD_INTERNAL;
	memset(binds, 0, sizeof(binds));
	for (i = 0; i < n; i++) {
		binds[i].buffer_type = MYSQL_TYPE_LONGLONG;
		binds[i].buffer = &v[i];
		binds[i].is_null = &null[i];
	}
	if (mysql_stmt_bind_result(st, binds) != 0)
		return db_fail("fetch", mysql_stmt_errno(st), mysql_stmt_error(st));
	/* Stopping early still reads the rest: the connection must drain it. */
	while ((rc = mysql_stmt_fetch(st)) == 0) {
		for (i = 0; i < n; i++)
			if (null[i])
				v[i] = 0;	/* callers select no NULLs */
		if (!stop)
			stop = fn(ctx, v, n) != 0;
	}
	if (rc != 0 && rc != MYSQL_NO_DATA)
		err = db_fail("fetch", mysql_stmt_errno(st), mysql_stmt_error(st));
	mysql_stmt_free_result(st);
	return err;
}

cd_err
db_row(cd_sql *q, json_t **row, const char *fmt, ...)
{
	json_t *rows;
	va_list ap;
	cd_err err;

	va_start(ap, fmt);
	err = vquery(q, &rows, fmt, ap);
	va_end(ap);
	*row = NULL;
	if (err != CD_OK)
		return err;
	if (json_array_size(rows) > 0)
		*row = json_incref(json_array_get(rows, 0));
	json_decref(rows);
	return CD_OK;
}

static cd_err
simple(const char *sql)
{
	cd_err err;

	if ((err = db_connect()) != CD_OK)
		return err;
	if (mysql_query(conn, sql) != 0)
		return db_fail(sql, mysql_errno(conn), mysql_error(conn));
	return CD_OK;
}

static bool
retryable(cd_err err)
{
	return (err == CD_CONFLICT && lock_conflict()) || err == CD_DB;
}

/*
 * A short random pause before running a conflicting transaction again, so
 * that two that keep colliding (on two cluster nodes) fall out of step.
 */
static void
backoff(int attempt)
{
	static bool seeded;
	struct timespec ts = { 0, 0 };

	if (!seeded) {		/* children of one program must not pause alike */
		srandom((unsigned)getpid() ^ (unsigned)time(NULL));
		seeded = true;
	}
	ts.tv_nsec = (long)(1 + random() % (2 << attempt)) * 1000000L;
	if (ts.tv_nsec > 200000000L)
		ts.tv_nsec = 200000000L;
	nanosleep(&ts, NULL);
}

/*
 * On a Galera node, START TRANSACTION waits (wsrep_sync_wait=1) until the
 * node has applied everything committed anywhere before it; the statements
 * after it must not wait again: a read that waits while the transaction
 * holds a row lock that an incoming write set needs would stall until the
 * causal-read timeout.  Inside a transaction, certification of its guard
 * row (see db.h) is what keeps it correct.
 *
 * A node's applier can also abort the open transaction between two of its
 * statements, and the server does not always tell the next statement so:
 * that statement may run on its own, outside the transaction.  So inside
 * db_tx a node's session runs with autocommit off: such a statement opens a
 * new transaction that is never committed, vrun sees the change
 * (tx_intact) and drops the connection, which rolls it back.  A single
 * server reports a deadlock to the statement that hit it.
 */
static cd_err
cluster_tx(bool inside)
{
	if (!wsrep)
		return CD_OK;
	return simple(inside ? "SET SESSION wsrep_sync_wait = 0, autocommit = 0" :
	    "SET SESSION autocommit = 1, wsrep_sync_wait = DEFAULT");
}

/*
 * Commit receipts.  A connection lost while its COMMIT was on the way
 * leaves the outcome unknown: the server may have committed before it went
 * (on a cluster, a node killed after replicating the write set has
 * committed it everywhere else).  Running such a transaction again would
 * do its work twice: a second chat message, a booking answered 409 for the
 * hour it has just taken.  So a transaction that writes also writes its
 * process's receipt, a number one higher each time; after such a loss the
 * number is read back on a new connection, a causal read on a cluster,
 * which sees every write set the cluster ordered.  There: committed, and
 * db_tx returns what that attempt produced.  Not there: run it again.
 * Unreadable: 503, the client asks again.
 */
static cd_sql q_receipt = CD_SQL(
    "INSERT INTO tx_receipts (writer, seq, written_at) VALUES (?, ?, UTC_TIMESTAMP(6))"
    " ON DUPLICATE KEY UPDATE seq = VALUES(seq), written_at = VALUES(written_at)");
static cd_sql q_receipt_seq = CD_SQL(
    "SELECT seq FROM tx_receipts WHERE writer = ?");
/* Rows of processes gone for a day; no reader looks back that far. */
static cd_sql q_receipts_prune = CD_SQL(
    "DELETE FROM tx_receipts WHERE written_at < UTC_TIMESTAMP(6) - INTERVAL 1 DAY");

static char	 receipt_writer[CD_TOKEN_LEN + 1];
static long long receipt_seq;

static cd_err
write_receipt(void)
{
	if (receipt_writer[0] == '\0' && random_token(receipt_writer) != 0)
		return CD_INTERNAL;
	return db_exec(&q_receipt, NULL, "si", receipt_writer, ++receipt_seq);
}

/* Once per process, after its first receipt: rows of processes long gone. */
static void
prune_receipts(void)
{
	static bool pruned;

	if (!pruned && tx_wrote) {
		pruned = true;
		(void)db_exec(&q_receipts_prune, NULL, "");
	}
}

/* After a COMMIT lost on its way: CD_OK committed, CD_NOT_FOUND not. */
static cd_err
receipt_committed(void)
{
	long long seq;
	cd_err err;

	if ((err = db_fetch_int(&q_receipt_seq, &seq, "s", receipt_writer)) != CD_OK) {
		log_warn("db: a transaction's outcome is unknown; 503");
		return CD_DB;
	}
	if (seq == receipt_seq)
		log_warn("db: the lost COMMIT had committed");
	return seq == receipt_seq ? CD_OK : CD_NOT_FOUND;
}

cd_err
db_retry(void)
{
	last_errno = ER_LOCK_DEADLOCK;
	return CD_CONFLICT;
}

void
db_tx_epilogue(cd_sql *q, const char *arg)
{
	epilogue = q;
	epilogue_arg = arg;
}

cd_err
db_tx(cd_err (*fn)(void *), void *ctx)
{
	cd_err err = CD_INTERNAL;
	bool committing;
	int attempt;

	if (in_tx)
		return fn(ctx);		/* nested: part of the outer one */
	for (attempt = 0; attempt < TX_ATTEMPTS; attempt++) {
		last_errno = 0;
		if ((err = simple("START TRANSACTION")) != CD_OK) {
			if (err == CD_DB && attempt == 0)
				continue;	/* reconnect once */
			return busy(err);
		}
		in_tx = true;
		tx_wrote = false;
		err = cluster_tx(true);
		if (err == CD_OK)
			err = fn(ctx);
		if (err == CD_OK && epilogue != NULL)
			err = db_exec(epilogue, NULL, "s", epilogue_arg);
		if (err == CD_OK && tx_wrote)
			err = write_receipt();
		committing = err == CD_OK;
		if (committing && (err = simple("COMMIT")) == CD_OK) {
			in_tx = false;
			(void)cluster_tx(false);	/* committed: a failure here only drops the connection */
			prune_receipts();
			return CD_OK;
		}
		if (committing && err == CD_DB && tx_wrote) {	/* the connection went with it */
			if ((err = receipt_committed()) != CD_NOT_FOUND)
				return err;
			err = CD_DB;
		}
		if (conn != NULL && mysql_rollback(conn) != 0)
			db_drop();
		in_tx = false;
		if (conn != NULL)
			(void)cluster_tx(false);	/* a failure drops the connection */
		if (!retryable(err))
			return err;
		if (err == CD_DB && attempt > 0)
			return err;
		if (err == CD_CONFLICT)
			backoff(attempt);
	}
	return busy(err);
}

long long
jint(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

const char *
jstr(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}
