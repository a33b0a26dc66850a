/*
 * A responder program: a name, a route table and an optional init hook.
 * app_run() owns the FastCGI accept loop; it loads the configuration, opens
 * the database lazily, matches each request against the table, enforces the
 * route's flags (sign-in, role, CSRF, body type) and writes the response and
 * one log line (method, path, status, microseconds).
 */
#ifndef CD_APP_H
#define CD_APP_H

#include <stddef.h>

#include "request.h"

typedef cd_err (*cd_handler)(cd_req *);

enum {
	R_USER	= 1u << 0,	/* must be signed in: 401 otherwise */
	R_ADMIN	= 1u << 1,	/* must be an admin: 403 otherwise (implies R_USER) */
	R_PAGE	= 1u << 2,	/* HTML route: signed out → 303 /login?redirect= */
	R_RAW	= 1u << 3,	/* keep the raw body; do not parse JSON */
	R_ANON	= 1u << 4,	/* no session needed; skips the CSRF token check */
	R_EXPERT = 1u << 5,	/* must be an expert: 403 not_expert */
	R_MECHANIC = 1u << 6	/* must be a mechanic: 403 not_mechanic */
};

typedef struct cd_route {
	const char	*method;
	const char	*pattern;	/* "/api/x/{id}/y": {id} is a positive integer */
	cd_handler	 fn;
	unsigned	 flags;
} cd_route;

typedef struct cd_app {
	const char	*name;
	const cd_route	*routes;
	size_t		 nroutes;
	int		(*init)(void);	/* after config, before accepting; 0 = ok */
	size_t		 body_limit;	/* 0 = the configured default */
} cd_app;

int	 app_run(const cd_app *);

/* Matches path against pattern; fills ids. Exposed for unit tests. */
int	 route_match(const char *pattern, const char *path,
	    long long *ids, size_t maxids);

/*
 * A route's own session lookup (called from the app's init hook): the
 * session check and the page's reads in one statement, one database round
 * trip.  Its first columns and its two parameters are the usual lookup's
 * (session.h: CD_SESSION_COLUMNS …); the handler reads the rest of its row
 * from r->session_row.  Routes are named by their handler.
 */
struct cd_session_sql;
void	 app_session_sql(cd_handler, struct cd_session_sql *);

#endif
