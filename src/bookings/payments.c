/*
 * The booking's payment after creation: confirm-payment asks Stripe for the
 * PaymentIntent (never trusting the browser) and applies what it says;
 * cancel refunds a paid booking or stops an unpaid one from being paid.
 * Both leave the decisions to booking_pay.c, the code the webhook runs too,
 * so the two paths race safely.
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "booking_pay.h"
#include "bookings.h"
#include "db.h"
#include "fulfil.h"
#include "log.h"
#include "stripe.h"

static cd_sql q_cancel_unpaid = CD_SQL(
    "UPDATE bookings SET status = 'cancelled_by_user'"
    " WHERE id = ? AND status IN ('awaiting_payment', 'scheduled')");
static cd_sql q_payment_dropped = CD_SQL(
    "UPDATE payments SET status = 'failed' WHERE booking_id = ? AND status = 'pending'");

/* Stripe's current PaymentIntent of a booking (request-owned). */
static cd_err
intent_of(cd_req *r, const json_t *booking, json_t **pi)
{
	const char *id = jstr(booking, "paymentIntentId");
	cd_err err;

	*pi = NULL;
	if (!stripe_id_ok(id, "pi_"))
		return CD_INTERNAL;
	err = stripe_retrieve("payment_intents", "pi_", id, pi);
	req_own(r, *pi);
	return err;
}

/* Applies Stripe's state of the PaymentIntent to the booking. */
static cd_err
apply_intent(cd_req *r, const json_t *pi)
{
	cd_err err = CD_OK;

	if (strcmp(jstr(pi, "status") ?: "", "succeeded") == 0)
		err = booking_payment_succeeded(pi);
	else if (booking_intent_failed(pi))
		err = booking_payment_failed(pi);
	if (err == CD_FORBIDDEN)
		return req_fail(r, CD_CONFLICT, "payment_mismatch",
		    "The payment does not match this booking.");
	return err;
}

cd_err
booking_confirm_payment(cd_req *r)
{
	json_t *booking, *pi;
	cd_err err;

	if ((err = booking_load_own(r, r->ids[0], &booking)) != CD_OK)
		return err;
	if (!json_is_null(json_object_get(booking, "paymentIntentId"))) {
		if ((err = intent_of(r, booking, &pi)) != CD_OK ||
		    (err = apply_intent(r, pi)) != CD_OK)
			return err;
	}
	return booking_respond(r, 200, r->ids[0], NULL, false);
}

struct cancel {
	cd_req		*r;
	long long	 id;
};

static cd_err
cancel_unpaid_tx(void *arg)
{
	struct cancel *c = arg;
	unsigned long long n;
	json_t *details;
	cd_err err;

	if ((err = db_exec(&q_cancel_unpaid, &n, "i", c->id)) != CD_OK || n == 0)
		return err;
	if ((err = db_exec(&q_payment_dropped, NULL, "i", c->id)) != CD_OK)
		return err;
	details = json_pack("{s:b}", "refunded", 0);
	err = audit_write("BOOKING_CANCELLED", "booking",
	    arena_printf(c->r->arena, "%lld", c->id), c->r->user->id, details,
	    "info");
	json_decref(details);
	return err;
}

/*
 * An unpaid booking's PaymentIntent is cancelled at Stripe before the
 * booking is, so that it can no longer be paid.  If it has been paid in the
 * meantime, the payment is applied first and the booking is then refunded
 * like any paid one.
 */
static cd_err
stop_intent(cd_req *r, const json_t *booking)
{
	const char *status;
	json_t *pi, *out = NULL;
	cd_err err;

	if ((err = intent_of(r, booking, &pi)) != CD_OK)
		return err;
	status = jstr(pi, "status") ?: "";
	if (strcmp(status, "succeeded") == 0)
		return apply_intent(r, pi);
	if (strcmp(status, "canceled") == 0)
		return CD_OK;
	err = stripe_call("POST", arena_printf(r->arena,
	    "/v1/payment_intents/%s/cancel", jstr(pi, "id")), NULL,
	    arena_printf(r->arena, "booking-%lld-pi-cancel", jint(booking, "id")),
	    &out);
	json_decref(out);
	if (err != CD_OK)
		return req_fail(r, CD_STRIPE, "stripe_error",
		    "The payment could not be stopped. Please try again.");
	return CD_OK;
}

cd_err
booking_cancel(cd_req *r)
{
	struct cancel c = { r, r->ids[0] };
	const char *status, *paid;
	json_t *booking;
	cd_err err;

	if ((err = booking_load_own(r, c.id, &booking)) != CD_OK)
		return err;
	status = jstr(booking, "status");
	if (strcmp(status, "awaiting_payment") == 0 &&
	    !json_is_null(json_object_get(booking, "paymentIntentId"))) {
		if ((err = stop_intent(r, booking)) != CD_OK ||
		    (err = booking_load_own(r, c.id, &booking)) != CD_OK)
			return err;
		status = jstr(booking, "status");
	}
	if (strcmp(status, "awaiting_payment") != 0 &&
	    strcmp(status, "scheduled") != 0 &&
	    strcmp(status, "cancelled_by_user") != 0)
		return req_fail(r, CD_CONFLICT, "booking_not_cancellable",
		    "Only a booking that is awaiting payment or scheduled can be cancelled.");
	/*
	 * A succeeded payment is refunded whatever the booking reads (it can
	 * read cancelled if a payment went through as the booking was being
	 * cancelled).  A second cancel finds the payment refunded and changes
	 * nothing; two cancels at once share the refund's Idempotency-Key, so
	 * Stripe makes one refund, and the refunds row's UNIQUE key one row.
	 */
	paid = jstr(booking, "paymentStatus");
	if (paid != NULL && strcmp(paid, "succeeded") == 0)
		err = booking_refund(c.id, r->user->id, "requested_by_customer",
		    true, NULL);
	else if (strcmp(status, "cancelled_by_user") != 0)
		err = db_tx(cancel_unpaid_tx, &c);
	if (err != CD_OK)
		return err;
	return booking_respond(r, 200, c.id, NULL, false);
}
