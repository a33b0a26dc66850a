/*
 * POST /api/stripe/create-checkout: boost packs (one-time) and subscription
 * plans (monthly), both as embedded-mode Checkout Sessions for the user's
 * Stripe customer.
 */
#include <string.h>

#include "checkout.h"
#include "checkout_store.h"
#include "products.h"

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
	s->audit_action = "SUBSCRIPTION_CHECKOUT_INITIATED";
	s->audit_extra = req_own(r, json_pack("{s:[s,s],s:s}", "flags", "SOC2",
	    "FINANCIAL", "planId", s->item_code));
	return CD_OK;
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
	if ((err = start_customer_checkout(r, &s, &session)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:O,s:O}", "sessionId",
	    json_object_get(session, "id"), "clientSecret",
	    json_object_get(session, "client_secret")));
	return CD_OK;
}
