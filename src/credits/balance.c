/*
 * Credit balances: the boost packs on sale, the user's balance, and the
 * ledger that explains it, newest first with a cursor.
 */
#include <stdlib.h>

#include "credits.h"
#include "db.h"

static cd_sql q_packs = CD_SQL(
    "SELECT id, name, credits, bonus_credits, credits + bonus_credits AS total,"
    " price_cents, currency, badge FROM boost_packs WHERE active = 1 ORDER BY sort_order");
static cd_sql q_balance = CD_SQL(
    "SELECT balance, total_earned, total_spent, bonus_earned FROM user_credits"
    " WHERE user_id = ?");
static cd_sql q_transactions = CD_SQL(
    "SELECT id, credits_delta, balance_before, balance_after, transaction_type,"
    " activity_type, description, metadata, created_at FROM credit_transactions"
    " WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?");

cd_err
boost_packs(cd_req *r)
{
	json_t *rows, *row, *packs = json_array();
	size_t i;
	cd_err err;

	if ((err = db_rows(&q_packs, &rows, "")) != CD_OK) {
		json_decref(packs);
		return err;
	}
	json_array_foreach(rows, i, row)
		json_array_append_new(packs, json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O}",
		    "id", json_object_get(row, "id"), "name", json_object_get(row, "name"),
		    "credits", json_object_get(row, "credits"),
		    "bonusCredits", json_object_get(row, "bonus_credits"),
		    "totalCredits", json_object_get(row, "total"),
		    "priceCents", json_object_get(row, "price_cents"),
		    "currency", json_object_get(row, "currency"),
		    "badge", json_object_get(row, "badge")));
	json_decref(rows);
	resp_json(r, 200, json_pack("{s:o}", "packs", packs));
	return CD_OK;
}

cd_err
credit_balance(cd_req *r)
{
	json_t *row;
	cd_err err;

	if ((err = db_row(&q_balance, &row, "i", r->user->id)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:I,s:I,s:I,s:I}",
	    "balance", (json_int_t)jint(row, "balance"),
	    "totalEarned", (json_int_t)jint(row, "total_earned"),
	    "totalSpent", (json_int_t)jint(row, "total_spent"),
	    "bonusEarned", (json_int_t)jint(row, "bonus_earned")));
	json_decref(row);
	return CD_OK;
}

static const cd_field page_fields[] = {
	{ "limit", F_INT, 0, 1, 100, NULL },
	{ "before", F_INT, 0, 1, CD_MAX_ID, NULL },
};

static json_t *
transaction_json(const json_t *row)
{
	const char *meta = jstr(row, "metadata");

	return json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:o,s:O}",
	    "id", json_object_get(row, "id"),
	    "creditsDelta", json_object_get(row, "credits_delta"),
	    "balanceBefore", json_object_get(row, "balance_before"),
	    "balanceAfter", json_object_get(row, "balance_after"),
	    "transactionType", json_object_get(row, "transaction_type"),
	    "activityType", json_object_get(row, "activity_type"),
	    "description", json_object_get(row, "description"),
	    "metadata", meta ? json_loads(meta, 0, NULL) : json_object(),
	    "createdAt", json_object_get(row, "created_at"));
}

cd_err
credit_transactions(cd_req *r)
{
	json_t *rows, *row, *list = json_array(), *next = json_null();
	long long limit;
	cd_value v[2];
	size_t i;
	cd_err err;

	if ((err = req_query_fields(r, page_fields, 2, v)) != CD_OK ||
	    (limit = v[0].present ? v[0].i : 20,
	    err = db_rows(&q_transactions, &rows, "iii", r->user->id,
	    v[1].present ? v[1].i : CD_MAX_ID, limit + 1)) != CD_OK) {
		json_decref(list);
		return err;
	}
	json_array_foreach(rows, i, row) {
		if ((long long)i == limit) {
			next = json_integer(jint(json_array_get(rows, i - 1), "id"));
			break;
		}
		json_array_append_new(list, transaction_json(row));
	}
	json_decref(rows);
	resp_json(r, 200, json_pack("{s:o,s:o}", "transactions", list,
	    "nextCursor", next));
	return CD_OK;
}
