/*
 * Booking payments: PaymentIntent outcomes, refunds; see booking_pay.h.
 *
 * Lock order, everywhere a booking changes state together with the slot it
 * holds: the expert's guard row first (written, see db.h), then bookings
 * and payments.  Creating a booking writes the same row before its overlap
 * check, so a booking that comes back from payment_failed can re-check its
 * slot without racing a new booking for it.
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "booking_pay.h"
#include "db.h"
#include "fulfil.h"
#include "log.h"
#include "stripe.h"

static cd_sql q_by_intent = CD_SQL(
    "SELECT p.id AS payment_id, p.booking_id, p.amount_cents,"
    " p.status AS payment_status, b.user_id, b.expert_id, b.status AS booking_status"
    " FROM payments p JOIN bookings b ON b.id = p.booking_id"
    " WHERE p.stripe_payment_intent_id = ?");
static cd_sql q_by_booking = CD_SQL(
    "SELECT p.id AS payment_id, p.booking_id, p.amount_cents,"
    " p.stripe_payment_intent_id, p.status AS payment_status, b.user_id,"
    " b.status AS booking_status"
    " FROM payments p JOIN bookings b ON b.id = p.booking_id WHERE p.booking_id = ?");
static cd_sql q_guard_expert = CD_SQL(
    "UPDATE experts SET version = version + 1 WHERE id = ?");
static cd_sql q_pay_succeeded = CD_SQL(
    "UPDATE payments SET status = 'succeeded'"
    " WHERE id = ? AND status IN ('pending', 'failed')");
static cd_sql q_pay_failed = CD_SQL(
    "UPDATE payments SET status = 'failed' WHERE id = ? AND status = 'pending'");
static cd_sql q_pay_refunded = CD_SQL(
    "UPDATE payments SET status = 'refunded' WHERE id = ? AND status <> 'refunded'");
static cd_sql q_book_scheduled = CD_SQL(
    "UPDATE bookings SET status = 'scheduled' WHERE id = ?"
    " AND status IN ('awaiting_payment', 'payment_failed') AND start_time > UTC_TIMESTAMP()");
static cd_sql q_book_failed = CD_SQL(
    "UPDATE bookings SET status = 'payment_failed'"
    " WHERE id = ? AND status = 'awaiting_payment'");
static cd_sql q_book_cancelled = CD_SQL(
    "UPDATE bookings SET status = 'cancelled_by_user'"
    " WHERE id = ? AND status IN ('awaiting_payment', 'scheduled')");
/* Other bookings that hold any part of this booking's slot. */
static cd_sql q_overlap_self = CD_SQL(
    "SELECT COUNT(*) AS n FROM bookings o JOIN bookings b ON b.id = ?"
    " WHERE o.expert_id = b.expert_id AND o.id <> b.id AND " BOOKING_HOLDS("o")
    " AND o.start_time < b.end_time AND o.end_time > b.start_time");
static cd_sql q_refund_row = CD_SQL(
    "INSERT INTO refunds (payment_id, stripe_refund_id, amount_cents, reason)"
    " VALUES (?, ?, ?, ?)");

static const char *
id_text(char *buf, size_t n, long long id)
{
	snprintf(buf, n, "%lld", id);
	return buf;
}

/* The payments row (joined with its booking) for a PaymentIntent. */
static cd_err
local_payment(const json_t *pi, json_t **row)
{
	const char *id = jstr(pi, "id");

	*row = NULL;
	if (!stripe_id_ok(id, "pi_"))
		return CD_NOT_FOUND;
	if (db_row(&q_by_intent, row, "s", id) != CD_OK)
		return CD_DB;
	return *row == NULL ? CD_NOT_FOUND : CD_OK;
}

/* Stripe's PaymentIntent must be for what we created: amount and currency. */
static bool
matches_local(const json_t *pi, const json_t *local)
{
	const char *cur = jstr(pi, "currency");

	return jint(pi, "amount") == jint(local, "amount_cents") &&
	    cur != NULL && strcmp(cur, "usd") == 0;
}

struct paid {
	const json_t	*pi;
	const json_t	*local;
};

static cd_err
paid_tx(void *arg)
{
	struct paid *p = arg;
	long long payment = jint(p->local, "payment_id");
	long long booking = jint(p->local, "booking_id");
	unsigned long long n, scheduled;
	json_t *row, *details;
	char idbuf[32];
	bool found;
	cd_err err;

	if ((err = db_guard(&q_guard_expert, &found, "i",
	    jint(p->local, "expert_id"))) != CD_OK)
		return err;
	/* The one transition: whoever changes the payments row wins. */
	if ((err = db_exec(&q_pay_succeeded, &n, "i", payment)) != CD_OK || n == 0)
		return err;
	/*
	 * The booking keeps (or, after a decline or an expired hold, takes
	 * back) its slot only if nobody else holds that time; we wrote the
	 * expert's guard row, so nobody can book it while we look.  Otherwise it is
	 * not scheduled, and the caller refunds the payment.
	 */
	if ((err = db_row(&q_overlap_self, &row, "i", booking)) != CD_OK)
		return err;
	n = (unsigned long long)jint(row, "n");
	json_decref(row);
	scheduled = 0;
	if (n == 0 && (err = db_exec(&q_book_scheduled, &scheduled, "i",
	    booking)) != CD_OK)
		return err;
	details = json_pack("{s:s,s:I,s:b}", "paymentIntent", jstr(p->pi, "id"),
	    "amountCents", (json_int_t)jint(p->local, "amount_cents"), "scheduled",
	    scheduled > 0);
	err = audit_write("BOOKING_PAID", "booking", id_text(idbuf, sizeof(idbuf),
	    booking), jint(p->local, "user_id"), details,
	    scheduled > 0 ? "info" : "warning");
	json_decref(details);
	return err;
}

cd_err
booking_payment_succeeded(const json_t *pi)
{
	struct paid p = { pi, NULL };
	json_t *local, *now = NULL;
	const char *bs, *ps;
	bool held;
	cd_err err;

	if ((err = local_payment(pi, &local)) != CD_OK)
		return err;
	if (strcmp(jstr(pi, "status") ?: "", "succeeded") != 0) {
		json_decref(local);
		return CD_OK;
	}
	if (!matches_local(pi, local)) {
		log_error("booking %lld: PaymentIntent %s amount or currency differs"
		    " from the local record", jint(local, "booking_id"), jstr(pi, "id"));
		json_decref(local);
		return CD_FORBIDDEN;
	}
	p.local = local;
	if ((err = db_tx(paid_tx, &p)) != CD_OK) {
		json_decref(local);
		return err;
	}
	/*
	 * Decided from the state, not from who won above, so that a caller
	 * that died between the two steps is made good by the next one.
	 */
	if ((err = db_row(&q_by_intent, &now, "s", jstr(pi, "id"))) == CD_OK &&
	    now != NULL) {
		bs = jstr(now, "booking_status");
		ps = jstr(now, "payment_status");
		held = strcmp(bs, "scheduled") == 0 || strcmp(bs, "completed") == 0;
		if (!held && strcmp(ps, "succeeded") == 0) {
			log_warn("booking %lld is %s but its payment succeeded: refunding",
			    jint(now, "booking_id"), bs);
			err = booking_refund(jint(now, "booking_id"), 0,
			    "booking_unavailable", false, NULL);
		}
	}
	json_decref(now);
	json_decref(local);
	return err;
}

bool
booking_intent_failed(const json_t *pi)
{
	const char *status = jstr(pi, "status") ?: "";
	const json_t *lpe = json_object_get(pi, "last_payment_error");

	return strcmp(status, "canceled") == 0 ||
	    (strcmp(status, "requires_payment_method") == 0 && json_is_object(lpe));
}

static cd_err
failed_tx(void *arg)
{
	const json_t *local = arg;
	unsigned long long n;
	json_t *details;
	char idbuf[32];
	cd_err err;

	if ((err = db_exec(&q_pay_failed, NULL, "i", jint(local, "payment_id"))) !=
	    CD_OK ||
	    (err = db_exec(&q_book_failed, &n, "i", jint(local, "booking_id"))) !=
	    CD_OK || n == 0)
		return err;
	details = json_pack("{s:I}", "amountCents",
	    (json_int_t)jint(local, "amount_cents"));
	err = audit_write("BOOKING_PAYMENT_FAILED", "booking", id_text(idbuf,
	    sizeof(idbuf), jint(local, "booking_id")), jint(local, "user_id"),
	    details, "warning");
	json_decref(details);
	return err;
}

cd_err
booking_payment_failed(const json_t *pi)
{
	json_t *local;
	cd_err err;

	if ((err = local_payment(pi, &local)) != CD_OK)
		return err;
	if (booking_intent_failed(pi))
		err = db_tx(failed_tx, local);
	json_decref(local);
	return err;
}

struct refund_rec {
	const json_t	*local;		/* q_by_booking / q_by_intent row */
	const char	*refund_id;	/* re_… (or the charge id, see below) */
	long long	 amount;
	const char	*reason;
	const char	*source;	/* "app" or "stripe" */
	long long	 user_id;	/* for the audit rows; 0 = the booking's */
	bool		 cancel;	/* also cancel the booking */
	bool		 release;	/* unpaid booking: release its slot */
};

/*
 * The refunds row, the payment and (optionally) the booking in one
 * transaction.  UNIQUE payment_id makes the app's own record of a refund and
 * the charge.refunded webhook for it one row, whichever commits first; the
 * guarded UPDATEs make the status changes and their audit rows happen once.
 */
static cd_err
refund_tx(void *arg)
{
	struct refund_rec *rr = arg;
	long long booking = jint(rr->local, "booking_id");
	long long user = rr->user_id ? rr->user_id : jint(rr->local, "user_id");
	unsigned long long n;
	json_t *details;
	char idbuf[32];
	bool fresh;
	cd_err err;

	id_text(idbuf, sizeof(idbuf), booking);
	if ((err = db_insert_once(&q_refund_row, &fresh, NULL, "isis",
	    jint(rr->local, "payment_id"), rr->refund_id, rr->amount, rr->reason)) !=
	    CD_OK)
		return err;
	if ((err = db_exec(&q_pay_refunded, NULL, "i",
	    jint(rr->local, "payment_id"))) != CD_OK)
		return err;
	if (fresh) {
		details = json_pack("{s:s,s:I,s:s,s:s}", "refund", rr->refund_id,
		    "amountCents", (json_int_t)rr->amount, "reason", rr->reason,
		    "source", rr->source);
		err = audit_write("REFUND_ISSUED", "booking", idbuf, user, details,
		    "warning");
		json_decref(details);
		if (err != CD_OK)
			return err;
	}
	if (rr->cancel) {
		if ((err = db_exec(&q_book_cancelled, &n, "i", booking)) != CD_OK ||
		    n == 0)
			return err;
		details = json_pack("{s:b}", "refunded", 1);
		err = audit_write("BOOKING_CANCELLED", "booking", idbuf, user,
		    details, "info");
		json_decref(details);
		return err;
	}
	if (rr->release) {
		if ((err = db_exec(&q_book_failed, &n, "i", booking)) != CD_OK ||
		    n == 0)
			return err;
		return audit_write("BOOKING_RELEASED", "booking", idbuf, user, NULL,
		    "warning");
	}
	return CD_OK;
}

cd_err
booking_refund(long long booking_id, long long user_id, const char *reason,
    bool cancel, bool *refunded)
{
	struct refund_rec rr;
	json_t *local, *params, *refund = NULL;
	char key[64];
	cd_err err;

	if (refunded != NULL)
		*refunded = false;
	if ((err = db_row(&q_by_booking, &local, "i", booking_id)) != CD_OK)
		return err;
	if (local == NULL || strcmp(jstr(local, "payment_status"), "succeeded") != 0) {
		json_decref(local);
		return CD_OK;
	}
	params = json_pack("{s:s,s:{s:s}}", "payment_intent",
	    jstr(local, "stripe_payment_intent_id"), "metadata", "booking_id",
	    id_text(key, sizeof(key), booking_id));
	if (cancel)
		json_object_set_new(params, "reason",
		    json_string("requested_by_customer"));
	snprintf(key, sizeof(key), "booking-%lld-refund", booking_id);
	err = stripe_call("POST", "/v1/refunds", params, key, &refund);
	json_decref(params);
	if (err != CD_OK || !stripe_id_ok(jstr(refund, "id"), "re_")) {
		log_error("booking %lld: refund failed", booking_id);
		json_decref(refund);
		json_decref(local);
		return err != CD_OK ? err : CD_STRIPE;
	}
	memset(&rr, 0, sizeof(rr));
	rr.local = local;
	rr.refund_id = jstr(refund, "id");
	rr.amount = jint(refund, "amount");
	rr.reason = reason;
	rr.source = "app";
	rr.user_id = user_id;
	rr.cancel = cancel;
	err = db_tx(refund_tx, &rr);
	if (err == CD_OK && refunded != NULL)
		*refunded = true;
	json_decref(refund);
	json_decref(local);
	return err;
}

cd_err
booking_refund_seen(const json_t *charge)
{
	const json_t *refunds = json_object_get(json_object_get(charge, "refunds"),
	    "data");
	const json_t *latest = json_array_get(refunds, 0);
	const char *intent = jstr(charge, "payment_intent");
	struct refund_rec rr;
	json_t *local;
	cd_err err;

	if (!stripe_id_ok(intent, "pi_") || !stripe_id_ok(jstr(charge, "id"), "ch_"))
		return CD_OK;
	if ((err = db_row(&q_by_intent, &local, "s", intent)) != CD_OK)
		return err;
	if (local == NULL)
		return CD_OK;		/* not a booking's charge */
	if (!json_is_true(json_object_get(charge, "refunded")) ||
	    jint(charge, "amount_refunded") < jint(local, "amount_cents")) {
		/* refunds holds one row per payment: a full refund only. */
		log_warn("booking %lld: charge %s partly refunded; not recorded",
		    jint(local, "booking_id"), jstr(charge, "id"));
		json_decref(local);
		return CD_OK;
	}
	memset(&rr, 0, sizeof(rr));
	rr.local = local;
	/*
	 * Stripe lists the charge's refunds newest first.  Where the list is
	 * not included (newer API versions need expand[]=refunds) the charge
	 * id stands in as the key: UNIQUE payment_id still keeps it one row.
	 */
	rr.refund_id = stripe_id_ok(jstr(latest, "id"), "re_") ? jstr(latest, "id") :
	    jstr(charge, "id");
	rr.amount = jint(charge, "amount_refunded");
	rr.reason = jstr(latest, "reason") ?: "refunded_in_stripe";
	rr.source = "stripe";
	/*
	 * A booking refunded before it was ever confirmed gives its slot back;
	 * a scheduled one stays as it is (the refund alone says nothing about
	 * the appointment) and is no longer paid out, as its payment is
	 * refunded.
	 */
	rr.release = true;
	err = db_tx(refund_tx, &rr);
	json_decref(local);
	return err;
}
