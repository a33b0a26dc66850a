/*
 * The credit ledger; see ledger.h.
 */
#include <stdlib.h>

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
    "SELECT balance FROM user_credits WHERE user_id = ? FOR UPDATE");
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

cd_err
ledger_balance_for_update(long long user_id, long long *balance)
{
	json_t *row;
	cd_err err;

	if ((err = db_exec(&q_ensure, NULL, "i", user_id)) != CD_OK ||
	    (err = db_row(&q_lock, &row, "i", user_id)) != CD_OK)
		return err;
	*balance = jint(row, "balance");
	json_decref(row);
	return CD_OK;
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
	meta = json_dumps(e->metadata ? e->metadata : json_object(), JSON_COMPACT);
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
	json_t *row;
	cd_err err;

	if ((err = db_row(&q_rate, &row, "")) != CD_OK)
		return err;
	*rate = row ? jint(row, "int_value") : 0;
	json_decref(row);
	if (*rate <= 0) {
		log_error("ledger: tokens_per_credit is not set");
		return CD_INTERNAL;
	}
	return CD_OK;
}
