/*
 * The user's subscriptions: their status as Stripe last told us (cancelling
 * one goes through Stripe, so it lives in the checkout family:
 * src/checkout/subscription.c).
 */
#include <string.h>

#include "credits.h"
#include "db.h"

/* Column aliases are the API's field names. */
#define SUB_COLUMNS \
    "id, plan_id AS planId, status, current_period_end AS currentPeriodEnd," \
    " cancel_at_period_end AS cancelAtPeriodEnd"

static cd_sql q_mine = CD_SQL(
    "SELECT " SUB_COLUMNS " FROM subscriptions WHERE user_id = ? ORDER BY id DESC LIMIT 100");

cd_err
subscriptions_list(cd_req *r)
{
	json_t *rows;
	cd_err err;

	if ((err = db_rows(&q_mine, &rows, "i", r->user->id)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:o}", "subscriptions", rows));
	return CD_OK;
}
