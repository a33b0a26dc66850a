/*
 * The auth family's pieces shared between its files: the sign-in throttle
 * (throttle.c), the password rules as HTTP answers and the password and
 * sign-out-everywhere routes (password.c), and the admins' user changes
 * (admin_users.c).
 */
#ifndef CD_AUTH_H
#define CD_AUTH_H

#include "request.h"

cd_err	 admin_user_update(cd_req *);

/*
 * Counts one sign-in attempt for a normalised email before its password is
 * checked.  CD_TOO_MANY (and *retry_after seconds) while the account is
 * refused; a database failure as usual.
 */
cd_err	 throttle_attempt(const char *email, long *retry_after);
/* The password was right: the account's failure count starts again. */
cd_err	 throttle_clear(const char *email);
/* throttle_attempt() answered for a request: 429 with Retry-After. */
cd_err	 throttle_refuse(cd_req *, long retry_after);

/* CD_OK, or a 400 naming what is wrong with a new password. */
cd_err	 password_acceptable(cd_req *, const char *password);

/* The signed-in answer: the user and the session's CSRF token. */
void	 auth_signed_in(cd_req *, int status);

cd_err	 do_change_password(cd_req *);
cd_err	 do_logout_all(cd_req *);

#endif
