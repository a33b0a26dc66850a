/*
 * The user's subscriptions: their status as Stripe last told us (cancelling
 * one goes through Stripe, so it lives in the checkout family:
 * src/checkout/subscription.c).
 */
#include "credits.h"
#include "credits_store.h"

cd_err
subscriptions_list(cd_req *r)
{
	json_t *rows;
	cd_err err;

	if ((err = crstore_subscriptions_json(r->user->id, &rows)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:o}", "subscriptions", rows));
	return CD_OK;
}
