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

void
pack_description(cd_buf *b, const char *name, long long credits, long long bonus)
{
	if (name != NULL)
		buf_printf(b, "%s: ", name);
	format_count(b, credits);
	buf_puts(b, " Pilot Credits (includes ");
	format_count(b, bonus);
	buf_puts(b, " bonus)");
}

static cd_err
grant(const cd_checkout *ck, bool *granted)
{
	long long rate, credits, bonus;
	json_t *pack, *meta;
	cd_buf *desc;
	cd_entry e;
	cd_err err;

	*granted = false;
	if ((err = ledger_rate(&rate)) != CD_OK ||
	    (err = db_row(&q_pack, &pack, "s", ck->item_code)) != CD_OK)
		return err;
	if (arena_json(ck->arena, pack) == NULL)
		return CD_INTERNAL;
	credits = jint(pack, "credits") + jint(pack, "bonus_credits");
	bonus = jint(pack, "bonus_credits");
	if ((err = db_insert_once(&q_purchase, granted, NULL, "isssii",
	    ck->user_id, ck->item_code, ck->stripe_session_id,
	    ck->payment_intent_id, ck->amount_cents, credits * rate)) != CD_OK ||
	    !*granted)
		return err;
	desc = buf_in(ck->arena);
	pack_description(desc, jstr(pack, "name"), credits, bonus);
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
	long long applied, target, delta, balance;
	json_t *row, *meta;
	cd_entry e;
	cd_err err;

	*units = 0;
	if ((err = db_row(&q_lock, &row, "s", ck->stripe_session_id)) != CD_OK ||
	    arena_json(ck->arena, row) == NULL)
		return err;
	applied = jint(row, "credits_applied");
	target = refunded_cents >= ck->amount_cents ? applied :
	    applied * refunded_cents / ck->amount_cents;
	delta = target - jint(row, "credits_refunded");
	if (delta <= 0)
		return CD_OK;
	if ((err = ledger_balance_for_update(ck->user_id, &balance)) != CD_OK)
		return err;
	/* Only what was taken back counts as refunded; spent credits stay spent. */
	*units = delta < balance ? delta : balance;
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
	long long balance, left;
	json_t *row, *meta;
	cd_balance user;
	cd_entry e;
	cd_err err;

	*frozen = 0;
	if ((err = db_row(&q_lock, &row, "s", ck->stripe_session_id)) != CD_OK ||
	    arena_json(ck->arena, row) == NULL)
		return err;
	*granted = jint(row, "credits_applied");
	left = *granted - jint(row, "credits_refunded");
	if ((err = ledger_balance_for_update(ck->user_id, &balance)) != CD_OK ||
	    (err = ledger_balance(ck->user_id, &user)) != CD_OK)
		return err;
	if (!release) {
		balance -= user.frozen;	/* spendable */
		units = left < balance ? left : balance;
	}
	if (units <= 0)
		return CD_OK;
	*frozen = release ? -units : units;
	if ((err = ledger_freeze(ck->user_id, *frozen)) != CD_OK)
		return err;
	meta = arena_json(ck->arena, json_pack("{s:s,s:s?,s:I}", "stripeSessionId",
	    ck->stripe_session_id, "paymentIntentId", ck->payment_intent_id,
	    "frozenDelta", (json_int_t)*frozen));
	e = (cd_entry){ ck->user_id, 0, 0, "adjustment",
	    release ? "dispute_release" : "dispute_freeze",
	    release ? "Disputed payment: credits released" :
	    "Disputed payment: credits frozen", meta };
	err = ledger_apply(&e, NULL);
	*frozen = units;
	return err;
}

const cd_product product_boost_pack = { "boost_pack", grant, reverse, route_billing, NULL,
    freeze };
