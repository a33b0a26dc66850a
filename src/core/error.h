/*
 * The one error type.  Every fallible function returns a cd_err; the
 * dispatcher maps it to an HTTP status and the SPEC's JSON error body
 * {"error":{"code":…,"message":…}}.  A handler that wants a specific code or
 * sentence uses req_fail() (request.h), which records them on the request and
 * returns the enum.
 */
#ifndef CD_ERROR_H
#define CD_ERROR_H

typedef enum cd_err {
	CD_OK = 0,
	CD_BAD_REQUEST,		/* 400 */
	CD_UNAUTHORIZED,	/* 401 */
	CD_PAYMENT_REQUIRED,	/* 402: not enough credits */
	CD_FORBIDDEN,		/* 403 */
	CD_NOT_FOUND,		/* 404, also for other users' resources */
	CD_METHOD_NOT_ALLOWED,	/* 405 */
	CD_CONFLICT,		/* 409 */
	CD_TOO_LARGE,		/* 413 */
	CD_UNSUPPORTED_MEDIA,	/* 415 */
	CD_TOO_MANY,		/* 429: slow down (with Retry-After) */
	CD_INTERNAL,		/* 500 */
	CD_STRIPE,		/* 502: Stripe failed or refused */
	CD_DB,			/* 503: database unavailable */
	CD_ERR__COUNT
} cd_err;

int	 cd_err_status(cd_err);
const char *cd_err_code(cd_err);	/* default snake_case code */
const char *cd_err_message(cd_err);	/* default human sentence */

#endif
