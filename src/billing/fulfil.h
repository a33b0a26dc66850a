/*
 * Fulfilment: turns a paid Checkout Session into what it bought, exactly
 * once, whoever gets there first: the webhook, confirm-payment, the success
 * page or the reconcile command.  The local record decides who and what;
 * Stripe's retrieved session decides whether it is paid.  The product's
 * UNIQUE key decides which caller's transaction counts.
 */
#ifndef CD_FULFIL_H
#define CD_FULFIL_H

#include <stdbool.h>
#include <jansson.h>

#include "error.h"
#include "products.h"

typedef struct cd_fulfilment {
	bool		 paid;		/* Stripe says the session is paid */
	bool		 granted_now;	/* this call made the grant */
	long long	 user_id;
	char		 product[32];
	char		 route[64];	/* /chat/{id}, /thank-you or /dashboard;
					   unpaid: pending, or the failure's notice */
} cd_fulfilment;

/*
 * GET the Checkout Session as fulfilment needs it: a subscription's first
 * invoice comes expanded, with its subscription expanded in it, so that
 * the invoice's credits are allocated from the same answer (one Stripe
 * call for the whole purchase; product_subscription.c, after).
 */
cd_err	 fulfil_retrieve(const char *stripe_session_id, json_t **session);
/*
 * Retrieves the session from Stripe (fulfil_retrieve) and fulfils it if paid.  user_id > 0
 * restricts it to that user's sessions (others are CD_NOT_FOUND, as is a
 * session we never created).
 */
cd_err	 fulfil_session(const char *stripe_session_id, long long user_id,
	    cd_fulfilment *out);
/* The same with Stripe's session object already retrieved. */
cd_err	 fulfil_session_object(const json_t *session, long long user_id,
	    cd_fulfilment *out);
/* charge.refunded: reverses what the refunded part of a charge granted. */
cd_err	 fulfil_refund(const json_t *charge);
/*
 * Our record of the Checkout Session a PaymentIntent paid, as a cd_checkout
 * whose strings live in arena a (ck->arena = a); ck->stripe_session_id is
 * NULL when no session of ours has this PaymentIntent.  A payment of ours
 * not fulfilled yet (its own events still to come) is fulfilled first,
 * which costs one Stripe call: the sessions it paid.
 */
cd_err	 fulfil_checkout_of_intent(const char *intent, cd_arena *a,
	    cd_checkout *ck);
/* Marks an open local session failed (async payment failed). */
cd_err	 fulfil_failed(const char *stripe_session_id);
/* Marks an open local session expired (Stripe says it is). */
cd_err	 fulfil_expired(const char *stripe_session_id);

/*
 * payment_reversals, which guards every refund's reversal (this module owns
 * its statements; subscriptions reverse through them too): reversal_open()
 * inserts the row of refund key (UNIQUE; *fresh false when it was there: the
 * refund was reversed already), reversal_units() records the units taken
 * back.  stripe_session_id may be NULL (an invoice's refund).  Inside the
 * caller's transaction.
 */
cd_err	 reversal_open(const char *key, const char *stripe_session_id,
	    const char *payment_intent, const char *product, long long cents,
	    bool *fresh);
cd_err	 reversal_units(const char *key, long long units);

#endif
