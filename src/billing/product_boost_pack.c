/*
 * Boost packs: a one-time purchase of credits plus bonus, converted to
 * tokens at the stored rate and entered in the ledger.  A refund takes the
 * refunded share back out, but never more than the user still holds.
 */
#include <stdio.h>

#include "db.h"
#include "format.h"
#include "ledger.h"
#include "products.h"

static cd_sql q_pack = CD_SQL(
    "SELECT name, credits, bonus_credits FROM boost_packs WHERE id = ?");
static cd_sql q_purchase = CD_SQL(
    "INSERT INTO boost_pack_purchases (user_id, boost_pack_id, stripe_session_id,"
    " payment_intent_id, amount_cents, credits_applied) VALUES (?, ?, ?, ?, ?, ?)");
static cd_sql q_lock = CD_SQL(
    "SELECT credits_applied, credits_refunded FROM boost_pack_purchases"
    " WHERE stripe_session_id = ? FOR UPDATE");
static cd_sql q_refunded = CD_SQL(
    "UPDATE boost_pack_purchases SET credits_refunded = credits_refunded + ?"
    " WHERE stripe_session_id = ?");

struct pack {
	const char	*name;
	long long	 credits, bonus;
};
static const cd_col pack_cols[] = {
	DB_TEXT(struct pack, name), DB_INT(struct pack, credits),
	DB_INT(struct pack, bonus),
};
/* A purchase's tokens: applied, and taken back by refunds. */
struct applied {
	long long	 applied, refunded;
};
static const cd_col applied_cols[] = {
	DB_INT(struct applied, applied), DB_INT(struct applied, refunded),
};

/* The purchase of ck, locked; *found false if there is none. */
static cd_err
lock_purchase(const cd_checkout *ck, struct applied *p, bool *found)
{
	return db_fetch_row(&q_lock, NULL, applied_cols, DB_NCOLS(applied_cols),
	    p, sizeof(*p), found, "s", ck->stripe_session_id);
}

void
pack_description(cd_buf *b, const char *name, long long credits, long long bonus)
{
	if (name != NULL)
		buf_printf(b, "%s: ", name);
	format_count(b, credits);
	buf_puts(b, " Pilot Credits");
	if (bonus == 0)
		return;
	buf_puts(b, " (includes ");
	format_count(b, bonus);
	buf_puts(b, " bonus)");
}

static cd_err
grant(const cd_checkout *ck, bool *granted)
{
	long long rate, credits, bonus;
	struct pack pack;
	json_t *meta;
	cd_buf *desc;
	size_t n = 0;
	cd_entry e;
	cd_err err;

	*granted = false;
	if ((err = ledger_rate(&rate)) != CD_OK ||
	    (err = db_fetch(&q_pack, ck->arena, pack_cols, DB_NCOLS(pack_cols),
	    &pack, sizeof(pack), 1, &n, "s", ck->item_code)) != CD_OK)
		return err;
	if (n == 0)
		return CD_INTERNAL;
	credits = pack.credits + pack.bonus;
	bonus = pack.bonus;
	if ((err = db_insert_once(&q_purchase, granted, NULL, "isssii",
	    ck->user_id, ck->item_code, ck->stripe_session_id,
	    ck->payment_intent_id, ck->amount_cents, credits * rate)) != CD_OK ||
	    !*granted)
		return err;
	desc = buf_in(ck->arena);
	pack_description(desc, pack.name, credits, bonus);
	meta = arena_json(ck->arena, json_pack("{s:s,s:s?,s:s,s:I,s:I}",
	    "stripeSessionId", ck->stripe_session_id, "paymentIntentId",
	    ck->payment_intent_id, "boostPackId", ck->item_code,
	    "amountPaidCents", (json_int_t)ck->amount_cents,
	    "credits", (json_int_t)credits));
	e = (cd_entry){ ck->user_id, credits * rate, bonus * rate, "allocation",
	    "boost_pack_purchase", buf_cstr(desc), meta };
	return ledger_apply(&e, NULL);
}

static cd_err
reverse(const cd_checkout *ck, long long refunded_cents, long long *units)
{
	long long target, delta, spendable;
	struct applied p;
	json_t *meta;
	bool found;
	cd_entry e;
	cd_err err;

	*units = 0;
	if ((err = lock_purchase(ck, &p, &found)) != CD_OK || !found)
		return err;
	target = refunded_cents >= ck->amount_cents ? p.applied :
	    p.applied * refunded_cents / ck->amount_cents;
	delta = target - p.refunded;
	if (delta <= 0)
		return CD_OK;
	if ((err = ledger_spendable_for_update(ck->user_id, &spendable,
	    NULL)) != CD_OK)
		return err;
	/*
	 * Only what was taken back counts as refunded; spent credits stay spent
	 * and frozen ones stay a dispute's.
	 */
	*units = delta < spendable ? delta : spendable;
	if (*units == 0)
		return CD_OK;
	if ((err = db_exec(&q_refunded, NULL, "is", *units,
	    ck->stripe_session_id)) != CD_OK)
		return err;
	meta = arena_json(ck->arena, json_pack("{s:s,s:s?,s:I}", "stripeSessionId",
	    ck->stripe_session_id, "paymentIntentId", ck->payment_intent_id,
	    "refundedCents", (json_int_t)refunded_cents));
	e = (cd_entry){ ck->user_id, -*units, 0, "refund", "refund",
	    "Boost pack refund", meta };
	return ledger_apply(&e, NULL);
}

/*
 * Frozen tokens stay in the balance but cannot be spent (the ledger refuses
 * a consumption below user_credits.frozen); a zero-delta ledger row records
 * each freeze and release.
 */
static cd_err
freeze(const cd_checkout *ck, bool release, long long units, long long *frozen,
    long long *granted)
{
	struct applied p;
	bool found;
	cd_err err;

	*frozen = 0;
	if ((err = lock_purchase(ck, &p, &found)) != CD_OK || !found)
		return err;
	*granted = p.applied - p.refunded;
	return ledger_dispute_freeze(ck->user_id, release, p.applied - p.refunded,
	    units, "stripeSessionId", ck->stripe_session_id, ck->payment_intent_id, frozen);
}

const cd_product product_boost_pack = { "boost_pack", grant, reverse, route_billing, NULL,
    freeze };
