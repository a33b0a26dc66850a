/*
 * The rules for what identifies an account and what may protect it, kept
 * apart from HTTP so the admin tool and the unit tests apply the very same
 * ones: how an email address is normalised, and which passwords are refused.
 */
#ifndef CD_ACCOUNT_RULES_H
#define CD_ACCOUNT_RULES_H

#include <stddef.h>

#include "buf.h"

#define CD_PASSWORD_MIN_CHARS 10

/*
 * The one spelling of an address: Unicode NFKC, lower-cased, surrounding
 * white space removed.  Accounts then compare byte for byte, so a look-alike
 * spelled with other characters stays a different account.  Returns 0, or -1
 * when s is not valid UTF-8 (out is left empty).
 */
int	 email_normalize(const char *s, size_t len, cd_buf *out);

typedef enum cd_pw_verdict {
	PW_OK = 0,
	PW_TOO_SHORT,		/* fewer than CD_PASSWORD_MIN_CHARS characters */
	PW_ONE_CHARACTER,	/* one character repeated */
	PW_GUESSABLE,		/* in, or built from, the common-password dictionary */
	PW_NO_DICTIONARY	/* the dictionary could not be read: an operator error */
} cd_pw_verdict;

/* Judges a new password (valid UTF-8); *reason gets the dictionary's words. */
cd_pw_verdict password_check(const char *password, const char **reason);

/*
 * How long sign-in stays refused after the failures-th failure in a row:
 * nothing below max_failures, then base seconds, doubling with each further
 * failure, never more than cap.
 */
long	 signin_lock_seconds(long failures, long max_failures, long base, long cap);

#endif
