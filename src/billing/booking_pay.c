/*
 * Booking payments: PaymentIntent outcomes, refunds; see booking_pay.h.
 *
 * Lock order, everywhere a booking changes state together with the slot it
 * holds: the expert's guard row first (booking_guard_expert, a write), then
 * bookings and payments.  Creating a booking takes the same lock before its overlap
 * check, so a booking paid after its hold expired (or after it gave up its
 * slot) can re-check its slot without racing a new booking for it.
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "booking_pay.h"
#include "calc.h"
#include "db.h"
#include "fulfil.h"
#include "log.h"
#include "stripe.h"

/* A booking's payment, as booking_payment (booking_pay.h) declares it. */
#define PAYMENT_COLS \
    "SELECT p.id, p.booking_id, p.amount_cents, p.stripe_payment_intent_id," \
    " p.status, b.user_id, b.expert_id, b.status, b.price_cents," \
    " b.platform_fee_cents, b.payout_cents, b.refunded_cents," \
    " b.payout_refunded_cents, b.destination_account, b.stripe_transfer_id," \
    " b.stripe_nonce, b.cancel_refund_cents IS NOT NULL" \
    " FROM payments p JOIN bookings b ON b.id = p.booking_id"
static cd_sql q_by_intent = CD_SQL(
    PAYMENT_COLS " WHERE p.stripe_payment_intent_id = ?");
static cd_sql q_by_booking = CD_SQL(PAYMENT_COLS " WHERE p.booking_id = ?");
static const cd_col payment_cols[] = {
	DB_INT(booking_payment, payment_id), DB_INT(booking_payment, booking_id),
	DB_INT(booking_payment, amount_cents),
	DB_TEXT(booking_payment, payment_intent),
	DB_TEXT(booking_payment, payment_status),
	DB_INT(booking_payment, user_id), DB_INT(booking_payment, expert_id),
	DB_TEXT(booking_payment, booking_status),
	DB_INT(booking_payment, price_cents), DB_INT(booking_payment, fee_cents),
	DB_INT(booking_payment, payout_cents),
	DB_INT(booking_payment, refunded_cents),
	DB_INT(booking_payment, payout_refunded_cents),
	DB_TEXT(booking_payment, destination_account),
	DB_TEXT(booking_payment, transfer_id), DB_TEXT(booking_payment, nonce),
	DB_INT(booking_payment, cancel_decided),
};
static cd_sql q_guard_expert = CD_SQL(
    "UPDATE experts SET booking_version = booking_version + 1 WHERE id = ?");
static cd_sql q_guard_active_expert = CD_SQL(
    "UPDATE experts SET booking_version = booking_version + 1 WHERE id = ? AND active = 1");
static cd_sql q_pay_succeeded = CD_SQL(
    "UPDATE payments SET status = 'succeeded', paid_at = UTC_TIMESTAMP(6)"
    " WHERE id = ? AND status IN ('pending', 'failed')");
static cd_sql q_pay_failed = CD_SQL(
    "UPDATE payments SET status = 'failed' WHERE id = ? AND status = 'pending'");
static cd_sql q_pay_dropped = CD_SQL(
    "UPDATE payments SET status = 'failed' WHERE booking_id = ? AND status = 'pending'");
/*
 * One declined attempt, counted once: each attempt has its own failed
 * charge, so a redelivered event (same charge) changes nothing.
 */
static cd_sql q_pay_declined = CD_SQL(
    "UPDATE payments SET status = 'failed', last_payment_error = ?,"
    " last_failed_charge = ?, failed_attempts = failed_attempts + 1"
    " WHERE id = ? AND status IN ('pending', 'failed')"
    " AND NOT (last_failed_charge <=> ?)");
static cd_sql q_pay_refunded = CD_SQL(
    "UPDATE payments SET status = IF(? >= amount_cents, 'refunded', 'partially_refunded')"
    " WHERE id = ? AND status NOT IN ('refunded', 'partially_refunded')");
static cd_sql q_book_refunded = CD_SQL(
    "UPDATE bookings SET refunded_cents = ?, fee_refunded_cents = ?,"
    " payout_refunded_cents = ? WHERE id = ? AND refunded_cents = 0");
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
    "INSERT INTO refunds (payment_id, stripe_refund_id, amount_cents, reason,"
    " stripe_transfer_reversal_id) VALUES (?, ?, ?, ?, ?)");
/* A destination charge's transfer and application fee, once it is paid. */
static cd_sql q_transfer = CD_SQL(
    "UPDATE bookings SET stripe_transfer_id = ?, stripe_application_fee_id = ?"
    " WHERE id = ? AND stripe_transfer_id IS NULL");
static cd_sql q_account = CD_SQL(
    "UPDATE experts SET charges_enabled = ?, payouts_enabled = ? WHERE stripe_account_id = ?");

/* A booking's dispute status, only forward (NULL -> open -> won | lost). */
static cd_sql q_dispute_open = CD_SQL(
    "UPDATE bookings SET dispute_status = 'open' WHERE id = ? AND dispute_status IS NULL");
static cd_sql q_dispute_close = CD_SQL(
    "UPDATE bookings SET dispute_status = ? WHERE id = ? AND dispute_status = 'open'");
/* Lost: the whole price reversed, from the fee and the payout. */
static cd_sql q_book_reversed = CD_SQL(
    "UPDATE bookings SET refunded_cents = price_cents, fee_refunded_cents ="
    " platform_fee_cents, payout_refunded_cents = payout_cents WHERE id = ?");
/* From any status: a dispute handled before the payment's own success too. */
static cd_sql q_pay_reversed = CD_SQL(
    "UPDATE payments SET status = 'refunded' WHERE id = ? AND status <> 'refunded'");
/*
 * The payment went back in full another way (a lost chargeback, a full
 * refund in Stripe's Dashboard): a booking whose cancel was decided and not
 * made is cancelled as its customer asked, nothing being left to refund.  A
 * lost chargeback (the second parameter 1) also cancels a booking that has
 * not started: its customer took the money back through their bank, so the
 * time is not theirs any more (a refund in the Dashboard may be goodwill).
 */
static cd_sql q_cancel_settled = CD_SQL(
    "UPDATE bookings b SET b.status = 'cancelled_by_user'"
    " WHERE b.id = ? AND (" BOOKING_CANCELLING("b") " OR (? AND"
    " b.status = 'scheduled' AND b.start_time > UTC_TIMESTAMP()))");

cd_err
booking_guard_expert(long long expert_id, bool active_only, bool *found)
{
	unsigned long long n = 0;
	cd_err err;

	err = db_exec(active_only ? &q_guard_active_expert : &q_guard_expert, &n,
	    "i", expert_id);
	*found = n == 1;	/* rows matched (CLIENT_FOUND_ROWS) */
	return err;
}

static const char *
id_text(char *buf, size_t n, long long id)
{
	snprintf(buf, n, "%lld", id);
	return buf;
}

/*
 * The payment and booking of a PaymentIntent (intent), or else of booking
 * booking_id; *found false if none.
 */
static cd_err
payment_of(const char *intent, long long booking_id, cd_arena *a,
    booking_payment *bp, bool *found)
{
	return intent != NULL ?
	    db_fetch_row(&q_by_intent, a, payment_cols, DB_NCOLS(payment_cols), bp,
	    sizeof(*bp), found, "s", intent) :
	    db_fetch_row(&q_by_booking, a, payment_cols, DB_NCOLS(payment_cols),
	    bp, sizeof(*bp), found, "i", booking_id);
}

static cd_err
payment_by_intent(const char *intent, cd_arena *a, booking_payment *bp,
    bool *found)
{
	return payment_of(intent, 0, a, bp, found);
}

/* The payments row (joined with its booking) for a PaymentIntent. */
static cd_err
local_payment(const json_t *pi, cd_arena *a, booking_payment *bp)
{
	const char *id = jstr(pi, "id");
	bool found;

	memset(bp, 0, sizeof(*bp));
	if (!stripe_id_ok(id, "pi_"))
		return CD_NOT_FOUND;
	if (payment_by_intent(id, a, bp, &found) != CD_OK)
		return CD_DB;
	return found ? CD_OK : CD_NOT_FOUND;
}

/* Stripe's PaymentIntent must be for what we created: amount and currency. */
static bool
matches_local(const json_t *pi, const booking_payment *local)
{
	const char *cur = jstr(pi, "currency");

	return jint(pi, "amount") == local->amount_cents &&
	    cur != NULL && strcmp(cur, "usd") == 0;
}

struct paid {
	const json_t		*pi;
	const booking_payment	*local;
	const json_t		*charge;	/* a destination charge's, else NULL */
	cd_arena		*arena;
};

static cd_err
paid_tx(void *arg)
{
	struct paid *p = arg;
	long long payment = p->local->payment_id;
	long long booking = p->local->booking_id;
	unsigned long long n, scheduled;
	long long overlaps;
	json_t *details;
	char idbuf[32];
	bool found;
	cd_err err;

	if ((err = booking_guard_expert(p->local->expert_id, false, &found)) !=
	    CD_OK)
		return err;
	/* A destination charge's transfer and fee ids, with the payment. */
	if (p->charge != NULL && jstr(p->charge, "transfer") != NULL &&
	    (err = db_exec(&q_transfer, NULL, "ssi", jstr(p->charge, "transfer"),
	    jstr(p->charge, "application_fee"), booking)) != CD_OK)
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
	if ((err = db_fetch_int(&q_overlap_self, &overlaps, "i", booking)) != CD_OK)
		return err;
	scheduled = 0;
	if (overlaps == 0 && (err = db_exec(&q_book_scheduled, &scheduled, "i",
	    booking)) != CD_OK)
		return err;
	details = arena_json(p->arena, json_pack("{s:s,s:I,s:b}", "paymentIntent",
	    jstr(p->pi, "id"), "amountCents", (json_int_t)p->local->amount_cents,
	    "scheduled", scheduled > 0));
	return audit_write("BOOKING_PAID", "booking", id_text(idbuf, sizeof(idbuf),
	    booking), p->local->user_id, details, scheduled > 0 ? "info" : "warning");
}

/*
 * A destination charge not yet recorded: the charge (its transfer, fee),
 * the one the caller already has (known) if it is the intent's latest.
 * A charge retrieved here belongs to arena a.
 */
static cd_err
destination_charge(const json_t *pi, const booking_payment *local,
    const json_t *known, cd_arena *a, const json_t **charge)
{
	const char *id = jstr(pi, "latest_charge");
	json_t *fetched = NULL;
	cd_err err;

	*charge = NULL;
	if (local->destination_account == NULL || local->transfer_id != NULL)
		return CD_OK;
	if (known != NULL && id != NULL && strcmp(jstr(known, "id") ?: "", id) == 0) {
		*charge = known;
		return CD_OK;
	}
	err = stripe_retrieve("charges", "ch_", id, &fetched);
	*charge = arena_json(a, fetched);
	return err;
}

cd_err
booking_account_seen(const json_t *account)
{
	return db_exec(&q_account, NULL, "iis",
	    json_is_true(json_object_get(account, "charges_enabled")) ? 1LL : 0LL,
	    json_is_true(json_object_get(account, "payouts_enabled")) ? 1LL : 0LL,
	    jstr(account, "id"));
}

cd_err
booking_payment_succeeded(const json_t *pi)
{
	return booking_payment_succeeded_with(pi, NULL);
}

/*
 * After the transition: a payment that succeeded for a booking that does
 * not hold its time is refunded.  Decided from the state, not from who won
 * the transition, so that a caller that died between the two steps is made
 * good by the next one.  A booking whose cancel decided its refund is the
 * cancel's: the policy's amount (perhaps 0), never the whole price here.
 */
static cd_err
refund_unheld(const json_t *pi, cd_arena *a)
{
	booking_payment now;
	const char *bs;
	bool found;
	cd_err err;

	if ((err = payment_by_intent(jstr(pi, "id"), a, &now, &found)) != CD_OK ||
	    !found)
		return err;
	bs = now.booking_status;
	if (strcmp(bs, "scheduled") == 0 || strcmp(bs, "completed") == 0 ||
	    now.cancel_decided || strcmp(now.payment_status, "succeeded") != 0)
		return CD_OK;
	log_warn("booking %lld is %s but its payment succeeded: refunding",
	    now.booking_id, bs);
	err = booking_refund(now.booking_id, 0, "booking_unavailable", false,
	    NULL, NULL);
	/* charged back already: the dispute gives the money back, not us */
	return err == CD_STRIPE && stripe_charge_disputed() ? CD_OK : err;
}

/* booking_payment_succeeded_with inside its arena a. */
static cd_err
succeeded_in(const json_t *pi, const json_t *known_charge, cd_arena *a)
{
	struct paid p = { pi, NULL, NULL, a };
	booking_payment local;
	cd_err err;

	if ((err = local_payment(pi, a, &local)) != CD_OK)
		return err;
	if (strcmp(jstr(pi, "status") ?: "", "succeeded") != 0)
		return CD_OK;
	if (!matches_local(pi, &local)) {
		log_error("booking %lld: PaymentIntent %s amount or currency differs"
		    " from the local record", local.booking_id, jstr(pi, "id"));
		return CD_FORBIDDEN;
	}
	p.local = &local;
	/* Stripe is asked before the transaction, never while it holds locks. */
	if ((err = destination_charge(pi, &local, known_charge, a, &p.charge)) !=
	    CD_OK || (err = db_tx(paid_tx, &p)) != CD_OK)
		return err;
	return refund_unheld(pi, a);
}

/*
 * The public entry points below each own one arena for the whole operation:
 * every row and JSON value they create is released when it ends.
 */
cd_err
booking_payment_succeeded_with(const json_t *pi, const json_t *known_charge)
{
	cd_arena *a = arena_new();
	cd_err err;

	err = succeeded_in(pi, known_charge, a);
	arena_free(a);
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

struct failed {
	const booking_payment	*local;
	const json_t		*pi;
	cd_arena		*arena;
};

/*
 * A canceled PaymentIntent can never be paid: the booking gives up its
 * slot (payment_failed).  A declined card (requires_payment_method with a
 * last_payment_error) only records the attempt: the booking keeps its hold
 * until it expires, and another card may still pay.
 */
static cd_err
failed_tx(void *arg)
{
	struct failed *f = arg;
	const booking_payment *local = f->local;
	const json_t *lpe = json_object_get(f->pi, "last_payment_error");
	bool canceled = strcmp(jstr(f->pi, "status") ?: "", "canceled") == 0;
	/* The attempt: its failed charge (or, without one, its payment method). */
	const char *charge = jstr(lpe, "charge") ?: jstr(f->pi, "latest_charge") ?:
	    jstr(json_object_get(lpe, "payment_method"), "id") ?: "-";
	char message[500], idbuf[32];
	unsigned long long n;
	json_t *details;
	cd_err err;

	snprintf(message, sizeof(message), "%s",
	    jstr(lpe, "message") ?: "The payment did not go through.");
	if (canceled) {
		if ((err = db_exec(&q_pay_failed, NULL, "i",
		    local->payment_id)) != CD_OK ||
		    (err = db_exec(&q_book_failed, &n, "i",
		    local->booking_id)) != CD_OK || n == 0)
			return err;
	} else if ((err = db_exec(&q_pay_declined, &n, "ssis", message, charge,
	    local->payment_id, charge)) != CD_OK || n == 0)
		return err;
	details = arena_json(f->arena, json_pack("{s:I,s:s,s:b}", "amountCents",
	    (json_int_t)local->amount_cents, "message", message, "holdKept",
	    !canceled));
	return audit_write("BOOKING_PAYMENT_FAILED", "booking", id_text(idbuf,
	    sizeof(idbuf), local->booking_id), local->user_id, details, "warning");
}

cd_err
booking_payment_failed(const json_t *pi)
{
	cd_arena *a = arena_new();
	booking_payment local;
	struct failed f = { &local, pi, a };
	cd_err err;

	if ((err = local_payment(pi, a, &local)) == CD_OK &&
	    booking_intent_failed(pi))
		err = db_tx(failed_tx, &f);
	arena_free(a);
	return err;
}

struct refund_rec {
	const booking_payment *local;	/* q_by_booking / q_by_intent row */
	const char	*refund_id;	/* re_… (or the charge id, see below) */
	const char	*reversal_id;	/* trr_… of a destination charge, or NULL */
	booking_split	 split;		/* refund 0: cancel without a refund */
	const char	*reason;
	const char	*source;	/* "app" or "stripe" */
	long long	 user_id;	/* for the audit rows; 0 = the booking's */
	bool		 cancel;	/* also cancel the booking */
	bool		 release;	/* unpaid booking: release its slot;
					   a decided cancel: settle it */
	cd_arena	*arena;		/* the operation's: audit details */
};

/*
 * The refunds row, and only if it is new, the booking's refunded cents and
 * the payment's status.
 */
static cd_err
record_refund(struct refund_rec *rr, bool *fresh)
{
	long long payment = rr->local->payment_id;
	cd_err err;

	if ((err = db_insert_once(&q_refund_row, fresh, NULL, "isiss", payment,
	    rr->refund_id, rr->split.refund, rr->reason, rr->reversal_id)) != CD_OK ||
	    !*fresh)
		return err;
	if ((err = db_exec(&q_book_refunded, NULL, "iiii", rr->split.refund,
	    rr->split.fee, rr->split.payout, rr->local->booking_id)) != CD_OK)
		return err;
	return db_exec(&q_pay_refunded, NULL, "ii", rr->split.refund, payment);
}

/* The whole price back: the whole fee and the whole payout. */
static booking_split
whole(const booking_payment *local)
{
	return (booking_split){ local->price_cents, local->fee_cents,
	    local->payout_cents };
}

/*
 * Booking row cancelled by a payment back in full ("by": dispute or stripe;
 * see q_cancel_settled); its own audit action, as no customer acted now.
 */
static cd_err
cancel_settled(const booking_payment *row, const char *by, cd_arena *a)
{
	unsigned long long n = 0;
	char idbuf[32];
	cd_err err;

	if ((err = db_exec(&q_cancel_settled, &n, "ii", row->booking_id,
	    (long long)(strcmp(by, "dispute") == 0))) !=
	    CD_OK || n == 0)
		return err;
	return audit_write("BOOKING_CANCEL_SETTLED", "booking",
	    id_text(idbuf, sizeof(idbuf), row->booking_id), row->user_id,
	    arena_json(a, json_pack("{s:s}", "refundedBy", by)), "info");
}

/* The booking's status change that goes with a refund, and its audit row. */
static cd_err
refund_status(struct refund_rec *rr, const char *booking, long long user)
{
	unsigned long long n;
	cd_err err;

	if (rr->cancel) {
		if ((err = db_exec(&q_book_cancelled, &n, "i",
		    rr->local->booking_id)) != CD_OK || n == 0)
			return err;
		return audit_write("BOOKING_CANCELLED", "booking", booking, user,
		    arena_json(rr->arena, json_pack("{s:b}", "refunded", 1)),
		    "info");
	}
	if (rr->release) {
		if ((err = cancel_settled(rr->local, "stripe", rr->arena)) !=
		    CD_OK || (err = db_exec(&q_book_failed, &n, "i",
		    rr->local->booking_id)) != CD_OK || n == 0)
			return err;
		return audit_write("BOOKING_RELEASED", "booking", booking, user, NULL,
		    "warning");
	}
	return CD_OK;
}

/*
 * A charge refunded in full after a partial refund of ours (the policy's
 * share at a cancel, then the rest in Stripe's Dashboard): the refunds row
 * stays the first one (one per payment), and the booking and the payment
 * take the rest, as a lost dispute does; the payment's move to refunded
 * makes it happen once.
 */
static cd_err
refund_rest(struct refund_rec *rr, const char *booking, long long user)
{
	const booking_payment *b = rr->local;
	unsigned long long n;
	json_t *details;
	cd_err err;

	if ((err = db_exec(&q_pay_reversed, &n, "i", b->payment_id)) != CD_OK ||
	    n == 0 || (err = db_exec(&q_book_reversed, NULL, "i",
	    b->booking_id)) != CD_OK)
		return err;
	details = arena_json(rr->arena, json_pack("{s:s,s:I,s:s,s:s}", "refund",
	    rr->refund_id, "amountCents", (json_int_t)(b->price_cents -
	    b->refunded_cents), "reason", rr->reason, "source", rr->source));
	return audit_write("REFUND_ISSUED", "booking", booking, user, details,
	    "warning");
}

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
	long long user = rr->user_id ? rr->user_id : rr->local->user_id;
	json_t *details;
	char idbuf[32];
	bool fresh;
	cd_err err;

	id_text(idbuf, sizeof(idbuf), rr->local->booking_id);
	if (rr->split.refund > 0 && (err = record_refund(rr, &fresh)) != CD_OK)
		return err;
	/* Stripe's full refund, seen after a refund already recorded. */
	if (rr->split.refund > 0 && !fresh && strcmp(rr->source, "stripe") == 0 &&
	    (err = refund_rest(rr, idbuf, user)) != CD_OK)
		return err;
	if (rr->split.refund > 0 && fresh) {
		details = arena_json(rr->arena, json_pack("{s:s,s:I,s:I,s:I,s:s,s:s}",
		    "refund", rr->refund_id, "amountCents",
		    (json_int_t)rr->split.refund, "platformFeeCents",
		    (json_int_t)rr->split.fee, "payoutCents",
		    (json_int_t)rr->split.payout, "reason", rr->reason, "source",
		    rr->source));
		if ((err = audit_write("REFUND_ISSUED", "booking", idbuf, user,
		    details, "warning")) != CD_OK)
			return err;
	}
	return refund_status(rr, idbuf, user);
}

/* What /v1/refunds is asked for: the cents, and a destination charge's parts. */
static json_t *
refund_params(const booking_payment *local, const struct refund_rec *rr,
    cd_arena *a)
{
	json_t *params;
	char id[32];

	/*
	 * The reason goes in the metadata too: charge.refunded may be handled
	 * before this call returns, and then records the refund with it.
	 */
	params = arena_json(a, json_pack("{s:s,s:I,s:{s:s,s:s}}", "payment_intent",
	    local->payment_intent, "amount", (json_int_t)rr->split.refund,
	    "metadata", "booking_id", id_text(id, sizeof(id), local->booking_id),
	    "reason", rr->reason));
	if (rr->cancel)
		json_object_set_new(params, "reason",
		    json_string("requested_by_customer"));
	/* A destination charge gives back the transfer and the fee in proportion. */
	if (local->destination_account != NULL) {
		json_object_set_new(params, "reverse_transfer", json_true());
		json_object_set_new(params, "refund_application_fee", json_true());
	}
	return params;
}

/* booking_refund inside its arena (rr->arena), from the local payment on. */
static cd_err
refund_in(struct refund_rec *rr, bool *refunded)
{
	const booking_payment *local = rr->local;
	json_t *refund = NULL;
	char key[160];
	cd_err err;

	if (rr->split.refund == 0)	/* nothing to give back: cancel only */
		return rr->cancel ? db_tx(refund_tx, rr) : CD_OK;
	stripe_key(key, sizeof(key), "booking", local->booking_id, local->nonce,
	    "refund");
	err = stripe_call("POST", "/v1/refunds", refund_params(local, rr,
	    rr->arena), key, &refund);
	arena_json(rr->arena, refund);
	if (err != CD_OK || !stripe_id_ok(jstr(refund, "id"), "re_")) {
		log_error("booking %lld: refund failed", local->booking_id);
		return err != CD_OK ? err : CD_STRIPE;
	}
	rr->refund_id = jstr(refund, "id");
	rr->reversal_id = jstr(refund, "transfer_reversal");
	if (jint(refund, "amount") != rr->split.refund)
		log_error("booking %lld: Stripe refunded %lld, not %lld cents",
		    local->booking_id, jint(refund, "amount"), rr->split.refund);
	if ((err = db_tx(refund_tx, rr)) == CD_OK && refunded != NULL)
		*refunded = true;
	return err;
}

cd_err
booking_refund(long long booking_id, long long user_id, const char *reason,
    bool cancel, const booking_split *part, bool *refunded)
{
	cd_arena *a = arena_new();
	struct refund_rec rr;
	booking_payment local;
	bool found;
	cd_err err;

	if (refunded != NULL)
		*refunded = false;
	memset(&rr, 0, sizeof(rr));
	/*
	 * A cancel decided after the payment went back in full another way
	 * (Stripe's Dashboard, a lost chargeback): nothing left to refund, the
	 * booking is cancelled only.
	 */
	if ((err = payment_of(NULL, booking_id, a, &local, &found)) == CD_OK &&
	    found && (strcmp(local.payment_status, "succeeded") == 0 ||
	    (cancel && strcmp(local.payment_status, "refunded") == 0))) {
		rr.local = &local;
		rr.split = strcmp(local.payment_status, "refunded") == 0 ?
		    (booking_split){ 0, 0, 0 } : part != NULL ? *part : whole(&local);
		rr.reason = reason;
		rr.source = "app";
		rr.user_id = user_id;
		rr.cancel = cancel;
		rr.arena = a;
		err = refund_in(&rr, refunded);
	}
	arena_free(a);
	return err;
}

/*
 * A charge's full refund onto its booking's payment (rr->local); only
 * partly refunded: logged, not recorded.
 */
static cd_err
refund_seen_in(const json_t *charge, struct refund_rec *rr)
{
	const json_t *refunds = json_object_get(json_object_get(charge, "refunds"),
	    "data");
	const json_t *latest = json_array_get(refunds, 0);

	if (!json_is_true(json_object_get(charge, "refunded")) ||
	    jint(charge, "amount_refunded") < rr->local->amount_cents) {
		/* refunds holds one row per payment: a full refund only. */
		log_warn("booking %lld: charge %s partly refunded; not recorded",
		    rr->local->booking_id, jstr(charge, "id"));
		return CD_OK;
	}
	/*
	 * Stripe lists the charge's refunds newest first.  Where the list is
	 * not included (newer API versions need expand[]=refunds) the charge
	 * id stands in as the key: UNIQUE payment_id still keeps it one row.
	 */
	rr->refund_id = stripe_id_ok(jstr(latest, "id"), "re_") ?
	    jstr(latest, "id") : jstr(charge, "id");
	rr->split = whole(rr->local);
	/* Ours (refund_params) when we asked for it, else Stripe's. */
	rr->reason = jstr(json_object_get(latest, "metadata"), "reason") ?:
	    jstr(latest, "reason") ?: "refunded_in_stripe";
	rr->source = "stripe";
	/*
	 * Our own cancel's refund (its metadata says so), seen before our
	 * record of it: the booking is cancelled as the app would
	 * (BOOKING_CANCELLED).  Else a booking refunded before it was ever
	 * confirmed gives its slot back; one whose cancel was decided is
	 * cancelled (cancel_settled); a scheduled one stays as it is (the
	 * refund alone says nothing about the appointment) and is no longer
	 * paid out, as its payment is refunded.
	 */
	rr->cancel = strcmp(jstr(json_object_get(latest, "metadata"), "reason") ?:
	    "", "requested_by_customer") == 0;
	rr->release = !rr->cancel;
	return db_tx(refund_tx, rr);
}

cd_err
booking_refund_seen(const json_t *charge)
{
	const char *intent = jstr(charge, "payment_intent");
	struct refund_rec rr;
	booking_payment local;
	cd_arena *a;
	bool found;
	cd_err err;

	if (!stripe_id_ok(intent, "pi_") || !stripe_id_ok(jstr(charge, "id"), "ch_"))
		return CD_OK;
	a = arena_new();
	memset(&rr, 0, sizeof(rr));
	rr.local = &local;
	rr.arena = a;
	/* Not a booking's charge: nothing to do. */
	if ((err = payment_by_intent(intent, a, &local, &found)) == CD_OK && found)
		err = refund_seen_in(charge, &rr);
	arena_free(a);
	return err;
}

cd_err
booking_of_intent(const char *payment_intent, cd_arena *a,
    booking_payment *row, bool *found)
{
	memset(row, 0, sizeof(*row));
	*found = false;
	if (!stripe_id_ok(payment_intent, "pi_"))
		return CD_OK;
	return payment_by_intent(payment_intent, a, row, found);
}

/*
 * Lost: the refunds row (the dispute's id as its key), cents and status; a
 * cancel decided and not made, or a booking not started, is cancelled.
 */
static cd_err
dispute_reverse(const booking_payment *row, const char *dispute_id,
    long long *cents, cd_arena *a)
{
	bool fresh;
	cd_err err;

	*cents = row->price_cents - row->refunded_cents;
	/*
	 * An earlier partial refund keeps its one row; the rest is reversed
	 * too.  A booking still awaiting its payment's success gives its time
	 * up, as for a refund seen first: that success comes to nothing.
	 */
	if ((err = db_insert_once(&q_refund_row, &fresh, NULL, "isiss",
	    row->payment_id, dispute_id, *cents, "dispute_lost", NULL)) != CD_OK ||
	    (err = db_exec(&q_book_reversed, NULL, "i", row->booking_id)) != CD_OK ||
	    (err = db_exec(&q_book_failed, NULL, "i", row->booking_id)) != CD_OK ||
	    (err = cancel_settled(row, "dispute", a)) != CD_OK)
		return err;
	return db_exec(&q_pay_reversed, NULL, "i", row->payment_id);
}

/* The audit row of a booking's dispute step. */
static cd_err
dispute_audit(const booking_payment *row, const char *dispute_id,
    const char *to, long long cents, cd_arena *a)
{
	char idbuf[32];

	return audit_write("BOOKING_DISPUTE", "booking", id_text(idbuf,
	    sizeof(idbuf), row->booking_id), row->user_id, arena_json(a,
	    json_pack("{s:s,s:s,s:I}", "dispute", dispute_id, "status", to,
	    "cents", (json_int_t)cents)), strcmp(to, "won") == 0 ? "info" :
	    "critical");
}

cd_err
booking_disputed(const booking_payment *row, const char *dispute_id,
    const char *to, cd_arena *a, long long *cents, bool *moved)
{
	unsigned long long n = 0;
	bool found;
	cd_err err;

	*cents = row->payout_cents - row->payout_refunded_cents;
	*moved = false;
	if ((err = booking_guard_expert(row->expert_id, false, &found)) != CD_OK)
		return err;
	err = strcmp(to, "open") == 0 ?
	    db_exec(&q_dispute_open, &n, "i", row->booking_id) :
	    db_exec(&q_dispute_close, &n, "si", to, row->booking_id);
	if (err != CD_OK || n == 0)
		return err;
	*moved = true;
	if (strcmp(to, "lost") == 0 &&
	    (err = dispute_reverse(row, dispute_id, cents, a)) != CD_OK)
		return err;
	return dispute_audit(row, dispute_id, to, *cents, a);
}

/* The booking with the policy it was made under, by the DB clock. */
static cd_sql q_terms = CD_SQL(
    "SELECT b.price_cents, b.platform_fee_cents,"
    " TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), b.start_time),"
    " " BOOKING_FULL_REFUND_HOURS("b", "e") ", " BOOKING_LATE_REFUND_BPS("b", "e") ","
    " COALESCE(b.cancel_refund_cents, -1)"
    " FROM bookings b JOIN experts e ON e.id = b.expert_id WHERE b.id = ?");
static const cd_col terms_cols[] = {
	DB_INT(booking_terms, price), DB_INT(booking_terms, fee),
	DB_INT(booking_terms, to_start), DB_INT(booking_terms, full_hours),
	DB_INT(booking_terms, late_bps), DB_INT(booking_terms, decided),
};

cd_err
booking_terms_of(long long booking_id, booking_terms *t, bool *found)
{
	size_t n;
	cd_err err;

	err = db_fetch(&q_terms, NULL, terms_cols, DB_NCOLS(terms_cols), t,
	    sizeof(*t), 1, &n, "i", booking_id);
	*found = err == CD_OK && n == 1;
	return err;
}

/* Runs q on the booking; *done: it changed the booking. */
static cd_err
transition(cd_sql *q, long long booking_id, bool *done)
{
	unsigned long long n = 0;
	cd_err err;

	err = db_exec(q, &n, "i", booking_id);
	*done = err == CD_OK && n > 0;
	return err;
}

cd_err
booking_release(long long booking_id, bool *done)
{
	return transition(&q_book_failed, booking_id, done);
}

cd_err
booking_cancel_unpaid(long long booking_id, bool *done)
{
	cd_err err;

	if ((err = transition(&q_book_cancelled, booking_id, done)) != CD_OK ||
	    !*done)
		return err;
	return db_exec(&q_pay_dropped, NULL, "i", booking_id);
}

/*
 * Decided, not refunded: cancel_refund_cents is written before Stripe is
 * asked.  Only while the payment stands: one refunded meanwhile (a lost
 * dispute, Stripe's Dashboard) settled the cancel, one charged back waits
 * for its dispute to be won.
 */
static cd_sql q_unfinished = CD_SQL(
    "SELECT b.id, b.user_id FROM bookings b JOIN payments p ON p.booking_id = b.id"
    " WHERE " BOOKING_CANCELLING("b") " AND NOT " BOOKING_CHARGED_BACK("b")
    " AND p.status = 'succeeded' ORDER BY b.id LIMIT 1000");
struct unfinished {
	long long	 id, user_id;
};
static const cd_col unfinished_cols[] = {
	DB_INT(struct unfinished, id), DB_INT(struct unfinished, user_id),
};

/* Refunds and cancels booking row as its decided cancel; *done if it did. */
static cd_err
finish_cancel(const void *row, cd_arena *a, bool *done)
{
	const struct unfinished *u = row;
	booking_terms t;
	booking_split split;
	bool found;
	cd_err err;

	(void)a;
	if ((err = booking_terms_of(u->id, &t, &found)) != CD_OK || !found ||
	    t.decided < 0)
		return err;
	booking_refund_divide(t.price, t.fee, t.decided, &split);
	if ((err = booking_refund(u->id, u->user_id, "requested_by_customer",
	    true, &split, NULL)) == CD_OK)
		*done = true;
	/* a chargeback Stripe knows of and we do not yet: left for its dispute */
	if (err == CD_STRIPE && stripe_charge_disputed())
		return CD_OK;
	if (err != CD_OK)
		log_warn("booking %lld: its cancel's refund failed again", u->id);
	return err;
}

cd_err
booking_finish_cancels(long long *done)
{
	/* one failing (Stripe still refusing) does not stop the others */
	return db_each_row(&q_unfinished, unfinished_cols,
	    DB_NCOLS(unfinished_cols), sizeof(struct unfinished), finish_cancel,
	    done);
}
