/*
 * The checkout family's statements: what is for sale (products, boost packs,
 * subscription plans), the local record of each Checkout Session, the
 * user's Stripe customer and nonce, the user's subscriptions and the
 * consultation a checkout opened.  Every statement of the family is declared
 * once in checkout_store.c; each row comes back as a C struct, strings in
 * the caller's arena.
 */
#ifndef CD_CHECKOUT_STORE_H
#define CD_CHECKOUT_STORE_H

#include <stdbool.h>

#include "arena.h"
#include "error.h"

/* A product for sale (products, active). */
typedef struct product_row {
	long long	 unit_amount;		/* cents */
	const char	*currency, *name, *description;
} product_row;
cd_err	 cstore_product(cd_arena *, const char *code, product_row *,
	    bool *found);
/* A boost pack for sale (boost_packs, active). */
typedef struct pack_row {
	const char	*id, *name;
	long long	 credits, bonus_credits, price_cents;
	const char	*currency;
} pack_row;
cd_err	 cstore_pack(cd_arena *, const char *id, pack_row *, bool *found);
/*
 * A subscription plan for sale (subscription_plans, active), and whether
 * the user already has a plan Billing shows (SUBSCRIPTION_LIVE).
 */
typedef struct plan_row {
	const char	*id, *name;
	long long	 monthly_credits, price_cents;
	const char	*currency;
	long long	 subscribed;	/* the user has a live plan */
	long long	 checkouts;	/* plan checkouts the user ever started */
} plan_row;
cd_err	 cstore_plan(cd_arena *, const char *id, long long user_id, plan_row *,
	    bool *found);
/* The user's plan checkouts recorded open within Stripe's day, oldest first. */
typedef struct open_plan {
	const char	*stripe_session_id, *item_code;
} open_plan;
cd_err	 cstore_open_plans(cd_arena *, long long user_id, open_plan **rows,
	    size_t *n);

/* A Checkout Session recorded for a client key, and what it sells. */
typedef struct session_ref {
	const char	*stripe_session_id, *product, *url, *client_secret;
	const char	*item_code;
	long long	 quantity;
	long long	 expired;	/* Stripe expired it: it can never be paid */
} session_ref;
cd_err	 cstore_session_by_ref(cd_arena *, long long user_id,
	    const char *client_ref, session_ref *, bool *found);
/* The local record of a new Checkout Session (UNIQUE stripe_session_id). */
typedef struct session_record {
	const char	*stripe_session_id;
	long long	 user_id;
	const char	*product, *item_code;
	long long	 quantity, amount_cents;
	const char	*currency, *mode, *client_ref, *url, *client_secret;
} session_record;
cd_err	 cstore_record_session(const session_record *, bool *created);

/* The user's nonce ("" if none yet); *found false if there is no user. */
cd_err	 cstore_user_nonce(cd_arena *, long long user_id, const char **nonce,
	    bool *found);
/* Stores the user's nonce unless one is stored already. */
cd_err	 cstore_set_user_nonce(long long user_id, const char *nonce);
/* The user's stored Stripe customer, or NULL. */
cd_err	 cstore_customer(cd_arena *, long long user_id, const char **customer);
/* Stores the customer unless one is stored already. */
cd_err	 cstore_set_customer(long long user_id, const char *customer);
/* Replaces the stored customer `gone` (only while it is still stored). */
cd_err	 cstore_replace_customer(long long user_id, const char *gone,
	    const char *customer);

/* The user's subscription as cancelling or changing its plan decides on it. */
typedef struct subscription_row {
	long long	 id;
	const char	*stripe_subscription_id, *nonce;
	long long	 live;		/* status IN SUBSCRIPTION_LIVE */
	long long	 cancel_at_period_end;
	long long	 past_due;	/* its renewal is being retried */
	const char	*renews_as;	/* the plan of its next renewal */
} subscription_row;
cd_err	 cstore_subscription_of(cd_arena *, long long id, long long user_id,
	    subscription_row *, bool *found);
/* A subscription as the page and the API show it. */
typedef struct subscription_view {
	long long	 id;
	const char	*plan_id, *renews_as, *status;
	long long	 cancel_at_period_end;
	const char	*current_period_end;	/* "YYYY-MM-DDTHH:MM:SSZ" or NULL */
} subscription_view;
cd_err	 cstore_subscription_view(cd_arena *, long long id,
	    subscription_view *, bool *found);

/* The consultation a Checkout Session opened for the user. */
typedef struct consultation_row {
	long long	 id;
	const char	*type;
} consultation_row;
cd_err	 cstore_consultation_of(cd_arena *, const char *stripe_session_id,
	    long long user_id, consultation_row *, bool *found);

#endif
