/*
 * Voice AI Therapy: one pack of minutes, for the premium (firewall) tier only.
 */
#include <string.h>

#include "checkout.h"

static const cd_field fields[] = {
	{ "session_id", F_ID, 0, 1, 64, NULL },
};

cd_err
buy_voice_therapy(cd_req *r)
{
	struct sale s = { 0 };
	json_t *session;
	cd_value v[1];
	cd_err err;

	if (!CD_USER_PREMIUM(r->user))
		return req_fail(r, CD_FORBIDDEN, "premium_required",
		    "Voice AI Therapy comes with a premium plan.");
	if ((err = req_fields(r, fields, 1, v)) != CD_OK ||
	    (err = load_product(r, "voice_therapy", &s)) != CD_OK)
		return err;
	s.quantity = 1;
	s.client_ref = v[0].s;
	if ((err = start_checkout(r, &s, &session)) != CD_OK)
		return err;
	hosted_reply(r, session);
	return CD_OK;
}
