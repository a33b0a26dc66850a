/*
 * creditdesk-replay's expert bookings: each booking as the customer created
 * it (unpaid, its PaymentIntent recorded, at the time it asked for), then
 * what people did with it locally (the customer cancelled, the expert
 * completed, an admin paid the expert out), interleaved by the timeline
 * with the stored events (payments, declines, refunds, disputes), which go
 * through the webhook's own code in booking_pay.c and dispute.c.
 *
 * The local record of each action is its audit row: BOOKING_CREATED keeps
 * the time asked for (a test or an operator may move start_time later; the
 * payment decided on the time booked), BOOKING_CANCELLED and
 * BOOKING_COMPLETED when they happened, BOOKING_PAYMENT_FAILED without the
 * hold kept when the app found the PaymentIntent canceled.  A cancellation's refund is decided
 * by the policy and the clock at the time (BOOKING_CANCEL_DECIDED, before
 * Stripe is asked: a cancel whose refund failed stays decided), and is kept
 * in the booking's cancel_refund_cents: the replay takes that decision and
 * refunds it through booking_refund(), which splits it between fee and
 * payout again.
 * Stripe's answer to that refund is the refunds row live kept of it.
 */
#include <stdio.h>
#include <string.h>

#include "booking_pay.h"
#include "calc.h"
#include "log.h"
#include "replay.h"

cd_err
replay_bookings_prepare(void)
{
	static cd_sql table = CD_SQL(
	    "CREATE TABLE replay_booking_steps (booking_id BIGINT UNSIGNED NOT NULL,"
	    " action VARCHAR(64) NOT NULL, at DATETIME(6) NOT NULL, start_time VARCHAR(32) NULL,"
	    " KEY (booking_id, action))");
	static cd_sql *fill;
	cd_err err;

	if ((err = db_exec(&table, NULL, "")) != CD_OK)
		return err;
	return db_exec(live_sql(&fill, "INSERT INTO replay_booking_steps"
	    " SELECT CAST(entity_id AS UNSIGNED), IF(action = 'BOOKING_PAYMENT_FAILED',"
	    " 'BOOKING_RELEASED', action), created_at,"
	    " JSON_VALUE(details, '$.startTime') FROM @.audit_log"
	    " WHERE entity_type = 'booking' AND (action IN ('BOOKING_CREATED',"
	    " 'BOOKING_PAID', 'BOOKING_COMPLETED', 'BOOKING_CANCELLED',"
	    " 'BOOKING_CANCEL_DECIDED')"
	    " OR (action = 'BOOKING_PAYMENT_FAILED'"
	    "  AND JSON_EXTRACT(details, '$.holdKept') = 'false'))"), NULL, "");
}

/*
 * The booking and its payment as creation left them: unpaid (a free one
 * scheduled; one whose PaymentIntent could not be made, released), at the
 * time booked, nothing refunded, disputed or transferred.
 */
cd_err
replay_booking_created(void *arg)
{
	static cd_sql *booking, *payment;
	static cd_sql as_created = CD_SQL(
	    "UPDATE bookings b LEFT JOIN replay_booking_steps s ON s.booking_id = b.id"
	    "  AND s.action = 'BOOKING_CREATED'"
	    " SET b.status = IF(b.price_cents = 0, 'scheduled',"
	    "  IF(b.payment_intent_id IS NULL, 'payment_failed', 'awaiting_payment')),"
	    " b.start_time = COALESCE(s.start_time, b.start_time),"
	    " b.end_time = COALESCE(s.start_time, b.start_time) + INTERVAL b.duration_minutes MINUTE,"
	    " b.refunded_cents = 0, b.fee_refunded_cents = 0, b.payout_refunded_cents = 0,"
	    " b.cancel_refund_cents = NULL, b.dispute_status = NULL,"
	    " b.stripe_transfer_id = NULL, b.stripe_application_fee_id = NULL WHERE b.id = ?");
	static cd_sql pending = CD_SQL(
	    "UPDATE payments SET status = 'pending', paid_at = NULL, last_payment_error = NULL,"
	    " failed_attempts = 0, last_failed_charge = NULL WHERE booking_id = ?");
	long long id = *(long long *)arg;
	cd_err err;

	if ((err = db_exec(live_sql(&booking, "INSERT INTO bookings"
	    " SELECT * FROM @.bookings WHERE id = ?"), NULL, "i", id)) != CD_OK ||
	    (err = db_exec(&as_created, NULL, "i", id)) != CD_OK ||
	    (err = db_exec(live_sql(&payment, "INSERT INTO payments"
	    " SELECT * FROM @.payments WHERE booking_id = ?"), NULL, "i", id)) != CD_OK)
		return err;
	return db_exec(&pending, NULL, "i", id);
}

/* The expert completed it: only a scheduled booking can be. */
cd_err
replay_booking_completed(void *arg)
{
	static cd_sql q = CD_SQL(
	    "UPDATE bookings SET status = 'completed' WHERE id = ? AND status = 'scheduled'");
	unsigned long long n = 0;
	cd_err err;

	if ((err = db_exec(&q, &n, "i", *(long long *)arg)) != CD_OK)
		return err;
	return n == 1 ? CD_OK : CD_CONFLICT;
}

/* Cancelled before it was paid: the booking, and its payment never made. */
static cd_err
cancel_unpaid_tx(void *arg)
{
	bool done;
	cd_err err;

	if ((err = booking_cancel_unpaid(*(long long *)arg, &done)) != CD_OK)
		return err;
	return done ? CD_OK : CD_CONFLICT;
}

/* A replayed booking as the cancellation finds it, with its payment's status. */
struct booking_now {
	long long	 user_id;
	const char	*status;
	long long	 price_cents, platform_fee_cents;
	const char	*payment_status;
};

static const cd_col booking_now_cols[] = {
	DB_INT(struct booking_now, user_id),
	DB_TEXT(struct booking_now, status),
	DB_INT(struct booking_now, price_cents),
	DB_INT(struct booking_now, platform_fee_cents),
	DB_TEXT(struct booking_now, payment_status),
};

/* Live's decision on a cancellation: whether one was made, and the refund. */
struct live_decision {
	long long	 decided, refund_cents;
};

static const cd_col live_decision_cols[] = {
	DB_INT(struct live_decision, decided),
	DB_INT(struct live_decision, refund_cents),
};

/*
 * The refund live decided when the customer cancelled a scheduled booking
 * (by the policy and the clock then), written as live wrote it before
 * asking Stripe; false in *decided if none was (a booking not scheduled).
 */
static cd_err
decision(long long id, const struct booking_now *now, booking_split *split,
    bool *decided)
{
	static cd_sql *live;
	static cd_sql decide = CD_SQL(
	    "UPDATE bookings SET cancel_refund_cents = COALESCE(cancel_refund_cents, ?)"
	    " WHERE id = ? AND status = 'scheduled'");
	struct live_decision row;
	bool found;
	cd_err err;

	*decided = false;
	if ((err = db_fetch_row(live_sql(&live, "SELECT cancel_refund_cents IS NOT NULL,"
	    " COALESCE(cancel_refund_cents, 0) FROM @.bookings WHERE id = ?"), NULL,
	    live_decision_cols, DB_NCOLS(live_decision_cols), &row, sizeof(row),
	    &found, "i", id)) != CD_OK || !found)
		return err != CD_OK ? err : CD_NOT_FOUND;
	if (row.decided) {
		*decided = true;
		booking_refund_divide(now->price_cents, now->platform_fee_cents,
		    row.refund_cents, split);
		err = db_exec(&decide, NULL, "ii", split->refund, id);
	}
	return err;
}

static cd_sql q_now = CD_SQL(
    "SELECT b.user_id, b.status, b.price_cents, b.platform_fee_cents,"
    " p.status AS payment_status FROM bookings b"
    " LEFT JOIN payments p ON p.booking_id = b.id WHERE b.id = ?");

/* The replayed booking now; CD_NOT_FOUND if it is not there. */
static cd_err
booking_now_of(long long id, cd_arena *a, struct booking_now *now)
{
	bool found;
	cd_err err;

	if ((err = db_fetch_row(&q_now, a, booking_now_cols,
	    DB_NCOLS(booking_now_cols), now, sizeof(*now), &found, "i", id)) !=
	    CD_OK)
		return err;
	return found ? CD_OK : CD_NOT_FOUND;
}

/* The customer's cancel decided its refund (made later, or not yet). */
cd_err
replay_booking_decided(void *arg)
{
	long long id = *(long long *)arg;
	struct booking_now now;
	booking_split split;
	cd_arena *a = arena_new();
	bool decided = false;
	cd_err err;

	if ((err = booking_now_of(id, a, &now)) == CD_OK &&
	    (err = decision(id, &now, &split, &decided)) == CD_OK && !decided)
		err = CD_CONFLICT;
	arena_free(a);
	return err;
}

/*
 * The customer cancelled: the decision first; then a paid booking is
 * refunded what was decided (nothing decided: the whole price, as for a
 * payment that went through while the booking was being cancelled) and
 * cancelled by booking_refund(); an unpaid one is cancelled.
 */
cd_err
replay_booking_cancelled(long long id)
{
	booking_split split;
	struct booking_now now, after;
	cd_arena *a = arena_new();
	bool decided;
	cd_err err;

	/* already cancelled: by a refund seen first, which settled the cancel */
	if ((err = booking_now_of(id, a, &now)) != CD_OK ||
	    strcmp(now.status ?: "", "cancelled_by_user") == 0) {
		arena_free(a);
		return err;
	}
	if ((err = decision(id, &now, &split, &decided)) == CD_OK) {
		if (strcmp(now.payment_status ?: "", "succeeded") == 0)
			err = booking_refund(id, now.user_id,
			    "requested_by_customer", true, decided ? &split : NULL, NULL);
		else
			err = db_tx(cancel_unpaid_tx, &id);
	}
	if (err == CD_OK && (err = booking_now_of(id, a, &after)) == CD_OK &&
	    /* Live cancelled it (its audit row says so); so must the replay. */
	    strcmp(after.status ?: "", "cancelled_by_user") != 0)
		err = CD_CONFLICT;
	arena_free(a);
	return err;
}

/* The customer moved it to the time its BOOKING_RESCHEDULED row names. */
cd_err
replay_booking_moved(void *arg)
{
	static cd_sql *q;
	unsigned long long n = 0;
	cd_err err;

	if ((err = db_exec(live_sql(&q, "UPDATE bookings b JOIN @.audit_log c"
	    " ON c.id = ? AND b.id = CAST(c.entity_id AS UNSIGNED)"
	    " SET b.start_time = JSON_VALUE(c.details, '$.startTime'),"
	    " b.end_time = JSON_VALUE(c.details, '$.startTime')"
	    "  + INTERVAL b.duration_minutes MINUTE WHERE b.status = 'scheduled'"),
	    &n, "i", *(long long *)arg)) != CD_OK)
		return err;
	return n == 1 ? CD_OK : CD_CONFLICT;
}

/*
 * The app found the booking's PaymentIntent canceled at Stripe and let its
 * time go (confirm-payment or pay again; its audit row BOOKING_PAYMENT_FAILED
 * without the hold kept).  Stripe's payment_intent.canceled event is not
 * what does it: the customer's own cancel of an unpaid booking makes one too,
 * racing the cancel it belongs to.  Already released (a payment_failed event
 * whose PaymentIntent was canceled by then): nothing changes.
 */
cd_err
replay_booking_released(long long id)
{
	static cd_sql q = CD_SQL("SELECT payment_intent_id FROM bookings WHERE id = ?");
	cd_arena *a = arena_new();
	const char *pi_id;
	json_t *pi;
	bool found;
	cd_err err;

	if ((err = db_fetch_text(&q, a, &pi_id, &found, "i", id)) == CD_OK) {
		if (!found || pi_id == NULL)
			err = CD_NOT_FOUND;
		else {
			pi = json_pack("{s:s,s:s}", "id", pi_id, "status", "canceled");
			err = booking_payment_failed(pi);
			json_decref(pi);
		}
	}
	arena_free(a);
	return err;
}

/*
 * An admin's payout of an expert's bookings: the amount is what the
 * replayed bookings owed then (the same rule as the payout's), not the
 * live amount, so a payout that paid what was not owed is a difference.
 */
cd_err
replay_payout(void *arg)
{
	static cd_sql *payout, *items;
	static cd_sql sum = CD_SQL(
	    "UPDATE payouts SET amount_cents = (SELECT COALESCE(SUM(amount_cents), 0)"
	    " FROM payout_items WHERE payout_id = ?) WHERE id = ?");
	long long id = *(long long *)arg;
	cd_err err;

	/*
	 * Live's bookings of the payout, each with its line as the replayed
	 * bookings have it (the lines first, then their sum), so a line live
	 * paid wrongly shows, not only a wrong sum.
	 */
	if ((err = db_exec(live_sql(&payout, "INSERT INTO payouts (id, expert_id,"
	    " amount_cents, status, created_by) SELECT l.id, l.expert_id, 0,"
	    " l.status, l.created_by FROM @.payouts l WHERE l.id = ?"), NULL, "i",
	    id)) != CD_OK ||
	    (err = db_exec(live_sql(&items, "INSERT INTO payout_items"
	    " (payout_id, booking_id, amount_cents) SELECT ?, b.id, " BOOKING_LINE_CENTS
	    BOOKING_LINES " AND b.id IN (SELECT booking_id FROM @.payout_items"
	    " WHERE payout_id = ?)"), NULL, "ii", id, id)) != CD_OK)
		return err;
	return db_exec(&sum, NULL, "ii", id, id);
}

/*
 * POST /v1/refunds of a booking's payment: the refund live recorded for
 * that PaymentIntent (its id, amount and transfer reversal).  The replay
 * records the amount it decided itself, so a different amount shows.
 */
struct live_refund {
	const char	*id;
	long long	 amount;
	const char	*transfer_reversal;
};

static const cd_col live_refund_cols[] = {
	DB_TEXT(struct live_refund, id),
	DB_INT(struct live_refund, amount),
	DB_TEXT(struct live_refund, transfer_reversal),
};

cd_err
replay_booking_post(const char *path, const json_t *params, json_t **out)
{
	static cd_sql *q;
	const char *pi = jstr(params, "payment_intent");
	struct live_refund row;
	cd_arena *a;
	bool found;
	cd_err err;

	*out = NULL;
	if (strcmp(path, "/v1/refunds") != 0 || pi == NULL) {
		log_error("replay: POST %s has no answer", path);
		return CD_STRIPE;
	}
	a = arena_new();
	if ((err = db_fetch_row(live_sql(&q, "SELECT r.stripe_refund_id,"
	    " r.amount_cents, r.stripe_transfer_reversal_id"
	    " FROM @.refunds r JOIN @.payments p ON p.id = r.payment_id"
	    " WHERE p.stripe_payment_intent_id = ? AND r.stripe_refund_id LIKE 're\\_%'"),
	    a, live_refund_cols, DB_NCOLS(live_refund_cols), &row, sizeof(row),
	    &found, "s", pi)) == CD_OK && !found) {
		log_warn("replay: live made no refund of %s", pi);
		err = CD_STRIPE;
	}
	/* Stripe's refund object, as far as the refund's code reads it */
	if (err == CD_OK && (*out = json_pack("{s:s,s:I,s:s?,s:s}", "id", row.id,
	    "amount", (json_int_t)row.amount, "transfer_reversal",
	    row.transfer_reversal, "object", "refund")) == NULL)
		err = CD_INTERNAL;
	arena_free(a);
	return err;
}
