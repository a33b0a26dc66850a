/*
 * creditdesk-auth: register, sign in, sign out, and who am I; admins change
 * users' roles and tiers (admin_users.c).
 */
#include <ctype.h>
#include <string.h>

#include "app.h"
#include "auth.h"
#include "crypto.h"
#include "db.h"
#include "session.h"

static cd_sql q_create = CD_SQL(
    "INSERT INTO users (email, name, password_hash) VALUES (?, ?, ?)");
static cd_sql q_by_email = CD_SQL(
    "SELECT id, password_hash FROM users WHERE email = ?");

/* Compared against when the email is unknown, so both paths cost one scrypt. */
static const char dummy_hash[] =
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

static const cd_field register_fields[] = {
	{ "email", F_EMAIL, F_REQUIRED, 3, 254, NULL },
	{ "password", F_STR, F_REQUIRED, 8, 200, NULL },
	{ "name", F_STR, F_REQUIRED, 1, 100, NULL },
};

static const cd_field login_fields[] = {
	{ "email", F_EMAIL, F_REQUIRED, 3, 254, NULL },
	{ "password", F_STR, F_REQUIRED, 1, 200, NULL },
};

/* Emails compare case-insensitively: store and look up lower-case. */
static const char *
lower(const char *s)
{
	char *p;

	for (p = (char *)s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

static void
signed_in(cd_req *r, int status)
{
	json_t *body = session_user_json(r->user);

	json_object_set_new(body, "csrfToken", json_string(r->user->csrf));
	resp_json(r, status, body);
}

static cd_err
do_register(cd_req *r)
{
	cd_value v[3];
	cd_buf hash = CD_BUF_INIT;
	long long id;
	bool created;
	cd_err err;

	if ((err = req_fields(r, register_fields, 3, v)) != CD_OK)
		return err;
	if (password_hash(v[1].s, &hash) != 0)
		return CD_INTERNAL;
	err = db_insert_once(&q_create, &created, &id, "sss", lower(v[0].s),
	    v[2].s, buf_cstr(&hash));
	buf_free(&hash);
	if (err != CD_OK)
		return err;
	if (!created)
		return req_fail(r, CD_CONFLICT, "email_taken",
		    "An account with this email already exists.");
	if ((err = session_start(r, id)) != CD_OK)
		return err;
	signed_in(r, 201);
	return CD_OK;
}

static cd_err
do_login(cd_req *r)
{
	cd_value v[2];
	json_t *row;
	bool ok;
	cd_err err;

	if ((err = req_fields(r, login_fields, 2, v)) != CD_OK)
		return err;
	if ((err = db_row(&q_by_email, &row, "s", lower(v[0].s))) != CD_OK)
		return err;
	ok = password_verify(v[1].s, row ? jstr(row, "password_hash") : dummy_hash);
	if (!ok || row == NULL) {
		json_decref(row);
		return req_fail(r, CD_UNAUTHORIZED, "invalid_credentials",
		    "The email or password is not correct.");
	}
	err = session_start(r, jint(row, "id"));
	json_decref(row);
	if (err != CD_OK)
		return err;
	signed_in(r, 200);
	return CD_OK;
}

static cd_err
do_logout(cd_req *r)
{
	cd_err err;

	if ((err = session_end(r)) != CD_OK)
		return err;
	resp_status(r, 204);
	return CD_OK;
}

static cd_err
do_me(cd_req *r)
{
	signed_in(r, 200);
	return CD_OK;
}

static const cd_route routes[] = {
	{ "POST", "/api/auth/register", do_register, R_ANON },
	{ "POST", "/api/auth/login", do_login, R_ANON },
	{ "POST", "/api/auth/logout", do_logout, R_USER },
	{ "GET", "/api/me", do_me, R_USER },
	{ "POST", "/api/admin/users/{id}", admin_user_update, R_ADMIN },
};

static const cd_app app = {
	"creditdesk-auth", routes, sizeof(routes) / sizeof(routes[0]), NULL, 0
};

int
main(void)
{
	return app_run(&app);
}
