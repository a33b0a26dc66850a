/*
 * Live Help: 1 to 5 hours at the unit price stored in products.
 */
#include "checkout.h"

static const cd_field buy_live_help_fields[] = {
	{ "quantity", F_INT, F_REQUIRED, 1, 5, "quantity is required (1 to 5 hours)." },
	{ "session_id", F_ID, 0, 1, 64, NULL },
};

cd_err
buy_live_help(cd_req *r)
{
	struct sale s = { 0 };
	json_t *session;
	cd_value v[2];
	cd_err err;

	if ((err = req_fields(r, buy_live_help_fields, 2, v)) != CD_OK ||
	    (err = load_product(r, "live_help", &s)) != CD_OK)
		return err;
	s.quantity = v[0].i;
	s.client_ref = v[1].s;
	s.description = arena_printf(r->arena, "%lld hour%s of Live Help",
	    s.quantity, s.quantity == 1 ? "" : "s");
	if ((err = start_checkout(r, &s, &session)) != CD_OK)
		return err;
	hosted_reply(r, session);
	return CD_OK;
}
