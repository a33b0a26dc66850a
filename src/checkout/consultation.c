/*
 * Consultations: Quick Chat (chat10), Live Video (video15) and Diagnostic.
 *
 * GET /api/checkout?plan= is a plain link on the explore page, so it answers
 * with a redirect to Stripe's hosted page rather than JSON; its errors are
 * still the JSON errors of every /api/ route.  resolve-by-stripe tells the
 * page Stripe returns to which consultation a checkout opened, fulfilling
 * the checkout first when the webhook has not arrived yet.
 */
#include <string.h>

#include "checkout.h"
#include "db.h"
#include "fulfil.h"
#include "products.h"

static const char *const plans[] = { "chat10", "video15", "diagnostic" };

static const cd_field plan_fields[] = {
	{ "plan", F_ID, F_REQUIRED, 1, 32,
	    "plan is required (chat10, video15 or diagnostic)." },
};

static const cd_field resolve_fields[] = {
	{ "session_id", F_ID, F_REQUIRED, 4, 255, NULL },
};

static cd_sql q_mine = CD_SQL(
    "SELECT id, type FROM sessions WHERE stripe_session_id = ? AND user_id = ?");

static bool
known_plan(const char *plan)
{
	size_t i;

	for (i = 0; i < sizeof(plans) / sizeof(plans[0]); i++)
		if (strcmp(plans[i], plan) == 0)
			return true;
	return false;
}

static cd_err
start_plan(cd_req *r)
{
	struct sale s = { 0 };
	const char *url;
	json_t *session;
	cd_value v[1];
	cd_err err;

	if ((err = req_query_fields(r, plan_fields, 1, v)) != CD_OK)
		return err;
	if (!known_plan(v[0].s))
		return req_fail(r, CD_BAD_REQUEST, "invalid_plan",
		    "plan must be chat10, video15 or diagnostic.");
	if ((err = load_product(r, v[0].s, &s)) != CD_OK)
		return err;
	s.product = "consultation";
	s.quantity = 1;
	if ((err = start_checkout(r, &s, &session)) != CD_OK)
		return err;
	if ((url = jstr(session, "url")) == NULL)
		return CD_STRIPE;
	resp_redirect(r, url);
	return CD_OK;
}

/* The route is R_PAGE (signed out → login), but its errors stay JSON. */
cd_err
checkout_plan(cd_req *r)
{
	cd_err err = start_plan(r);

	if (err != CD_OK)
		resp_error(r, err);
	return err;
}

/* The caller's consultation opened by this checkout, as {id, type, route}. */
static cd_err
find_mine(cd_req *r, const char *stripe_id, json_t **row)
{
	const cd_product *p = product_find("consultation");
	cd_checkout ck = { .stripe_session_id = stripe_id };
	char route[64];
	cd_err err;

	if ((err = db_row(&q_mine, row, "si", stripe_id, r->user->id)) != CD_OK ||
	    *row == NULL)
		return err;
	req_own(r, *row);
	if (p == NULL)
		return CD_INTERNAL;
	if ((err = p->route(&ck, route, sizeof(route))) != CD_OK)
		return err;
	json_object_set_new(*row, "route", json_string(route));
	return CD_OK;
}

cd_err
resolve_by_stripe(cd_req *r)
{
	cd_fulfilment f;
	json_t *row;
	cd_value v[1];
	cd_err err;

	if ((err = req_query_fields(r, resolve_fields, 1, v)) != CD_OK ||
	    (err = find_mine(r, v[0].s, &row)) != CD_OK)
		return err;
	if (row == NULL) {
		/* Not fulfilled yet, or not ours: fulfil_session tells which. */
		err = fulfil_session(v[0].s, r->user->id, &f);
		if (err != CD_OK && err != CD_NOT_FOUND)
			return err;
		if (err == CD_OK && (err = find_mine(r, v[0].s, &row)) != CD_OK)
			return err;
	}
	if (row == NULL)
		return req_fail(r, CD_NOT_FOUND, "consultation_not_found",
		    "No paid consultation was found for this checkout.");
	resp_json(r, 200, json_incref(row));
	return CD_OK;
}
