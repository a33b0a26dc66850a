/*
 * The credit ledger.  A user's balance (in tokens) only ever changes through
 * ledger_apply(), which moves the balance with one atomic UPDATE on the
 * locked balance row and writes the credit_transactions row that explains it
 * (balance_before, balance_after), so the balance always equals the sum of
 * the ledger's deltas.  Call it inside a db_tx.
 *
 * This module owns every statement on user_credits and credit_transactions
 * that the product code and the families run, and hands rows back as C
 * structs (db_fetch), never as JSON read by column name.
 */
#ifndef CD_LEDGER_H
#define CD_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "arena.h"
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
/* A user's user_credits row (all zero before their first credit). */
typedef struct cd_balance {
	long long	 balance;	/* tokens */
	long long	 total_earned;
	long long	 total_spent;
	long long	 bonus_earned;
	long long	 frozen;	/* held back by an open dispute */
} cd_balance;

/* What of a balance can be spent (a refund can take it below the frozen). */
long long	 ledger_spendable(long long balance, long long frozen);

/* One credit_transactions row; strings live in the caller's arena. */
typedef struct cd_ledger_row {
	long long	 id;
	long long	 delta;
	long long	 before;
	long long	 after;
	const char	*type;
	const char	*activity;
	const char	*description;	/* may be NULL */
	const char	*metadata;	/* JSON text, may be NULL */
	const char	*created_at;	/* "YYYY-MM-DDTHH:MM:SSZ" */
} cd_ledger_row;

cd_err	 ledger_balance(long long user_id, cd_balance *out);
/*
 * What the user may spend now (ledger_spendable) and what open disputes
 * hold frozen (frozen may be NULL), the row locked as by
 * ledger_balance_for_update, in one read.  A refund takes back no more than
 * is spendable: frozen tokens are a dispute's.
 */
cd_err	 ledger_spendable_for_update(long long user_id, long long *spendable,
	    long long *frozen);
/*
 * Moves delta tokens into the frozen part of the balance (negative: out of
 * it; never below zero).  Call inside a db_tx, after
 * ledger_balance_for_update.
 */
cd_err	 ledger_freeze(long long user_id, long long delta);
/*
 * A dispute's step on a payment's credits, with the zero-delta ledger row
 * that records it: freezes what is still spendable of the left tokens the
 * payment granted and still stands, or with release unfreezes units (no
 * more than is frozen).  The row's metadata names the payment ({ref_key:
 * ref, paymentIntentId}) and the frozenDelta.  *moved = the tokens moved.
 * Call inside a db_tx.
 */
cd_err	 ledger_dispute_freeze(long long user_id, bool release, long long left,
	    long long units, const char *ref_key, const char *ref,
	    const char *payment_intent_id, long long *moved);
/*
 * The user's entries with id < before_id, newest first: up to max into
 * rows, *n = how many.
 */
cd_err	 ledger_page(cd_arena *a, long long user_id, long long before_id,
	    cd_ledger_row *rows, size_t max, size_t *n);

/* tokens_per_credit from platform_settings. */
cd_err	 ledger_rate(long long *tokens_per_credit);

#endif
