/*
 * Disputed payments; see dispute.h.
 */
#include <string.h>

#include "audit.h"
#include "booking_pay.h"
#include "db.h"
#include "dispute.h"
#include "format.h"
#include "fulfil.h"
#include "log.h"
#include "products.h"
#include "stripe.h"

static cd_sql q_dispute = CD_SQL(
    "INSERT INTO disputes (stripe_dispute_id, charge_id, payment_intent_id,"
    " amount_cents, reason, status) VALUES (?, ?, ?, ?, ?, ?)");
static cd_sql q_frozen = CD_SQL(
    "UPDATE disputes SET user_id = ?, stripe_session_id = ?, product = ?,"
    " units_frozen = ? WHERE stripe_dispute_id = ?");
/* The one transition to closed: whoever changes the row wins. */
static cd_sql q_close = CD_SQL(
    "UPDATE disputes SET status = ?, closed_at = UTC_TIMESTAMP(6)"
    " WHERE stripe_dispute_id = ? AND closed_at IS NULL");
/*
 * An open dispute's status, only forward: an inquiry, then (if the bank
 * turns it into one) a chargeback; a status out of this order moves nothing.
 */
#define OPEN_ORDER "'warning_needs_response', 'warning_under_review'," \
	" 'needs_response', 'under_review'"
static cd_sql q_moved = CD_SQL(
    "UPDATE disputes SET status = ? WHERE stripe_dispute_id = ? AND closed_at IS NULL"
    " AND FIELD(status, " OPEN_ORDER ") < FIELD(?, " OPEN_ORDER ")");
static cd_sql q_row = CD_SQL(
    "SELECT units_frozen FROM disputes WHERE stripe_dispute_id = ?");
static cd_sql q_lost = CD_SQL(
    "UPDATE disputes SET units_reversed = ?, units_lost = ? WHERE stripe_dispute_id = ?");
static cd_sql q_booking = CD_SQL(
    "UPDATE disputes SET user_id = ?, booking_id = ?, product = 'booking',"
    " units_frozen = ? WHERE stripe_dispute_id = ?");
/* A payment has at most one dispute (one per charge, one charge that paid). */
static cd_sql q_open_hold = CD_SQL(
    "SELECT stripe_dispute_id, units_frozen FROM disputes"
    " WHERE payment_intent_id = ? AND product = ? AND closed_at IS NULL"
    " AND units_frozen > 0 LIMIT 1 FOR UPDATE");
static cd_sql q_hold = CD_SQL(
    "UPDATE disputes SET units_frozen = ? WHERE stripe_dispute_id = ?");
static cd_sql q_step = CD_SQL(
    "INSERT INTO dispute_steps (stripe_dispute_id, step, product, units, units_lost)"
    " VALUES (?, ?, ?, ?, ?)");

/*
 * Stripe's final statuses: lost takes the payment back; won, an inquiry
 * closed without a chargeback (warning_closed) and a prevented dispute leave
 * it with us, so what the dispute froze is released.
 */
static bool
kept(const char *status)
{
	return strcmp(status, "won") == 0 ||
	    strcmp(status, "warning_closed") == 0 ||
	    strcmp(status, "prevented") == 0;
}

struct disputed {
	const json_t		*d;
	const json_t		*charge;	/* the disputed one, or NULL */
	const cd_product	*product;	/* NULL: not a purchase of ours */
	cd_checkout		 ck;
	booking_payment		 booking;	/* else an expert booking's payment */
	bool			 is_booking;
};

static cd_err
step(struct disputed *x, const char *name, long long units, long long lost)
{
	return db_exec(&q_step, NULL, "sssii", jstr(x->d, "id"), name,
	    x->product != NULL ? x->product->name : "booking", units, lost);
}

/*
 * A booking's dispute moves to "to" (open, won, lost); the step row (in
 * cents: the payout held, released, or the price reversed) with it.
 */
static cd_err
booking_step(struct disputed *x, const char *to, const char *name)
{
	long long cents;
	bool moved;
	cd_err err;

	if ((err = booking_disputed(&x->booking, jstr(x->d, "id"), to,
	    x->ck.arena, &cents, &moved)) != CD_OK || !moved)
		return err;
	if (strcmp(to, "open") == 0 && (err = db_exec(&q_booking, NULL, "iiis",
	    x->booking.user_id, x->booking.booking_id, cents,
	    jstr(x->d, "id"))) != CD_OK)
		return err;
	if (strcmp(to, "lost") == 0 && (err = db_exec(&q_lost, NULL, "iis",
	    cents, 0LL, jstr(x->d, "id"))) != CD_OK)
		return err;
	return step(x, name, cents, 0);
}

static cd_err
opened_tx(void *arg)
{
	struct disputed *x = arg;
	const json_t *d = x->d;
	long long frozen = 0, granted = 0;
	bool fresh;
	cd_err err;

	if ((err = db_insert_once(&q_dispute, &fresh, NULL, "sssiss",
	    jstr(d, "id"), jstr(d, "charge"), jstr(d, "payment_intent"),
	    jint(d, "amount"), jstr(d, "reason"), jstr(d, "status") ?: "open")) !=
	    CD_OK || !fresh)
		return err;
	if ((err = audit_write("DISPUTE_CREATED", "charge", jstr(d, "charge"), 0,
	    d, "critical")) != CD_OK)
		return err;
	if (x->is_booking)
		return booking_step(x, "open", "freeze");
	if (x->product == NULL)
		return err;
	if ((err = x->product->freeze(&x->ck, false, 0, &frozen, &granted)) !=
	    CD_OK ||
	    (err = db_exec(&q_frozen, NULL, "issis", x->ck.user_id,
	    x->ck.stripe_session_id, x->product->name, frozen, jstr(d, "id"))) !=
	    CD_OK)
		return err;
	return step(x, "freeze", frozen, 0);
}

/* Won: the frozen units are spendable again. */
static cd_err
won(struct disputed *x, long long frozen)
{
	long long released = 0, granted = 0;
	cd_err err;

	if ((err = x->product->freeze(&x->ck, true, frozen, &released,
	    &granted)) != CD_OK)
		return err;
	return step(x, "release", released, 0);
}

/*
 * Lost: released, then reversed like a full refund; what still stood and
 * could not be taken back (used) is the loss.
 */
static cd_err
lost(struct disputed *x, long long frozen)
{
	long long released = 0, standing = 0, units = 0, loss;
	cd_err err;

	if ((err = x->product->freeze(&x->ck, true, frozen, &released,
	    &standing)) != CD_OK ||
	    (err = x->product->reverse(&x->ck, x->ck.amount_cents, &units)) != CD_OK)
		return err;
	loss = standing - units;
	if ((err = db_exec(&q_lost, NULL, "iis", units, loss, jstr(x->d, "id"))) !=
	    CD_OK)
		return err;
	return step(x, "reverse", units, loss);
}

static cd_err
closed_tx(void *arg)
{
	struct disputed *x = arg;
	const char *status = jstr(x->d, "status");
	bool keep = kept(status);
	unsigned long long n;
	long long frozen;
	cd_err err;

	if ((err = db_exec(&q_close, &n, "ss", status, jstr(x->d, "id"))) != CD_OK ||
	    n == 0)
		return err;
	if ((err = audit_write("DISPUTE_CLOSED", "charge", jstr(x->d, "charge"), 0,
	    x->d, keep ? "info" : "critical")) != CD_OK)
		return err;
	/* A booking's dispute_status says only whether the money was kept. */
	if (x->is_booking)
		return booking_step(x, keep ? "won" : "lost", keep ? "release" :
		    "reverse");
	if (x->product == NULL)
		return err;
	if ((err = db_fetch_int(&q_row, &frozen, "s", jstr(x->d, "id"))) != CD_OK)
		return err;
	return keep ? won(x, frozen) : lost(x, frozen);
}

/*
 * An inquiry the bank turned into a chargeback (or any move of an open
 * dispute): what it froze stays frozen; the status is what makes it a
 * chargeback that no refund may follow (BOOKING_CHARGED_BACK).  A booking's
 * chargeback also writes its expert's guard row, which a move writes first
 * (move.c): a move either commits before it or reads it and is refused.
 */
static cd_err
moved_tx(void *arg)
{
	struct disputed *x = arg;
	const char *status = jstr(x->d, "status");
	bool chargeback = strncmp(status, "warning_", 8) != 0, found;
	unsigned long long n = 0;
	cd_err err;

	if ((err = db_exec(&q_moved, &n, "sss", status, jstr(x->d, "id"),
	    status)) != CD_OK || n == 0)
		return err;
	if (x->is_booking && chargeback && (err = booking_guard_expert(
	    x->booking.expert_id, false, &found)) != CD_OK)
		return err;
	return audit_write("DISPUTE_UPDATED", "charge", jstr(x->d, "charge"), 0,
	    x->d, chargeback ? "critical" : "warning");
}

/*
 * The purchase the disputed payment made, if it is one of ours: an expert
 * booking (x->booking), a Checkout purchase or a subscription's invoice
 * (x->product), fulfilled first if its own events are still to come; owned
 * by arena a, which also becomes x->ck.arena.
 */
static cd_err
purchase_of(struct disputed *x, cd_arena *a)
{
	const char *intent = jstr(x->d, "payment_intent");
	cd_err err;

	x->product = NULL;
	x->is_booking = false;
	x->ck.arena = a;
	if ((err = booking_of_intent(intent, a, &x->booking, &x->is_booking)) !=
	    CD_OK || x->is_booking)
		return err;
	if ((err = subscription_purchase_of_charge(x->charge, a, &x->ck)) !=
	    CD_OK || (x->ck.invoice_id == NULL &&
	    (err = fulfil_checkout_of_intent(intent, a, &x->ck)) != CD_OK))
		return err;
	if (x->ck.stripe_session_id == NULL && x->ck.invoice_id == NULL)
		return CD_OK;	/* not a purchase of ours */
	x->product = product_find(x->ck.product);
	if (x->product != NULL && (x->product->freeze == NULL ||
	    x->product->reverse == NULL))
		x->product = NULL;
	return CD_OK;
}

/*
 * The dispute opened, if its opening was missed (or this is it), then moved
 * by then (NULL: nothing more).
 */
static cd_err
open_then(const json_t *d, const json_t *charge, cd_err (*then)(void *))
{
	struct disputed x = { .d = d, .charge = charge };
	cd_arena *a = arena_new();
	cd_err err;

	if ((err = purchase_of(&x, a)) == CD_OK &&
	    (err = db_tx(opened_tx, &x)) == CD_OK && then != NULL)
		err = db_tx(then, &x);
	arena_free(a);
	return err;
}

/* A final status: the dispute is over, kept or lost. */
static bool
is_closed(const char *status)
{
	return kept(status) || strcmp(status, "lost") == 0;
}

cd_err
dispute_opened(const json_t *d, const json_t *charge)
{
	return open_then(d, charge, NULL);
}

cd_err
dispute_updated(const json_t *d, const json_t *charge)
{
	if (is_closed(jstr(d, "status") ?: ""))
		return dispute_closed(d, charge);	/* Stripe has moved on */
	return open_then(d, charge, moved_tx);
}

cd_err
dispute_closed(const json_t *d, const json_t *charge)
{
	if (!is_closed(jstr(d, "status") ?: ""))
		return CD_OK;	/* not closed yet */
	return open_then(d, charge, closed_tx);
}

struct open_hold {
	const char	*id;
	long long	 frozen;
};
static const cd_col open_hold_cols[] = {
	DB_TEXT(struct open_hold, id), DB_INT(struct open_hold, frozen),
};

cd_err
dispute_hold_lift(const cd_product *p, const cd_checkout *ck, dispute_hold *h)
{
	long long released = 0, granted = 0;
	struct open_hold o;
	bool found;
	cd_err err;

	*h = (dispute_hold){ p, ck, NULL };
	if (ck->payment_intent_id == NULL || p->freeze == NULL)
		return CD_OK;
	if ((err = db_fetch_row(&q_open_hold, ck->arena, open_hold_cols,
	    DB_NCOLS(open_hold_cols), &o, sizeof(o), &found, "ss",
	    ck->payment_intent_id, p->name)) != CD_OK || !found)
		return err;
	h->dispute_id = o.id;
	return p->freeze(ck, true, o.frozen, &released, &granted);
}

cd_err
dispute_hold_again(const dispute_hold *h)
{
	long long frozen = 0, granted = 0;
	cd_err err;

	if (h->dispute_id == NULL)
		return CD_OK;
	if ((err = h->product->freeze(h->ck, false, 0, &frozen, &granted)) !=
	    CD_OK)
		return err;
	return db_exec(&q_hold, NULL, "is", frozen, h->dispute_id);
}

/* With a booking refunded in part by its cancel, the cancel's facts. */
static cd_sql q_unanswered = CD_SQL(
    "SELECT d.stripe_dispute_id, d.status, d.charge_id, d.amount_cents,"
    " b.id IS NOT NULL AS by_policy, b.price_cents, b.refunded_cents,"
    " " BOOKING_FULL_REFUND_HOURS("b", "e") ", " BOOKING_LATE_REFUND_BPS("b", "e") ","
    " b.duration_minutes, DATE_FORMAT(b.start_time, '%Y-%m-%d %H:%i') AS start,"
    " DATE_FORMAT(c.created_at, '%Y-%m-%d %H:%i') AS cancelled,"
    " TIMESTAMPDIFF(MINUTE, c.created_at, b.start_time) AS notice"
    " FROM disputes d LEFT JOIN bookings b ON b.id = d.booking_id AND "
    BOOKING_CANCEL_REFUNDED_IN_PART("b")
    " LEFT JOIN experts e ON e.id = b.expert_id"
    /* when the cancel was decided: its one audit row (written when fresh) */
    " LEFT JOIN audit_log c ON c.action = 'BOOKING_CANCEL_DECIDED'"
    " AND c.entity_id = CAST(b.id AS CHAR) COLLATE utf8mb4_bin"
    " WHERE " DISPUTE_UNANSWERED("d") " ORDER BY d.id LIMIT 1000");
struct unanswered {
	const char	*id, *status, *charge, *start, *cancelled;
	long long	 cents, by_policy, price, refunded, full_hours, late_bps;
	long long	 minutes, notice;
};
static const cd_col unanswered_cols[] = {
	DB_TEXT(struct unanswered, id), DB_TEXT(struct unanswered, status),
	DB_TEXT(struct unanswered, charge), DB_INT(struct unanswered, cents),
	DB_INT(struct unanswered, by_policy), DB_INT(struct unanswered, price),
	DB_INT(struct unanswered, refunded),
	DB_INT(struct unanswered, full_hours), DB_INT(struct unanswered, late_bps),
	DB_INT(struct unanswered, minutes),
	DB_TEXT(struct unanswered, start), DB_TEXT(struct unanswered, cancelled),
	DB_INT(struct unanswered, notice),
};
/* Whoever records the answer first writes its audit row: one per answer. */
static cd_sql q_answered = CD_SQL(
    "UPDATE disputes SET answered_status = ? WHERE stripe_dispute_id = ?"
    " AND NOT (answered_status <=> ?)");

struct answer {
	const struct unanswered	*u;
	const json_t		*evidence;	/* as submitted */
	bool			 refused;	/* by Stripe: not submitted */
};

static cd_err
answered_tx(void *arg)
{
	const struct answer *an = arg;
	unsigned long long n = 0;
	json_t *details;
	cd_err err;

	if ((err = db_exec(&q_answered, &n, "sss", an->u->status, an->u->id,
	    an->u->status)) != CD_OK || n == 0)
		return err;
	details = json_pack("{s:s,s:s,s:O}", "dispute", an->u->id, "status",
	    an->u->status, "evidence", an->evidence);
	err = audit_write(an->refused ? "DISPUTE_ANSWER_REFUSED" :
	    "DISPUTE_ANSWERED", "charge", an->u->charge, 0, details,
	    an->refused ? "critical" : "warning");
	json_decref(details);
	return err;
}

/* "4 hours and 59 minutes", "1 hour", "45 minutes": how long before. */
static void
notice_words(cd_buf *b, long long minutes)
{
	long long h = minutes / 60, m = minutes % 60;

	if (h > 0)
		buf_printf(b, "%lld hour%s%s", h, h == 1 ? "" : "s",
		    m > 0 ? " and " : "");
	if (m > 0 || h == 0)
		buf_printf(b, "%lld minute%s", m, m == 1 ? "" : "s");
}

/* What the policy refunded: "$15.00 of its $30.00 price was refunded". */
static void
policy_refund(cd_buf *b, const struct unanswered *u)
{
	if (u->refunded == 0)
		buf_puts(b, "none of its ");
	else {
		format_cents(b, u->refunded);
		buf_puts(b, " of its ");
	}
	format_cents(b, u->price);
	buf_puts(b, " price was refunded to their card");
}

/* The evidence: the refund in full, or the cancel the policy refunded in part. */
static json_t *
evidence(const struct unanswered *u, cd_arena *a)
{
	cd_buf *text = buf_in(a);

	if (!u->by_policy) {
		buf_puts(text, "This payment was refunded in full to the customer's"
		    " card before the bank decided: ");
		format_cents(text, u->cents);
		buf_puts(text, " went back to them, as the refunds on this charge"
		    " in Stripe show. Nothing remains to be paid back.");
		return json_pack("{s:s}", "uncategorized_text", buf_cstr(text));
	}
	buf_puts(text, "The customer cancelled this booking ");
	if (u->cancelled != NULL) {	/* its decision's audit row */
		buf_printf(text, "on %s UTC, ", u->cancelled);
		notice_words(text, u->notice);
		buf_putc(text, ' ');
	}
	buf_printf(text, "before the session it reserved (%s UTC, %lld minutes"
	    " with an expert). Under the cancellation policy shown to them when"
	    " booking (in full up to %lld hours before the session, ", u->start,
	    u->minutes, u->full_hours);
	format_bps(text, u->late_bps);
	buf_puts(text, " of the price after that), ");
	policy_refund(text, u);
	buf_puts(text, "; the rest pays for the expert's time, which was held"
	    " for them until they cancelled.");
	return json_pack("{s:s,s:s%}", "cancellation_rebuttal", buf_cstr(text),
	    "service_date", u->start, (size_t)10);
}

/*
 * Submits dispute row's evidence (*submitted), and records that it did, or
 * that Stripe refused it.
 */
static cd_err
answer(const void *row, cd_arena *a, bool *submitted)
{
	const struct unanswered *u = row;
	struct answer an = { u, NULL, false };
	json_t *params, *out = NULL;
	char path[300], key[300];
	long status;
	cd_err err;

	if (!stripe_id_ok(u->id, "dp_"))
		return CD_OK;	/* not a dispute Stripe could have named */
	params = arena_json(a, json_pack("{s:o,s:b}", "evidence", evidence(u, a),
	    "submit", 1));
	an.evidence = json_object_get(params, "evidence");
	snprintf(path, sizeof(path), "/v1/disputes/%s", u->id);
	snprintf(key, sizeof(key), "dispute-%s-answer-%s", u->id, u->status);
	err = stripe_call("POST", path, params, key, &out);
	arena_json(a, out);
	/* 400: this dispute takes no answer; not a key, rate or server fault */
	status = stripe_last_error()->status;
	if (err == CD_NOT_FOUND || (err == CD_STRIPE && status == 400)) {
		log_warn("dispute %s: Stripe refused its answer", u->id);
		an.refused = true;
	} else if (err != CD_OK) {
		log_warn("dispute %s: not answered, tried again next run", u->id);
		return err;
	}
	if ((err = db_tx(answered_tx, &an)) == CD_OK)
		*submitted = !an.refused;
	return err;
}

cd_err
dispute_answer(long long *done)
{
	/* one Stripe cannot take now does not stop the others */
	return db_each_row(&q_unanswered, unanswered_cols,
	    DB_NCOLS(unanswered_cols), sizeof(struct unanswered), answer, done);
}
