/*
 * The auth family's statements on users: creating an account, reading what
 * signing in checks, the password hash, and an admin's role and tier change.
 * Every users statement of the family is declared once in user_store.c;
 * rows come back as C structs, strings in the caller's arena.  The sign-in
 * throttle's own table stays with throttle.c.
 */
#ifndef CD_USER_STORE_H
#define CD_USER_STORE_H

#include <stdbool.h>

#include "arena.h"
#include "error.h"

/* A new account (UNIQUE email): *created false if the email is taken. */
cd_err	 ustore_create(const char *email, const char *name, const char *hash,
	    bool *created, long long *id);
/* What signing in checks. */
typedef struct user_login {
	long long	 id;
	const char	*password_hash;
} user_login;
cd_err	 ustore_login_of(cd_arena *, const char *email, user_login *,
	    bool *found);
/* The user's password hash (NULL when there is no such user). */
cd_err	 ustore_hash(cd_arena *, long long user_id, const char **hash);
/* Sets the user's password hash; *found false if there is no such user. */
cd_err	 ustore_set_hash(long long user_id, const char *hash, bool *found);
/* A user's role and tier, read under the row's lock (FOR UPDATE). */
typedef struct user_rights {
	long long	 id;
	const char	*email, *role, *tier;
} user_rights;
cd_err	 ustore_lock_rights(cd_arena *, long long user_id, user_rights *,
	    bool *found);
cd_err	 ustore_set_rights(long long user_id, const char *role,
	    const char *tier);
/*
 * Takes the user's expert profile off the marketplace (experts.active = 0):
 * no new bookings; those already made stay theirs to complete.
 */
cd_err	 ustore_expert_off(long long user_id);
/*
 * Writes the acting admin's guard row (users.version) if the user is still
 * an admin; *still_admin false if not.  Every change an admin makes to
 * another user's rights writes it, so two admins demoting each other
 * conflict instead of both committing.
 */
cd_err	 ustore_guard_admin(long long admin_id, bool *still_admin);

#endif
