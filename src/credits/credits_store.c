/*
 * The credits family's statements; see credits_store.h.
 */
#include "credits_store.h"
#include "db.h"
#include "slots.h"

static cd_sql q_packs = CD_SQL(
    "SELECT id, name, credits, bonus_credits AS bonusCredits,"
    " credits + bonus_credits AS totalCredits, price_cents AS priceCents,"
    " currency, badge FROM boost_packs WHERE active = 1 ORDER BY sort_order");

static cd_sql q_subscriptions = CD_SQL(
    "SELECT id, plan_id AS planId, status, current_period_end AS currentPeriodEnd,"
    " cancel_at_period_end AS cancelAtPeriodEnd"
    " FROM subscriptions WHERE user_id = ? ORDER BY id DESC LIMIT 100");

cd_err
crstore_packs_json(json_t **rows)
{
	return db_rows(&q_packs, rows, "");
}

cd_err
crstore_subscriptions_json(long long user_id, json_t **rows)
{
	return db_rows(&q_subscriptions, rows, "i", user_id);
}

static const cd_col live_help_cols[] = {
	CD_SESSION_COLS(live_help_row, s),
	DB_INT(live_help_row, has_totals), DB_INT(live_help_row, total),
	DB_INT(live_help_row, used), DB_INT(live_help_row, frozen),
	DB_INT(live_help_row, slots_version), DB_INT(live_help_row, now),
};
cd_session_sql live_help_session_sql = {
	CD_SQL("SELECT " CD_SESSION_COLUMNS ", t.user_id IS NOT NULL,"
	    " t.hours_total, t.hours_used, t.hours_frozen, " SLOTS_STAMP_COLUMNS
	    CD_SESSION_FROM " LEFT JOIN user_live_help_totals t ON t.user_id = u.id"
	    SLOTS_STAMP_JOIN CD_SESSION_WHERE),
	live_help_cols, DB_NCOLS(live_help_cols), sizeof(live_help_row)
};
