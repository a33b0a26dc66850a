/*
 * The two ledger invariants, credit_balance and ledger_chain, in one pass
 * over the ledger instead of three (a grouping, a lookup per user without
 * rows and a window that sorts a million rows): the ledger streams in
 * (user, id) order straight from its covering index ix_credit_tx_chain,
 * each row's chain is checked against the row before it, and each user's
 * sums are compared with user_credits, read first in user order and merged
 * alongside.  Both reads share one snapshot (one transaction), so the result is
 * that of the two set-based statements this replaces, row for row and in
 * their order (user, then ledger id), at most INV_LIMIT of each.
 */
#include <stdlib.h>

#include "invariants.h"

struct pass {
	int_list	 c;		/* user_credits: user, balance, earned, spent */
	bool		 in_user;	/* a user's rows are being summed */
	long long	 user, sum, earned, spent, prev_after;
	json_t		*balance, *chain;	/* the findings */
};

static cd_sql q_credits = CD_SQL(
    "SELECT user_id, balance, total_earned, total_spent FROM user_credits"
    " ORDER BY user_id");
/* The covering index in its own order: no table rows, no sort. */
static cd_sql q_ledger = CD_SQL(
    "SELECT user_id, id, credits_delta, balance_before, balance_after,"
    " transaction_type IN ('allocation', 'refund'), transaction_type = 'consumption'"
    " FROM credit_transactions FORCE INDEX (ix_credit_tx_chain) ORDER BY user_id, id");

static void
balance_finding(struct pass *p, json_t *row)
{
	if (json_array_size(p->balance) < INV_LIMIT)
		json_array_append(p->balance, row);
	json_decref(row);
}

/* Users before `upto` with a credits row that no ledger row explains. */
static void
credits_without_ledger(struct pass *p, long long upto, bool all)
{
	const long long *c;

	for (; (c = int_list_peek(&p->c)) != NULL && (all || c[0] < upto); p->c.next++)
		if (c[1] != 0 || c[2] != 0 || c[3] != 0)
			balance_finding(p, json_pack("{s:I,s:I,s:I,s:I,s:i,s:i,s:i}",
			    "user_id", c[0], "balance", c[1], "total_earned", c[2],
			    "total_spent", c[3], "ledger_sum", 0, "ledger_earned", 0,
			    "ledger_spent", 0));
}

/* The current user's sums against their credits row (or its absence). */
static void
end_user(struct pass *p)
{
	const long long *c;

	credits_without_ledger(p, p->user, false);
	if ((c = int_list_peek(&p->c)) != NULL && c[0] == p->user)
		p->c.next++;
	else
		c = NULL;
	if (c != NULL && c[1] == p->sum && c[2] == p->earned && c[3] == p->spent)
		return;
	balance_finding(p, json_pack("{s:I,s:o,s:o,s:o,s:I,s:I,s:I}",
	    "user_id", p->user,
	    "balance", c ? json_integer(c[1]) : json_null(),
	    "total_earned", c ? json_integer(c[2]) : json_null(),
	    "total_spent", c ? json_integer(c[3]) : json_null(),
	    "ledger_sum", p->sum, "ledger_earned", p->earned, "ledger_spent", p->spent));
}

/* One ledger row: user_id, id, delta, before, after, earns, spends. */
static int
ledger_row(void *ctx, const long long *v, size_t n)
{
	struct pass *p = ctx;

	(void)n;
	if (!p->in_user || v[0] != p->user) {
		if (p->in_user)
			end_user(p);
		p->in_user = true;
		p->user = v[0];
		p->sum = p->earned = p->spent = p->prev_after = 0;
	}
	if ((v[4] != v[3] + v[2] || v[3] != p->prev_after) &&
	    json_array_size(p->chain) < INV_LIMIT)
		json_array_append_new(p->chain, json_pack(
		    "{s:I,s:I,s:I,s:I,s:I,s:I}", "user_id", v[0], "transaction_id", v[1],
		    "credits_delta", v[2], "balance_before", v[3], "balance_after", v[4],
		    "previous_balance_after", p->prev_after));
	p->prev_after = v[4];
	p->sum += v[2];
	p->earned += v[5] ? v[2] : 0;
	p->spent += v[6] ? -v[2] : 0;
	return 0;
}

/* Both reads in one transaction, so from one snapshot. */
static cd_err
read_both(void *ctx)
{
	struct pass *p = ctx;
	cd_err err;

	/* a retried transaction starts over */
	p->c.n = p->c.next = 0;
	p->in_user = false;
	json_array_clear(p->balance);
	json_array_clear(p->chain);
	if ((err = db_each(&q_credits, int_list_add, &p->c, "")) != CD_OK ||
	    (err = db_each(&q_ledger, ledger_row, p, "")) != CD_OK)
		return err;
	if (p->in_user)
		end_user(p);
	credits_without_ledger(p, 0, true);
	return CD_OK;
}

/* The chain's rows of the last pass, for ledger_chain. */
static json_t *chain_rows;

/* credit_balance: runs the pass, and keeps the chain's rows for ledger_chain. */
cd_err
check_ledger_balance(json_t **rows)
{
	struct pass p = { .c.width = 4, .balance = json_array(),
	    .chain = json_array() };
	cd_err err;

	*rows = NULL;
	json_decref(chain_rows);
	chain_rows = NULL;
	if ((err = db_tx(read_both, &p)) == CD_OK) {
		*rows = json_incref(p.balance);
		chain_rows = json_incref(p.chain);
	}
	json_decref(p.balance);
	json_decref(p.chain);
	free(p.c.v);
	return err;
}

/* ledger_chain: the rows of the pass credit_balance made (made now if not). */
cd_err
check_ledger_chain(json_t **rows)
{
	json_t *balance;
	cd_err err;

	if (chain_rows == NULL) {
		if ((err = check_ledger_balance(&balance)) != CD_OK)
			return err;
		json_decref(balance);
	}
	*rows = chain_rows;
	chain_rows = NULL;
	return CD_OK;
}
