/*
 * POST /api/subscriptions/{id}/cancel: the user's active subscription ends at
 * the end of the period already paid for; POST …/resume: it renews after
 * all.  Stripe is told first (cancel_at_period_end, under a ticket taken
 * from the row just before, see product_subscription.c); its answer goes
 * onto our row in one transaction with the audit row.  Asking for what the
 * row already says changes nothing.
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "checkout.h"
#include "checkout_store.h"
#include "db.h"
#include "products.h"
#include "stripe.h"

struct change {
	cd_req			*r;
	bool			 cancel;	/* else resume */
	const subscription_row	*local;
	const json_t		*stripe;	/* the updated subscription */
	long long		 ticket;
};

static cd_err
change_tx(void *arg)
{
	struct change *c = arg;
	json_t *details;
	cd_err err;

	if ((err = subscription_sync_object(c->stripe, c->ticket)) != CD_OK)
		return err;
	details = req_own(c->r, json_pack("{s:s,s:I}", "stripeSubscriptionId",
	    c->local->stripe_subscription_id, "currentPeriodEnd",
	    (json_int_t)jint(c->stripe, "current_period_end")));
	return audit_write(c->cancel ? "SUBSCRIPTION_CANCEL_REQUESTED" :
	    "SUBSCRIPTION_RESUMED", "subscription",
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

/* Tells Stripe cancel_at_period_end = c->cancel, under a new ticket. */
static cd_err
tell_stripe(struct change *c, json_t **sub)
{
	const subscription_row *local = c->local;
	json_t *params;
	char key[160], action[48];
	cd_err err;

	if ((err = subscription_ticket(local->stripe_subscription_id,
	    &c->ticket)) != CD_OK)
		return err;
	snprintf(action, sizeof(action), "%s-%lld", c->cancel ?
	    "cancel-at-period-end" : "resume", c->ticket);
	stripe_key(key, sizeof(key), "subscription", local->id, local->nonce,
	    action);
	params = req_own(c->r, json_pack("{s:s}", "cancel_at_period_end",
	    c->cancel ? "true" : "false"));
	err = stripe_call("POST", arena_printf(c->r->arena, "/v1/subscriptions/%s",
	    local->stripe_subscription_id), params, key, sub);
	req_own(c->r, *sub);
	return err;
}

static cd_err
ended(cd_req *r)
{
	return req_fail(r, CD_CONFLICT, "subscription_not_active",
	    "This subscription has already ended.");
}

/*
 * Stripe refused the change: if it has ended the plan and its event is
 * still to come here, our row learns it now and the answer is the 409 of a
 * plan that has ended; otherwise Stripe's error (err) stands.
 */
static cd_err
ended_at_stripe(cd_req *r, const subscription_row *local, cd_err err)
{
	subscription_row now;
	bool found;

	if (err != CD_STRIPE ||
	    subscription_sync(local->stripe_subscription_id) != CD_OK ||
	    cstore_subscription_of(r->arena, local->id, r->user->id, &now,
	    &found) != CD_OK || !found || now.live)
		return err;
	return ended(r);
}

static cd_err
change(cd_req *r, bool cancel)
{
	struct change c = { r, cancel, NULL, NULL, 0 };
	subscription_row local;
	json_t *sub = NULL;
	bool found;
	cd_err err;

	if ((err = cstore_subscription_of(r->arena, r->ids[0], r->user->id,
	    &local, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "subscription_not_found",
		    "You have no such subscription.");
	if (!local.live)	/* the plans Billing offers to cancel or keep */
		return ended(r);
	if ((local.cancel_at_period_end != 0) == cancel)
		return reply(r, r->ids[0]);
	c.local = &local;
	if ((err = tell_stripe(&c, &sub)) != CD_OK)
		return ended_at_stripe(r, &local, err);
	if (json_is_true(json_object_get(sub, "cancel_at_period_end")) !=
	    cancel && strcmp(jstr(sub, "status") ?: "", "canceled") != 0)
		return CD_STRIPE;
	c.stripe = sub;
	if ((err = db_tx(change_tx, &c)) != CD_OK)
		return err;
	return reply(r, r->ids[0]);
}

cd_err
cancel_subscription(cd_req *r)
{
	return change(r, true);
}

cd_err
resume_subscription(cd_req *r)
{
	return change(r, false);
}
