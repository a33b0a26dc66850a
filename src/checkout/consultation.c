/*
 * Consultations: Quick Chat (chat10), Live Video (video15) and Diagnostic.
 *
 * GET /api/checkout?plan= is a plain link on the explore page.  A GET never
 * changes anything, so it only shows the plan and its price on a page whose
 * button POSTs {plan} (with the CSRF token) to /api/checkout, which starts
 * the Checkout Session and answers {url, session_id} like every other buy.
 * resolve-by-stripe tells the page Stripe returns to which consultation a
 * checkout opened, fulfilling the checkout first when the webhook has not
 * arrived yet.
 */
#include <string.h>

#include "checkout.h"
#include "checkout_store.h"
#include "format.h"
#include "fulfil.h"
#include "holdings.h"
#include "page.h"

static const char *const plans[] = { "chat10", "video15", "diagnostic" };

static const cd_field plan_fields[] = {
	{ "plan", F_ID, F_REQUIRED, 1, 32,
	    "Choose a consultation plan: chat10, video15 or diagnostic." },
	{ "session_id", F_ID, 0, 1, 64, NULL },	/* client key for retries */
};

static const cd_field resolve_fields[] = {
	{ "session_id", F_ID, F_REQUIRED, 4, 255, NULL },
};

static bool
known_plan(const char *plan)
{
	size_t i;

	for (i = 0; i < sizeof(plans) / sizeof(plans[0]); i++)
		if (strcmp(plans[i], plan) == 0)
			return true;
	return false;
}

/* The plan asked for (query or JSON body), known and for sale, as a sale. */
static cd_err
plan_sale(cd_req *r, struct sale *s)
{
	cd_value v[2];
	cd_err err;

	if ((err = req_fields(r, plan_fields, 2, v)) != CD_OK)
		return err;
	if (!known_plan(v[0].s))
		return req_fail(r, CD_BAD_REQUEST, "invalid_plan",
		    "There is no consultation plan by that name: choose Quick Chat"
		    " (chat10), Live Video (video15) or Diagnostic.");
	if ((err = load_product(r, v[0].s, s)) != CD_OK)
		return err;
	s->product = "consultation";
	s->quantity = 1;
	s->client_ref = v[1].present ? v[1].s : NULL;
	return CD_OK;
}

/* GET: the plan, its price and a button that POSTs; an error is a page too. */
cd_err
checkout_plan_page(cd_req *r)
{
	struct sale s = { 0 };
	cd_buf price = CD_BUF_INIT;
	json_t *data;
	cd_err err;

	if ((err = plan_sale(r, &s)) != CD_OK)
		return err;
	format_cents(&price, s.unit_amount);
	data = req_own(r, json_pack("{s:s,s:s,s:s,s:s,s:s}", "title", s.name,
	    "plan", s.item_code, "name", s.name, "description",
	    s.description ? s.description : "", "price", buf_cstr(&price)));
	buf_free(&price);
	return page_render(r, 200, "checkout_plan", data);
}

/* POST {plan}: starts the Checkout Session; {url, session_id}. */
cd_err
checkout_plan(cd_req *r)
{
	struct sale s = { 0 };
	json_t *session;
	cd_err err;

	if ((err = plan_sale(r, &s)) != CD_OK ||
	    (err = start_checkout(r, &s, &session)) != CD_OK)
		return err;
	hosted_reply(r, session);
	return CD_OK;
}

/* The caller's consultation opened by this checkout, as {id, type, route}. */
static cd_err
find_mine(cd_req *r, const char *stripe_id, json_t **row)
{
	consultation_row c;
	char route[64];
	bool found;
	cd_err err;

	*row = NULL;
	if ((err = cstore_consultation_of(r->arena, stripe_id, r->user->id, &c,
	    &found)) != CD_OK || !found)
		return err;
	consultation_route(c.type, c.id, route, sizeof(route));
	*row = req_own(r, json_pack("{s:I,s:s?,s:s}", "id", (json_int_t)c.id,
	    "type", c.type, "route", route));
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
