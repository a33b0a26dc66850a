/*
 * creditdesk-auth: register, sign in, sign out, and who am I.  Changing the
 * password and signing out everywhere are in password.c, the per-account
 * sign-in throttle in throttle.c; admins change users' roles and tiers in
 * admin_users.c.
 */
#include <string.h>

#include "app.h"
#include "auth.h"
#include "crypto.h"
#include "db.h"
#include "session.h"
#include "user_store.h"

/* Compared against when the email is unknown, so both paths cost one scrypt. */
static const char dummy_hash[] =
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/* Emails arrive normalised (request.c): trimmed, NFKC, lower-case. */
static const cd_field register_fields[] = {
	{ "email", F_EMAIL, F_REQUIRED, 3, 254, NULL },
	{ "password", F_STR, F_REQUIRED, 1, 200, NULL },
	{ "name", F_TEXT, F_REQUIRED, 1, 100, NULL },
};

static const cd_field login_fields[] = {
	{ "email", F_EMAIL, F_REQUIRED, 3, 254, NULL },
	{ "password", F_STR, F_REQUIRED, 1, 200, NULL },
	{ "remember", F_BOOL, 0, 0, 1, NULL },
};

void
auth_signed_in(cd_req *r, int status)
{
	json_t *body = session_user_json(r->user);

	json_object_set_new(body, "csrfToken", json_string(r->user->csrf));
	resp_json(r, status, body);
}

/*
 * A new email and one already taken get the same answer, and cost the same
 * (one scrypt, one INSERT), so registration cannot tell anyone which
 * addresses have accounts.  A taken address's account is left untouched;
 * either way the next step is signing in.
 */
static cd_err
do_register(cd_req *r)
{
	cd_value v[3];
	cd_buf hash = CD_BUF_INIT;
	long long id;
	bool created;
	cd_err err;

	if ((err = req_fields(r, register_fields, 3, v)) != CD_OK ||
	    (err = password_acceptable(r, v[1].s)) != CD_OK)
		return err;
	if (password_hash(v[1].s, &hash) != 0)
		return CD_INTERNAL;
	err = ustore_create(v[0].s, v[2].s, buf_cstr(&hash), &created, &id);
	buf_free(&hash);
	if (err != CD_OK)
		return err;
	resp_json(r, 201, json_pack("{s:s}", "message",
	    "Thank you. Sign in with this email address and password to continue."));
	return CD_OK;
}

static cd_err
do_login(cd_req *r)
{
	cd_value v[3];
	user_login u;
	long wait;
	bool ok, found;
	cd_err err;

	if ((err = req_fields(r, login_fields, 3, v)) != CD_OK)
		return err;
	if ((err = throttle_attempt(v[0].s, &wait)) == CD_TOO_MANY)
		return throttle_refuse(r, wait);
	if (err != CD_OK)
		return err;
	if ((err = ustore_login_of(r->arena, v[0].s, &u, &found)) != CD_OK)
		return err;
	ok = password_verify(v[1].s, found && u.password_hash ? u.password_hash :
	    dummy_hash);
	if (!ok || !found)
		return req_fail(r, CD_UNAUTHORIZED, "invalid_credentials",
		    "The email or password is not correct.");
	if ((err = throttle_clear(v[0].s)) == CD_OK)
		err = session_start(r, u.id, v[2].present && v[2].i);
	if (err != CD_OK)
		return err;
	auth_signed_in(r, 200);
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
	auth_signed_in(r, 200);
	return CD_OK;
}

static const cd_route routes[] = {
	{ "POST", "/api/auth/register", do_register, R_ANON },
	{ "POST", "/api/auth/login", do_login, R_ANON },
	{ "POST", "/api/auth/logout", do_logout, R_USER },
	{ "POST", "/api/auth/logout-all", do_logout_all, R_USER },
	{ "POST", "/api/auth/password", do_change_password, R_USER },
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
