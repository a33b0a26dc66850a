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
#include "db.h"
#include "products.h"
#include "stripe.h"

static cd_sql q_mine = CD_SQL(
    "SELECT id, stripe_subscription_id, stripe_nonce, status, cancel_at_period_end"
    " FROM subscriptions WHERE id = ? AND user_id = ?");
static cd_sql q_state = CD_SQL(
    "SELECT id, plan_id, status, cancel_at_period_end,"
    " DATE_FORMAT(current_period_end, '%Y-%m-%dT%H:%i:%sZ') AS currentPeriodEnd"
    " FROM subscriptions WHERE id = ?");

struct cancel {
	cd_req		*r;
	const json_t	*local;
	const json_t	*stripe;	/* the updated subscription */
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
	    jstr(c->local, "stripe_subscription_id"), "currentPeriodEnd",
	    (json_int_t)jint(c->stripe, "current_period_end")));
	return audit_write("SUBSCRIPTION_CANCEL_REQUESTED", "subscription",
	    arena_printf(c->r->arena, "%lld", jint(c->local, "id")),
	    c->r->user->id, details, "info");
}

/* Our row as the page and the API show it. */
static cd_err
reply(cd_req *r, long long id)
{
	json_t *row;
	cd_err err;

	if ((err = db_row(&q_state, &row, "i", id)) != CD_OK)
		return err;
	json_object_set_new(row, "cancelAtPeriodEnd",
	    json_boolean(jint(row, "cancel_at_period_end") != 0));
	json_object_del(row, "cancel_at_period_end");
	resp_json(r, 200, row);
	return CD_OK;
}

cd_err
cancel_subscription(cd_req *r)
{
	struct cancel c = { r, NULL, NULL };
	json_t *local, *params, *sub = NULL;
	const char *sid;
	char key[160];
	cd_err err;

	if ((err = db_row(&q_mine, &local, "ii", r->ids[0], r->user->id)) != CD_OK)
		return err;
	if (local == NULL)
		return req_fail(r, CD_NOT_FOUND, "subscription_not_found",
		    "You have no such subscription.");
	req_own(r, local);
	if (strcmp(jstr(local, "status"), "active") != 0)
		return req_fail(r, CD_CONFLICT, "subscription_not_active",
		    "This subscription has already ended.");
	if (jint(local, "cancel_at_period_end") != 0)
		return reply(r, r->ids[0]);
	sid = jstr(local, "stripe_subscription_id");
	params = req_own(r, json_pack("{s:s}", "cancel_at_period_end", "true"));
	stripe_key(key, sizeof(key), "subscription", r->ids[0],
	    jstr(local, "stripe_nonce"), "cancel-at-period-end");
	err = stripe_call("POST", arena_printf(r->arena, "/v1/subscriptions/%s",
	    sid), params, key, &sub);
	req_own(r, sub);
	if (err != CD_OK)
		return err;
	if (!json_is_true(json_object_get(sub, "cancel_at_period_end")) &&
	    strcmp(jstr(sub, "status") ?: "", "canceled") != 0)
		return CD_STRIPE;
	c.local = local;
	c.stripe = sub;
	if ((err = db_tx(cancel_tx, &c)) != CD_OK)
		return err;
	return reply(r, r->ids[0]);
}
