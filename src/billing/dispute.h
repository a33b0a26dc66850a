/*
 * Disputed payments.  charge.dispute.created freezes what the payment
 * granted and is still unspent (the product's freeze hook: frozen units
 * cannot be spent), an inquiry's too; charge.dispute.updated records an
 * inquiry turned into a chargeback (its status: nothing may refund it
 * now).  charge.dispute.closed releases them when the money stays with us
 * (won, an inquiry's warning_closed, prevented); when it is lost they are
 * released and the payment is reversed like a full refund (the product's
 * reverse: never below what was used), and what could not be taken back is
 * recorded as the loss.  Each step is
 * one dispute_steps row (UNIQUE per dispute and step), plus the product's
 * own ledger or reversal rows, so redelivered events change nothing.
 * A dispute on an expert booking's payment marks the booking disputed (owed
 * to nobody), a close that keeps the money makes it owed again ('won'), lost
 * reverses the payment like a full refund (booking_disputed); its steps are
 * counted in cents.
 * Both take the dispute as retrieved from Stripe, with its charge (NULL
 * when Stripe has none): a subscription invoice's charge names the invoice
 * it paid, so no other call is needed to find the purchase.
 */
#ifndef CD_DISPUTE_H
#define CD_DISPUTE_H

#include <jansson.h>

#include "error.h"
#include "products.h"

/*
 * Whether the payment of the PaymentIntent in SQL column intent is being
 * charged back: a dispute of it still open that is not an inquiry
 * (warning_*, which may still be answered with a refund).  Any dispute of
 * the payment counts, also one that follows an inquiry.
 */
#define PAYMENT_CHARGED_BACK(intent) \
	"EXISTS (SELECT 1 FROM disputes cb WHERE cb.payment_intent_id = " intent \
	" AND cb.closed_at IS NULL AND cb.status NOT LIKE 'warning%')"
/* Whether a dispute of it closed lost: the bank took the money back. */
#define PAYMENT_DISPUTE_LOST(intent) \
	"EXISTS (SELECT 1 FROM disputes dl WHERE dl.payment_intent_id = " intent \
	" AND dl.closed_at IS NOT NULL AND dl.status = 'lost')"

cd_err	 dispute_opened(const json_t *dispute, const json_t *charge);
cd_err	 dispute_updated(const json_t *dispute, const json_t *charge);
cd_err	 dispute_closed(const json_t *dispute, const json_t *charge);

/*
 * Answers the bank for each open dispute we hold the evidence for
 * (creditdesk-reconcile), submitted once for each status that awaits a
 * response (an inquiry, then the chargeback the bank may turn it into):
 * - a payment we had refunded in full: the refund.  Unanswered, the bank
 *   decides for the customer, who would have the money back twice;
 * - a booking its customer cancelled, refunded in part (or not at all) by
 *   the cancellation policy: the cancel, when and how long before the
 *   session, and what the policy refunded.  Unanswered, the expert's share
 *   of the time held for the customer goes back with the rest.
 * *done counts those answered now; one Stripe refuses (closed, answered in
 * the Dashboard) is not asked again, one Stripe could not be reached is
 * asked next run.
 */
cd_err	 dispute_answer(long long *done);

/*
 * Whether the payment of the PaymentIntent in SQL column intent was given
 * back in full by refunds: a Checkout purchase's (its status), an expert
 * booking's (its payment's; a lost chargeback marks it too, but closes its
 * dispute) or a plan invoice's (its reversals' running total).
 */
#define PAYMENT_REFUNDED_IN_FULL(intent) \
	"(EXISTS (SELECT 1 FROM checkout_sessions rc WHERE rc.payment_intent_id = " \
	intent " AND rc.status = 'refunded') OR EXISTS (SELECT 1 FROM payments rp" \
	" WHERE rp.stripe_payment_intent_id = " intent " AND rp.status = 'refunded')" \
	" OR EXISTS (SELECT 1 FROM subscription_allocations ra WHERE" \
	" ra.payment_intent_id = " intent " AND " INVOICE_REFUNDED_CENTS("ra") \
	" >= ra.amount_cents))"

/*
 * Whether booking alias b was cancelled by its customer and refunded what
 * the cancellation policy gave, less than its price (nothing, late enough).
 */
#define BOOKING_CANCEL_REFUNDED_IN_PART(b) \
	"(" b ".status = 'cancelled_by_user' AND " b ".cancel_refund_cents <" \
	" " b ".price_cents AND " b ".refunded_cents = " b ".cancel_refund_cents)"

/* Whether dispute alias d is one dispute_answer has still to answer. */
#define DISPUTE_UNANSWERED(d) \
	"(" d ".closed_at IS NULL AND " d ".status IN ('warning_needs_response'," \
	" 'needs_response') AND NOT (" d ".answered_status <=> " d ".status) AND (" \
	PAYMENT_REFUNDED_IN_FULL(d ".payment_intent_id") " OR EXISTS (SELECT 1" \
	" FROM bookings cp WHERE cp.id = " d ".booking_id AND " \
	BOOKING_CANCEL_REFUNDED_IN_PART("cp") ")))"

/*
 * A refund of a payment whose dispute is still open (an inquiry is often
 * answered with a refund) takes from what the dispute holds: inside the
 * refund's transaction, dispute_hold_lift releases the hold before the
 * product's units are taken back and dispute_hold_again holds what is left
 * of the purchase, written to the dispute row (the guard a concurrent close
 * of the dispute also writes).  Without an open hold both do nothing.
 */
typedef struct dispute_hold {
	const cd_product	*product;
	const cd_checkout	*ck;
	const char		*dispute_id;	/* NULL: no open hold */
} dispute_hold;
cd_err	 dispute_hold_lift(const cd_product *, const cd_checkout *,
	    dispute_hold *);
cd_err	 dispute_hold_again(const dispute_hold *);

#endif
