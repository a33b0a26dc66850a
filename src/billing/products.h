/*
 * What a paid Checkout Session grants, one entry per product.  fulfil.c
 * calls grant() inside the fulfilment transaction; grant() inserts the
 * product's row under its UNIQUE stripe_session_id key and applies the
 * product's effects only if that insert created the row.  reverse() undoes
 * refunded units inside the refund transaction, never below what the user
 * has already used.
 *
 * The product functions take what they create (rows, JSON) from ck->arena,
 * whose cleanup list releases it when the caller's operation ends: each
 * function has one exit and no frees of its own.
 */
#ifndef CD_PRODUCTS_H
#define CD_PRODUCTS_H

#include <stdbool.h>
#include <jansson.h>

#include "arena.h"
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
	cd_arena	*arena;	/* owns what the product functions create */
	/*
	 * A subscription's purchase, as a dispute names it, is one paid
	 * invoice: this in_ id (stripe_session_id NULL, amount_cents what the
	 * invoice's charge paid); NULL for every Checkout purchase.
	 */
	const char	*invoice_id;
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
	/*
	 * A dispute: freezes what the payment granted and is still unspent
	 * (*units = frozen), or with release, unfreezes units.  *granted =
	 * the units the payment granted that still stand (less what refunds
	 * took back or are owed).  NULL: nothing to freeze.
	 */
	cd_err		(*freeze)(const cd_checkout *, bool release, long long units,
			    long long *frozen, long long *granted);
} cd_product;

/* A route for products whose purchases are shown on the billing page. */
cd_err	 route_billing(const cd_checkout *, char *out, size_t outlen);

extern const cd_product product_live_help;
extern const cd_product product_voice_therapy;
extern const cd_product product_boost_pack;
extern const cd_product product_subscription;
extern const cd_product product_consultation;

/*
 * "Name: 22,916 Pilot Credits (includes 2,083 bonus)", without the bonus
 * when there is none; name may be NULL.
 */
void	 pack_description(cd_buf *, const char *name, long long credits,
	    long long bonus);
/*
 * The statuses of a plan that has not ended (SQL, for status IN …): Billing
 * shows it, and it can be cancelled at period end or kept.  past_due: a
 * renewal's payment failed and Stripe tries it again.
 */
#define SUBSCRIPTION_LIVE "('active', 'trialing', 'past_due')"
/*
 * What refunds gave back of the invoice whose allocation alias is a: the
 * running total its reversals keep (named by the invoice's PaymentIntent).
 */
#define INVOICE_REFUNDED_CENTS(a) \
	"(SELECT COALESCE(MAX(ir.amount_cents), 0) FROM payment_reversals ir" \
	" WHERE ir.payment_intent_id = " a ".payment_intent_id" \
	" AND ir.product = 'subscription')"
/* Whether a live plan of the user whose id is SQL u includes the premium tier. */
#define PLAN_GIVES_PREMIUM(u) \
	"EXISTS (SELECT 1 FROM subscriptions ps JOIN subscription_plans pp" \
	" ON pp.id = ps.plan_id WHERE ps.user_id = " u " AND pp.tier = 'firewall'" \
	" AND ps.status IN " SUBSCRIPTION_LIVE ")"

/*
 * Whether consultation participant alias p still takes part: the customer,
 * and a mechanic only while its user is a mechanic, so a mechanic demoted no
 * longer reads or writes the rooms they took (the row stays: who served is
 * history; it counts again if they are made a mechanic again, unless another
 * mechanic took the consultation over meanwhile and the row became 'left').
 */
#define PARTICIPANT_STANDS(p) \
	"(" p ".role = 'customer' OR (" p ".role = 'mechanic' AND EXISTS (SELECT 1" \
	" FROM users pu WHERE pu.id = " p ".user_id AND pu.role = 'mechanic')))"
/*
 * Whether consultation alias s has a mechanic who still takes part; one
 * without (none yet, or theirs demoted) is in the mechanics' queue.
 */
#define SESSION_HAS_MECHANIC(s) \
	"EXISTS (SELECT 1 FROM session_participants pm WHERE pm.session_id = " \
	s ".id AND pm.role = 'mechanic' AND " PARTICIPANT_STANDS("pm") ")"
/*
 * Retrieves the invoice and its subscription from Stripe and, if the invoice
 * is paid, allocates the plan's monthly credits once for it.
 */
cd_err	 subscription_allocate_invoice(const char *invoice_id);
/*
 * The subscription invoice a charge (as Stripe returned it; may be NULL)
 * paid, as a purchase of ours (see cd_checkout.invoice_id), allocated first
 * if its invoice.paid was not handled yet (the only Stripe call: the
 * invoice); ck->invoice_id NULL when the charge paid no invoice of ours.
 */
cd_err	 subscription_purchase_of_charge(const json_t *charge, cd_arena *a,
	    cd_checkout *ck);
/*
 * Keeps our row of a subscription we sold in step with Stripe's: status
 * (canceled is final), period end (only later), cancel_at_period_end (in
 * the order of tickets; product_subscription.c).  subscription_sync takes a
 * ticket and retrieves it; subscription_sync_object takes an object Stripe
 * returned and the ticket taken before it was asked for (0: taken by no
 * one, e.g. a copy that came with an invoice).  subscription_ticket is 0
 * while we have no row of the subscription.
 */
cd_err	 subscription_sync(const char *subscription_id);
cd_err	 subscription_sync_object(const json_t *subscription, long long ticket);
cd_err	 subscription_ticket(const char *subscription_id, long long *ticket);
/*
 * charge.refunded for a subscription invoice's charge: takes back that
 * invoice's credits in proportion to the refund, once per cumulative
 * amount, never more than the user's balance.  Other charges: nothing.
 */
cd_err	 subscription_refund(const json_t *charge);

const cd_product *product_find(const char *name);

#endif
