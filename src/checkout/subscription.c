/*
 * POST /api/subscriptions/{id}/cancel: the user's active subscription ends at
 * the end of the period already paid for.  Stripe is told first
 * (cancel_at_period_end, with the row's idempotency key); its answer, with the end
 * date, goes onto our row in one transaction with the audit row.  Asking
 * again changes nothing.
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "checkout.h"
#include "checkout_store.h"
#include "db.h"
#include "products.h"
#include "stripe.h"

struct cancel {
	cd_req			*r;
	const subscription_row	*local;
	const json_t		*stripe;	/* the updated subscription */
};

static cd_err
cancel_tx(void *arg)
{
	struct cancel *c = arg;
	json_t *details;
	cd_err err;

	if ((err = subscription_sync_object(c->stripe)) != CD_OK)
		return err;
	details = req_own(c->r, json_pack("{s:s,s:I}", "stripeSubscriptionId",
	    c->local->stripe_subscription_id, "currentPeriodEnd",
	    (json_int_t)jint(c->stripe, "current_period_end")));
	return audit_write("SUBSCRIPTION_CANCEL_REQUESTED", "subscription",
	    arena_printf(c->r->arena, "%lld", c->local->id),
	    c->r->user->id, details, "info");
}

/* Our row as the page and the API show it. */
static cd_err
reply(cd_req *r, long long id)
{
	subscription_view v;
	bool found;
	cd_err err;

	if ((err = cstore_subscription_view(r->arena, id, &v, &found)) != CD_OK)
		return err;
	if (!found)
		return CD_INTERNAL;
	resp_json(r, 200, json_pack("{s:I,s:s?,s:s?,s:s?,s:b}", "id",
	    (json_int_t)v.id, "plan_id", v.plan_id, "status", v.status,
	    "currentPeriodEnd", v.current_period_end,
	    "cancelAtPeriodEnd", v.cancel_at_period_end != 0));
	return CD_OK;
}

cd_err
cancel_subscription(cd_req *r)
{
	struct cancel c = { r, NULL, NULL };
	subscription_row local;
	json_t *params, *sub = NULL;
	const char *sid;
	char key[160];
	bool found;
	cd_err err;

	if ((err = cstore_subscription_of(r->arena, r->ids[0], r->user->id,
	    &local, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "subscription_not_found",
		    "You have no such subscription.");
	if (strcmp(local.status, "active") != 0)
		return req_fail(r, CD_CONFLICT, "subscription_not_active",
		    "This subscription has already ended.");
	if (local.cancel_at_period_end != 0)
		return reply(r, r->ids[0]);
	sid = local.stripe_subscription_id;
	params = req_own(r, json_pack("{s:s}", "cancel_at_period_end", "true"));
	stripe_key(key, sizeof(key), "subscription", r->ids[0],
	    local.nonce, "cancel-at-period-end");
	err = stripe_call("POST", arena_printf(r->arena, "/v1/subscriptions/%s",
	    sid), params, key, &sub);
	req_own(r, sub);
	if (err != CD_OK)
		return err;
	if (!json_is_true(json_object_get(sub, "cancel_at_period_end")) &&
	    strcmp(jstr(sub, "status") ?: "", "canceled") != 0)
		return CD_STRIPE;
	c.local = &local;
	c.stripe = sub;
	if ((err = db_tx(cancel_tx, &c)) != CD_OK)
		return err;
	return reply(r, r->ids[0]);
}
