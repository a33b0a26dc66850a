/*
 * Fulfilment of paid Checkout Sessions and reversal of refunds; see fulfil.h.
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "dispute.h"
#include "fulfil.h"
#include "log.h"
#include "products.h"
#include "stripe.h"

static const cd_product *const products[] = {
	&product_live_help,
	&product_voice_therapy,
	&product_boost_pack,
	&product_subscription,
	&product_consultation,
};

/* Our record of a checkout, as struct local below declares it. */
#define LOCAL_COLS \
    "SELECT id, stripe_session_id, user_id, product, item_code, quantity," \
    " amount_cents, currency, status FROM checkout_sessions"
static cd_sql q_local = CD_SQL(LOCAL_COLS " WHERE stripe_session_id = ?");
static cd_sql q_local_by_intent = CD_SQL(LOCAL_COLS " WHERE payment_intent_id = ?");
static cd_sql q_mark_fulfilled = CD_SQL(
    "UPDATE checkout_sessions SET status = 'fulfilled',"
    " fulfilled_at = UTC_TIMESTAMP(6), payment_intent_id = ? WHERE id = ?");
static cd_sql q_mark_refunded = CD_SQL(
    "UPDATE checkout_sessions SET status = 'refunded' WHERE id = ?");
static cd_sql q_mark_failed = CD_SQL(
    "UPDATE checkout_sessions SET status = 'failed'"
    " WHERE stripe_session_id = ? AND status = 'open'");
static cd_sql q_mark_expired = CD_SQL(
    "UPDATE checkout_sessions SET status = 'expired'"
    " WHERE stripe_session_id = ? AND status = 'open'");
static cd_sql q_reversal = CD_SQL(
    "INSERT INTO payment_reversals (stripe_refund_id, stripe_session_id,"
    " payment_intent_id, product, amount_cents, units_reversed)"
    " VALUES (?, ?, ?, ?, ?, 0)");
static cd_sql q_reversal_units = CD_SQL(
    "UPDATE payment_reversals SET units_reversed = ? WHERE stripe_refund_id = ?");

/* Our record of a checkout: what the product functions take, and its currency. */
struct local {
	cd_checkout	 ck;
	const char	*currency;
	const char	*status;	/* checkout_sessions.status */
};
static const cd_col local_cols[] = {
	DB_INT(struct local, ck.id), DB_TEXT(struct local, ck.stripe_session_id),
	DB_INT(struct local, ck.user_id), DB_TEXT(struct local, ck.product),
	DB_TEXT(struct local, ck.item_code), DB_INT(struct local, ck.quantity),
	DB_INT(struct local, ck.amount_cents), DB_TEXT(struct local, currency),
	DB_TEXT(struct local, status),
};

const cd_product *
product_find(const char *name)
{
	size_t i;

	for (i = 0; name && i < sizeof(products) / sizeof(products[0]); i++)
		if (strcmp(products[i]->name, name) == 0)
			return products[i];
	return NULL;
}

struct grant {
	const cd_product	*product;
	const cd_checkout	*ck;
	bool			 granted;
};

static cd_err
grant_tx(void *arg)
{
	struct grant *g = arg;
	const cd_checkout *ck = g->ck;
	json_t *details;
	cd_err err;

	if ((err = g->product->grant(ck, &g->granted)) != CD_OK || !g->granted)
		return err;
	if ((err = db_exec(&q_mark_fulfilled, NULL, "si", ck->payment_intent_id,
	    ck->id)) != CD_OK)
		return err;
	details = arena_json(ck->arena, json_pack("{s:s,s:s,s:I,s:I,s:s?}",
	    "product", ck->product, "item", ck->item_code,
	    "quantity", (json_int_t)ck->quantity,
	    "amountCents", (json_int_t)ck->amount_cents,
	    "paymentIntent", ck->payment_intent_id));
	return audit_write("PAYMENT_FULFILLED", "checkout_session",
	    ck->stripe_session_id, ck->user_id, details, "info");
}

/* Stripe's session must match what we created: same amount and currency. */
static bool
matches_local(const json_t *session, const struct local *local)
{
	const char *cur = jstr(session, "currency");

	return jint(session, "amount_total") == local->ck.amount_cents &&
	    cur != NULL && local->currency != NULL &&
	    strcmp(cur, local->currency) == 0;
}

static cd_err
fulfil_local(const json_t *session, const struct local *local, cd_arena *a,
    cd_fulfilment *out)
{
	const char *status = jstr(session, "payment_status");
	struct grant g = { NULL, NULL, false };
	cd_checkout ck;
	cd_err err;

	out->paid = status != NULL && (strcmp(status, "paid") == 0 ||
	    strcmp(status, "no_payment_required") == 0);
	if (!out->paid) {
		/* an async payment Stripe failed: the dashboard's notice says so */
		if (local->status != NULL && strcmp(local->status, "failed") == 0)
			snprintf(out->route, sizeof(out->route),
			    "/dashboard?purchased=%lld", local->ck.id);
		else
			snprintf(out->route, sizeof(out->route),
			    "/dashboard?payment=pending");
		return CD_OK;
	}
	if (!matches_local(session, local)) {
		log_error("fulfil: %s amount or currency differs from the local record",
		    jstr(session, "id"));
		return CD_FORBIDDEN;	/* never granted, whoever asks */
	}
	/* Our record, with Stripe's facts; the product functions' scope is a. */
	ck = local->ck;
	ck.stripe_session_id = jstr(session, "id");
	ck.payment_intent_id = jstr(session, "payment_intent");
	ck.stripe = session;
	ck.arena = a;
	if ((g.product = product_find(ck.product)) == NULL) {
		log_error("fulfil: no product %s", ck.product);
		return CD_INTERNAL;
	}
	g.ck = &ck;
	if ((err = db_tx(grant_tx, &g)) != CD_OK ||
	    (g.product->after != NULL && (err = g.product->after(&ck)) != CD_OK))
		return err;
	out->granted_now = g.granted;
	/* The page names what was bought (see pages.c, purchase_notice). */
	if (g.product->route == NULL) {
		snprintf(out->route, sizeof(out->route), "/dashboard?purchased=%lld",
		    ck.id);
		return CD_OK;
	}
	return g.product->route(&ck, out->route, sizeof(out->route));
}

cd_err
route_billing(const cd_checkout *ck, char *out, size_t outlen)
{
	snprintf(out, outlen, "/settings/billing?purchased=%lld", ck->id);
	return CD_OK;
}

/*
 * Our record of the session (strings in arena a), if it is ours (and the
 * user's, when given).
 */
static cd_err
load_local(const char *id, long long user_id, cd_arena *a, struct local *local)
{
	size_t n = 0;
	cd_err err;

	memset(local, 0, sizeof(*local));
	if (!stripe_id_ok(id, "cs_"))
		return CD_NOT_FOUND;
	if ((err = db_fetch(&q_local, a, local_cols, DB_NCOLS(local_cols), local,
	    sizeof(*local), 1, &n, "s", id)) != CD_OK)
		return err;
	if (n == 0 || (user_id > 0 && local->ck.user_id != user_id))
		return CD_NOT_FOUND;
	return CD_OK;
}

/* Fulfils session, whose local record is local, with a as the scope. */
static cd_err
fulfil_with(const json_t *session, const struct local *local, cd_arena *a,
    cd_fulfilment *out)
{
	out->user_id = local->ck.user_id;
	snprintf(out->product, sizeof(out->product), "%s", local->ck.product);
	return fulfil_local(session, local, a, out);
}

/*
 * The public entry points below each own one arena for the whole operation:
 * every row and JSON value it creates is released when it ends.
 */
cd_err
fulfil_session_object(const json_t *session, long long user_id,
    cd_fulfilment *out)
{
	cd_arena *a = arena_new();
	struct local local;
	cd_err err;

	memset(out, 0, sizeof(*out));
	if ((err = load_local(jstr(session, "id"), user_id, a, &local)) == CD_OK)
		err = fulfil_with(session, &local, a, out);
	arena_free(a);
	return err;
}

cd_err
fulfil_retrieve(const char *stripe_session_id, json_t **session)
{
	return stripe_retrieve_with("checkout/sessions", "cs_",
	    stripe_session_id, "invoice.subscription", session);
}

/* The local record is checked first: an unknown id never reaches Stripe. */
cd_err
fulfil_session(const char *stripe_session_id, long long user_id,
    cd_fulfilment *out)
{
	cd_arena *a = arena_new();
	json_t *session = NULL;
	struct local local;
	cd_err err;

	memset(out, 0, sizeof(*out));
	if ((err = load_local(stripe_session_id, user_id, a, &local)) == CD_OK) {
		err = fulfil_retrieve(stripe_session_id, &session);
		arena_json(a, session);
		if (err == CD_OK)
			err = fulfil_with(session, &local, a, out);
	}
	arena_free(a);
	return err;
}

/* fulfil_checkout_of_intent from our rows alone. */
static cd_err
checkout_of_intent_here(const char *intent, cd_arena *a, cd_checkout *ck)
{
	struct local local;
	size_t n = 0;
	cd_err err;

	memset(ck, 0, sizeof(*ck));
	ck->arena = a;
	if (!stripe_id_ok(intent, "pi_"))
		return CD_OK;
	if ((err = db_fetch(&q_local_by_intent, a, local_cols,
	    DB_NCOLS(local_cols), &local, sizeof(local), 1, &n, "s", intent)) !=
	    CD_OK || n == 0)
		return err;
	*ck = local.ck;
	ck->payment_intent_id = intent;
	ck->stripe = NULL;
	ck->arena = a;
	return CD_OK;
}

/*
 * A refund or a dispute can be handled before anyone fulfilled the payment
 * (events arrive out of order, or at once).  Asks Stripe which of our
 * sessions the PaymentIntent paid and fulfils them first.  If a fulfilment
 * is racing this one, its UNIQUE key makes this a no-op that waits for it
 * to commit.
 */
static cd_err
fulfil_sessions_of_intent(const char *intent, cd_arena *a)
{
	json_t *params, *list = NULL, *session;
	cd_fulfilment f;
	cd_err err;
	size_t i;

	params = arena_json(a, json_pack("{s:s,s:i}", "payment_intent", intent,
	    "limit", 10));
	err = stripe_call("GET", "/v1/checkout/sessions", params, NULL, &list);
	arena_json(a, list);
	json_array_foreach(json_object_get(list, "data"), i, session) {
		if (err != CD_OK)
			break;
		err = fulfil_session_object(session, 0, &f);
		if (err == CD_NOT_FOUND || err == CD_FORBIDDEN)
			err = CD_OK;	/* not ours, or refused */
	}
	return err;
}

cd_err
fulfil_checkout_of_intent(const char *intent, cd_arena *a, cd_checkout *ck)
{
	cd_err err;

	if ((err = checkout_of_intent_here(intent, a, ck)) != CD_OK ||
	    ck->stripe_session_id != NULL || !stripe_id_ok(intent, "pi_"))
		return err;
	if ((err = fulfil_sessions_of_intent(intent, a)) != CD_OK)
		return err;
	return checkout_of_intent_here(intent, a, ck);
}

cd_err
fulfil_failed(const char *stripe_session_id)
{
	unsigned long long n;
	cd_err err;

	if ((err = db_exec(&q_mark_failed, &n, "s", stripe_session_id)) != CD_OK)
		return err;
	if (n > 0)
		log_info("checkout %s: async payment failed", stripe_session_id);
	return CD_OK;
}

cd_err
fulfil_expired(const char *stripe_session_id)
{
	return db_exec(&q_mark_expired, NULL, "s", stripe_session_id);
}

struct reversal {
	const cd_product	*product;
	cd_checkout		 ck;
	const char		*key;		/* charge id + cumulative amount */
	long long		 refunded;	/* cumulative cents refunded */
};

static cd_err
reverse_tx(void *arg)
{
	struct reversal *rv = arg;
	long long units = 0;
	dispute_hold hold;
	json_t *details;
	bool fresh;
	cd_err err;

	if ((err = reversal_open(rv->key, rv->ck.stripe_session_id,
	    rv->ck.payment_intent_id, rv->ck.product, rv->refunded, &fresh)) !=
	    CD_OK || !fresh)
		return err;
	if ((err = dispute_hold_lift(rv->product, &rv->ck, &hold)) != CD_OK ||
	    (err = rv->product->reverse(&rv->ck, rv->refunded, &units)) != CD_OK ||
	    (err = dispute_hold_again(&hold)) != CD_OK ||
	    (err = reversal_units(rv->key, units)) != CD_OK)
		return err;
	if (rv->refunded >= rv->ck.amount_cents &&
	    (err = db_exec(&q_mark_refunded, NULL, "i", rv->ck.id)) != CD_OK)
		return err;
	details = arena_json(rv->ck.arena, json_pack("{s:s,s:I,s:I}", "product",
	    rv->ck.product, "refundedCents", (json_int_t)rv->refunded,
	    "unitsReversed", (json_int_t)units));
	return audit_write("PAYMENT_REFUNDED", "checkout_session",
	    rv->ck.stripe_session_id, rv->ck.user_id, details, "warning");
}

/* fulfil_refund inside its arena a. */
static cd_err
refund_in(const json_t *charge, const char *intent, cd_arena *a)
{
	struct reversal rv;
	cd_err err;

	memset(&rv, 0, sizeof(rv));
	if ((err = fulfil_checkout_of_intent(intent, a, &rv.ck)) != CD_OK)
		return err;
	if (rv.ck.stripe_session_id == NULL)
		return CD_OK;	/* not a Checkout purchase (a booking, or not ours) */
	rv.refunded = jint(charge, "amount_refunded");
	rv.key = arena_printf(a, "%s/%lld", jstr(charge, "id"), rv.refunded);
	if ((rv.product = product_find(rv.ck.product)) == NULL ||
	    rv.product->reverse == NULL || rv.refunded <= 0)
		return CD_OK;
	return db_tx(reverse_tx, &rv);
}

cd_err
fulfil_refund(const json_t *charge)
{
	const char *intent = jstr(charge, "payment_intent");
	cd_arena *a;
	cd_err err;

	if (!stripe_id_ok(intent, "pi_") || !stripe_id_ok(jstr(charge, "id"), "ch_"))
		return CD_OK;
	a = arena_new();
	err = refund_in(charge, intent, a);
	arena_free(a);
	return err;
}

cd_err
reversal_open(const char *key, const char *stripe_session_id,
    const char *payment_intent, const char *product, long long cents,
    bool *fresh)
{
	return db_insert_once(&q_reversal, fresh, NULL, "ssssi", key,
	    stripe_session_id, payment_intent, product, cents);
}

cd_err
reversal_units(const char *key, long long units)
{
	return db_exec(&q_reversal_units, NULL, "is", units, key);
}
