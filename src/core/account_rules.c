/*
 * Account rules; see account_rules.h.  Normalisation is libunistring's, the
 * common-password check is cracklib's FascistCheck against the dictionary
 * the cracklib-runtime package builds (a packaged list, not one of ours).
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <crack.h>
#include <unicase.h>
#include <uninorm.h>
#include <unistr.h>

#include "account_rules.h"

static int
is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

int
email_normalize(const char *s, size_t len, cd_buf *out)
{
	const uint8_t *in = (const uint8_t *)s;
	uint8_t *nfkc, *lower;
	size_t nlen, llen, a, b;

	buf_reset(out);
	if (u8_check(in, len) != NULL)
		return -1;
	/*
	 * NFKC first, so compatibility forms become the letters they stand for
	 * (U+210C "ℌ" is an "H"), then lower-case and normalise the result
	 * again: lower-casing can leave a string that is not in NFKC.
	 */
	if ((nfkc = u8_normalize(UNINORM_NFKC, in, len, NULL, &nlen)) == NULL)
		return -1;
	lower = u8_tolower(nfkc, nlen, NULL, UNINORM_NFKC, NULL, &llen);
	free(nfkc);
	if (lower == NULL)
		return -1;
	/* NFKC has already turned exotic spaces into U+0020. */
	for (a = 0; a < llen && is_space(lower[a]); a++)
		;
	for (b = llen; b > a && is_space(lower[b - 1]); b--)
		;
	buf_append(out, lower + a, b - a);
	buf_cstr(out);
	free(lower);
	return 0;
}

/* True when every character (not byte) is the first one again. */
static int
one_character(const char *pw, size_t len)
{
	int n = u8_mblen((const uint8_t *)pw, len);
	size_t i;

	if (n <= 0)
		return 0;
	for (i = (size_t)n; i + (size_t)n <= len; i += (size_t)n)
		if (memcmp(pw, pw + i, (size_t)n) != 0)
			return 0;
	return i == len;
}

/* Asked first, so that a missing dictionary is never mistaken for a weak password. */
static bool
dictionary_readable(void)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s.pwd", GetDefaultCracklibDict());
	return access(path, R_OK) == 0;
}

cd_pw_verdict
password_check(const char *password, const char **reason)
{
	size_t len = strlen(password);
	const char *why;

	*reason = NULL;
	if (u8_mbsnlen((const uint8_t *)password, len) < CD_PASSWORD_MIN_CHARS)
		return PW_TOO_SHORT;
	if (one_character(password, len))
		return PW_ONE_CHARACTER;
	if (!dictionary_readable())
		return PW_NO_DICTIONARY;
	if ((why = FascistCheck(password, GetDefaultCracklibDict())) == NULL)
		return PW_OK;
	*reason = why;
	return PW_GUESSABLE;
}

long
signin_lock_seconds(long failures, long max_failures, long base, long cap)
{
	long secs = base, n;

	if (failures < max_failures || base <= 0)
		return 0;
	for (n = failures - max_failures; n > 0 && secs < cap; n--)
		secs *= 2;
	return secs < cap ? secs : cap;
}
