/*
 * What a paid Checkout Session grants, one entry per product.  fulfil.c
 * calls grant() inside the fulfilment transaction; grant() inserts the
 * product's row under its UNIQUE stripe_session_id key and applies the
 * product's effects only if that insert created the row.  reverse() undoes
 * refunded units inside the refund transaction, never below what the user
 * has already used.
 */
#ifndef CD_PRODUCTS_H
#define CD_PRODUCTS_H

#include <stdbool.h>
#include <jansson.h>

#include "buf.h"
#include "error.h"

/* The local record of a Checkout Session, with Stripe's facts about it. */
typedef struct cd_checkout {
	long long	 id;			/* checkout_sessions.id */
	const char	*stripe_session_id;
	long long	 user_id;
	const char	*product;
	const char	*item_code;
	long long	 quantity;
	long long	 amount_cents;
	const char	*payment_intent_id;	/* from Stripe; may be NULL */
	const json_t	*stripe;		/* Stripe's session object */
} cd_checkout;

typedef struct cd_product {
	const char	*name;	/* checkout_sessions.product */
	cd_err		(*grant)(const cd_checkout *, bool *granted);
	/* Takes back units for refunded_cents of amount_cents; *units = taken. */
	cd_err		(*reverse)(const cd_checkout *, long long refunded_cents,
			    long long *units);
	/* Where the buyer goes after paying; NULL means the dashboard. */
	cd_err		(*route)(const cd_checkout *, char *out, size_t outlen);
	/* Work that needs Stripe, after the grant committed; may be NULL. */
	cd_err		(*after)(const cd_checkout *);
} cd_product;

/* A route for products whose purchases are shown on the billing page. */
cd_err	 route_billing(const cd_checkout *, char *out, size_t outlen);

extern const cd_product product_live_help;
extern const cd_product product_voice_therapy;
extern const cd_product product_boost_pack;
extern const cd_product product_subscription;
extern const cd_product product_consultation;

/* "Name: 22,916 Pilot Credits (includes 2,083 bonus)"; name may be NULL. */
void	 pack_description(cd_buf *, const char *name, long long credits,
	    long long bonus);
/*
 * Retrieves the invoice and its subscription from Stripe and, if the invoice
 * is paid, allocates the plan's monthly credits once for it.
 */
cd_err	 subscription_allocate_invoice(const char *invoice_id);
/* Copies status, period end and cancel_at_period_end from Stripe's object. */
cd_err	 subscription_sync(const json_t *subscription);

const cd_product *product_find(const char *name);

#endif
