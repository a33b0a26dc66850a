/*
 * Request input (CGI variables, query, cookies, declared fields) and the
 * response builders; see request.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <fcgiapp.h>

#include "account_rules.h"
#include "escape.h"
#include "request.h"

const char *
req_param(cd_req *r, const char *name)
{
	return FCGX_GetParam(name, ((FCGX_Request *)r->fcgi)->envp);
}

bool
idempotency_key_ok(const char *key)
{
	size_t n = strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_.:-");

	return n > 0 && n <= 64 && key[n] == '\0';
}

cd_err
req_idempotency_key(cd_req *r, const char **key)
{
	*key = req_param(r, "HTTP_IDEMPOTENCY_KEY");
	if (*key != NULL && !idempotency_key_ok(*key))
		return req_fail(r, CD_BAD_REQUEST, "invalid_idempotency_key",
		    "Idempotency-Key must be 1 to 64 letters, digits, '_', '.', ':' or '-'.");
	return CD_OK;
}

cd_err
req_key_reused(cd_req *r, const char *what)
{
	return req_fail(r, CD_BAD_REQUEST, "idempotency_key_reused", arena_printf(
	    r->arena, "This Idempotency-Key was sent with another %s.", what));
}

/*
 * Finds name=value in a list separated by sep ('&' for queries, ';' for
 * cookies) and returns a copy of value in the arena, or NULL.
 */
static const char *
find_pair(cd_req *r, const char *list, char sep, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = list, *end, *eq;

	while (p != NULL && *p != '\0') {
		while (*p == ' ')
			p++;
		end = strchr(p, sep);
		if (end == NULL)
			end = p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq != NULL && (size_t)(eq - p) == nlen &&
		    memcmp(p, name, nlen) == 0)
			return arena_strndup(r->arena, eq + 1,
			    (size_t)(end - eq - 1));
		p = *end ? end + 1 : NULL;
	}
	return NULL;
}

const char *
req_cookie(cd_req *r, const char *name)
{
	const char *h = req_param(r, "HTTP_COOKIE");

	return h ? find_pair(r, h, ';', name) : NULL;
}

const char *
req_query(cd_req *r, const char *name)
{
	char *v = (char *)find_pair(r, r->query, '&', name);

	if (v != NULL && !url_decode(v))
		return NULL;
	return v;
}

/*
 * RFC 9110 media type: type "/" subtype, case-insensitive, then only
 * optional whitespace and ";" parameters.  A prefix is not a match, so
 * "application/jsonx" or "application/json-seq" is another type.
 */
bool
media_type_is(const char *ct, const char *type)
{
	size_t n = strlen(type);

	if (ct == NULL || strncasecmp(ct, type, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/*
 * nginx sets HTTPS=on when it terminates TLS itself; behind a TLS-terminating
 * proxy it does not, and the public URL tells that browsers use https.
 */
bool
reached_over_https(const char *https, const char *public_url)
{
	return (https != NULL && strcmp(https, "on") == 0) ||
	    (public_url != NULL && strncasecmp(public_url, "https://", 8) == 0);
}

cd_err
req_fail(cd_req *r, cd_err err, const char *code, const char *message)
{
	r->err_code = code;
	r->err_message = message;
	return err;
}

json_t *
req_own(cd_req *r, json_t *j)
{
	return arena_json(r->arena, j);
}

struct cd_after {
	void		(*fn)(void *);
	void		*arg;
	struct cd_after	*next;
};

void
req_after(cd_req *r, void (*fn)(void *), void *arg)
{
	struct cd_after *a = arena_alloc(r->arena, sizeof(*a)), **tail;

	*a = (struct cd_after){ fn, arg, NULL };
	for (tail = &r->after; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = a;
}

void
req_run_after(cd_req *r)
{
	struct cd_after *a;

	for (a = r->after; a != NULL; a = a->next)
		a->fn(a->arg);
	r->after = NULL;
}

/* "boostPackId" → "boost_pack_id", for error codes. */
static const char *
snake(cd_req *r, const char *prefix, const char *name)
{
	cd_buf b = CD_BUF_INIT;
	const char *s;
	char *out;

	buf_puts(&b, prefix);
	for (s = name; *s; s++) {
		if (isupper((unsigned char)*s)) {
			buf_putc(&b, '_');
			buf_putc(&b, (char)tolower((unsigned char)*s));
		} else
			buf_putc(&b, *s);
	}
	out = arena_strdup(r->arena, buf_cstr(&b));
	buf_free(&b);
	return out;
}

static bool
parse_int(const char *s, long long *out)
{
	char *end;

	if (*s == '\0' || isspace((unsigned char)*s))
		return false;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static bool
valid_email(const char *s, size_t len)
{
	const char *at = strchr(s, '@');

	if (at == NULL || at == s || strchr(at + 1, '@') != NULL ||
	    strchr(at + 1, '.') == NULL || s[len - 1] == '.')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || strchr("<>,;\"\\", *s))
			return false;
	return true;
}

static bool
valid_id(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return false;
	return true;
}

static cd_err
invalid(cd_req *r, const cd_field *f)
{
	const char *msg;

	switch (f->type) {
	case F_INT:
		msg = arena_printf(r->arena, "%s must be a whole number from %lld to %lld.",
		    f->name, f->min, f->max);
		break;
	case F_EMAIL:
		msg = arena_printf(r->arena, "%s must be an email address.", f->name);
		break;
	case F_TEXT:
		msg = arena_printf(r->arena, "%s must be text of %lld to %lld characters,"
		    " not only spaces.", f->name, f->min, f->max);
		break;
	case F_BOOL:
		msg = arena_printf(r->arena, "%s must be true or false.", f->name);
		break;
	default:
		msg = arena_printf(r->arena, "%s must be text of %lld to %lld characters.",
		    f->name, f->min, f->max);
	}
	return req_fail(r, CD_BAD_REQUEST, snake(r, "invalid_", f->name), msg);
}

/* Unicode's spaces, and the invisible characters a name could be made of. */
static bool
blank_char(unsigned long c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0xA0 ||
	    c == 0x1680 || (c >= 0x2000 && c <= 0x200D) || c == 0x2028 ||
	    c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x2060 ||
	    c == 0x3000 || c == 0xFEFF;
}

/*
 * Whether s (valid UTF-8: jansson checked it) has min..max characters, not
 * all blank: what a person typed, counted as they would count it.
 */
static bool
text_ok(const char *s, long long min, long long max)
{
	const unsigned char *p = (const unsigned char *)s;
	long long chars = 0;
	unsigned long c;
	bool text = false;
	int more;

	while (*p != '\0') {
		more = *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : *p >= 0xC0 ? 1 : 0;
		c = more == 0 ? *p : *p & (0x3F >> more);
		for (p++; more > 0 && (*p & 0xC0) == 0x80; more--, p++)
			c = c << 6 | (*p & 0x3F);
		chars++;
		if (!blank_char(c))
			text = true;
	}
	return text && chars >= min && chars <= max;
}

/* Validates one value (a JSON value, or a string from the query). */
static cd_err
check_field(cd_req *r, const cd_field *f, const json_t *j, const char *s,
    cd_value *v)
{
	cd_buf norm = CD_BUF_INIT;
	size_t len;

	if (j != NULL && json_is_integer(j) && f->type == F_INT)
		v->i = json_integer_value(j);
	else if (j != NULL && json_is_boolean(j) && f->type == F_BOOL)
		v->i = json_is_true(j);
	else if (j != NULL && !json_is_string(j))
		return invalid(r, f);
	else {
		if (j != NULL) {
			s = json_string_value(j);
			len = json_string_length(j);
			if (strlen(s) != len)	/* embedded NUL */
				return invalid(r, f);
		}
		len = strlen(s);
		switch (f->type) {
		case F_INT:
			if (!parse_int(s, &v->i))
				return invalid(r, f);
			break;
		case F_BOOL:
			if (strcmp(s, "true") && strcmp(s, "false"))
				return invalid(r, f);
			v->i = strcmp(s, "true") == 0;
			break;
		case F_EMAIL:
			/* Checked and handed on in its one normalised spelling. */
			if (email_normalize(s, len, &norm) != 0) {
				buf_free(&norm);
				return invalid(r, f);
			}
			s = arena_strdup(r->arena, buf_cstr(&norm));
			len = norm.len;
			buf_free(&norm);
			if (len > (size_t)f->max || len == 0 || !valid_email(s, len))
				return invalid(r, f);
			break;
		case F_ID:
			if (!valid_id(s))
				return invalid(r, f);
			/* FALLTHROUGH */
		case F_STR:
			if (len < (size_t)f->min || len > (size_t)f->max)
				return invalid(r, f);
			break;
		case F_TEXT:
			if (!text_ok(s, f->min, f->max))
				return invalid(r, f);
			break;
		}
		v->s = arena_strdup(r->arena, s);
	}
	if (f->type == F_INT && (v->i < f->min || v->i > f->max))
		return invalid(r, f);
	v->present = true;
	return CD_OK;
}

static cd_err
fields(cd_req *r, bool from_query, const cd_field *spec, size_t n,
    cd_value *out)
{
	const json_t *j = NULL;
	const char *s = NULL;
	cd_err err;
	size_t i;

	for (i = 0; i < n; i++) {
		const cd_field *f = &spec[i];

		memset(&out[i], 0, sizeof(out[i]));
		if (from_query)
			s = req_query(r, f->name);
		else if ((j = json_object_get(r->json, f->name)) != NULL &&
		    json_is_null(j))
			j = NULL;
		if (j == NULL && s == NULL) {
			if (!(f->flags & F_REQUIRED))
				continue;
			return req_fail(r, CD_BAD_REQUEST,
			    snake(r, "missing_", f->name), f->missing ? f->missing :
			    arena_printf(r->arena, "%s is required.", f->name));
		}
		if ((err = check_field(r, f, j, s, &out[i])) != CD_OK)
			return err;
	}
	return CD_OK;
}

cd_err
req_fields(cd_req *r, const cd_field *spec, size_t n, cd_value *out)
{
	return fields(r, r->json == NULL, spec, n, out);
}

cd_err
req_query_fields(cd_req *r, const cd_field *spec, size_t n, cd_value *out)
{
	return fields(r, true, spec, n, out);
}

void
resp_header(cd_req *r, const char *name, const char *value)
{
	if (!header_value_ok(value))
		return;
	buf_printf(&r->headers, "%s: %s\r\n", name, value);
}

static void
respond(cd_req *r, int status, const char *type, const char *body, size_t len)
{
	if (r->responded)
		return;
	r->responded = true;
	r->status = status;
	/* Like nginx's own 503 (an API's or a page's): when to try again. */
	if (status == 503)
		resp_header(r, "Retry-After", "5");
	if (type != NULL)
		resp_header(r, "Content-Type", type);
	buf_reset(&r->out);
	if (body != NULL)
		buf_append(&r->out, body, len);
}

void
resp_json(cd_req *r, int status, json_t *body)
{
	char *s = json_dumps(body, JSON_COMPACT);

	resp_json_text(r, status, s, s ? strlen(s) : 0);
	free(s);
	json_decref(body);
}

void
resp_json_text(cd_req *r, int status, const char *json, size_t len)
{
	resp_header(r, "Cache-Control", "no-store");
	respond(r, status, "application/json", json, len);
}

void
resp_html(cd_req *r, int status, const char *html, size_t len)
{
	respond(r, status, "text/html; charset=utf-8", html, len);
}

void
resp_typed(cd_req *r, int status, const char *type, const char *body, size_t len)
{
	respond(r, status, type, body, len);
}

void
resp_redirect(cd_req *r, const char *location)
{
	resp_header(r, "Location", location);
	respond(r, 303, NULL, NULL, 0);
}

void
resp_status(cd_req *r, int status)
{
	respond(r, status, NULL, NULL, 0);
}

void
resp_error(cd_req *r, cd_err err)
{
	resp_json(r, cd_err_status(err), json_pack("{s:{s:s,s:s}}", "error",
	    "code", r->err_code ? r->err_code : cd_err_code(err),
	    "message", r->err_message ? r->err_message : cd_err_message(err)));
}
