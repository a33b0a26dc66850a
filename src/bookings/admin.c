/*
 * Admin: expert payouts and booking metrics.
 *
 * A booking is owed to its expert once it is completed and its payment has
 * succeeded (a refunded payment is owed to nobody), or once it was
 * cancelled by the policy with less than everything refunded; the expert is
 * owed the payout less what the refund took back from it.  A booking whose
 * payment is disputed is owed to nobody until the dispute is won.  A payout
 * pays each of an expert's bookings its line, what it owes now less what
 * payouts paid for it so far, in one transaction: a booking paid out and
 * then refunded or lost to a dispute has a negative line, which the payout
 * takes back from what the others are owed (an expert owing more than they
 * are owed is paid nothing until that changes).  The expert's guard row,
 * written first, makes a second admin paying the same expert at once find
 * nothing left instead of paying a line twice.
 */
#include <string.h>

#include "audit.h"
#include "booking_pay.h"
#include "booking_store.h"
#include "bookings.h"
#include "db.h"

/*
 * amountCents, when sent, is what the admin was shown and paid by hand: a
 * payout that would record another amount (a booking completed or refunded
 * meanwhile) is refused, so the books never record what was not sent.
 */
static const cd_field payout_fields[] = {
	{ "expertId", F_INT, F_REQUIRED, 1, CD_MAX_ID, NULL },
	{ "amountCents", F_INT, 0, 1, CD_MAX_ID, NULL },
};

cd_err
payouts_pending(cd_req *r)
{
	owed_booking *rows;
	json_t *rows_out, *experts, *cur = NULL;
	long long amount = 0;
	size_t i, n;
	cd_err err;

	if ((err = bstore_owed(r->arena, &rows, &n)) != CD_OK)
		return err;
	experts = req_own(r, json_array());
	for (i = 0; i < n; i++) {
		if (cur == NULL || rows[i].expert_id != rows[i - 1].expert_id) {
			amount = 0;
			cur = json_pack("{s:I,s:s?,s:I,s:[]}", "expertId",
			    (json_int_t)rows[i].expert_id, "name",
			    rows[i].expert_name, "amountCents", (json_int_t)0,
			    "bookingIds");
			json_array_append_new(experts, cur);
		}
		amount += rows[i].cents;
		json_object_set_new(cur, "amountCents", json_integer(amount));
		json_array_append_new(json_object_get(cur, "bookingIds"),
		    json_integer(rows[i].id));
	}
	if ((err = bstore_destination_json(&rows_out)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:O,s:o}", "experts", experts,
	    "destinationCharges", rows_out));
	return CD_OK;
}

struct payout {
	cd_req		*r;
	long long	 expert_id;
	long long	 id;
	long long	 amount;
	long long	 shown;		/* amountCents sent, or 0 */
	json_t		*booking_ids;	/* request-owned */
};

static cd_err
payout_tx(void *arg)
{
	struct payout *p = arg;
	cd_req *r = p->r;
	owed_booking *rows;
	json_t *details;
	bool found;
	size_t i, n;
	cd_err err;

	if ((err = booking_guard_expert(p->expert_id, false, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "expert_not_found",
		    "No expert with this id.");
	if ((err = bstore_owed_of(r->arena, p->expert_id, &rows, &n)) != CD_OK)
		return err;
	json_array_clear(p->booking_ids);	/* a retried transaction starts over */
	p->amount = 0;
	for (i = 0; i < n; i++) {
		p->amount += rows[i].cents;
		json_array_append_new(p->booking_ids, json_integer(rows[i].id));
	}
	if (p->amount <= 0)
		return req_fail(r, CD_CONFLICT, "nothing_to_pay", p->amount == 0 ?
		    "This expert has no completed bookings waiting for a payout." :
		    arena_printf(r->arena, "This expert owes back $%lld.%02lld of"
		    " earlier payouts (bookings refunded since); later bookings pay"
		    " it off first.", -p->amount / 100, -p->amount % 100));
	if (p->shown != 0 && p->shown != p->amount)
		return req_fail(r, CD_CONFLICT, "payout_changed", arena_printf(
		    r->arena, "This expert is now owed $%lld.%02lld, not $%lld.%02lld:"
		    " a booking changed since the list was shown. Check the list"
		    " again before marking it paid.", p->amount / 100,
		    p->amount % 100, p->shown / 100, p->shown % 100));
	if ((err = bstore_payout_insert(p->expert_id, p->amount, r->user->id,
	    &p->id)) != CD_OK)
		return err;
	for (i = 0; i < n; i++)
		if ((err = bstore_payout_item(p->id, rows[i].id, rows[i].cents)) !=
		    CD_OK)
			return err;
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
	cd_value v[2];
	cd_err err;

	if ((err = req_fields(r, payout_fields, 2, v)) != CD_OK)
		return err;
	memset(&p, 0, sizeof(p));
	p.r = r;
	p.expert_id = v[0].i;
	p.shown = v[1].present ? v[1].i : 0;
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

/* part × whole_value / whole, rounded down; 0 when there is no whole. */
static long long
prorate(long long part, long long whole_value, long long whole)
{
	return whole > 0 ? (long long)((__int128)part * whole_value / whole) : 0;
}

/* The recent figures and the prepaid liability, added to body. */
static void
money_now(const booking_figures *f, json_t *body)
{
	long long credits;

	credits = prorate(f->tokens, f->paid_cents, f->granted_tokens);
	json_object_set_new(body, "bookingsCreatedLastHour",
	    json_integer(f->last_hour));
	json_object_set_new(body, "bookingsCreatedLast24h",
	    json_integer(f->last_24h));
	json_object_set_new(body, "paymentSuccessRate24hBps",
	    json_integer(bps(f->payments_ok_24h, f->payments_decided_24h)));
	json_object_set_new(body, "platformRevenue30dCents",
	    json_integer(f->revenue_30d));
	json_object_set_new(body, "prepaidLiabilityCents", json_pack("{s:I,s:I,s:I,s:I}",
	    "liveHelp", (json_int_t)f->live_help_cents,
	    "voice", (json_int_t)f->voice_cents,
	    "credits", (json_int_t)credits,
	    "total", (json_int_t)(f->live_help_cents + f->voice_cents + credits)));
}

/* The bookings' counts as the API shows them. */
static json_t *
booking_counts_json(const booking_counts *c)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
	    "total", (json_int_t)c->total, "paid", (json_int_t)c->paid,
	    "awaitingPayment", (json_int_t)c->awaiting_payment,
	    "scheduled", (json_int_t)c->scheduled,
	    "completed", (json_int_t)c->completed,
	    "cancelled", (json_int_t)c->cancelled,
	    "paymentFailed", (json_int_t)c->payment_failed,
	    "rateBps", bps(c->paid, c->total));
}

/* The payments' counts as the API shows them. */
static json_t *
payment_counts_json(const payment_counts *c)
{
	long long ok = c->succeeded + c->refunded + c->partially_refunded;

	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
	    "total", (json_int_t)c->total, "pending", (json_int_t)c->pending,
	    "succeeded", (json_int_t)c->succeeded, "failed", (json_int_t)c->failed,
	    "refunded", (json_int_t)c->refunded,
	    "partiallyRefunded", (json_int_t)c->partially_refunded,
	    "successRateBps", bps(ok, ok + c->failed));
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
	booking_figures f;
	json_t *body;
	cd_err err;

	if ((err = bstore_figures(&f)) != CD_OK)
		return err;
	body = json_pack("{s:o,s:o,s:I,s:I,s:I,s:I}",
	    "bookings", booking_counts_json(&f.bookings),
	    "payments", payment_counts_json(&f.payments),
	    "platformRevenueCents", (json_int_t)f.revenue,
	    "pendingPayoutsCents", (json_int_t)f.owed,
	    "pendingManualPayoutsCents", (json_int_t)f.owed,
	    "paidOutCents", (json_int_t)f.paid_out);
	money_now(&f, body);
	resp_json(r, 200, body);
	return CD_OK;
}
