/*
 * The write limit: a bare libfcgi responder that stores each request's body
 * (the webhook's signed event, unchecked) under a new key with one prepared
 * INSERT … ON DUPLICATE KEY UPDATE and a COMMIT that the server flushes to
 * disk (innodb_flush_log_at_trx_commit=1, the stack's setting).
 */
#include "limit_common.h"

int
main(void)
{
	MYSQL *c;
	MYSQL_STMT *st;
	MYSQL_BIND in[2];
	long long k = 0, seq = 0, base = (long long)getpid() << 32;
	char body[8192];
	unsigned long body_len;
	FCGX_Request f;
	int ok, got;

	FCGX_Init();
	c = limit_connect();
	mysql_autocommit(c, 0);
	st = limit_prepare(c, "INSERT INTO kv_log (k, body) VALUES (?, ?)"
	    " ON DUPLICATE KEY UPDATE n = n + 1");
	memset(in, 0, sizeof(in));
	in[0].buffer_type = MYSQL_TYPE_LONGLONG;
	in[0].buffer = &k;
	in[1].buffer_type = MYSQL_TYPE_STRING;
	in[1].buffer = body;
	in[1].length = &body_len;
	mysql_stmt_bind_param(st, in);
	FCGX_InitRequest(&f, 0, 0);
	while (FCGX_Accept_r(&f) >= 0) {
		got = FCGX_GetStr(body, sizeof(body), f.in);
		body_len = got > 0 ? (unsigned long)got : 0;
		k = base | ++seq;	/* a new key per request of this child */
		ok = mysql_stmt_execute(st) == 0 && mysql_commit(c) == 0;
		limit_answer(&f, ok, "{\"received\":true}", 17);
		FCGX_Finish_r(&f);
	}
	return 0;
}
