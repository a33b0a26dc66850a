/*
 * One FastCGI request and its response.  A request owns an arena, and the
 * arena's cleanup list holds every jansson value the request took (req_own);
 * all of it is released at one point when the request ends, so a handler
 * never frees anything it got from here.
 *
 * Handlers never parse raw input themselves: route captures arrive as
 * range-checked integers in ids[], and body or query fields are declared in a
 * cd_field table and validated by req_fields() before the handler looks.
 */
#ifndef CD_REQUEST_H
#define CD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <jansson.h>

#include "arena.h"
#include "buf.h"
#include "error.h"

/* The largest id a JSON number holds exactly (2^53 - 1): ids never exceed it. */
#define CD_MAX_ID 9007199254740991LL
#define CD_MAX_ROUTE_IDS 4

typedef struct cd_user {
	long long	 id;
	const char	*email;
	const char	*name;
	const char	*role;		/* customer, expert, mechanic, admin */
	const char	*tier;		/* free, firewall */
	const char	*csrf;		/* the session's CSRF token */
	const char	*session;	/* the session's token hash (its row's key) */
} cd_user;

/* Whether user u (NULL: signed out) has the premium tier (CD_USER_TIER). */
#define CD_USER_PREMIUM(u) ((u) != NULL && strcmp((u)->tier, "firewall") == 0)

typedef struct cd_req {
	cd_arena	*arena;
	void		*fcgi;		/* FCGX_Request * */

	const char	*method;	/* "GET", "POST", … */
	const char	*path;		/* decoded, without the query string */
	const char	*query;		/* raw query string, "" if none */
	const char	*content_type;	/* "" if none */
	bool		 secure;	/* reached over https (or CD_PUBLIC_URL is https) */

	const char	*body;		/* raw body, NUL-terminated */
	size_t		 body_len;
	json_t		*json;		/* parsed JSON object body, or NULL */

	long long	 ids[CD_MAX_ROUTE_IDS];	/* {id} captures, in order */
	const cd_user	*user;		/* signed-in user, or NULL */
	const void	*session_row;	/* the session lookup's row (session.h), or NULL */

	/* Response being built. */
	int		 status;
	cd_buf		 headers;	/* "Name: value\r\n" lines */
	cd_buf		 out;		/* body */
	bool		 responded;
	const char	*err_code;	/* set by req_fail() */
	const char	*err_message;

	struct cd_after	*after;		/* req_after(), in the arena */
} cd_req;

/* CGI variable (HTTP headers as HTTP_X_Y), or NULL. */
const char *req_param(cd_req *, const char *name);
/* Cookie value by name, or NULL. */
const char *req_cookie(cd_req *, const char *name);
/* Query-string argument, URL-decoded into the arena, or NULL. */
const char *req_query(cd_req *, const char *name);
/*
 * The client's Idempotency-Key header in *key (NULL when there is none): a
 * request sent again with it is answered with what the first one made.  One
 * that is not idempotency_key_ok() is a 400 invalid_idempotency_key.
 */
cd_err	 req_idempotency_key(cd_req *, const char **key);
/* The 400 idempotency_key_reused: the key came before with another what. */
cd_err	 req_key_reused(cd_req *, const char *what);
/* 1 to 64 of [A-Za-z0-9_.:-]. */
bool	 idempotency_key_ok(const char *key);

/* Records a specific error code and sentence; returns err for `return`. */
/* From HTTPS (the CGI variable) and CD_PUBLIC_URL: cookies get Secure. */
bool	 reached_over_https(const char *https, const char *public_url);
/* True if Content-Type ct is exactly type, parameters aside (RFC 9110). */
bool	 media_type_is(const char *ct, const char *type);
cd_err	 req_fail(cd_req *, cd_err err, const char *code, const char *message);
/* The request takes one reference of j and drops it when it ends (any number). */
json_t	*req_own(cd_req *, json_t *j);
/*
 * fn(arg) runs once the response has gone to nginx, before the request's
 * arena is released (so arg may live there): work the client need not wait
 * for, such as a chat push.  It cannot change the response.  In call order.
 */
void	 req_after(cd_req *, void (*fn)(void *), void *arg);
/* Runs what req_after() queued (the app loop, after finishing a request). */
void	 req_run_after(cd_req *);

/*
 * Declared request fields.  Integers are parsed with range-checked strtoll
 * (JSON integers, or decimal strings with no trailing garbage); strings must
 * have no NUL and a length within [min, max].
 */
typedef enum cd_ftype {
	F_INT,		/* min..max is the value range */
	F_STR,		/* min..max is the length range in bytes */
	F_TEXT,		/* min..max characters (UTF-8), not only blanks */
	F_EMAIL,	/* a plausible address, at most max bytes */
	F_ID,		/* Stripe or slug id: [A-Za-z0-9_-]{min,max} */
	F_BOOL
} cd_ftype;

#define F_REQUIRED 1u

typedef struct cd_field {
	const char	*name;
	cd_ftype	 type;
	unsigned	 flags;
	long long	 min, max;
	const char	*missing;	/* sentence when absent, or NULL for a default */
} cd_field;

typedef struct cd_value {
	bool		 present;
	long long	 i;		/* F_INT, F_BOOL */
	const char	*s;		/* F_STR, F_TEXT, F_EMAIL, F_ID (arena-owned) */
} cd_value;

/* Validates the JSON body (or, for GET, the query string) against the table. */
cd_err	 req_fields(cd_req *, const cd_field *, size_t, cd_value *out);
cd_err	 req_query_fields(cd_req *, const cd_field *, size_t, cd_value *out);

/* Responses.  Each ends the request's output; the first one wins. */
void	 resp_header(cd_req *, const char *name, const char *value);
void	 resp_json(cd_req *, int status, json_t *body);	/* steals body */
/* A JSON body already written out (copied), as resp_json sends it. */
void	 resp_json_text(cd_req *, int status, const char *json, size_t len);
void	 resp_html(cd_req *, int status, const char *html, size_t len);
void	 resp_typed(cd_req *, int status, const char *type, const char *body,
	    size_t len);		/* any Content-Type */
void	 resp_redirect(cd_req *, const char *location);	/* 303 */
void	 resp_status(cd_req *, int status);		/* empty body */
void	 resp_error(cd_req *, cd_err);	/* SPEC JSON error body */

#endif
