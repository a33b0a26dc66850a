/*
 * The error table: status, default code and sentence per cd_err.
 */
#include "error.h"

static const struct {
	int		 status;
	const char	*code;
	const char	*message;
} errors[CD_ERR__COUNT] = {
	[CD_OK]			= { 200, "ok", "OK." },
	[CD_BAD_REQUEST]	= { 400, "bad_request", "The request is not valid." },
	[CD_UNAUTHORIZED]	= { 401, "not_signed_in", "Please sign in first." },
	[CD_PAYMENT_REQUIRED]	= { 402, "insufficient_credits", "You do not have enough credits." },
	[CD_FORBIDDEN]		= { 403, "forbidden", "You are not allowed to do that." },
	[CD_NOT_FOUND]		= { 404, "not_found", "Nothing was found at this address." },
	[CD_METHOD_NOT_ALLOWED]	= { 405, "method_not_allowed", "This method is not allowed here." },
	[CD_CONFLICT]		= { 409, "conflict", "The request conflicts with the current state." },
	[CD_TOO_LARGE]		= { 413, "body_too_large", "The request body is too large." },
	[CD_UNSUPPORTED_MEDIA]	= { 415, "unsupported_media_type", "Send the body as application/json." },
	[CD_TOO_MANY]		= { 429, "too_many_requests", "Too many attempts. Please wait and try again." },
	[CD_INTERNAL]		= { 500, "internal_error", "Something went wrong on our side." },
	[CD_STRIPE]		= { 502, "payment_provider_error", "The payment provider could not complete the request." },
	[CD_DB]			= { 503, "database_unavailable", "The service is temporarily unavailable. Please retry." },
};

static cd_err
clamp(cd_err e)
{
	return (unsigned)e < CD_ERR__COUNT ? e : CD_INTERNAL;
}

int
cd_err_status(cd_err e)
{
	return errors[clamp(e)].status;
}

const char *
cd_err_code(cd_err e)
{
	return errors[clamp(e)].code;
}

const char *
cd_err_message(cd_err e)
{
	return errors[clamp(e)].message;
}
