/*
 * Subscriptions.  The Checkout Session only starts the subscription; credits
 * come from invoices: every paid invoice allocates the plan's monthly credits
 * once, guarded by the UNIQUE invoice id.  invoice.paid may arrive before
 * checkout.session.completed, so both paths create the subscription row with
 * an upsert on its UNIQUE Stripe id and neither depends on the other.
 *
 * The row keeps Stripe's status, period end and cancel_at_period_end from
 * every subscription Stripe returns (always retrieved, never a payload).
 * canceled is final and the period end only ever moves later, whatever
 * order copies are written in.  The status otherwise moves both ways
 * (active, past_due, active again), and so does cancel_at_period_end (the
 * user cancels, then keeps the plan after all), so their copies are
 * ordered: whoever fetches or changes the subscription on its own (the
 * user's cancel or resume, customer.subscription.*) first takes a ticket
 * from the row, and status and flag are written only from a copy whose
 * ticket is newer than that of the copy they came from (flag_ticket).  A
 * copy fetched on the way (with an invoice) has no ticket: it can set the
 * flag, never clear it, and write the status, only until an ordered copy
 * has written them.  Each change at Stripe sends
 * customer.subscription.updated, whose copy is fetched after the change, so
 * the row ends where Stripe is.  A refunded invoice takes back its
 * allocation's credits in proportion, never more than the user's balance.
 *
 * A plan change (checkout/subscription.c) names the new plan in the
 * subscription's metadata from the next renewal on; each copy's plan is
 * kept as renews_as, ordered like the flag.  An invoice is the plan it was
 * made for (the metadata copied onto it), allocates that plan's credits and
 * makes the subscription that plan, unless a newer invoice already has
 * (plan_since): so the tier follows the plan paid for.
 */
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "db.h"
#include "dispute.h"
#include "format.h"
#include "fulfil.h"
#include "ledger.h"
#include "log.h"
#include "products.h"
#include "stripe.h"

static cd_sql q_upsert = CD_SQL(
    "INSERT INTO subscriptions (user_id, plan_id, stripe_subscription_id,"
    " stripe_session_id, status, stripe_nonce) VALUES (?, ?, ?, ?, ?, ?)"
    " ON DUPLICATE KEY UPDATE"
    " stripe_session_id = COALESCE(stripe_session_id, VALUES(stripe_session_id))");
static cd_sql q_claim = CD_SQL(
    "UPDATE checkout_sessions SET status = 'fulfilled' WHERE id = ? AND status <> 'fulfilled'");
/*
 * The allocation takes the subscription's id from its own upsert: a SELECT
 * would read the transaction's snapshot, which can predate the row a
 * concurrent first fulfilment has just committed.
 */
static cd_sql q_upsert_id = CD_SQL(
    "INSERT INTO subscriptions (user_id, plan_id, stripe_subscription_id, status,"
    " stripe_nonce) VALUES (?, ?, ?, 'active', ?)"
    " ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)");
/*
 * MariaDB assigns left to right, each assignment seeing those before it: the
 * flag comes first, so that the copy which cancels the row can still set it,
 * and flag and status compare the copy's ticket with flag_ticket before that
 * moves (see the top).
 */
static cd_sql q_sync = CD_SQL(
    "UPDATE subscriptions SET cancel_at_period_end = CASE"
    "  WHEN status = 'canceled' THEN cancel_at_period_end"
    "  WHEN ? > flag_ticket THEN ?"
    "  WHEN flag_ticket = 0 THEN GREATEST(cancel_at_period_end, ?)"
    "  ELSE cancel_at_period_end END,"
    " status = CASE WHEN status = 'canceled' THEN status"
    "  WHEN ? > flag_ticket OR flag_ticket = 0 THEN ? ELSE status END,"
    " renews_as = CASE WHEN ? > flag_ticket OR flag_ticket = 0"
    "  THEN (SELECT p.id FROM subscription_plans p WHERE p.id = ?) ELSE renews_as END,"
    " flag_ticket = GREATEST(flag_ticket, ?),"
    " current_period_end = GREATEST(COALESCE(current_period_end, FROM_UNIXTIME(0)),"
    "  FROM_UNIXTIME(?))"
    " WHERE stripe_subscription_id = ?");
static cd_sql q_ticket = CD_SQL(
    "UPDATE subscriptions SET sync_ticket = LAST_INSERT_ID(sync_ticket + 1)"
    " WHERE stripe_subscription_id = ?");
static cd_sql q_guard_allocation = CD_SQL(
    "UPDATE subscription_allocations SET version = version + 1 WHERE stripe_invoice_id = ?");
static cd_sql q_allocation = CD_SQL(
    "SELECT a.credits, a.credits_reversed, s.user_id, s.stripe_subscription_id"
    " FROM subscription_allocations a JOIN subscriptions s ON s.id = a.subscription_id"
    " WHERE a.stripe_invoice_id = ?");
/* An invoice's allocation of credits, with its subscription's user. */
struct invoice_credits {
	long long	 credits, reversed, user_id;
	const char	*subscription;		/* sub_… */
};
static const cd_col allocation_cols[] = {
	DB_INT(struct invoice_credits, credits),
	DB_INT(struct invoice_credits, reversed),
	DB_INT(struct invoice_credits, user_id),
	DB_TEXT(struct invoice_credits, subscription),
};
static cd_sql q_reversed = CD_SQL(
    "UPDATE subscription_allocations SET credits_reversed = credits_reversed + ?"
    " WHERE stripe_invoice_id = ?");
static cd_sql q_plan = CD_SQL(
    "SELECT name, monthly_credits FROM subscription_plans WHERE id = ?");
struct plan {
	const char	*name;
	long long	 credits;	/* every month */
};
static const cd_col plan_cols[] = {
	DB_TEXT(struct plan, name), DB_INT(struct plan, credits),
};
/*
 * Evidence that the subscription is ours: a checkout we created for this
 * user and plan, or our row of it (its plan changed since).
 */
static cd_sql q_ours = CD_SQL(
    "SELECT 1 FROM checkout_sessions WHERE user_id = ? AND product = 'subscription'"
    " AND item_code = ? UNION ALL SELECT 1 FROM subscriptions WHERE user_id = ?"
    " AND stripe_subscription_id = ? LIMIT 1");
/* The plan a newer invoice paid for is the subscription's from then on. */
static cd_sql q_plan_since = CD_SQL(
    "UPDATE subscriptions SET plan_id = ?, plan_since = ? WHERE id = ? AND plan_since <= ?");
/* With what the invoice charged and through which PaymentIntent (Payments). */
static cd_sql q_allocate = CD_SQL(
    "INSERT INTO subscription_allocations (subscription_id, plan_id, stripe_invoice_id,"
    " credits, amount_cents, payment_intent_id) VALUES (?, ?, ?, ?, ?, ?)");

/*
 * The tier the user's plans give (db/migrations/034_plan_tier.sql), written
 * with every write of one of their subscriptions: premium while a plan that
 * includes it is live (paid, in its trial or its renewal being retried).
 * plan_changes moves so that the row is always written: two changes of one
 * user's plans on two Galera nodes conflict instead of each reading the
 * other's old status.
 */
static cd_sql q_plan_tier = CD_SQL(
    "UPDATE users SET plan_changes = plan_changes + 1,"
    " plan_tier = IF(" PLAN_GIVES_PREMIUM("?") ", 'firewall', 'free')"
    " WHERE id = ?");

static cd_err
plan_tier_sync(long long user_id)
{
	return db_exec(&q_plan_tier, NULL, "ii", user_id, user_id);
}

/* The random value a new row keeps for its Stripe Idempotency-Keys. */
static cd_err
new_nonce(char out[CD_TOKEN_LEN + 1])
{
	return random_token(out) == 0 ? CD_OK : CD_INTERNAL;
}

static cd_err
grant(const cd_checkout *ck, bool *granted)
{
	const char *sub = json_string_value(json_object_get(ck->stripe, "subscription"));
	char nonce[CD_TOKEN_LEN + 1];
	unsigned long long n;
	cd_err err;

	*granted = false;
	if (sub == NULL)
		return CD_OK;	/* not complete yet */
	if ((err = new_nonce(nonce)) != CD_OK ||
	    (err = db_exec(&q_upsert, NULL, "isssss", ck->user_id, ck->item_code,
	    sub, ck->stripe_session_id, "active", nonce)) != CD_OK ||
	    (err = plan_tier_sync(ck->user_id)) != CD_OK ||
	    (err = db_exec(&q_claim, &n, "i", ck->id)) != CD_OK)
		return err;
	*granted = n == 1;
	return CD_OK;
}

/* Stripe's state of the subscription onto our row (see the top). */
static cd_err
sync_row(const json_t *sub, long long ticket)
{
	long long flag = json_is_true(json_object_get(sub,
	    "cancel_at_period_end"));

	return db_exec(&q_sync, NULL, "iiiisisiis", ticket, flag, flag, ticket,
	    jstr(sub, "status") ?: "active", ticket,
	    jstr(json_object_get(sub, "metadata"), "item"), ticket,
	    jint(sub, "current_period_end"), jstr(sub, "id"));
}

struct ticket {
	const char	*subscription;	/* sub_… */
	long long	 n;
};

static cd_err
ticket_tx(void *arg)
{
	struct ticket *t = arg;
	cd_err err;

	t->n = 0;
	switch (db_write(&q_ticket, &t->n, &err, "s", t->subscription)) {
	case DB_DONE:
		return CD_OK;
	case DB_NOT_FOUND:	/* no row yet: its first copy makes it */
		t->n = 0;
		return CD_OK;
	default:
		return err;
	}
}

cd_err
subscription_ticket(const char *subscription_id, long long *ticket)
{
	struct ticket t = { subscription_id, 0 };
	cd_err err;

	err = db_tx(ticket_tx, &t);
	*ticket = t.n;
	return err;
}

struct allocation {
	const json_t	*invoice;
	const json_t	*sub;
	const char	*sub_id;
	long long	 user_id;
	const char	*plan_id;
	cd_arena	*arena;		/* owns what allocate_tx creates */
};

static cd_err
allocate_tx(void *arg)
{
	struct allocation *a = arg;
	const char *invoice_id = json_string_value(json_object_get(a->invoice, "id"));
	long long rate, credits, sub, created;
	char nonce[CD_TOKEN_LEN + 1];
	struct plan plan;
	json_t *meta;
	size_t n = 0;
	cd_buf *desc;
	bool fresh;
	cd_entry e;
	cd_err err;

	if ((err = ledger_rate(&rate)) != CD_OK ||
	    (err = db_fetch(&q_plan, a->arena, plan_cols, DB_NCOLS(plan_cols),
	    &plan, sizeof(plan), 1, &n, "s", a->plan_id)) != CD_OK)
		return err;
	if (n == 0)
		return CD_NOT_FOUND;
	credits = plan.credits;
	desc = buf_in(a->arena);
	buf_printf(desc, "%s plan: ", plan.name);
	format_count(desc, credits);
	buf_puts(desc, " Pilot Credits");
	if ((err = new_nonce(nonce)) != CD_OK ||
	    (err = db_insert(&q_upsert_id, &sub, "isss", a->user_id, a->plan_id,
	    a->sub_id, nonce)) != CD_OK)
		return err;
	if (sub <= 0)
		return CD_INTERNAL;	/* the upsert always names the row */
	created = jint(a->invoice, "created");
	if ((err = db_exec(&q_plan_since, NULL, "siii", a->plan_id, created, sub,
	    created)) != CD_OK ||
	    (err = sync_row(a->sub, 0)) != CD_OK ||
	    (err = plan_tier_sync(a->user_id)) != CD_OK ||
	    (err = db_insert_once(&q_allocate, &fresh, NULL, "issiis", sub,
	    a->plan_id, invoice_id, credits * rate, jint(a->invoice, "amount_paid"),
	    jstr(a->invoice, "payment_intent"))) != CD_OK || !fresh)
		return err;
	meta = arena_json(a->arena, json_pack("{s:s,s:s,s:s,s:I}",
	    "stripeInvoiceId", invoice_id, "stripeSubscriptionId", a->sub_id,
	    "planId", a->plan_id,
	    "amountPaidCents", (json_int_t)jint(a->invoice, "amount_paid")));
	e = (cd_entry){ a->user_id, credits * rate, 0, "allocation",
	    "subscription_renewal", buf_cstr(desc), meta };
	return ledger_apply(&e, NULL);
}

/*
 * The plan an invoice charged for: its subscription's as the invoice was
 * made (a plan changed since names only later invoices), else the
 * subscription's now.
 */
static const char *
invoice_plan(const json_t *invoice, const json_t *sub)
{
	const char *item = jstr(json_object_get(json_object_get(invoice,
	    "subscription_details"), "metadata"), "item");

	return item != NULL ? item : jstr(json_object_get(sub, "metadata"), "item");
}

static cd_err
invoice_paid(const json_t *invoice, const json_t *subscription, cd_arena *arena)
{
	const json_t *meta = json_object_get(subscription, "metadata");
	struct allocation a;
	long long ours;
	cd_err err;

	if (!json_is_true(json_object_get(invoice, "paid")) ||
	    strcmp(jstr(invoice, "status") ?: "", "paid") != 0)
		return CD_OK;
	a.invoice = invoice;
	a.sub = subscription;
	a.sub_id = jstr(subscription, "id");
	a.user_id = jint(meta, "user_id");
	a.plan_id = invoice_plan(invoice, subscription);
	a.arena = arena;
	if (a.sub_id == NULL || a.user_id <= 0 || a.plan_id == NULL ||
	    jstr(invoice, "id") == NULL)
		return CD_OK;	/* not a subscription we sold */
	if ((err = db_fetch_int(&q_ours, &ours, "isis", a.user_id, a.plan_id,
	    a.user_id, a.sub_id)) != CD_OK)
		return err;
	if (ours == 0) {
		log_warn("invoice %s: no checkout of ours for this subscription",
		    jstr(invoice, "id"));
		return CD_OK;
	}
	err = db_tx(allocate_tx, &a);
	return err == CD_NOT_FOUND ? CD_OK : err;
}

/*
 * invoice_paid() with the invoice's subscription: sub as it came expanded
 * in the invoice, or retrieved when it did not (one more call).
 */
static cd_err
allocate(const json_t *invoice, const json_t *sub, cd_arena *a)
{
	json_t *fetched = NULL;
	cd_err err;

	if (!json_is_object(sub)) {
		err = stripe_retrieve("subscriptions", "sub_",
		    jstr(invoice, "subscription"), &fetched);
		arena_json(a, fetched);
		if (err != CD_OK)
			return err;
		sub = fetched;
	}
	return invoice_paid(invoice, sub, a);
}

cd_err
subscription_allocate_invoice(const char *invoice_id)
{
	cd_arena *a = arena_new();
	json_t *invoice = NULL, *sub = NULL;
	cd_err err;

	/*
	 * An invoice or subscription Stripe does not have: nothing to allocate.
	 * One call: the subscription comes expanded with the invoice.
	 */
	err = stripe_retrieve_expanded("invoices", "in_", invoice_id,
	    "subscription", &invoice, &sub);
	arena_json(a, invoice);
	arena_json(a, sub);
	if (err == CD_OK)
		err = allocate(invoice, sub, a);
	arena_free(a);
	return err == CD_NOT_FOUND ? CD_OK : err;
}

/* Our subscription (sold through our checkout): user and plan, or user 0. */
static cd_err
ours(const json_t *sub, long long *user_id, const char **plan_id)
{
	const json_t *meta = json_object_get(sub, "metadata");
	long long id;
	cd_err err;

	*user_id = jint(meta, "user_id");
	*plan_id = jstr(meta, "item");
	if (*user_id <= 0 || *plan_id == NULL || jstr(sub, "id") == NULL) {
		*user_id = 0;
		return CD_OK;
	}
	if ((err = db_fetch_int(&q_ours, &id, "isis", *user_id, *plan_id,
	    *user_id, jstr(sub, "id"))) != CD_OK)
		return err;
	if (id == 0)
		*user_id = 0;
	return CD_OK;
}

struct syncing {
	const json_t	*sub;
	long long	 ticket;
	long long	 user_id;
	const char	*plan_id;
};

static cd_err
sync_tx(void *arg)
{
	struct syncing *s = arg;
	char nonce[CD_TOKEN_LEN + 1];
	long long id;
	cd_err err;

	if ((err = new_nonce(nonce)) != CD_OK ||
	    (err = db_insert(&q_upsert_id, &id, "isss", s->user_id, s->plan_id,
	    jstr(s->sub, "id"), nonce)) != CD_OK ||
	    (err = sync_row(s->sub, s->ticket)) != CD_OK)
		return err;
	return plan_tier_sync(s->user_id);
}

cd_err
subscription_sync_object(const json_t *sub, long long ticket)
{
	struct syncing s = { sub, ticket, 0, NULL };
	cd_err err;

	if ((err = ours(sub, &s.user_id, &s.plan_id)) != CD_OK || s.user_id == 0)
		return err;
	return db_tx(sync_tx, &s);
}

cd_err
subscription_sync(const char *subscription_id)
{
	cd_arena *a = arena_new();
	json_t *sub = NULL;
	long long ticket;
	cd_err err;

	if ((err = subscription_ticket(subscription_id, &ticket)) == CD_OK)
		err = stripe_retrieve("subscriptions", "sub_", subscription_id,
		    &sub);
	arena_json(a, sub);
	if (err == CD_OK)
		err = subscription_sync_object(sub, ticket);
	arena_free(a);
	return err == CD_NOT_FOUND ? CD_OK : err;
}

struct sub_refund {
	const json_t	*charge;
	const char	*invoice_id;
	const char	*key;		/* charge id / cumulative cents refunded */
	cd_arena	*arena;		/* the refund's: the row, the metadata */
};

/* Credits to take back in all for refunded of paid cents of an allocation. */
static long long
reverse_target(long long credits, long long refunded, long long paid)
{
	if (paid <= 0 || refunded >= paid)
		return credits;
	return credits * refunded / paid;
}

/* The invoice's allocation; *found false if none. */
static cd_err
read_allocation(const char *invoice_id, cd_arena *a, struct invoice_credits *al,
    bool *found)
{
	size_t n = 0;
	cd_err err;

	err = db_fetch(&q_allocation, a, allocation_cols, DB_NCOLS(allocation_cols),
	    al, sizeof(*al), 1, &n, "s", invoice_id);
	*found = err == CD_OK && n == 1;
	return err;
}

/* read_allocation with its guard row written first. */
static cd_err
lock_allocation(const char *invoice_id, cd_arena *a, struct invoice_credits *al,
    bool *found)
{
	cd_err err;

	*found = false;
	if ((err = db_exec(&q_guard_allocation, NULL, "s", invoice_id)) != CD_OK)
		return err;
	return read_allocation(invoice_id, a, al, found);
}

/*
 * Takes back the allocation's share for refunded of paid cents, never more
 * than the user may spend (frozen tokens are a dispute's); *units = taken.
 * Inside the caller's transaction, after lock_allocation.
 */
static cd_err
take_back(const char *invoice_id, const struct invoice_credits *al,
    long long refunded, long long paid, cd_arena *a, long long *units)
{
	long long delta = reverse_target(al->credits, refunded, paid) - al->reversed,
	    spendable;
	json_t *meta;
	cd_entry e;
	cd_err err;

	*units = 0;
	if (delta <= 0)
		return CD_OK;
	if ((err = ledger_spendable_for_update(al->user_id, &spendable,
	    NULL)) != CD_OK)
		return err;
	*units = delta < spendable ? delta : spendable;
	if (*units <= 0)
		return CD_OK;
	meta = arena_json(a, json_pack("{s:s,s:s?,s:I}", "stripeInvoiceId",
	    invoice_id, "stripeSubscriptionId", al->subscription,
	    "refundedCents", (json_int_t)refunded));
	e = (cd_entry){ al->user_id, -*units, 0, "refund", "subscription_refund",
	    "Subscription invoice refund", meta };
	if ((err = db_exec(&q_reversed, NULL, "is", *units, invoice_id)) != CD_OK)
		return err;
	return ledger_apply(&e, NULL);
}

static cd_err
refund_tx(void *arg)
{
	struct sub_refund *sr = arg;
	long long refunded = jint(sr->charge, "amount_refunded"), units = 0;
	cd_checkout ck = { 0 };	/* the invoice, as its dispute names it */
	struct invoice_credits al;
	dispute_hold hold;
	bool fresh, found;
	cd_err err;

	if ((err = reversal_open(sr->key, NULL, jstr(sr->charge, "payment_intent"),
	    "subscription", refunded, &fresh)) != CD_OK || !fresh ||
	    (err = lock_allocation(sr->invoice_id, sr->arena, &al, &found)) != CD_OK)
		return err;
	if (!found)	/* not ours */
		return CD_OK;
	ck.invoice_id = sr->invoice_id;
	ck.payment_intent_id = jstr(sr->charge, "payment_intent");
	ck.arena = sr->arena;
	if ((err = dispute_hold_lift(&product_subscription, &ck, &hold)) !=
	    CD_OK || (err = take_back(sr->invoice_id, &al, refunded,
	    jint(sr->charge, "amount"), sr->arena, &units)) != CD_OK ||
	    (err = dispute_hold_again(&hold)) != CD_OK)
		return err;
	return reversal_units(sr->key, units);
}

/* The subscriber an invoice's allocation credited, or 0: none yet. */
static cd_err
allocation_user(const char *invoice_id, cd_arena *a, long long *user_id)
{
	struct invoice_credits al;
	bool found;
	cd_err err;

	err = read_allocation(invoice_id, a, &al, &found);
	*user_id = found ? al.user_id : 0;
	return err;
}

/*
 * The subscriber an invoice's allocation credited, or 0: not ours.  A
 * refund or a dispute can be handled before the invoice's invoice.paid
 * (events come out of order): the invoice is then allocated first, as
 * invoice.paid would, so that there are credits to take back or freeze.
 */
static cd_err
allocated_to(const char *invoice_id, cd_arena *a, long long *user_id)
{
	cd_err err;

	if ((err = allocation_user(invoice_id, a, user_id)) != CD_OK ||
	    *user_id != 0 ||
	    (err = subscription_allocate_invoice(invoice_id)) != CD_OK)
		return err;
	return allocation_user(invoice_id, a, user_id);
}

cd_err
subscription_refund(const json_t *charge)
{
	struct sub_refund sr = { charge, jstr(charge, "invoice"), NULL, NULL };
	long long user;
	char key[300];
	cd_err err;

	if (!stripe_id_ok(sr.invoice_id, "in_") ||
	    !stripe_id_ok(jstr(charge, "id"), "ch_") ||
	    jint(charge, "amount_refunded") <= 0)
		return CD_OK;
	snprintf(key, sizeof(key), "%s/%lld", jstr(charge, "id"),
	    jint(charge, "amount_refunded"));
	sr.key = key;
	sr.arena = arena_new();
	if ((err = allocated_to(sr.invoice_id, sr.arena, &user)) == CD_OK)
		err = db_tx(refund_tx, &sr);
	arena_free(sr.arena);
	return err;
}

/* The allocation of the invoice a dispute's ck names, as lock_allocation. */
static cd_err
lock_disputed(const cd_checkout *ck, struct invoice_credits *al, bool *found)
{
	*found = false;
	return ck->invoice_id == NULL ? CD_OK :
	    lock_allocation(ck->invoice_id, ck->arena, al, found);
}

/*
 * A dispute of an invoice's payment (see dispute.c): ck names the invoice
 * (ck->invoice_id) and its subscriber; what its allocation granted, less what
 * refunds took back, is frozen while unspent.
 */
static cd_err
freeze(const cd_checkout *ck, bool release, long long units, long long *frozen,
    long long *granted)
{
	struct invoice_credits al;
	bool found;
	cd_err err;

	*frozen = 0;
	if ((err = lock_disputed(ck, &al, &found)) != CD_OK || !found)
		return err;
	*granted = al.credits - al.reversed;
	return ledger_dispute_freeze(al.user_id, release, al.credits - al.reversed,
	    units, "stripeInvoiceId", ck->invoice_id, ck->payment_intent_id, frozen);
}

/* A lost dispute of an invoice's payment: taken back like a refund. */
static cd_err
reverse(const cd_checkout *ck, long long refunded_cents, long long *units)
{
	struct invoice_credits al;
	bool found;
	cd_err err;

	*units = 0;
	if ((err = lock_disputed(ck, &al, &found)) != CD_OK || !found)
		return err;
	return take_back(ck->invoice_id, &al, refunded_cents, ck->amount_cents,
	    ck->arena, units);
}

cd_err
subscription_purchase_of_charge(const json_t *charge, cd_arena *a,
    cd_checkout *ck)
{
	const char *invoice;
	cd_err err;

	memset(ck, 0, sizeof(*ck));
	ck->arena = a;
	invoice = jstr(charge, "invoice");
	if (!stripe_id_ok(invoice, "in_"))
		return CD_OK;	/* paid no invoice */
	if ((err = allocated_to(invoice, a, &ck->user_id)) != CD_OK ||
	    ck->user_id == 0)
		return err;	/* or not an invoice of ours */
	ck->product = product_subscription.name;
	ck->invoice_id = invoice;
	ck->payment_intent_id = jstr(charge, "payment_intent");
	ck->amount_cents = jint(charge, "amount");
	return CD_OK;
}

/*
 * The first invoice is settled at once, whether or not invoice.paid came:
 * from the session's answer, which has it expanded with its subscription
 * (fulfil_retrieve), or else retrieved.  That copy of the subscription
 * is one transaction (the grant) older than a copy fetched now would be;
 * the sync keeps a cancel and the latest period end whichever copy comes
 * last.
 */
static cd_err
after(const cd_checkout *ck)
{
	const json_t *invoice = json_object_get(ck->stripe, "invoice");
	cd_err err;

	if (json_is_string(invoice))
		return subscription_allocate_invoice(json_string_value(invoice));
	if (!json_is_object(invoice))
		return CD_OK;
	err = allocate(invoice, json_object_get(invoice, "subscription"),
	    ck->arena);
	return err == CD_NOT_FOUND ? CD_OK : err;
}

const cd_product product_subscription = { "subscription", grant, reverse, route_billing, after,
    freeze };
