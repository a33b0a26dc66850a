/*
 * creditdesk-checkout: starts Stripe Checkout Sessions for every product and
 * confirms them when the buyer comes back (confirm-payment, success page);
 * cancels subscriptions at the end of their period.
 */
#include <string.h>

#include "app.h"
#include "checkout.h"
#include "fulfil.h"
#include "page.h"
#include "stripe.h"

static const cd_field confirm_fields[] = {
	{ "session_id", F_ID, F_REQUIRED, 4, 255, NULL },
	{ "status", F_ID, 0, 1, 32, NULL },
};

static cd_err
confirm_payment(cd_req *r)
{
	cd_fulfilment f;
	cd_value v[2];
	cd_err err;

	if ((err = req_query_fields(r, confirm_fields, 2, v)) != CD_OK)
		return err;
	if (v[1].present && strcmp(v[1].s, "success") != 0)
		return req_fail(r, CD_BAD_REQUEST, "payment_not_successful",
		    "The checkout was not completed.");
	if ((err = fulfil_session(v[0].s, r->user->id, &f)) != CD_OK)
		return err == CD_NOT_FOUND ? req_fail(r, err, "checkout_not_found",
		    "No checkout with this session id.") : err;
	resp_json(r, 200, json_pack("{s:b,s:b,s:s,s:s}", "paid", f.paid,
	    "fulfilledNow", f.granted_now, "product", f.product,
	    "route", f.route));
	return CD_OK;
}

/* The page Stripe sends the buyer back to: fulfil, then go where it belongs. */
static cd_err
success_page(cd_req *r)
{
	const char *id = req_query(r, "session_id");
	cd_fulfilment f;
	cd_err err;

	if (id == NULL || !stripe_id_ok(id, "cs_"))
		return req_fail(r, CD_NOT_FOUND, "checkout_not_found",
		    "No checkout with this session id.");
	if ((err = fulfil_session(id, r->user->id, &f)) != CD_OK)
		return err;
	resp_redirect(r, f.route);
	return CD_OK;
}

static const cd_route routes[] = {
	{ "POST", "/api/buy/live_help", buy_live_help, R_USER },
	{ "POST", "/api/stripe/voice-therapy", buy_voice_therapy, R_USER },
	{ "POST", "/api/stripe/create-checkout", create_checkout, R_USER },
	{ "GET", "/api/confirm-payment", confirm_payment, R_USER },
	{ "GET", "/checkout/success", success_page, R_USER | R_PAGE },
	{ "GET", "/api/checkout", checkout_plan_page, R_USER | R_PAGE },
	{ "POST", "/api/checkout", checkout_plan, R_USER },
	{ "GET", "/api/sessions/resolve-by-stripe", resolve_by_stripe, R_USER },
	{ "POST", "/api/subscriptions/{id}/cancel", cancel_subscription, R_USER },
	{ "POST", "/api/subscriptions/{id}/resume", resume_subscription, R_USER },
	{ "POST", "/api/subscriptions/{id}/plan", change_subscription_plan, R_USER },
};

static const cd_app app = {
	"creditdesk-checkout", routes, sizeof(routes) / sizeof(routes[0]),
	page_init, 0
};

int
main(void)
{
	return app_run(&app);
}
