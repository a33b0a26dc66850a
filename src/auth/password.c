/*
 * Changing the password and signing out everywhere.  Both end the user's
 * other sessions; a password change keeps the browser that made it signed
 * in, under a new token, so a stolen cookie dies with the old password.
 */
#include <string.h>

#include "account_rules.h"
#include "audit.h"
#include "auth.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "session.h"
#include "user_store.h"

static const cd_field change_fields[] = {
	{ "currentPassword", F_STR, F_REQUIRED, 1, 200, NULL },
	{ "newPassword", F_STR, F_REQUIRED, 1, 200, NULL },
};

cd_err
password_acceptable(cd_req *r, const char *password)
{
	const char *why;

	switch (password_check(password, &why)) {
	case PW_OK:
		return CD_OK;
	case PW_TOO_SHORT:
		return req_fail(r, CD_BAD_REQUEST, "invalid_password", arena_printf(
		    r->arena, "The password must be at least %d characters long.",
		    CD_PASSWORD_MIN_CHARS));
	case PW_ONE_CHARACTER:
		return req_fail(r, CD_BAD_REQUEST, "weak_password",
		    "The password must not be one character repeated.");
	case PW_GUESSABLE:
		return req_fail(r, CD_BAD_REQUEST, "weak_password", arena_printf(
		    r->arena, "This password is too easy to guess (%s). Choose another.",
		    why));
	default:
		log_error("password dictionary: %s", why ? why : "unreadable");
		return CD_INTERNAL;
	}
}

struct change {
	cd_req		*r;
	const char	*hash;
	cd_new_session	 s;
};

/* The new hash, the rotated session and the audit row commit together. */
static cd_err
change_tx(void *arg)
{
	struct change *c = arg;
	const cd_user *u = c->r->user;
	cd_err err;

	if ((err = ustore_set_hash(u->id, c->hash, NULL)) != CD_OK ||
	    (err = session_replace(c->r, &c->s)) != CD_OK)
		return err;
	return audit_write("PASSWORD_CHANGED", "user",
	    arena_printf(c->r->arena, "%lld", u->id), u->id, NULL, "info");
}

/* The current password, checked under the same throttle as signing in. */
static cd_err
check_current(cd_req *r, const char *password)
{
	const char *hash;
	long wait;
	cd_err err;

	if ((err = throttle_attempt(r->user->email, &wait)) == CD_TOO_MANY)
		return throttle_refuse(r, wait);
	if (err != CD_OK ||
	    (err = ustore_hash(r->arena, r->user->id, &hash)) != CD_OK)
		return err;
	if (hash == NULL || !password_verify(password, hash))
		return req_fail(r, CD_FORBIDDEN, "wrong_password",
		    "The current password is not correct.");
	return throttle_clear(r->user->email);
}

cd_err
do_change_password(cd_req *r)
{
	struct change c = { .r = r };
	cd_buf hash = CD_BUF_INIT;
	cd_value v[2];
	cd_err err;

	/* the cheap check of the new password before the costly one of the current */
	if ((err = req_fields(r, change_fields, 2, v)) != CD_OK ||
	    (err = password_acceptable(r, v[1].s)) != CD_OK)
		return err;
	if (strcmp(v[0].s, v[1].s) == 0)
		return req_fail(r, CD_BAD_REQUEST, "same_password",
		    "The new password is the one you have now: choose another.");
	if ((err = check_current(r, v[0].s)) != CD_OK ||
	    (err = session_new_token(&c.s)) != CD_OK)
		return err;
	if (password_hash(v[1].s, &hash) != 0)
		return CD_INTERNAL;
	c.hash = buf_cstr(&hash);
	err = db_tx(change_tx, &c);
	buf_free(&hash);
	if (err != CD_OK || (err = session_adopt(r, &c.s)) != CD_OK)
		return err;
	auth_signed_in(r, 200);
	return CD_OK;
}

cd_err
do_logout_all(cd_req *r)
{
	cd_err err;

	if ((err = session_end_all(r, r->user->id)) != CD_OK ||
	    (err = session_end(r)) != CD_OK)
		return err;
	resp_status(r, 204);
	return CD_OK;
}
