/*
 * Admin: expert payouts and booking metrics.
 *
 * A booking is owed to its expert once it is completed and its payment has
 * succeeded (a refunded payment is owed to nobody), or once it was
 * cancelled by the policy with less than everything refunded; the expert is
 * owed the payout less what the refund took back from it.  A booking whose
 * payment is disputed is owed to nobody until the dispute is won.  A payout pays all of an
 * expert's owed bookings in one transaction; UNIQUE payout_items.booking_id
 * makes a booking part of at most one payout, even if two admins pay the
 * same expert at once, and the expert's guard row (written first) makes
 * the second of them find nothing left instead of failing.
 */
#include <string.h>

#include "audit.h"
#include "booking_pay.h"
#include "bookings.h"
#include "db.h"

static cd_sql q_owed = CD_SQL(
    "SELECT b.id, b.expert_id, e.name, " BOOKING_OWED_CENTS " AS payout_cents" BOOKING_OWED
    " ORDER BY b.expert_id, b.id");
static cd_sql q_owed_expert = CD_SQL(
    "SELECT b.id, " BOOKING_OWED_CENTS " AS payout_cents" BOOKING_OWED
    " AND b.expert_id = ? ORDER BY b.id");
static cd_sql q_owed_total = CD_SQL(
    "SELECT COALESCE(SUM" BOOKING_OWED_CENTS ", 0) AS cents" BOOKING_OWED);
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
    "INSERT INTO payout_items (payout_id, booking_id) VALUES (?, ?)");
static cd_sql q_booking_counts = CD_SQL(
    "SELECT COUNT(*) AS total,"
    " COALESCE(SUM(status IN ('scheduled', 'completed')), 0) AS paid,"
    " COALESCE(SUM(status = 'awaiting_payment'), 0) AS awaitingPayment,"
    " COALESCE(SUM(status = 'scheduled'), 0) AS scheduled,"
    " COALESCE(SUM(status = 'completed'), 0) AS completed,"
    " COALESCE(SUM(status = 'cancelled_by_user'), 0) AS cancelled,"
    " COALESCE(SUM(status = 'payment_failed'), 0) AS paymentFailed"
    " FROM bookings");
static cd_sql q_payment_counts = CD_SQL(
    "SELECT COUNT(*) AS total,"
    " COALESCE(SUM(status = 'pending'), 0) AS pending,"
    " COALESCE(SUM(status = 'succeeded'), 0) AS succeeded,"
    " COALESCE(SUM(status = 'failed'), 0) AS failed,"
    " COALESCE(SUM(status = 'refunded'), 0) AS refunded,"
    " COALESCE(SUM(status = 'partially_refunded'), 0) AS partiallyRefunded"
    " FROM payments");
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
/* Payments created in the last 24 h that were decided: how many succeeded. */
static cd_sql q_payments_24h = CD_SQL(
    "SELECT COALESCE(SUM(status IN ('succeeded', 'refunded', 'partially_refunded')), 0) AS ok,"
    " COALESCE(SUM(status <> 'pending'), 0) AS decided FROM payments"
    " WHERE created_at > UTC_TIMESTAMP(6) - INTERVAL 24 HOUR");
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
 * token (all boost packs and subscription invoices); each rounded down.
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

static const cd_field payout_fields[] = {
	{ "expertId", F_INT, F_REQUIRED, 1, CD_MAX_ID, NULL },
};

cd_err
payouts_pending(cd_req *r)
{
	json_t *rows, *row, *experts, *cur = NULL;
	long long expert = 0;
	size_t i;
	cd_err err;

	if ((err = db_rows(&q_owed, &rows, "")) != CD_OK)
		return err;
	req_own(r, rows);
	experts = req_own(r, json_array());
	json_array_foreach(rows, i, row) {
		if (cur == NULL || jint(row, "expert_id") != expert) {
			expert = jint(row, "expert_id");
			cur = json_pack("{s:I,s:s,s:I,s:[]}", "expertId",
			    (json_int_t)expert, "name", jstr(row, "name"),
			    "amountCents", (json_int_t)0, "bookingIds");
			json_array_append_new(experts, cur);
		}
		json_object_set_new(cur, "amountCents", json_integer(
		    jint(cur, "amountCents") + jint(row, "payout_cents")));
		json_array_append_new(json_object_get(cur, "bookingIds"),
		    json_integer(jint(row, "id")));
	}
	if ((err = db_rows(&q_destination, &rows, "")) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:O,s:o}", "experts", experts,
	    "destinationCharges", rows));
	return CD_OK;
}

struct payout {
	cd_req		*r;
	long long	 expert_id;
	long long	 id;
	long long	 amount;
	json_t		*booking_ids;	/* request-owned */
};

static cd_err
payout_tx(void *arg)
{
	struct payout *p = arg;
	cd_req *r = p->r;
	json_t *rows, *row, *details;
	bool fresh, found;
	size_t i;
	cd_err err;

	if ((err = booking_guard_expert(p->expert_id, false, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "expert_not_found",
		    "No expert with this id.");
	if ((err = db_rows(&q_owed_expert, &rows, "i", p->expert_id)) != CD_OK)
		return err;
	req_own(r, rows);
	json_array_clear(p->booking_ids);	/* a retried transaction starts over */
	p->amount = 0;
	json_array_foreach(rows, i, row) {
		p->amount += jint(row, "payout_cents");
		json_array_append_new(p->booking_ids, json_integer(jint(row, "id")));
	}
	if (p->amount == 0)
		return req_fail(r, CD_CONFLICT, "nothing_to_pay",
		    "This expert has no completed bookings waiting for a payout.");
	if ((err = db_insert(&q_payout, &p->id, "iii", p->expert_id, p->amount,
	    r->user->id)) != CD_OK)
		return err;
	json_array_foreach(p->booking_ids, i, row) {
		if ((err = db_insert_once(&q_item, &fresh, NULL, "ii", p->id,
		    (long long)json_integer_value(row))) != CD_OK)
			return err;
		if (!fresh)
			return req_fail(r, CD_CONFLICT, "already_paid_out",
			    "A booking in this payout was paid out meanwhile; try again.");
	}
	details = req_own(r, json_pack("{s:I,s:I,s:O}", "expertId",
	    (json_int_t)p->expert_id, "amountCents", (json_int_t)p->amount,
	    "bookingIds", p->booking_ids));
	return audit_write("ADMIN_PAYOUT", "payout",
	    arena_printf(r->arena, "%lld", p->id), r->user->id, details, "info");
}

cd_err
payout_create(cd_req *r)
{
	struct payout p;
	cd_value v[1];
	cd_err err;

	if ((err = req_fields(r, payout_fields, 1, v)) != CD_OK)
		return err;
	memset(&p, 0, sizeof(p));
	p.r = r;
	p.expert_id = v[0].i;
	p.booking_ids = req_own(r, json_array());
	if ((err = db_tx(payout_tx, &p)) != CD_OK)
		return err;
	resp_json(r, 201, json_pack("{s:{s:I,s:I,s:I,s:s,s:O}}", "payout",
	    "id", (json_int_t)p.id, "expertId", (json_int_t)p.expert_id,
	    "amountCents", (json_int_t)p.amount, "status", "paid",
	    "bookingIds", p.booking_ids));
	return CD_OK;
}

/* part × 10000 / whole, in integer basis points; 0 when there is no whole. */
static json_int_t
bps(long long part, long long whole)
{
	return whole > 0 ? (json_int_t)(part * 10000 / whole) : 0;
}

/* A statement's one sum of cents. */
static cd_err
sum(cd_sql *q, long long *cents)
{
	return db_fetch_int(q, cents, "");
}

/* part × whole_value / whole, rounded down; 0 when there is no whole. */
static long long
prorate(long long part, long long whole_value, long long whole)
{
	return whole > 0 ? (long long)((__int128)part * whole_value / whole) : 0;
}

/* The recent figures and the prepaid liability, added to body. */
static cd_err
money_now(cd_req *r, json_t *body)
{
	json_t *recent, *pay, *li;
	long long revenue, credits;
	cd_err err;

	if ((err = db_row(&q_recent, &recent, "")) != CD_OK)
		return err;
	req_own(r, recent);
	if ((err = db_row(&q_payments_24h, &pay, "")) != CD_OK)
		return err;
	req_own(r, pay);
	if ((err = db_row(&q_liability, &li, "")) != CD_OK)
		return err;
	req_own(r, li);
	if ((err = sum(&q_revenue_30d, &revenue)) != CD_OK)
		return err;
	credits = prorate(jint(li, "tokens"), jint(li, "paidCents"),
	    jint(li, "grantedTokens"));
	json_object_set_new(body, "bookingsCreatedLastHour",
	    json_integer(jint(recent, "lastHour")));
	json_object_set_new(body, "bookingsCreatedLast24h",
	    json_integer(jint(recent, "last24h")));
	json_object_set_new(body, "paymentSuccessRate24hBps",
	    json_integer(bps(jint(pay, "ok"), jint(pay, "decided"))));
	json_object_set_new(body, "platformRevenue30dCents", json_integer(revenue));
	json_object_set_new(body, "prepaidLiabilityCents", json_pack("{s:I,s:I,s:I,s:I}",
	    "liveHelp", (json_int_t)jint(li, "liveHelpCents"),
	    "voice", (json_int_t)jint(li, "voiceCents"),
	    "credits", (json_int_t)credits,
	    "total", (json_int_t)(jint(li, "liveHelpCents") + jint(li, "voiceCents") +
	    credits)));
	return CD_OK;
}

/*
 * Rates are integer basis points: bookings.rateBps is paid (scheduled or
 * completed) over all bookings; payments.successRateBps is payments that
 * succeeded (including those later refunded) over those that were decided.
 * pendingPayoutsCents is what manual payouts owe experts now.
 */
cd_err
metrics(cd_req *r)
{
	json_t *bk, *pay, *body;
	long long revenue, owed, paid_out, ok, decided;
	cd_err err;

	if ((err = db_row(&q_booking_counts, &bk, "")) != CD_OK)
		return err;
	req_own(r, bk);
	if ((err = db_row(&q_payment_counts, &pay, "")) != CD_OK)
		return err;
	req_own(r, pay);
	if ((err = sum(&q_revenue, &revenue)) != CD_OK ||
	    (err = sum(&q_owed_total, &owed)) != CD_OK ||
	    (err = sum(&q_paid_out, &paid_out)) != CD_OK)
		return err;
	json_object_set_new(bk, "rateBps", json_integer(bps(jint(bk, "paid"),
	    jint(bk, "total"))));
	ok = jint(pay, "succeeded") + jint(pay, "refunded") +
	    jint(pay, "partiallyRefunded");
	decided = ok + jint(pay, "failed");
	json_object_set_new(pay, "successRateBps", json_integer(bps(ok, decided)));
	body = req_own(r, json_pack("{s:O,s:O,s:I,s:I,s:I,s:I}", "bookings", bk,
	    "payments", pay, "platformRevenueCents", (json_int_t)revenue,
	    "pendingPayoutsCents", (json_int_t)owed,
	    "pendingManualPayoutsCents", (json_int_t)owed,
	    "paidOutCents", (json_int_t)paid_out));
	if ((err = money_now(r, body)) != CD_OK)
		return err;
	resp_json(r, 200, json_incref(body));
	return CD_OK;
}
