/*
 * Shared by the two limit responders bench/perf.sh measures the app against:
 * the database connection from the stack's environment (the same account,
 * socket and client library the app's children use) and the FastCGI loop.
 * Each is the least a responder can do for its kind of request, so the
 * app's rows are read as a fraction of these.
 */
#ifndef BENCH_LIMIT_COMMON_H
#define BENCH_LIMIT_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <mysql.h>

/* One connection over the stack's socket to the bench database. */
static MYSQL *
limit_connect(void)
{
	MYSQL *c = mysql_init(NULL);
	const char *sock = getenv("CD_DB_SOCKET");

	if (c == NULL || mysql_real_connect(c, NULL, getenv("CD_DB_USER"),
	    getenv("CD_DB_PASSWORD"), "creditdesk_bench", 0, sock, 0) == NULL) {
		fprintf(stderr, "limit: connect: %s\n", c ? mysql_error(c) : "oom");
		exit(1);
	}
	return c;
}

static MYSQL_STMT *
limit_prepare(MYSQL *c, const char *sql)
{
	MYSQL_STMT *st = mysql_stmt_init(c);

	if (st == NULL || mysql_stmt_prepare(st, sql, strlen(sql)) != 0) {
		fprintf(stderr, "limit: prepare: %s\n", mysql_error(c));
		exit(1);
	}
	return st;
}

/* A JSON answer, or a 503 when the statement failed. */
static void
limit_answer(FCGX_Request *f, int ok, const char *json, size_t len)
{
	if (!ok) {
		FCGX_FPrintF(f->out, "Status: 503 Service Unavailable\r\n"
		    "Content-Type: application/json\r\n\r\n{}");
		return;
	}
	FCGX_FPrintF(f->out, "Status: 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: %d\r\n\r\n", (int)len);
	FCGX_PutStr(json, (int)len, f->out);
}

#endif
