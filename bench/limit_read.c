/*
 * The read limit: a bare libfcgi responder that answers each request with
 * one prepared primary-key SELECT (a row of creditdesk_bench.kv, chosen by
 * a counter over the 1,000 rows perf.sh loads) and writes it as JSON.
 * With ?bytes=N the JSON is padded to N bytes (at most PAD_MAX), so that a
 * body as large as the app's can be measured apart from the app's work.
 */
#include "limit_common.h"

#define PAD_MAX 65536

static char pad[PAD_MAX];

/* The bytes=N of the query string, or 0. */
static int
wanted_bytes(FCGX_Request *f)
{
	const char *q = FCGX_GetParam("QUERY_STRING", f->envp);
	int n;

	if (q == NULL || strncmp(q, "bytes=", 6) != 0)
		return 0;
	n = atoi(q + 6);
	return n > 0 && n <= PAD_MAX ? n : 0;
}

int
main(void)
{
	MYSQL *c;
	MYSQL_STMT *st;
	MYSQL_BIND in, out[3];
	long long k = 0, rk, rv;
	char note[256], json[PAD_MAX + 512];
	unsigned long note_len;
	FCGX_Request f;
	int ok, n, want;

	memset(pad, 'x', sizeof(pad));
	FCGX_Init();
	c = limit_connect();
	st = limit_prepare(c, "SELECT k, v, note FROM kv WHERE k = ?");
	memset(&in, 0, sizeof(in));
	in.buffer_type = MYSQL_TYPE_LONGLONG;
	in.buffer = &k;
	memset(out, 0, sizeof(out));
	out[0].buffer_type = out[1].buffer_type = MYSQL_TYPE_LONGLONG;
	out[0].buffer = &rk;
	out[1].buffer = &rv;
	out[2].buffer_type = MYSQL_TYPE_STRING;
	out[2].buffer = note;
	out[2].buffer_length = sizeof(note);
	out[2].length = &note_len;
	mysql_stmt_bind_param(st, &in);
	mysql_stmt_bind_result(st, out);
	FCGX_InitRequest(&f, 0, 0);
	while (FCGX_Accept_r(&f) >= 0) {
		k = k % 1000 + 1;
		ok = mysql_stmt_execute(st) == 0 && mysql_stmt_fetch(st) == 0;
		if (ok)
			while (mysql_stmt_fetch(st) == 0)
				;
		want = wanted_bytes(&f);
		n = ok ? snprintf(json, sizeof(json), "{\"k\":%lld,\"v\":%lld,"
		    "\"note\":\"%.*s\"", rk, rv, (int)note_len, note) : 0;
		if (ok && want > n + 10)	/* ,"pad":"…"} */
			n += snprintf(json + n, sizeof(json) - n, ",\"pad\":\"%.*s\"",
			    want - n - 10, pad);
		if (ok)
			json[n++] = '}';
		limit_answer(&f, ok, json, (size_t)n);
		FCGX_Finish_r(&f);
	}
	return 0;
}
