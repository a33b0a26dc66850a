/*
 * The credit ledger.  A user's balance (in tokens) only ever changes through
 * ledger_apply(), which moves the balance with one atomic UPDATE on the
 * locked balance row and writes the credit_transactions row that explains it
 * (balance_before, balance_after), so the balance always equals the sum of
 * the ledger's deltas.  Call it inside a db_tx.
 */
#ifndef CD_LEDGER_H
#define CD_LEDGER_H

#include <jansson.h>

#include "error.h"

typedef struct cd_entry {
	long long	 user_id;
	long long	 delta;		/* tokens; negative for refunds and spending */
	long long	 bonus;		/* part of a positive delta that is bonus */
	const char	*type;		/* allocation, consumption, refund, adjustment */
	const char	*activity;	/* boost_pack_purchase, subscription_renewal, … */
	const char	*description;
	const json_t	*metadata;	/* borrowed; NULL = {} */
} cd_entry;

/*
 * Applies e; a debit beyond the balance, or a consumption into the frozen
 * part of it (user_credits.frozen, a disputed payment's credits), is
 * CD_PAYMENT_REQUIRED.
 */
cd_err	 ledger_apply(const cd_entry *e, long long *balance_after);
/* The current balance, locked for the rest of the transaction. */
cd_err	 ledger_balance_for_update(long long user_id, long long *balance);
/* tokens_per_credit from platform_settings. */
cd_err	 ledger_rate(long long *tokens_per_credit);

#endif
