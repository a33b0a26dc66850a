/*
 * The responder runtime: FastCGI accept loop, route table dispatch, the
 * checks every route declares by flags, and one log line per request.
 * A child serves one request at a time; concurrency comes from running
 * several children per family (multiwatch), each with its own connection.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcgiapp.h>

#include "app.h"
#include "cfg.h"
#include "crypto.h"
#include "escape.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "page.h"
#include "session.h"


int
route_match(const char *pat, const char *path, long long *ids, size_t maxids)
{
	size_t nids = 0;
	char *end;

	while (*pat != '\0') {
		if (strncmp(pat, "{id}", 4) == 0) {
			if (*path < '1' || *path > '9' || nids == maxids)
				return 0;
			errno = 0;
			ids[nids] = strtoll(path, &end, 10);
			if (errno != 0 || ids[nids] > CD_MAX_ID)
				return 0;
			nids++;
			path = end;
			pat += 4;
			continue;
		}
		if (*pat++ != *path++)
			return 0;
	}
	return *path == '\0';
}

#define MAX_SESSION_SQLS 8
#define SLOW_REQUEST_USEC 500000	/* logged from half a second */

struct session_sql {
	cd_handler	 fn;
	cd_session_sql	*q;
};
static struct session_sql session_sqls[MAX_SESSION_SQLS];
static size_t nsession_sqls;

/* Called from an app's init hook: one too many is a build mistake. */
void
app_session_sql(cd_handler fn, cd_session_sql *q)
{
	if (nsession_sqls == MAX_SESSION_SQLS) {
		log_error("app_session_sql: more than %d routes with their own"
		    " session lookup; raise MAX_SESSION_SQLS", MAX_SESSION_SQLS);
		abort();
	}
	session_sqls[nsession_sqls++] = (struct session_sql){ fn, q };
}

/* The route's own session lookup, or NULL for the usual one. */
static cd_session_sql *
session_sql_for(const cd_route *rt)
{
	size_t i;

	for (i = 0; i < nsession_sqls; i++)
		if (session_sqls[i].fn == rt->fn)
			return session_sqls[i].q;
	return NULL;
}

static bool
is_write(const char *method)
{
	return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

/* The methods a route may have; a bit each in find_route's *takes. */
static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "PATCH",
    "DELETE" };
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

/*
 * Finds the route; *takes gets the methods the path takes (a bit per
 * methods[] entry; 0: no route has the path), which tell a 405 from a 404.
 */
static const cd_route *
find_route(const cd_app *app, cd_req *r, unsigned *takes)
{
	const cd_route *rt;
	size_t i, m;

	*takes = 0;
	for (i = 0; i < app->nroutes; i++) {
		rt = &app->routes[i];
		if (!route_match(rt->pattern, r->path, r->ids, CD_MAX_ROUTE_IDS))
			continue;
		if (strcmp(rt->method, r->method) == 0 ||
		    (strcmp(rt->method, "GET") == 0 && strcmp(r->method, "HEAD") == 0))
			return rt;
		for (m = 0; m < NMETHODS; m++)
			if (strcmp(rt->method, methods[m]) == 0)
				*takes |= 1u << m | (m == 0 ? 2u : 0);	/* GET: HEAD too */
	}
	return NULL;
}

/* Reads the body up to the limit; 413 beyond it. */
static cd_err
read_body(cd_req *r, size_t limit)
{
	FCGX_Request *f = r->fcgi;
	const char *cl = req_param(r, "CONTENT_LENGTH");
	char *body, *end;
	long long n = 0;
	int got;

	if (cl != NULL && *cl != '\0') {
		errno = 0;
		n = strtoll(cl, &end, 10);
		if (errno != 0 || *end != '\0' || n < 0)
			return req_fail(r, CD_BAD_REQUEST, "bad_content_length",
			    "Content-Length is not valid.");
	}
	if ((unsigned long long)n > limit)
		return CD_TOO_LARGE;
	body = arena_alloc(r->arena, (size_t)n + 1);
	got = n ? FCGX_GetStr(body, (int)n, f->in) : 0;
	if (got != n)
		return req_fail(r, CD_BAD_REQUEST, "short_body",
		    "The request body ended early.");
	r->body = body;
	r->body_len = (size_t)n;
	return CD_OK;
}

/* A JSON object body (empty = {}); anything else is 400 or 415. */
static cd_err
parse_json(cd_req *r)
{
	json_error_t jerr;

	if (r->body_len == 0) {
		r->json = req_own(r, json_object());
		return CD_OK;
	}
	if (!media_type_is(r->content_type, "application/json"))
		return CD_UNSUPPORTED_MEDIA;
	r->json = req_own(r, json_loadb(r->body, r->body_len,
	    JSON_REJECT_DUPLICATES, &jerr));
	if (!json_is_object(r->json))
		return req_fail(r, CD_BAD_REQUEST, "invalid_json",
		    "The body must be a JSON object.");
	return CD_OK;
}

/*
 * Cross-site writes: a browser sends Origin on cross-site POSTs, and a
 * cookie-authenticated write must also echo the session's CSRF token, which
 * another site cannot read.
 */
static cd_err
check_csrf(cd_req *r, const cd_route *rt)
{
	const char *origin = req_param(r, "HTTP_ORIGIN");
	const char *host = req_param(r, "HTTP_HOST");
	const char *token, *p;

	if (origin != NULL && strcmp(origin, "null") != 0) {
		p = strstr(origin, "://");
		if (host == NULL || p == NULL || strcmp(p + 3, host) != 0)
			return req_fail(r, CD_FORBIDDEN, "cross_site_request",
			    "Cross-site requests are not allowed.");
	}
	if (r->user == NULL || (rt->flags & R_ANON))
		return CD_OK;
	token = req_param(r, "HTTP_X_CSRF_TOKEN");
	if (token == NULL || strlen(token) != strlen(r->user->csrf) ||
	    !ct_equal(token, r->user->csrf, strlen(token)))
		return req_fail(r, CD_FORBIDDEN, "csrf_token_invalid",
		    "This page is out of date (you may have signed in again elsewhere). Reload it and try again.");
	return CD_OK;
}

/* The roles a route may require, and what someone else is told. */
static const struct role_gate {
	unsigned	 flag;
	const char	*role, *code, *page_msg, *api_msg;
} role_gates[] = {
	{ R_EXPERT, "expert", "not_expert", "This page is for experts.",
	    "Only experts can do this." },
	{ R_MECHANIC, "mechanic", "not_mechanic", "This page is for mechanics.",
	    "Only mechanics can take consultations." },
};

static cd_err
check_access(cd_req *r, const cd_route *rt)
{
	const struct role_gate *g, *end = role_gates +
	    sizeof(role_gates) / sizeof(role_gates[0]);

	if ((rt->flags & (R_USER | R_ADMIN | R_EXPERT | R_MECHANIC)) &&
	    r->user == NULL)
		return CD_UNAUTHORIZED;
	if ((rt->flags & R_ADMIN) && strcmp(r->user->role, "admin") != 0)
		return CD_FORBIDDEN;
	for (g = role_gates; g < end; g++)
		if ((rt->flags & g->flag) && strcmp(r->user->role, g->role) != 0)
			return req_fail(r, CD_FORBIDDEN, g->code,
			    (rt->flags & R_PAGE) ? g->page_msg : g->api_msg);
	return CD_OK;
}

static void
login_redirect(cd_req *r)
{
	cd_buf b = CD_BUF_INIT;
	const char *uri = req_param(r, "REQUEST_URI");

	buf_puts(&b, "/login?redirect=");
	esc_url_arg(&b, uri && local_path_ok(uri) ? uri : "/dashboard");
	resp_redirect(r, arena_strdup(r->arena, buf_cstr(&b)));
	buf_free(&b);
}

/* A 405's Allow header (RFC 9110 requires it): the methods in takes. */
static void
allow_header(cd_req *r, unsigned takes)
{
	char list[64] = "";
	size_t m;

	for (m = 0; m < NMETHODS; m++)
		if (takes & 1u << m) {
			if (list[0] != '\0')
				strcat(list, ", ");
			strcat(list, methods[m]);
		}
	resp_header(r, "Allow", arena_strdup(r->arena, list));
}

static cd_err
dispatch(const cd_app *app, cd_req *r, const cd_route **rtp)
{
	const cd_route *rt;
	unsigned takes;
	cd_err err;

	if ((rt = find_route(app, r, &takes)) == NULL) {
		if (takes == 0)
			return CD_NOT_FOUND;
		allow_header(r, takes);
		return CD_METHOD_NOT_ALLOWED;
	}
	*rtp = rt;
	if (!(rt->flags & R_RAW) && (err = session_load_with(r,
	    session_sql_for(rt))) != CD_OK)
		return err;
	if ((rt->flags & R_PAGE) && (rt->flags & R_USER) && r->user == NULL) {
		login_redirect(r);
		return CD_OK;
	}
	if ((err = check_access(r, rt)) != CD_OK)
		return err;
	if (is_write(r->method)) {
		if ((err = read_body(r, app->body_limit ? app->body_limit :
		    cfg->body_limit)) != CD_OK)
			return err;
		if (!(rt->flags & R_RAW) && (err = check_csrf(r, rt)) != CD_OK)
			return err;
		if (!(rt->flags & R_RAW) && (err = parse_json(r)) != CD_OK)
			return err;
	}
	return rt->fn(r);
}

static void
req_begin(cd_req *r, FCGX_Request *f, cd_arena *arena)
{
	const char *v, *q;

	buf_reset(&r->headers);
	buf_reset(&r->out);
	r->arena = arena;
	r->fcgi = f;
	r->method = (v = req_param(r, "REQUEST_METHOD")) ? v : "GET";
	r->query = (v = req_param(r, "QUERY_STRING")) ? v : "";
	r->content_type = (v = req_param(r, "CONTENT_TYPE")) ? v : "";
	r->secure = reached_over_https(req_param(r, "HTTPS"), cfg->public_url);
	if ((v = req_param(r, "DOCUMENT_URI")) != NULL)
		r->path = v;
	else if ((v = req_param(r, "REQUEST_URI")) != NULL)
		r->path = (q = strchr(v, '?')) ?
		    arena_strndup(arena, v, (size_t)(q - v)) : v;
	else
		r->path = "/";
}

static void
req_end(cd_req *r)
{
	r->json = NULL;
	r->user = NULL;
	r->session_row = NULL;
	r->body = NULL;
	r->body_len = 0;
	r->status = 0;
	r->responded = false;
	r->err_code = r->err_message = NULL;
	memset(r->ids, 0, sizeof(r->ids));
	arena_reset(r->arena);
}

/*
 * The reason phrase of a status this app sends: nginx copies the Status line
 * as it is, and "HTTP/1.1 200" without one lacks the space HTTP requires.
 */
static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 303: return "See Other";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	}
	/* Any other: the name of its class (RFC 9110, section 15). */
	return status < 300 ? "Successful" : status < 400 ? "Redirection" :
	    status < 500 ? "Client Error" : "Server Error";
}

static void
write_response(cd_req *r)
{
	FCGX_Request *f = r->fcgi;

	/* With its length nginx passes the body on as it is, not chunked. */
	FCGX_FPrintF(f->out, "Status: %d %s\r\nContent-Length: %lu\r\n", r->status,
	    reason(r->status), (unsigned long)r->out.len);
	FCGX_PutStr(buf_cstr(&r->headers), (int)r->headers.len, f->out);
	FCGX_PutStr("\r\n", 2, f->out);
	if (strcmp(r->method, "HEAD") != 0 && r->out.len > 0)
		FCGX_PutStr(r->out.data, (int)r->out.len, f->out);
}

/* Printable copy of the path for the log line. */
static const char *
log_path(cd_req *r)
{
	char *p = arena_strndup(r->arena, r->path, strnlen(r->path, 200)), *s;

	for (s = p; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			*s = '?';
	return p;
}

static long long
usec_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000000LL +
	    (t1.tv_nsec - t0->tv_nsec) / 1000;
}

/*
 * GET /internal/metrics/<family>: the family's counters for Prometheus.
 * nginx passes this location only from loopback; it is not counted itself.
 */
static bool
serve_metrics(const cd_app *app, cd_req *r)
{
	cd_buf b = CD_BUF_INIT;

	if (!metrics_path(app, r->path))
		return false;
	metrics_render(app, &b);
	resp_typed(r, 200, "text/plain; version=0.0.4; charset=utf-8",
	    b.len ? buf_cstr(&b) : "", b.len);
	buf_free(&b);
	write_response(r);
	return true;
}

static void
serve_one(const cd_app *app, cd_req *r)
{
	const cd_route *rt = NULL;
	struct timespec t0;
	long long usec;
	cd_err err;

	if (serve_metrics(app, r))
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = dispatch(app, r, &rt);
	if (db_in_tx()) {
		log_error("handler left a transaction open");
		db_close();
	}
	if (err != CD_OK && !r->responded) {
		/* Browsers get HTML errors for pages and unknown non-API paths. */
		if (rt != NULL ? (rt->flags & R_PAGE) != 0 :
		    strncmp(r->path, "/api/", 5) != 0)
			page_error(r, err);
		else
			resp_error(r, err);
	}
	if (!r->responded) {
		log_error("%s %s: handler gave no response", r->method, r->path);
		resp_error(r, CD_INTERNAL);
	}
	write_response(r);
	usec = usec_since(&t0);
	metrics_request(rt != NULL ? (size_t)(rt - app->routes) : app->nroutes,
	    r->status, usec);
	/*
	 * Every request is in nginx's access log and in the metrics: the
	 * responder's own log keeps the ones worth a look, and the hot path
	 * makes no write of its own.
	 */
	if (r->status >= 500 || usec >= SLOW_REQUEST_USEC)
		log_warn("%s %s %d %lldus", r->method, log_path(r), r->status, usec);
}

int
app_run(const cd_app *app)
{
	FCGX_Request f;
	cd_req r;

	log_init(app->name);
	signal(SIGPIPE, SIG_IGN);
	if (cfg_load() != 0 || FCGX_Init() != 0)
		return 1;
	if (app->init != NULL && app->init() != 0)
		return 1;
	(void)metrics_open(app);	/* without it, nothing is counted */
	if (db_open() != CD_OK)
		log_warn("database not reachable yet; will retry per request");
	if (FCGX_InitRequest(&f, 0, 0) != 0)
		return 1;
	memset(&r, 0, sizeof(r));
	r.arena = arena_new();
	while (FCGX_Accept_r(&f) >= 0) {
		req_begin(&r, &f, r.arena);
		serve_one(app, &r);
		FCGX_Finish_r(&f);	/* the response is complete for nginx */
		req_run_after(&r);
		req_end(&r);
	}
	db_close();
	return 0;
}
