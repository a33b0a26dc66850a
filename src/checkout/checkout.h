/*
 * The checkout family's shared machinery: what a sale is, and how a
 * Checkout Session is started and recorded for it.  Each product's request
 * handlers live in a file of their own and fill in a struct sale.
 */
#ifndef CD_CHECKOUT_H
#define CD_CHECKOUT_H

#include <stdbool.h>
#include <jansson.h>

#include "request.h"

/* What one Checkout Session sells. */
struct sale {
	const char	*product;	/* checkout_sessions.product */
	const char	*item_code;
	long long	 quantity;
	long long	 unit_amount;	/* cents */
	const char	*currency;
	const char	*name;
	const char	*description;
	bool		 subscription;
	bool		 embedded;	/* ui_mode embedded: clientSecret, no url */
	const char	*client_ref;	/* optional client key for retries */
	const char	*stripe_ref;	/* names the Stripe request, else client_ref */
	const char	*customer;	/* Stripe customer, or NULL */
	const json_t	*audit_extra;	/* merged into the audit details */
	const char	*audit_action;
};

/*
 * Creates (or, for a repeated client key, finds) the Checkout Session for s
 * and records it locally with its audit row.  *session is Stripe's object,
 * owned by the request.
 */
cd_err	 start_checkout(cd_req *, const struct sale *s, json_t **session);
/* Fills product, name, price and currency of s from the products table. */
cd_err	 load_product(cd_req *, const char *code, struct sale *s);
/* {url, session_id} for a hosted-page session. */
void	 hosted_reply(cd_req *, const json_t *session);

/*
 * start_checkout for the user's Stripe customer, created once and stored
 * (s->customer is set here, an arena string).
 * A stored customer Stripe no longer has (deleted on Stripe's side) is
 * replaced by a new one, stored, and the session is created for that.
 */
cd_err	 start_customer_checkout(cd_req *, struct sale *s, json_t **session);

cd_err	 buy_live_help(cd_req *);
cd_err	 buy_voice_therapy(cd_req *);
cd_err	 create_checkout(cd_req *);
cd_err	 checkout_plan(cd_req *);
cd_err	 checkout_plan_page(cd_req *);
cd_err	 resolve_by_stripe(cd_req *);
cd_err	 cancel_subscription(cd_req *);
cd_err	 resume_subscription(cd_req *);
cd_err	 change_subscription_plan(cd_req *);

#endif
