/*
 * Credit balances: the boost packs on sale, the user's balance, and the
 * ledger that explains it, newest first with a cursor.
 */
#include <stdlib.h>

#include "credits.h"
#include "credits_store.h"
#include "ledger.h"

cd_err
boost_packs(cd_req *r)
{
	json_t *packs;
	cd_err err;

	if ((err = crstore_packs_json(&packs)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:o}", "packs", packs));
	return CD_OK;
}

cd_err
credit_balance(cd_req *r)
{
	cd_balance b;
	cd_err err;

	if ((err = ledger_balance(r->user->id, &b)) != CD_OK)
		return err;
	/* frozen: held by an open dispute, so not available to spend */
	resp_json(r, 200, json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}",
	    "balance", (json_int_t)b.balance,
	    "available", (json_int_t)ledger_spendable(b.balance, b.frozen),
	    "frozen", (json_int_t)b.frozen,
	    "totalEarned", (json_int_t)b.total_earned,
	    "totalSpent", (json_int_t)b.total_spent,
	    "bonusEarned", (json_int_t)b.bonus_earned));
	return CD_OK;
}

#define PAGE_MAX 100	/* entries a page may ask for */

static const cd_field page_fields[] = {
	{ "limit", F_INT, 0, 1, PAGE_MAX, NULL },
	{ "before", F_INT, 0, 1, CD_MAX_ID, NULL },
};

static json_t *
transaction_json(const cd_ledger_row *t)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:s?,s:s?,s:s?,s:o,s:s?}",
	    "id", (json_int_t)t->id, "creditsDelta", (json_int_t)t->delta,
	    "balanceBefore", (json_int_t)t->before,
	    "balanceAfter", (json_int_t)t->after,
	    "transactionType", t->type, "activityType", t->activity,
	    "description", t->description,
	    "metadata", t->metadata ? json_loads(t->metadata, 0, NULL) :
	    json_object(),
	    "createdAt", t->created_at);
}

/* A page of the ledger, newest first; one row more tells if there is a next. */
cd_err
credit_transactions(cd_req *r)
{
	cd_ledger_row rows[PAGE_MAX + 1];
	json_t *list, *next = json_null();
	long long limit;
	cd_value v[2];
	size_t i, n;
	cd_err err;

	if ((err = req_query_fields(r, page_fields, 2, v)) != CD_OK)
		return err;
	limit = v[0].present ? v[0].i : 20;
	if ((err = ledger_page(r->arena, r->user->id,
	    v[1].present ? v[1].i : CD_MAX_ID, rows, (size_t)limit + 1, &n)) !=
	    CD_OK)
		return err;
	list = json_array();
	for (i = 0; i < n; i++) {
		if ((long long)i == limit) {
			next = json_integer(rows[i - 1].id);
			break;
		}
		json_array_append_new(list, transaction_json(&rows[i]));
	}
	resp_json(r, 200, json_pack("{s:o,s:o}", "transactions", list,
	    "nextCursor", next));
	return CD_OK;
}
