/*
 * The user's subscriptions: their status as Stripe last told us, and
 * cancelling one at the end of its paid period (through Stripe; our row
 * follows from what Stripe answers and from its events).
 */
#include <string.h>

#include "credits.h"
#include "db.h"
#include "products.h"
#include "stripe.h"

/* Column aliases are the API's field names. */
#define SUB_COLUMNS \
    "id, plan_id AS planId, status, current_period_end AS currentPeriodEnd," \
    " cancel_at_period_end AS cancelAtPeriodEnd"

static cd_sql q_mine = CD_SQL(
    "SELECT " SUB_COLUMNS " FROM subscriptions WHERE user_id = ? ORDER BY id DESC LIMIT 100");
static cd_sql q_one = CD_SQL(
    "SELECT " SUB_COLUMNS ", stripe_subscription_id, stripe_nonce FROM subscriptions"
    " WHERE id = ? AND user_id = ?");

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

static cd_err
load_own(cd_req *r, json_t **row)
{
	cd_err err;

	if ((err = db_row(&q_one, row, "ii", r->ids[0], r->user->id)) != CD_OK)
		return err;
	req_own(r, *row);
	if (*row == NULL)
		return req_fail(r, CD_NOT_FOUND, "subscription_not_found",
		    "No subscription with this id.");
	return CD_OK;
}

cd_err
subscription_cancel(cd_req *r)
{
	json_t *row, *params, *sub = NULL;
	const char *sid;
	char key[160];
	cd_err err;

	if ((err = load_own(r, &row)) != CD_OK)
		return err;
	if (strcmp(jstr(row, "status"), "canceled") == 0)
		return req_fail(r, CD_CONFLICT, "subscription_canceled",
		    "This subscription has already ended.");
	sid = jstr(row, "stripe_subscription_id");
	params = json_pack("{s:b}", "cancel_at_period_end", 1);
	stripe_key(key, sizeof(key), "subscription", r->ids[0],
	    jstr(row, "stripe_nonce"), "cancel-at-period-end");
	err = stripe_call("POST", arena_printf(r->arena, "/v1/subscriptions/%s", sid),
	    params, key, &sub);
	json_decref(params);
	req_own(r, sub);
	if (err != CD_OK || strcmp(jstr(sub, "id") ?: "", sid) != 0)
		return req_fail(r, CD_STRIPE, "stripe_error",
		    "The subscription could not be cancelled. Please try again.");
	if ((err = subscription_sync_object(sub)) != CD_OK ||
	    (err = load_own(r, &row)) != CD_OK)
		return err;
	json_object_del(row, "stripe_subscription_id");
	json_object_del(row, "stripe_nonce");
	resp_json(r, 200, json_pack("{s:O}", "subscription", row));
	return CD_OK;
}
