/*
 * POST /api/stripe/create-checkout: boost packs (one-time) and subscription
 * plans (monthly), both as embedded-mode Checkout Sessions for the user's
 * Stripe customer.
 *
 * One plan checkout can be paid at a time, so two tabs cannot buy two
 * plans: picking a plan asks Stripe about the user's plan checkouts still
 * open (recorded within the day Stripe keeps one open).  One for the same
 * plan is answered again; any other is expired, so it can no longer be
 * paid; one paid meanwhile is fulfilled and the new plan refused.  The new
 * session's Idempotency-Key names how many plan checkouts the user has
 * started (read before the open ones are listed), so requests at the same
 * moment are one at Stripe: the same plan gets the same session, another
 * plan 409 checkout_in_progress.
 */
#include <string.h>

#include "checkout.h"
#include "checkout_store.h"
#include "db.h"
#include "fulfil.h"
#include "products.h"
#include "stripe.h"

static const cd_field fields[] = {
	{ "purchaseType", F_ID, F_REQUIRED, 1, 32, "purchaseType is required." },
	{ "boostPackId", F_ID, 0, 1, 32, NULL },
	{ "planId", F_ID, 0, 1, 32, NULL },
	{ "session_id", F_ID, 0, 1, 64, NULL },
};

static cd_err
boost_sale(cd_req *r, const cd_value *id, struct sale *s)
{
	cd_buf desc = CD_BUF_INIT;
	pack_row pack;
	bool found;
	cd_err err;

	if (!id->present)
		return req_fail(r, CD_BAD_REQUEST, "boost_pack_required",
		    "Boost pack ID is required");
	if ((err = cstore_pack(r->arena, id->s, &pack, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "boost_pack_not_found",
		    "Boost pack not found");
	pack_description(&desc, NULL, pack.credits + pack.bonus_credits,
	    pack.bonus_credits);
	s->product = "boost_pack";
	s->item_code = pack.id;
	s->unit_amount = pack.price_cents;
	s->currency = pack.currency;
	s->name = pack.name;
	s->description = arena_strdup(r->arena, buf_cstr(&desc));
	s->audit_action = "BOOST_PACK_CHECKOUT_INITIATED";
	s->audit_extra = req_own(r, json_pack("{s:[s,s],s:s}", "flags", "SOC2",
	    "FINANCIAL", "boostPackId", s->item_code));
	buf_free(&desc);
	return CD_OK;
}

static cd_err
plan_sale(cd_req *r, const cd_value *id, struct sale *s)
{
	plan_row plan;
	bool found;
	cd_err err;

	if (!id->present)
		return req_fail(r, CD_BAD_REQUEST, "plan_required",
		    "Plan ID is required");
	if ((err = cstore_plan(r->arena, id->s, r->user->id, &plan, &found)) !=
	    CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "plan_not_found", "Plan not found");
	/* One plan at a time, as Billing offers: a second would charge twice. */
	if (plan.subscribed)
		return req_fail(r, CD_CONFLICT, "already_subscribed",
		    "You already have a plan (see Billing); a new one can start once it has ended.");
	s->product = "subscription";
	s->item_code = plan.id;
	s->unit_amount = plan.price_cents;
	s->currency = plan.currency;
	s->name = arena_printf(r->arena, "%s plan", plan.name);
	s->description = arena_printf(r->arena, "%lld Pilot Credits every month",
	    plan.monthly_credits);
	s->subscription = true;
	s->stripe_ref = arena_printf(r->arena, "plan-%lld", plan.checkouts);
	s->audit_action = "SUBSCRIPTION_CHECKOUT_INITIATED";
	s->audit_extra = req_own(r, json_pack("{s:[s,s],s:s}", "flags", "SOC2",
	    "FINANCIAL", "planId", s->item_code));
	return CD_OK;
}

static cd_err
already_paid(cd_req *r, const json_t *cs)
{
	cd_fulfilment f;
	cd_err err;

	if ((err = fulfil_session_object(cs, r->user->id, &f)) != CD_OK)
		return err;
	return req_fail(r, CD_CONFLICT, "already_subscribed",
	    "A plan you picked earlier has just been paid; see Billing.");
}

/*
 * Settles one open plan checkout p before a checkout for plan: *reuse is
 * set to it if it is for that plan and still open, else it is expired at
 * Stripe (or fulfilled, if it was paid).
 */
static cd_err
settle_open_plan(cd_req *r, const open_plan *p, const char *plan,
    json_t **reuse)
{
	const char *status;
	json_t *cs, *done;
	cd_err err;

	for (int look = 0; look < 2; look++) {
		err = fulfil_retrieve(p->stripe_session_id, &cs);
		req_own(r, cs);
		if (err != CD_OK)
			return err == CD_NOT_FOUND ? CD_OK : err;
		status = jstr(cs, "status") ?: "";
		if (strcmp(status, "complete") == 0)
			return already_paid(r, cs);
		if (strcmp(status, "expired") == 0)
			return fulfil_expired(p->stripe_session_id);
		if (strcmp(status, "open") != 0)
			return CD_OK;
		if (strcmp(p->item_code, plan) == 0 &&
		    jstr(cs, "client_secret") != NULL) {
			*reuse = cs;
			return CD_OK;
		}
		err = stripe_call("POST", arena_printf(r->arena,
		    "/v1/checkout/sessions/%s/expire", p->stripe_session_id),
		    NULL, NULL, &done);
		req_own(r, done);
		if (err == CD_OK)
			return CD_OK;
		/* refused: paid or expired meanwhile, so look again */
	}
	return CD_STRIPE;
}

static cd_err
settle_open_plans(cd_req *r, const char *plan, json_t **reuse)
{
	open_plan *rows;
	size_t i, n;
	cd_err err;

	*reuse = NULL;
	if ((err = cstore_open_plans(r->arena, r->user->id, &rows, &n)) != CD_OK)
		return err;
	for (i = 0; i < n && *reuse == NULL; i++)
		if ((err = settle_open_plan(r, &rows[i], plan, reuse)) != CD_OK)
			return err;
	return CD_OK;
}

/*
 * The session for sale s: a plan's open one again, or a new one.  A client
 * key already used is start_checkout's to answer (or refuse) as it stands.
 */
static cd_err
session_for(cd_req *r, struct sale *s, json_t **session)
{
	session_ref used;
	bool retry = false;
	cd_err err;

	if (s->client_ref != NULL && (err = cstore_session_by_ref(r->arena,
	    r->user->id, s->client_ref, &used, &retry)) != CD_OK)
		return err;
	if (s->subscription && !retry &&
	    ((err = settle_open_plans(r, s->item_code, session)) != CD_OK ||
	    *session != NULL))
		return err;
	err = start_customer_checkout(r, s, session);
	if (err == CD_STRIPE && s->subscription && stripe_idempotency_conflict())
		return req_fail(r, CD_CONFLICT, "checkout_in_progress",
		    "Another plan checkout was started at the same moment. Please try again.");
	return err;
}

cd_err
create_checkout(cd_req *r)
{
	struct sale s = { 0 };
	json_t *session;
	cd_value v[4];
	cd_err err;

	if ((err = req_fields(r, fields, 4, v)) != CD_OK)
		return err;
	if (strcmp(v[0].s, "boost_pack") == 0)
		err = boost_sale(r, &v[1], &s);
	else if (strcmp(v[0].s, "subscription") == 0)
		err = plan_sale(r, &v[2], &s);
	else
		return req_fail(r, CD_BAD_REQUEST, "invalid_purchase_type",
		    "purchaseType must be boost_pack or subscription.");
	if (err != CD_OK)
		return err;
	s.quantity = 1;
	s.embedded = true;
	s.client_ref = v[3].s;
	if ((err = session_for(r, &s, &session)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:O,s:O}", "sessionId",
	    json_object_get(session, "id"), "clientSecret",
	    json_object_get(session, "client_secret")));
	return CD_OK;
}
