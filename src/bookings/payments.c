/*
 * The booking's payment after creation: confirm-payment asks Stripe for the
 * PaymentIntent (never trusting the browser) and applies what it says; pay
 * answers an unpaid hold's payment again, as Stripe has it now;
 * cancel refunds a paid booking by the cancellation policy (quoted first by
 * GET …/cancellation) or stops an unpaid one from being paid.
 * Both leave the decisions to booking_pay.c, the code the webhook runs too,
 * so the two paths race safely.
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "booking_pay.h"
#include "booking_store.h"
#include "bookings.h"
#include "calc.h"
#include "db.h"
#include "fulfil.h"
#include "log.h"
#include "stripe.h"

static const char *const tier_names[] = { "full", "partial", "started" };

/* Stripe's current PaymentIntent of a booking (request-owned). */
static cd_err
intent_of(cd_req *r, const booking_state *st, json_t **pi)
{
	const char *id = st->payment_intent;
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
	booking_state st;
	json_t *pi;
	cd_err err;

	if ((err = booking_own_state(r, r->ids[0], &st)) != CD_OK)
		return err;
	if (st.payment_intent != NULL) {
		if ((err = intent_of(r, &st, &pi)) != CD_OK ||
		    (err = apply_intent(r, pi)) != CD_OK)
			return err;
	}
	return booking_respond(r, 200, r->ids[0], NULL, false);
}

/* Why booking st, read after its PaymentIntent, cannot be paid for now. */
static cd_err
not_payable(cd_req *r, const booking_state *st)
{
	if (strcmp(st->status, "awaiting_payment") == 0 && st->started)
		return req_fail(r, CD_CONFLICT, "booking_started",
		    "This time has already started. Please pick another time.");
	if (strcmp(st->status, "awaiting_payment") == 0)
		return st->payment_intent == NULL ?
		    req_fail(r, CD_CONFLICT, "payment_not_ready",
		    "The payment for this booking is still being set up. Please try again in a moment.") :
		    req_fail(r, CD_CONFLICT, "hold_expired",
		    "This hold has expired. Please pick the time again.");
	if (strcmp(st->status, "payment_failed") == 0)
		return req_fail(r, CD_CONFLICT, "hold_released",
		    "This booking's hold was released. Please pick the time again.");
	return req_fail(r, CD_CONFLICT, "booking_not_payable",
	    "This booking is not awaiting payment.");
}

cd_err
booking_pay_again(cd_req *r, long long id)
{
	const char *secret = NULL, *status;
	booking_state st;
	json_t *pi;
	cd_err err;

	if ((err = booking_own_state(r, id, &st)) != CD_OK)
		return err;
	if (strcmp(st.status, "awaiting_payment") == 0 && st.payment_intent) {
		if ((err = intent_of(r, &st, &pi)) != CD_OK)
			return err;
		status = jstr(pi, "status") ?: "";
		if (strcmp(status, "succeeded") == 0 ||
		    strcmp(status, "canceled") == 0) {
			if ((err = apply_intent(r, pi)) != CD_OK ||
			    (err = booking_own_state(r, id, &st)) != CD_OK)
				return err;
		} else if (st.holds && !st.started &&
		    (secret = jstr(pi, "client_secret")) == NULL)
			return CD_STRIPE;
	}
	if (secret == NULL && strcmp(st.status, "scheduled") != 0)
		return not_payable(r, &st);
	return booking_respond(r, 200, id, secret, true);
}

cd_err
booking_pay(cd_req *r)
{
	return booking_pay_again(r, r->ids[0]);
}

struct cancel {
	cd_req		*r;
	long long	 id;
	bool		 decided;	/* paid: the policy's refund is fixed */
	bool		 scheduled;	/* still scheduled (and so, if undecided, started) */
	booking_split	 split;
};

static cd_err
cancel_unpaid_tx(void *arg)
{
	struct cancel *c = arg;
	bool done;
	cd_err err;

	if ((err = booking_cancel_unpaid(c->id, &done)) != CD_OK || !done)
		return err;
	return audit_write("BOOKING_CANCELLED", "booking",
	    arena_printf(c->r->arena, "%lld", c->id), c->r->user->id,
	    req_own(c->r, json_pack("{s:b}", "refunded", 0)), "info");
}

/*
 * An unpaid booking's PaymentIntent is cancelled at Stripe before the
 * booking is, so that it can no longer be paid.  If it has been paid in the
 * meantime, the payment is applied first and the booking is then refunded
 * like any paid one.
 */
static cd_err
stop_intent(cd_req *r, const booking_state *st)
{
	const char *status;
	json_t *pi, *out = NULL;
	char key[160];
	cd_err err;

	if ((err = intent_of(r, st, &pi)) != CD_OK)
		return err;
	status = jstr(pi, "status") ?: "";
	if (strcmp(status, "succeeded") == 0)
		return apply_intent(r, pi);
	if (strcmp(status, "canceled") == 0)
		return CD_OK;
	stripe_key(key, sizeof(key), "booking", st->id, st->nonce, "pi-cancel");
	err = stripe_call("POST", arena_printf(r->arena,
	    "/v1/payment_intents/%s/cancel", jstr(pi, "id")), NULL, key, &out);
	req_own(r, out);
	if (err != CD_OK)
		return req_fail(r, CD_STRIPE, "stripe_error",
		    "The payment could not be stopped. Please try again.");
	return CD_OK;
}

static cd_err
refuse_started(cd_req *r)
{
	return req_fail(r, CD_CONFLICT, "booking_started",
	    "This booking has started; it can no longer be cancelled.");
}

cd_err
booking_refuse_disputed(cd_req *r, const char *what)
{
	return req_fail(r, CD_CONFLICT, "payment_disputed", arena_printf(
	    r->arena, "Your bank is disputing this payment; the dispute decides"
	    " what becomes of the booking, so it cannot be %s until the dispute"
	    " closes.", what));
}

static cd_err
decide_tx(void *arg)
{
	struct cancel *c = arg;
	booking_decision d;
	booking_terms t;
	bool found;
	cd_err err;

	c->decided = c->scheduled = false;
	if ((err = booking_terms_of(c->id, &t, &found)) != CD_OK)
		return err;
	if (!found)
		return CD_NOT_FOUND;
	t.decided = -1;		/* decided below, under the row's write lock */
	booking_refund_quote(&t, &c->split);
	if ((err = bstore_decide_refund(c->id, c->split.refund, &d, &found)) !=
	    CD_OK || !found)
		return err;
	c->scheduled = d.scheduled;
	if (!d.decided)
		return CD_OK;
	c->decided = true;
	booking_refund_divide(t.price, t.fee, d.refund, &c->split);
	/* kept apart from the cancel's own row: its refund may fail and be retried */
	return !d.fresh ? CD_OK : audit_write("BOOKING_CANCEL_DECIDED", "booking",
	    arena_printf(c->r->arena, "%lld", c->id), c->r->user->id,
	    req_own(c->r, json_pack("{s:I}", "refundCents",
	    (json_int_t)d.refund)), "info");
}

/*
 * A paid booking is refunded by the policy: the amount is decided first
 * (decide_tx), then refunded and the booking cancelled.  Once it has started
 * it cannot be cancelled.  A payment that went through for a booking
 * cancelled while unpaid (nothing decided) is refunded in full.
 */
static cd_err
cancel_paid(struct cancel *c)
{
	cd_err err;

	if ((err = db_tx(decide_tx, c)) != CD_OK)
		return err;
	if (!c->decided && c->scheduled)
		return refuse_started(c->r);
	err = booking_refund(c->id, c->r->user->id, "requested_by_customer",
	    true, c->decided ? &c->split : NULL, NULL);
	/* charged back since the check: decided, and made once the dispute is won */
	return err == CD_STRIPE && stripe_charge_disputed() ?
	    booking_refuse_disputed(c->r, "cancelled") : err;
}

/* Started, by the policy's own clock rule (calc.c), whatever was paid. */
static bool
has_started(const booking_terms *t)
{
	booking_split split;

	return booking_refund_quote(t, &split) == CANCEL_STARTED;
}

/* 409 booking_started once booking id has started, by the database's clock. */
static cd_err
started(cd_req *r, long long id)
{
	booking_terms t;
	bool found;
	cd_err err;

	if ((err = booking_terms_of(id, &t, &found)) != CD_OK)
		return err;
	return found && has_started(&t) ? refuse_started(r) : CD_OK;
}

cd_err
booking_cancel(cd_req *r)
{
	struct cancel c = { r, r->ids[0], false, false, { 0, 0, 0 } };
	const char *status;
	bool paid;
	booking_state st;
	cd_err err;

	if ((err = booking_own_state(r, c.id, &st)) != CD_OK)
		return err;
	status = st.status;
	if (strcmp(status, "awaiting_payment") == 0 && st.payment_intent != NULL) {
		if ((err = stop_intent(r, &st)) != CD_OK ||
		    (err = booking_own_state(r, c.id, &st)) != CD_OK)
			return err;
		status = st.status;
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
	paid = st.payment_status != NULL &&
	    strcmp(st.payment_status, "succeeded") == 0;
	if (paid && st.charged_back)
		return booking_refuse_disputed(r, "cancelled");
	if (paid)
		err = cancel_paid(&c);
	else if (strcmp(status, "scheduled") == 0 && (err = started(r, c.id)) != CD_OK)
		return err;	/* a free booking that has started, as a paid one */
	else if (strcmp(status, "cancelled_by_user") != 0)
		err = db_tx(cancel_unpaid_tx, &c);
	if (err != CD_OK)
		return err;
	return booking_respond(r, 200, c.id, NULL, false);
}

/*
 * GET /api/bookings/{id}/cancellation: what cancelling now would give back,
 * by the same policy and clock the cancel itself uses.
 */
cd_err
booking_cancel_quote(cd_req *r)
{
	const char *status, *paid, *tier = "unpaid";
	booking_split split = { 0, 0, 0 };
	booking_terms t;
	bool cancellable, found;
	booking_state st;
	json_t *body;
	cd_err err;

	if ((err = booking_own_state(r, r->ids[0], &st)) != CD_OK ||
	    (err = booking_terms_of(r->ids[0], &t, &found)) != CD_OK)
		return err;
	if (!found)
		return CD_INTERNAL;
	status = st.status;
	paid = st.payment_status;
	cancellable = strcmp(status, "awaiting_payment") == 0 ||
	    strcmp(status, "scheduled") == 0;
	if (cancellable && paid != NULL && strcmp(paid, "succeeded") == 0) {
		/* charged back: as booking_cancel refuses, nothing quoted */
		tier = st.charged_back ? "disputed" :
		    tier_names[booking_refund_quote(&t, &split)];
		cancellable = !st.charged_back &&
		    !(t.decided < 0 && strcmp(tier, "started") == 0);
	} else if (strcmp(status, "scheduled") == 0 && has_started(&t)) {
		tier = "started";	/* free, and begun: as booking_cancel says */
		cancellable = false;
	} else if (!cancellable)
		tier = "none";
	body = json_pack("{s:I,s:s,s:b,s:s,s:I,s:I,s:I,s:{s:I,s:I}}",
	    "bookingId", (json_int_t)r->ids[0], "status", status,
	    "cancellable", cancellable, "tier", tier,
	    "priceCents", (json_int_t)t.price,
	    "refundCents", (json_int_t)split.refund,
	    "payoutReductionCents", (json_int_t)split.payout,
	    "policy", "fullRefundHours", (json_int_t)t.full_hours,
	    "lateRefundBps", (json_int_t)t.late_bps);
	resp_json(r, 200, body);
	return CD_OK;
}
