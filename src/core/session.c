/*
 * Sign-in sessions; see session.h.
 */
#include <string.h>

#include "crypto.h"
#include "db.h"
#include "session.h"

static cd_sql q_lookup = CD_SQL(
    "SELECT u.id, u.email, u.name, u.role, u.tier, s.csrf_token"
    " FROM auth_sessions s JOIN users u ON u.id = s.user_id"
    " WHERE s.token_hash = ? AND s.expires_at > UTC_TIMESTAMP(6)");
static cd_sql q_insert = CD_SQL(
    "INSERT INTO auth_sessions (token_hash, user_id, csrf_token, expires_at)"
    " SELECT ?, ?, ?, UTC_TIMESTAMP(6) + INTERVAL int_value HOUR"
    " FROM platform_settings WHERE name = 'session_ttl_hours'");
static cd_sql q_delete = CD_SQL(
    "DELETE FROM auth_sessions WHERE token_hash = ?");

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

static cd_err
lookup(cd_req *r, const char *token)
{
	char hash[CD_SHA256_HEX];
	cd_user *u;
	json_t *row;
	cd_err err;

	sha256_hex(token, strlen(token), hash);
	if ((err = db_row(&q_lookup, &row, "s", hash)) != CD_OK || row == NULL)
		return err;
	u = arena_alloc(r->arena, sizeof(*u));
	u->id = jint(row, "id");
	u->email = arena_strdup(r->arena, jstr(row, "email"));
	u->name = arena_strdup(r->arena, jstr(row, "name"));
	u->role = arena_strdup(r->arena, jstr(row, "role"));
	u->tier = arena_strdup(r->arena, jstr(row, "tier"));
	u->csrf = arena_strdup(r->arena, jstr(row, "csrf_token"));
	r->user = u;
	json_decref(row);
	return CD_OK;
}

cd_err
session_load(cd_req *r)
{
	const char *token = req_cookie(r, CD_SESSION_COOKIE);

	if (token == NULL || !token_shape_ok(token))
		return CD_OK;
	return lookup(r, token);
}

static void
set_cookie(cd_req *r, const char *value, long max_age)
{
	resp_header(r, "Set-Cookie", arena_printf(r->arena,
	    "%s=%s; Path=/; Max-Age=%ld; HttpOnly; SameSite=Lax%s",
	    CD_SESSION_COOKIE, value, max_age, r->secure ? "; Secure" : ""));
}

cd_err
session_start(cd_req *r, long long user_id)
{
	char token[CD_TOKEN_LEN + 1], csrf[CD_TOKEN_LEN + 1];
	char hash[CD_SHA256_HEX];
	unsigned long long n;
	cd_err err;

	if (random_token(token) != 0 || random_token(csrf) != 0)
		return CD_INTERNAL;
	sha256_hex(token, strlen(token), hash);
	if ((err = db_exec(&q_insert, &n, "sis", hash, user_id, csrf)) != CD_OK)
		return err;
	if (n != 1)
		return CD_INTERNAL;
	set_cookie(r, token, 30L * 24 * 3600);
	return lookup(r, token);
}

cd_err
session_end(cd_req *r)
{
	const char *token = req_cookie(r, CD_SESSION_COOKIE);
	char hash[CD_SHA256_HEX];
	cd_err err;

	if (token != NULL && token_shape_ok(token)) {
		sha256_hex(token, strlen(token), hash);
		if ((err = db_exec(&q_delete, NULL, "s", hash)) != CD_OK)
			return err;
	}
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
