/*
 * The bookings family's statements and the rows they read; see
 * booking_store.h.  Each statement is declared here once; each function runs
 * one (or, for the metrics, one per figure) and hands back C structs.
 */
#include <string.h>

#include "booking_pay.h"
#include "booking_store.h"
#include "db.h"

/* Column aliases are the API's field names, so a row is the JSON as is. */
#define BOOKING_COLUMNS \
    "b.id, b.user_id AS userId, b.expert_id AS expertId, e.name AS expertName," \
    " b.start_time AS startTime, b.end_time AS endTime," \
    " b.duration_minutes AS durationMinutes, b.price_cents AS priceCents," \
    " b.platform_fee_cents AS platformFeeCents, b.payout_cents AS payoutCents," \
    " b.status, p.status AS paymentStatus, b.payment_intent_id AS paymentIntentId," \
    " p.last_payment_error AS lastPaymentError," \
    " b.created_at AS createdAt, b.updated_at AS updatedAt"

/* The expert directory. */
static cd_sql q_experts = CD_SQL(
    "SELECT id, name, headline, rate_cents_per_minute AS ratePerMinuteCents"
    " FROM experts WHERE active = 1 ORDER BY id");
static cd_sql q_expert = CD_SQL(
    "SELECT e.id, e.name, e.headline, e.bio, e.rate_cents_per_minute AS ratePerMinuteCents,"
    " " EXPERT_FULL_REFUND_HOURS("e") " AS fullRefundHours,"
    " " EXPERT_LATE_REFUND_BPS("e") " AS lateRefundBps"
    " FROM experts e WHERE e.id = ? AND e.active = 1");

/* Connect. */
static cd_sql q_me = CD_SQL(
    "SELECT id, stripe_account_id, charges_enabled, payouts_enabled, stripe_nonce"
    " FROM experts WHERE user_id = ?");
static const cd_col me_cols[] = {
	DB_INT(expert_account, id), DB_TEXT(expert_account, account),
	DB_INT(expert_account, charges_enabled),
	DB_INT(expert_account, payouts_enabled), DB_TEXT(expert_account, nonce),
};
static cd_sql q_nonce = CD_SQL(
    "UPDATE experts SET stripe_nonce = ? WHERE id = ? AND stripe_nonce = ''");
static cd_sql q_account = CD_SQL(
    "UPDATE experts SET stripe_account_id = ? WHERE id = ? AND stripe_account_id IS NULL");

/*
 * An expert's own cancellation policy.  The guard row is written first, so
 * the read after it sees the policy a change committed just before.
 */
static cd_sql q_guard_by_user = CD_SQL(
    "UPDATE experts SET booking_version = booking_version + 1 WHERE user_id = ?");
static cd_sql q_policy = CD_SQL(
    "SELECT e.id, " EXPERT_FULL_REFUND_HOURS("e") ", " EXPERT_LATE_REFUND_BPS("e")
    " FROM experts e WHERE e.user_id = ?");
static const cd_col policy_cols[] = {
	DB_INT(expert_policy, expert_id), DB_INT(expert_policy, full_hours),
	DB_INT(expert_policy, late_bps),
};
static cd_sql q_set_policy = CD_SQL(
    "UPDATE experts SET cancel_full_refund_hours = ?, cancel_late_refund_bps = ?"
    " WHERE id = ?");

/* Holding a slot. */
static cd_sql q_fee = CD_SQL(
    "SELECT int_value FROM platform_settings WHERE name = 'platform_fee_bps'");
static cd_sql q_terms = CD_SQL(
    "SELECT e.user_id, e.rate_cents_per_minute, e.stripe_account_id,"
    " e.charges_enabled AND e.payouts_enabled, " EXPERT_FULL_REFUND_HOURS("e") ","
    " " EXPERT_LATE_REFUND_BPS("e") " FROM experts e WHERE e.id = ?");
static const cd_col terms_cols[] = {
	DB_INT(expert_terms, user_id), DB_INT(expert_terms, rate),
	DB_TEXT(expert_terms, account), DB_INT(expert_terms, onboarded),
	DB_INT(expert_terms, full_hours), DB_INT(expert_terms, late_bps),
};
/*
 * Read after the expert's guard row is written (as every plain read of the
 * transaction is), so it sees every booking committed by whoever wrote it
 * before.
 */
static cd_sql q_overlap = CD_SQL(
    "SELECT COUNT(*) AS n FROM bookings WHERE expert_id = ? AND id <> ?"
    " AND " BOOKING_HOLDS("bookings") " AND start_time < ? AND end_time > ?");
/* The user's booking made with this Idempotency-Key, and whether it was
 * asked for with the same expert and time. */
static cd_sql q_keyed = CD_SQL(
    "SELECT id, expert_id = ? AND start_time = ? AND end_time = ? FROM bookings"
    " WHERE user_id = ? AND idempotency_key = ?");
/* Serializes one user's holds, so the count below is exact. */
static cd_sql q_user_guard = CD_SQL(
    "INSERT INTO booking_hold_guards (user_id, version) VALUES (?, 1)"
    " ON DUPLICATE KEY UPDATE version = version + 1");
/* Whether the user holds as many unpaid slots as allowed (1) or fewer (0). */
static cd_sql q_unpaid_holds = CD_SQL(
    "SELECT COUNT(*) >= COALESCE((SELECT int_value FROM platform_settings"
    "  WHERE name = 'booking_max_unpaid_holds'), 0)"
    " FROM bookings b WHERE b.user_id = ? AND b.status = 'awaiting_payment'"
    " AND " BOOKING_HOLDS("b"));
static cd_sql q_insert = CD_SQL(
    "INSERT INTO bookings (user_id, expert_id, start_time, end_time,"
    " duration_minutes, price_cents, platform_fee_cents, payout_cents,"
    " full_refund_hours, late_refund_bps, status, stripe_nonce,"
    " destination_account, idempotency_key)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
static cd_sql q_payment = CD_SQL(
    "INSERT INTO payments (booking_id, stripe_payment_intent_id, amount_cents, status)"
    " VALUES (?, ?, ?, 'pending')");
static cd_sql q_set_intent = CD_SQL(
    "UPDATE bookings SET payment_intent_id = ? WHERE id = ?");

/* A booking's state and the API's view of bookings. */
static cd_sql q_one = CD_SQL(
    "SELECT " BOOKING_COLUMNS
    " FROM bookings b JOIN experts e ON e.id = b.expert_id"
    " LEFT JOIN payments p ON p.booking_id = b.id WHERE b.id = ?");
static cd_sql q_mine = CD_SQL(
    "SELECT " BOOKING_COLUMNS ","
    " CASE WHEN b.user_id = ? THEN 'customer' ELSE 'expert' END AS role"
    " FROM bookings b JOIN experts e ON e.id = b.expert_id"
    " LEFT JOIN payments p ON p.booking_id = b.id"
    " WHERE b.user_id = ? OR e.user_id = ?"
    " ORDER BY b.created_at DESC, b.id DESC LIMIT 200");
static cd_sql q_state = CD_SQL(
    "SELECT b.id, b.user_id, e.user_id, b.status, p.status, b.payment_intent_id,"
    " b.stripe_nonce, " BOOKING_HOLDS("b") ", b.start_time <= UTC_TIMESTAMP(6),"
    " " BOOKING_CHARGED_BACK("b")
    " FROM bookings b"
    " JOIN experts e ON e.id = b.expert_id"
    " LEFT JOIN payments p ON p.booking_id = b.id WHERE b.id = ?");
static const cd_col keyed_cols[] = {
	DB_INT(booking_keyed, id), DB_INT(booking_keyed, same),
};
static const cd_col state_cols[] = {
	DB_INT(booking_state, id), DB_INT(booking_state, user_id),
	DB_INT(booking_state, expert_user_id), DB_TEXT(booking_state, status),
	DB_TEXT(booking_state, payment_status),
	DB_TEXT(booking_state, payment_intent), DB_TEXT(booking_state, nonce),
	DB_INT(booking_state, holds), DB_INT(booking_state, started),
	DB_INT(booking_state, charged_back),
};
/* Not once a cancel has decided its refund: that refund is still owed. */
static cd_sql q_complete = CD_SQL(
    "UPDATE bookings b SET b.status = 'completed' WHERE b.id = ?"
    " AND " BOOKING_SCHEDULED("b") " AND b.start_time <= UTC_TIMESTAMP()");
static cd_sql q_cancelling = CD_SQL(
    "SELECT cancel_refund_cents IS NOT NULL FROM bookings WHERE id = ?");

/* Cancelling. */
/*
 * The cancellation's refund is decided once, before Stripe is asked: a
 * retried or racing cancel reads the same amount back (its own write makes
 * the row's latest version visible to it).  Once started, nothing is decided.
 */
static cd_sql q_decide = CD_SQL(
    "UPDATE bookings SET cancel_refund_cents = COALESCE(cancel_refund_cents, ?)"
    " WHERE id = ? AND status = 'scheduled'"
    " AND (cancel_refund_cents IS NOT NULL OR start_time > UTC_TIMESTAMP())");
/* Locking only to read the latest commit, not the snapshot: a cancel that
 * finished meanwhile has decided already. */
static cd_sql q_decided = CD_SQL(
    "SELECT status = 'scheduled', cancel_refund_cents IS NOT NULL,"
    " COALESCE(cancel_refund_cents, 0) FROM bookings WHERE id = ? FOR UPDATE");
static const cd_col decided_cols[] = {
	DB_INT(booking_decision, scheduled), DB_INT(booking_decision, decided),
	DB_INT(booking_decision, refund),
};

/* Payouts. */
static cd_sql q_owed = CD_SQL(
    "SELECT b.id, b.expert_id, e.name, " BOOKING_LINE_CENTS " AS line_cents" BOOKING_LINES
    " ORDER BY b.expert_id, b.id");
static const cd_col owed_cols[] = {
	DB_INT(owed_booking, id), DB_INT(owed_booking, expert_id),
	DB_TEXT(owed_booking, expert_name), DB_INT(owed_booking, cents),
};
static cd_sql q_owed_expert = CD_SQL(
    "SELECT b.id, " BOOKING_LINE_CENTS " AS line_cents" BOOKING_LINES
    " AND b.expert_id = ? ORDER BY b.id");
static const cd_col owed_expert_cols[] = {
	DB_INT(owed_booking, id), DB_INT(owed_booking, cents),
};
/* What experts are owed: each expert's lines, one owing back counted as 0. */
static cd_sql q_owed_total = CD_SQL(
    "SELECT COALESCE(SUM(GREATEST(due, 0)), 0) AS cents FROM (SELECT b.expert_id,"
    " SUM" BOOKING_LINE_CENTS " AS due" BOOKING_LINES " GROUP BY b.expert_id) x");
/* Paid by destination charges: Stripe pays the expert; listed, never owed. */
static cd_sql q_destination = CD_SQL(
    "SELECT b.id AS bookingId, b.expert_id AS expertId, b.status,"
    " b.payout_cents - b.payout_refunded_cents AS payoutCents,"
    " b.destination_account AS destinationAccount, b.stripe_transfer_id AS transferId,"
    " b.stripe_application_fee_id AS applicationFeeId"
    " FROM bookings b JOIN payments p ON p.booking_id = b.id"
    " AND p.status IN ('succeeded', 'partially_refunded', 'refunded')"
    " WHERE b.destination_account IS NOT NULL ORDER BY b.id DESC LIMIT 200");
static cd_sql q_payout = CD_SQL(
    "INSERT INTO payouts (expert_id, amount_cents, status, created_by)"
    " VALUES (?, ?, 'paid', ?)");
static cd_sql q_item = CD_SQL(
    "INSERT INTO payout_items (payout_id, booking_id, amount_cents) VALUES (?, ?, ?)");

/* The admin metrics. */
static cd_sql q_booking_counts = CD_SQL(
    "SELECT COUNT(*) AS total,"
    " COALESCE(SUM(status IN ('scheduled', 'completed')), 0) AS paid,"
    " COALESCE(SUM(status = 'awaiting_payment'), 0) AS awaitingPayment,"
    " COALESCE(SUM(status = 'scheduled'), 0) AS scheduled,"
    " COALESCE(SUM(status = 'completed'), 0) AS completed,"
    " COALESCE(SUM(status = 'cancelled_by_user'), 0) AS cancelled,"
    " COALESCE(SUM(status = 'payment_failed'), 0) AS paymentFailed"
    " FROM bookings");
static const cd_col booking_count_cols[] = {
	DB_INT(booking_counts, total), DB_INT(booking_counts, paid),
	DB_INT(booking_counts, awaiting_payment),
	DB_INT(booking_counts, scheduled), DB_INT(booking_counts, completed),
	DB_INT(booking_counts, cancelled), DB_INT(booking_counts, payment_failed),
};
static cd_sql q_payment_counts = CD_SQL(
    "SELECT COUNT(*) AS total,"
    " COALESCE(SUM(status = 'pending'), 0) AS pending,"
    " COALESCE(SUM(status = 'succeeded'), 0) AS succeeded,"
    " COALESCE(SUM(status = 'failed'), 0) AS failed,"
    " COALESCE(SUM(status = 'refunded'), 0) AS refunded,"
    " COALESCE(SUM(status = 'partially_refunded'), 0) AS partiallyRefunded"
    " FROM payments");
static const cd_col payment_count_cols[] = {
	DB_INT(payment_counts, total), DB_INT(payment_counts, pending),
	DB_INT(payment_counts, succeeded), DB_INT(payment_counts, failed),
	DB_INT(payment_counts, refunded),
	DB_INT(payment_counts, partially_refunded),
};
/* The platform keeps its fee of every payment, less what refunds took back. */
static cd_sql q_revenue = CD_SQL(
    "SELECT COALESCE(SUM(b.platform_fee_cents - b.fee_refunded_cents), 0) AS cents"
    " FROM bookings b JOIN payments p ON p.booking_id = b.id"
    " WHERE p.status IN ('succeeded', 'partially_refunded')");
static cd_sql q_paid_out = CD_SQL(
    "SELECT COALESCE(SUM(amount_cents), 0) AS cents FROM payouts");
/* Recent activity, by the database's clock. */
static cd_sql q_recent = CD_SQL(
    "SELECT COALESCE(SUM(created_at > UTC_TIMESTAMP(6) - INTERVAL 1 HOUR), 0) AS lastHour,"
    " COUNT(*) AS last24h FROM bookings"
    " WHERE created_at > UTC_TIMESTAMP(6) - INTERVAL 24 HOUR");
static const cd_col recent_cols[] = {
	DB_INT(booking_figures, last_hour), DB_INT(booking_figures, last_24h),
};
/* Payments created in the last 24 h that were decided: how many succeeded. */
static cd_sql q_payments_24h = CD_SQL(
    "SELECT COALESCE(SUM(status IN ('succeeded', 'refunded', 'partially_refunded')), 0) AS ok,"
    " COALESCE(SUM(status <> 'pending'), 0) AS decided FROM payments"
    " WHERE created_at > UTC_TIMESTAMP(6) - INTERVAL 24 HOUR");
static const cd_col payments_24h_cols[] = {
	DB_INT(booking_figures, payments_ok_24h),
	DB_INT(booking_figures, payments_decided_24h),
};
/* The platform's fee, less refunds, of bookings completed that started in the last 30 days. */
static cd_sql q_revenue_30d = CD_SQL(
    "SELECT COALESCE(SUM(b.platform_fee_cents - b.fee_refunded_cents), 0) AS cents"
    " FROM bookings b JOIN payments p ON p.booking_id = b.id"
    " AND p.status IN ('succeeded', 'partially_refunded')"
    " WHERE b.status = 'completed' AND b.start_time > UTC_TIMESTAMP() - INTERVAL 30 DAY");
/*
 * What customers paid for and have not used yet, in cents: unused Live Help
 * hours at the hour's price, unexpired voice minutes at the price paid per
 * minute of their pack, and credit balances at the average price paid per
 * token (all boost packs and subscription invoices); each rounded down
 * (admin.c prorates the credits).
 */
static cd_sql q_liability = CD_SQL(
    "SELECT"
    " (SELECT COALESCE(SUM(GREATEST(t.hours_total - t.hours_used, 0)), 0) * p.unit_amount_cents"
    "   FROM user_live_help_totals t, products p WHERE p.code = 'live_help') AS liveHelpCents,"
    " (SELECT COALESCE(SUM(amount_cents * minutes_remaining DIV minutes_purchased), 0)"
    "   FROM voice_therapy_credits WHERE is_active = 1 AND expires_at > UTC_TIMESTAMP(6)"
    "   AND minutes_purchased > 0) AS voiceCents,"
    " (SELECT COALESCE(SUM(balance), 0) FROM user_credits) AS tokens,"
    " (SELECT COALESCE(SUM(amount_cents), 0) FROM boost_pack_purchases)"
    "  + (SELECT COALESCE(SUM(ABS(JSON_VALUE(metadata, '$.amountPaidCents'))), 0)"
    "     FROM credit_transactions WHERE activity_type = 'subscription_renewal') AS paidCents,"
    " (SELECT COALESCE(SUM(credits_delta), 0) FROM credit_transactions"
    "   WHERE transaction_type = 'allocation') AS grantedTokens");
static const cd_col liability_cols[] = {
	DB_INT(booking_figures, live_help_cents), DB_INT(booking_figures, voice_cents),
	DB_INT(booking_figures, tokens), DB_INT(booking_figures, paid_cents),
	DB_INT(booking_figures, granted_tokens),
};

cd_err
bstore_experts_json(json_t **rows)
{
	return db_rows(&q_experts, rows, "");
}

cd_err
bstore_expert_json(long long expert_id, json_t **row)
{
	return db_row(&q_expert, row, "i", expert_id);
}

cd_err
bstore_expert_of_user(cd_arena *a, long long user_id, expert_account *x,
    bool *found)
{
	return db_fetch_row(&q_me, a, me_cols, DB_NCOLS(me_cols), x, sizeof(*x),
	    found, "i", user_id);
}

cd_err
bstore_expert_policy(long long user_id, expert_policy *p, bool *found)
{
	unsigned long long n = 0;
	cd_err err;

	*found = false;
	if ((err = db_exec(&q_guard_by_user, &n, "i", user_id)) != CD_OK ||
	    n == 0)		/* rows matched: 0 when the user is no expert */
		return err;
	return db_fetch_row(&q_policy, NULL, policy_cols, DB_NCOLS(policy_cols),
	    p, sizeof(*p), found, "i", user_id);
}

cd_err
bstore_set_expert_policy(const expert_policy *p)
{
	return db_exec(&q_set_policy, NULL, "iii", p->full_hours, p->late_bps,
	    p->expert_id);
}

cd_err
bstore_expert_nonce(long long expert_id, const char *nonce)
{
	return db_exec(&q_nonce, NULL, "si", nonce, expert_id);
}

cd_err
bstore_expert_account(long long expert_id, const char *account)
{
	return db_exec(&q_account, NULL, "si", account, expert_id);
}

cd_err
bstore_fee_bps(long long *bps, bool *found)
{
	size_t rows = 0;
	cd_err err;

	err = db_fetch(&q_fee, NULL, db_int_col, 1, bps, sizeof(*bps), 1, &rows, "");
	*found = rows > 0;
	return err;
}

cd_err
bstore_expert_terms(cd_arena *a, long long expert_id, expert_terms *t,
    bool *found)
{
	return db_fetch_row(&q_terms, a, terms_cols, DB_NCOLS(terms_cols), t,
	    sizeof(*t), found, "i", expert_id);
}

cd_err
bstore_guard_user(long long user_id)
{
	return db_exec(&q_user_guard, NULL, "i", user_id);
}

cd_err
bstore_unpaid_holds_full(long long user_id, bool *full)
{
	long long over;
	cd_err err;

	err = db_fetch_int(&q_unpaid_holds, &over, "i", user_id);
	*full = over != 0;
	return err;
}

cd_err
bstore_overlaps(long long expert_id, const char *start, const char *end,
    long long except, long long *n)
{
	return db_fetch_int(&q_overlap, n, "iiss", expert_id, except, end,
	    start);
}

cd_err
bstore_keyed(const booking_row *b, booking_keyed *k, bool *found)
{
	return db_fetch_row(&q_keyed, NULL, keyed_cols, DB_NCOLS(keyed_cols), k,
	    sizeof(*k), found, "issis", b->expert_id, b->start, b->end,
	    b->user_id, b->key);
}

cd_err
bstore_insert(const booking_row *b, long long *id)
{
	return db_insert(&q_insert, id, "iissiiiiiissss", b->user_id,
	    b->expert_id, b->start, b->end, b->minutes, b->price, b->fee,
	    b->payout, b->full_hours, b->late_bps, b->status, b->nonce,
	    b->destination, b->key);
}

cd_err
bstore_record_intent(long long booking_id, const char *pi, long long amount)
{
	cd_err err;

	if ((err = db_insert(&q_payment, NULL, "isi", booking_id, pi, amount)) !=
	    CD_OK)
		return err;
	return db_exec(&q_set_intent, NULL, "si", pi, booking_id);
}

cd_err
bstore_state(cd_arena *a, long long booking_id, booking_state *st, bool *found)
{
	return db_fetch_row(&q_state, a, state_cols, DB_NCOLS(state_cols), st,
	    sizeof(*st), found, "i", booking_id);
}

cd_err
bstore_booking_json(long long booking_id, json_t **row)
{
	return db_row(&q_one, row, "i", booking_id);
}

cd_err
bstore_bookings_json(long long user_id, json_t **rows)
{
	return db_rows(&q_mine, rows, "iii", user_id, user_id, user_id);
}

cd_err
bstore_complete(long long booking_id, bool *done, bool *cancelling)
{
	unsigned long long n = 0;
	long long c = 0;
	cd_err err;

	err = db_exec(&q_complete, &n, "i", booking_id);
	*done = n > 0;
	if (err == CD_OK && !*done)
		err = db_fetch_int(&q_cancelling, &c, "i", booking_id);
	*cancelling = c != 0;
	return err;
}

cd_err
bstore_decide_refund(long long booking_id, long long refund,
    booking_decision *d, bool *found)
{
	cd_err err;

	/* Read first under the row's lock: whether this call is the one deciding. */
	if ((err = db_fetch_row(&q_decided, NULL, decided_cols,
	    DB_NCOLS(decided_cols), d, sizeof(*d), found, "i", booking_id)) !=
	    CD_OK || !*found)
		return err;
	d->fresh = false;
	if (d->decided)
		return CD_OK;
	if ((err = db_exec(&q_decide, NULL, "ii", refund, booking_id)) != CD_OK ||
	    (err = db_fetch_row(&q_decided, NULL, decided_cols,
	    DB_NCOLS(decided_cols), d, sizeof(*d), found, "i", booking_id)) != CD_OK)
		return err;
	d->fresh = d->decided;
	return CD_OK;
}

cd_err
bstore_owed(cd_arena *a, owed_booking **rows, size_t *n)
{
	return db_fetch_all(&q_owed, a, owed_cols, DB_NCOLS(owed_cols),
	    sizeof(**rows), rows, n, "");
}

cd_err
bstore_owed_of(cd_arena *a, long long expert_id, owed_booking **rows, size_t *n)
{
	return db_fetch_all(&q_owed_expert, a, owed_expert_cols,
	    DB_NCOLS(owed_expert_cols), sizeof(**rows), rows, n, "i", expert_id);
}

cd_err
bstore_destination_json(json_t **rows)
{
	return db_rows(&q_destination, rows, "");
}

cd_err
bstore_payout_insert(long long expert_id, long long amount, long long admin_id,
    long long *payout_id)
{
	return db_insert(&q_payout, payout_id, "iii", expert_id, amount, admin_id);
}

cd_err
bstore_payout_item(long long payout_id, long long booking_id, long long cents)
{
	return db_exec(&q_item, NULL, "iii", payout_id, booking_id, cents);
}

/* One row of a figures statement into f's fields named by cols. */
static cd_err
figures_row(cd_sql *q, const cd_col *cols, size_t ncols, booking_figures *f)
{
	size_t n;

	return db_fetch(q, NULL, cols, ncols, f, sizeof(*f), 1, &n, "");
}

cd_err
bstore_figures(booking_figures *f)
{
	size_t n;
	cd_err err;

	memset(f, 0, sizeof(*f));
	if ((err = db_fetch(&q_booking_counts, NULL, booking_count_cols,
	    DB_NCOLS(booking_count_cols), &f->bookings, sizeof(f->bookings), 1,
	    &n, "")) != CD_OK ||
	    (err = db_fetch(&q_payment_counts, NULL, payment_count_cols,
	    DB_NCOLS(payment_count_cols), &f->payments, sizeof(f->payments), 1,
	    &n, "")) != CD_OK ||
	    (err = db_fetch_int(&q_revenue, &f->revenue, "")) != CD_OK ||
	    (err = db_fetch_int(&q_owed_total, &f->owed, "")) != CD_OK ||
	    (err = db_fetch_int(&q_paid_out, &f->paid_out, "")) != CD_OK ||
	    (err = figures_row(&q_recent, recent_cols, DB_NCOLS(recent_cols),
	    f)) != CD_OK ||
	    (err = figures_row(&q_payments_24h, payments_24h_cols,
	    DB_NCOLS(payments_24h_cols), f)) != CD_OK ||
	    (err = figures_row(&q_liability, liability_cols,
	    DB_NCOLS(liability_cols), f)) != CD_OK)
		return err;
	return db_fetch_int(&q_revenue_30d, &f->revenue_30d, "");
}

/* Moving a booking (move.c). */
static cd_sql q_moving = CD_SQL(
    "SELECT b.user_id, b.expert_id, b.duration_minutes,"
    " " BOOKING_SCHEDULED("b") ", " BOOKING_MOVABLE("b", "e") ","
    " " BOOKING_FULL_REFUND_HOURS("b", "e") ","
    " " BOOKING_CHARGED_BACK("b") ","
    " DATE_FORMAT(b.start_time, '%Y-%m-%d %H:%i:%s')"
    " FROM bookings b JOIN experts e ON e.id = b.expert_id WHERE b.id = ?");
static const cd_col moving_cols[] = {
	DB_INT(booking_moving, user_id), DB_INT(booking_moving, expert_id),
	DB_INT(booking_moving, minutes), DB_INT(booking_moving, scheduled),
	DB_INT(booking_moving, movable), DB_INT(booking_moving, full_hours),
	DB_INT(booking_moving, charged_back), DB_TEXT(booking_moving, start),
};
/* The guard of the move is this row: a cancel deciding first stops it. */
static cd_sql q_move = CD_SQL(
    "UPDATE bookings SET start_time = ?, end_time = ?"
    " WHERE id = ? AND " BOOKING_SCHEDULED("bookings"));

cd_err
bstore_moving(cd_arena *a, long long booking_id, booking_moving *m,
    bool *found)
{
	return db_fetch_row(&q_moving, a, moving_cols, DB_NCOLS(moving_cols), m,
	    sizeof(*m), found, "i", booking_id);
}

cd_err
bstore_move(long long booking_id, const char *start, const char *end,
    bool *moved)
{
	unsigned long long n = 0;
	cd_err err;

	err = db_exec(&q_move, &n, "ssi", start, end, booking_id);
	*moved = err == CD_OK && n == 1;
	return err;
}
