/*
 * Sign-in sessions; see session.h.
 */
#include <string.h>

#include "cfg.h"
#include "crypto.h"
#include "db.h"
#include "push.h"
#include "session.h"

/* The usual lookup: the session's columns and nothing else. */
struct session_only {
	cd_session_row	 s;
};
static const cd_col session_cols[] = { CD_SESSION_COLS(struct session_only, s) };
static cd_session_sql q_lookup = {
	CD_SQL("SELECT " CD_SESSION_COLUMNS CD_SESSION_FROM CD_SESSION_WHERE),
	session_cols, DB_NCOLS(session_cols), sizeof(struct session_only)
};
static cd_sql q_touch = CD_SQL(
    "UPDATE auth_sessions SET last_seen_at = UTC_TIMESTAMP(6) WHERE token_hash = ?");
static cd_sql q_insert = CD_SQL(
    "INSERT INTO auth_sessions (token_hash, user_id, csrf_token, last_seen_at, remember,"
    " expires_at) SELECT ?, ?, ?, UTC_TIMESTAMP(6), ?, UTC_TIMESTAMP(6) + INTERVAL int_value HOUR"
    " FROM platform_settings WHERE name = ?");
/* The rotated copy keeps the original sign-in's expiry and lifetime choice. */
static cd_sql q_copy = CD_SQL(
    "INSERT INTO auth_sessions (token_hash, user_id, csrf_token, created_at, last_seen_at,"
    " remember, expires_at) SELECT ?, user_id, ?, created_at, UTC_TIMESTAMP(6), remember, expires_at"
    " FROM auth_sessions WHERE token_hash = ?");
static cd_sql q_delete_others = CD_SQL(
    "DELETE FROM auth_sessions WHERE user_id = ? AND token_hash <> ?");
static cd_sql q_delete = CD_SQL(
    "DELETE FROM auth_sessions WHERE token_hash = ?");
static cd_sql q_delete_all = CD_SQL(
    "DELETE FROM auth_sessions WHERE user_id = ?");

static bool
token_shape_ok(const char *t)
{
	size_t i;

	for (i = 0; t[i] != '\0'; i++)
		if (!(t[i] >= 'A' && t[i] <= 'Z') && !(t[i] >= 'a' && t[i] <= 'z') &&
		    !(t[i] >= '0' && t[i] <= '9') && t[i] != '-' && t[i] != '_')
			return false;
	return i == CD_TOKEN_LEN;
}

/* The request's own token hash, or NULL without a well-formed cookie. */
static const char *
cookie_hash(cd_req *r)
{
	const char *token = req_cookie(r, CD_SESSION_COOKIE);
	char *hash;

	if (token == NULL || !token_shape_ok(token))
		return NULL;
	hash = arena_alloc(r->arena, CD_SHA256_HEX);
	sha256_hex(token, strlen(token), hash);
	return hash;
}

static void
set_cookie(cd_req *r, const char *value, long max_age)
{
	/* Without "keep me signed in" the cookie lasts as long as the browser. */
	const char *age = max_age >= 0 ?
	    arena_printf(r->arena, "; Max-Age=%ld", max_age) : "";

	resp_header(r, "Set-Cookie", arena_printf(r->arena,
	    "%s=%s; Path=/%s; HttpOnly; SameSite=Lax%s",
	    CD_SESSION_COOKIE, value, age, r->secure ? "; Secure" : ""));
}

/*
 * Loads the session with this token hash through q; *rowp gets the row, in
 * the request's arena (NULL: no live session).
 */
static cd_err
lookup(cd_req *r, cd_session_sql *q, const char *hash,
    const cd_session_row **rowp)
{
	cd_session_row *row = arena_alloc(r->arena, q->size);
	cd_user *u;
	bool found;
	cd_err err;

	*rowp = NULL;
	if ((err = db_fetch_row(&q->sql, r->arena, q->cols, q->ncols,
	    row, q->size, &found, "si", hash, (long long)cfg->session_idle)) != CD_OK ||
	    !found)
		return err;
	u = arena_alloc(r->arena, sizeof(*u));
	*u = (cd_user){ row->user_id, row->email, row->name, row->role,
	    row->tier, row->csrf, hash };
	r->user = u;
	r->session_row = *rowp = row;
	return CD_OK;
}

cd_err
session_load_with(cd_req *r, cd_session_sql *q)
{
	const char *hash = cookie_hash(r);
	const cd_session_row *row;
	cd_err err;

	if (hash == NULL)
		return CD_OK;
	if ((err = lookup(r, q != NULL ? q : &q_lookup, hash, &row)) != CD_OK ||
	    row == NULL)
		return err;
	/* The idle clock moves at most once a minute: reads stay reads. */
	if (row->stale)
		return db_exec(&q_touch, NULL, "s", hash);
	return CD_OK;
}

/* After a new token is stored: the cookie, then r->user from the database. */
static cd_err
adopt(cd_req *r, const char *token)
{
	char *hash = arena_alloc(r->arena, CD_SHA256_HEX);
	const cd_session_row *row;
	cd_err err;

	sha256_hex(token, strlen(token), hash);
	r->user = NULL;
	if ((err = lookup(r, &q_lookup, hash, &row)) != CD_OK)
		return err;
	if (row == NULL)
		return CD_INTERNAL;
	set_cookie(r, token, row->remember ? row->ttl : -1);
	return CD_OK;
}

cd_err
session_new_token(cd_new_session *s)
{
	if (random_token(s->token) != 0 || random_token(s->csrf) != 0)
		return CD_INTERNAL;
	return CD_OK;
}

cd_err
session_start(cd_req *r, long long user_id, bool remember)
{
	const char *old = cookie_hash(r);
	char hash[CD_SHA256_HEX];
	cd_new_session s;
	unsigned long long n;
	cd_err err;

	/*
	 * A token the browser held before signing in is never promoted; a
	 * live one ends, and its user's streams with it.
	 */
	if (old != NULL && (err = db_exec(&q_delete, &n, "s", old)) != CD_OK)
		return err;
	if (old != NULL && n > 0 && r->user != NULL)
		push_revoke(r, r->user->id);
	if ((err = session_new_token(&s)) != CD_OK)
		return err;
	sha256_hex(s.token, strlen(s.token), hash);
	if ((err = db_exec(&q_insert, &n, "sisis", hash, user_id, s.csrf,
	    (long long)remember, remember ? "session_remember_hours" :
	    "session_ttl_hours")) != CD_OK)
		return err;
	if (n != 1)
		return CD_INTERNAL;
	return adopt(r, s.token);
}

cd_err
session_replace(cd_req *r, const cd_new_session *s)
{
	char hash[CD_SHA256_HEX];
	unsigned long long n;
	cd_err err;

	sha256_hex(s->token, strlen(s->token), hash);
	if ((err = db_exec(&q_copy, &n, "sss", hash, s->csrf,
	    r->user->session)) != CD_OK)
		return err;
	if (n != 1)	/* the current session ended meanwhile */
		return CD_UNAUTHORIZED;
	if ((err = db_exec(&q_delete_others, &n, "is", r->user->id, hash)) == CD_OK &&
	    n > 0)
		push_revoke(r, r->user->id);	/* the others' streams */
	return err;
}

cd_err
session_adopt(cd_req *r, const cd_new_session *s)
{
	return adopt(r, s->token);
}

cd_err
session_end_all(cd_req *r, long long user_id)
{
	unsigned long long n = 0;
	cd_err err;

	if ((err = db_exec(&q_delete_all, &n, "i", user_id)) == CD_OK && n > 0)
		push_revoke(r, user_id);
	return err;
}

cd_err
session_end(cd_req *r)
{
	const char *hash = cookie_hash(r);
	unsigned long long n = 0;
	cd_err err;

	if (hash != NULL && (err = db_exec(&q_delete, &n, "s", hash)) != CD_OK)
		return err;
	if (n > 0 && r->user != NULL)	/* ended here: its user's streams too */
		push_revoke(r, r->user->id);
	set_cookie(r, "", 0);
	r->user = NULL;
	return CD_OK;
}

json_t *
session_user_json(const cd_user *u)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)u->id,
	    "email", u->email, "name", u->name, "role", u->role, "tier", u->tier);
}
