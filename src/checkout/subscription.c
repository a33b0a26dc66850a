/*
 * POST /api/subscriptions/{id}/cancel: the user's active subscription ends at
 * the end of the period already paid for; POST …/resume: it renews after
 * all; POST …/plan {planId}: it renews as another plan.  Stripe is told
 * first (under a ticket taken from the row just before, see
 * product_subscription.c); its answer goes onto our row in one transaction
 * with the audit row.  Asking for what the row already says changes nothing.
 *
 * A plan change moves no money now: the period paid for stays as bought,
 * and the subscription's item takes the new plan's price from the next
 * renewal (proration_behavior none), whose invoice names the plan (the
 * metadata item) and so allocates its credits and gives its tier.
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
	const char		*plan;		/* a plan change's, else NULL */
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
	if (c->plan != NULL)
		json_object_update(details, req_own(c->r, json_pack("{s:s,s:s}",
		    "from", c->local->renews_as, "to", c->plan)));
	return audit_write(c->plan != NULL ? "SUBSCRIPTION_PLAN_CHANGED" :
	    c->cancel ? "SUBSCRIPTION_CANCEL_REQUESTED" : "SUBSCRIPTION_RESUMED",
	    "subscription", arena_printf(c->r->arena, "%lld", c->local->id),
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
	resp_json(r, 200, json_pack("{s:I,s:s?,s:s?,s:s?,s:s?,s:b}", "id",
	    (json_int_t)v.id, "plan_id", v.plan_id, "renewsAs", v.renews_as,
	    "status", v.status,
	    "currentPeriodEnd", v.current_period_end,
	    "cancelAtPeriodEnd", v.cancel_at_period_end != 0));
	return CD_OK;
}

#define CHANGE_KEY_LEN 160

/* The Idempotency-Key of the change's call `what`, under its ticket. */
static void
change_key(const struct change *c, const char *what, char key[CHANGE_KEY_LEN])
{
	char action[96];

	snprintf(action, sizeof(action), "%s-%lld", what, c->ticket);
	stripe_key(key, CHANGE_KEY_LEN, "subscription", c->local->id,
	    c->local->nonce, action);
}

/* Tells Stripe cancel_at_period_end = c->cancel, under a new ticket. */
static cd_err
tell_stripe(struct change *c, json_t **sub)
{
	const subscription_row *local = c->local;
	char key[CHANGE_KEY_LEN];
	json_t *params;
	cd_err err;

	if ((err = subscription_ticket(local->stripe_subscription_id,
	    &c->ticket)) != CD_OK)
		return err;
	change_key(c, c->cancel ? "cancel-at-period-end" : "resume", key);
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

/* The user's subscription r->ids[0] while it lives, else its refusal. */
static cd_err
live_subscription(cd_req *r, subscription_row *local)
{
	bool found;
	cd_err err;

	if ((err = cstore_subscription_of(r->arena, r->ids[0], r->user->id,
	    local, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "subscription_not_found",
		    "You have no such subscription.");
	if (!local->live)	/* the plans Billing offers to cancel or keep */
		return ended(r);
	return CD_OK;
}

/* Stripe's answer onto our row with the audit row, then the row's view. */
static cd_err
changed(struct change *c, const json_t *sub)
{
	cd_err err;

	c->stripe = sub;
	if ((err = db_tx(change_tx, c)) != CD_OK)
		return err;
	return reply(c->r, c->r->ids[0]);
}

static cd_err
change(cd_req *r, bool cancel)
{
	struct change c = { r, cancel, NULL, NULL, 0, NULL };
	subscription_row local;
	json_t *sub = NULL;
	cd_err err;

	if ((err = live_subscription(r, &local)) != CD_OK)
		return err;
	if ((local.cancel_at_period_end != 0) == cancel)
		return reply(r, r->ids[0]);
	c.local = &local;
	if ((err = tell_stripe(&c, &sub)) != CD_OK)
		return ended_at_stripe(r, &local, err);
	if (json_is_true(json_object_get(sub, "cancel_at_period_end")) !=
	    cancel && strcmp(jstr(sub, "status") ?: "", "canceled") != 0)
		return CD_STRIPE;
	return changed(&c, sub);
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

static const cd_field plan_fields[] = {
	{ "planId", F_ID, F_REQUIRED, 1, 32, "planId is required." },
};

/*
 * The plan's price at Stripe (a new Price of its own product), then the
 * subscription's one item on that price from the next renewal, the plan
 * named in its metadata; each under a key of this ticket.
 */
static cd_err
tell_stripe_plan(struct change *c, const plan_row *plan, json_t **sub)
{
	const subscription_row *local = c->local;
	const char *path = arena_printf(c->r->arena, "/v1/subscriptions/%s",
	    local->stripe_subscription_id);
	json_t *now = NULL, *price = NULL, *params;
	char key[CHANGE_KEY_LEN];
	const char *item;
	cd_err err;

	if ((err = subscription_ticket(local->stripe_subscription_id,
	    &c->ticket)) != CD_OK)
		return err;
	err = stripe_retrieve("subscriptions", "sub_",
	    local->stripe_subscription_id, &now);
	req_own(c->r, now);
	if (err != CD_OK)
		return err;
	item = jstr(json_array_get(json_object_get(json_object_get(now, "items"),
	    "data"), 0), "id");
	if (item == NULL)
		return CD_STRIPE;
	change_key(c, arena_printf(c->r->arena, "price-%s", plan->id), key);
	params = req_own(c->r, json_pack("{s:s,s:I,s:{s:s},s:{s:s}}",
	    "currency", plan->currency, "unit_amount",
	    (json_int_t)plan->price_cents, "recurring", "interval", "month",
	    "product_data", "name", plan->name));
	err = stripe_call("POST", "/v1/prices", params, key, &price);
	req_own(c->r, price);
	if (err != CD_OK)
		return err;
	change_key(c, arena_printf(c->r->arena, "plan-%s", plan->id), key);
	params = req_own(c->r, json_pack("{s:[{s:s,s:s?}],s:s,s:{s:s}}", "items",
	    "id", item, "price", jstr(price, "id"), "proration_behavior", "none",
	    "metadata", "item", plan->id));
	err = stripe_call("POST", path, params, key, sub);
	req_own(c->r, *sub);
	return err;
}

cd_err
change_subscription_plan(cd_req *r)
{
	struct change c = { r, false, NULL, NULL, 0, NULL };
	subscription_row local;
	plan_row plan;
	json_t *sub = NULL;
	cd_value v;
	bool found;
	cd_err err;

	if ((err = req_fields(r, plan_fields, 1, &v)) != CD_OK ||
	    (err = live_subscription(r, &local)) != CD_OK)
		return err;
	if (local.cancel_at_period_end)
		return req_fail(r, CD_CONFLICT, "subscription_cancelled",
		    "This plan is cancelled at the end of its period: keep it first, then change it.");
	if (local.past_due)
		return req_fail(r, CD_CONFLICT, "subscription_past_due",
		    "This plan's renewal is still unpaid: change it once the renewal is paid.");
	if ((err = cstore_plan(r->arena, v.s, r->user->id, &plan, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "plan_not_found", "Plan not found");
	if (strcmp(local.renews_as, plan.id) == 0)
		return reply(r, r->ids[0]);
	c.local = &local;
	c.plan = plan.id;
	if ((err = tell_stripe_plan(&c, &plan, &sub)) != CD_OK)
		return ended_at_stripe(r, &local, err);
	if (strcmp(jstr(json_object_get(sub, "metadata"), "item") ?: "",
	    plan.id) != 0)
		return CD_STRIPE;
	return changed(&c, sub);
}
