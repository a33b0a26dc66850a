/*
 * The credit ledger; see ledger.h.
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "ledger.h"
#include "log.h"

static cd_sql q_ensure = CD_SQL(
    "INSERT INTO user_credits (user_id) VALUES (?)"
    " ON DUPLICATE KEY UPDATE user_id = user_id");
/* Read for the entry's balance_before; q_move then writes this same row, the
 * guard of the chain (see db.h), so a concurrent move on another cluster
 * node fails certification instead of forking the chain. */
static cd_sql q_lock = CD_SQL(
    "SELECT balance, frozen FROM user_credits WHERE user_id = ? FOR UPDATE");
struct held {
	long long	 balance, frozen;
};
static const cd_col held_cols[] = {
	DB_INT(struct held, balance), DB_INT(struct held, frozen),
};
static cd_sql q_move = CD_SQL(
    "UPDATE user_credits SET balance = balance + ?,"
    " total_earned = total_earned + IF(? = 'allocation', ?, IF(? = 'refund', ?, 0)),"
    " total_spent = total_spent + IF(? = 'consumption', -?, 0),"
    " bonus_earned = bonus_earned + ?,"
    " frozen = LEAST(frozen, balance)"	/* assigned after balance: the new one */
    " WHERE user_id = ? AND balance + ? >= IF(? = 'consumption', frozen, 0)");
static cd_sql q_entry = CD_SQL(
    "INSERT INTO credit_transactions (user_id, credits_delta, balance_before,"
    " balance_after, transaction_type, activity_type, description, metadata)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
static cd_sql q_rate = CD_SQL(
    "SELECT int_value FROM platform_settings WHERE name = 'tokens_per_credit'");
static cd_sql q_freeze = CD_SQL(
    "UPDATE user_credits SET frozen = frozen + ? WHERE user_id = ? AND frozen + ? >= 0");
static cd_sql q_balance = CD_SQL(
    "SELECT balance, total_earned, total_spent, bonus_earned, frozen"
    " FROM user_credits WHERE user_id = ?");
static const cd_col balance_cols[] = {
	DB_INT(cd_balance, balance), DB_INT(cd_balance, total_earned),
	DB_INT(cd_balance, total_spent), DB_INT(cd_balance, bonus_earned),
	DB_INT(cd_balance, frozen),
};
static cd_sql q_page = CD_SQL(
    "SELECT id, credits_delta, balance_before, balance_after, transaction_type,"
    " activity_type, description, metadata, created_at FROM credit_transactions"
    " WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?");
static const cd_col page_cols[] = {
	DB_INT(cd_ledger_row, id), DB_INT(cd_ledger_row, delta),
	DB_INT(cd_ledger_row, before), DB_INT(cd_ledger_row, after),
	DB_TEXT(cd_ledger_row, type), DB_TEXT(cd_ledger_row, activity),
	DB_TEXT(cd_ledger_row, description), DB_TEXT(cd_ledger_row, metadata),
	DB_TEXT(cd_ledger_row, created_at),
};

/* The user's row, made if missing and locked: balance and frozen. */
static cd_err
lock_held(long long user_id, struct held *h)
{
	size_t n;
	cd_err err;

	*h = (struct held){ 0, 0 };
	if ((err = db_exec(&q_ensure, NULL, "i", user_id)) != CD_OK)
		return err;
	return db_fetch(&q_lock, NULL, held_cols, DB_NCOLS(held_cols), h,
	    sizeof(*h), 1, &n, "i", user_id);
}

cd_err
ledger_balance_for_update(long long user_id, long long *balance)
{
	struct held h;
	cd_err err;

	err = lock_held(user_id, &h);
	*balance = h.balance;
	return err;
}

cd_err
ledger_balance(long long user_id, cd_balance *out)
{
	size_t n;

	*out = (cd_balance){ 0, 0, 0, 0, 0 };
	return db_fetch(&q_balance, NULL, balance_cols, DB_NCOLS(balance_cols),
	    out, sizeof(*out), 1, &n, "i", user_id);
}

cd_err
ledger_freeze(long long user_id, long long delta)
{
	return db_exec(&q_freeze, NULL, "iii", delta, user_id, delta);
}

long long
ledger_spendable(long long balance, long long frozen)
{
	return balance > frozen ? balance - frozen : 0;
}

cd_err
ledger_spendable_for_update(long long user_id, long long *spendable,
    long long *frozen)
{
	struct held h;
	cd_err err;

	err = lock_held(user_id, &h);
	*spendable = ledger_spendable(h.balance, h.frozen);
	if (frozen != NULL)
		*frozen = h.frozen;
	return err;
}

cd_err
ledger_dispute_freeze(long long user_id, bool release, long long left,
    long long units, const char *ref_key, const char *ref,
    const char *payment_intent_id, long long *moved)
{
	long long spendable, frozen;
	json_t *meta;
	cd_entry e;
	cd_err err;

	*moved = 0;
	if ((err = ledger_spendable_for_update(user_id, &spendable, &frozen)) !=
	    CD_OK)
		return err;
	if (!release)
		units = left < spendable ? left : spendable;
	else if (units > frozen)
		units = frozen;
	if (units <= 0)
		return CD_OK;
	if ((err = ledger_freeze(user_id, release ? -units : units)) != CD_OK)
		return err;
	if ((meta = json_pack("{s:s,s:s?,s:I}", ref_key, ref, "paymentIntentId",
	    payment_intent_id, "frozenDelta", (json_int_t)(release ? -units : units))) == NULL)
		return CD_INTERNAL;
	e = (cd_entry){ user_id, 0, 0, "adjustment",
	    release ? "dispute_release" : "dispute_freeze",
	    release ? "Disputed payment: credits released" :
	    "Disputed payment: credits frozen", meta };
	if ((err = ledger_apply(&e, NULL)) == CD_OK)
		*moved = units;
	json_decref(meta);
	return err;
}

cd_err
ledger_page(cd_arena *a, long long user_id, long long before_id,
    cd_ledger_row *rows, size_t max, size_t *n)
{
	return db_fetch(&q_page, a, page_cols, DB_NCOLS(page_cols), rows,
	    sizeof(*rows), max, n, "iii", user_id, before_id, (long long)max);
}

cd_err
ledger_apply(const cd_entry *e, long long *balance_after)
{
	unsigned long long n;
	long long before;
	char *meta;
	cd_err err;

	if ((err = ledger_balance_for_update(e->user_id, &before)) != CD_OK)
		return err;
	if ((err = db_exec(&q_move, &n, "isisisiiiis", e->delta, e->type, e->delta,
	    e->type, e->delta, e->type, e->delta, e->bonus, e->user_id,
	    e->delta, e->type)) != CD_OK)
		return err;
	if (n != 1)
		return CD_PAYMENT_REQUIRED;
	meta = e->metadata ? json_dumps(e->metadata, JSON_COMPACT) : strdup("{}");
	err = db_exec(&q_entry, NULL, "iiiissss", e->user_id, e->delta, before,
	    before + e->delta, e->type, e->activity, e->description, meta);
	free(meta);
	if (err == CD_OK && balance_after != NULL)
		*balance_after = before + e->delta;
	return err;
}

cd_err
ledger_rate(long long *rate)
{
	size_t n;
	cd_err err;

	*rate = 0;
	if ((err = db_fetch(&q_rate, NULL, db_int_col, 1, rate, sizeof(*rate), 1,
	    &n, "")) != CD_OK)
		return err;
	if (*rate <= 0) {
		log_error("ledger: tokens_per_credit is not set");
		return CD_INTERNAL;
	}
	return CD_OK;
}
