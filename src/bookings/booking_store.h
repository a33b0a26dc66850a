/*
 * The bookings family's statements: experts (the directory, Connect
 * accounts), bookings (holds, cancels, completion, the API's view), payouts
 * and the admin figures.  Every statement of the family is declared once in
 * booking_store.c; what a handler decides on comes back as a C struct or a
 * distinct result, and only lists that go out to the client as they are come
 * back as JSON rows (caller owns the reference).  The money of a booking's
 * payment stays with booking_pay.h.
 */
#ifndef CD_BOOKING_STORE_H
#define CD_BOOKING_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "arena.h"
#include "error.h"

/* The directory: active experts, as the API shows them. */
cd_err	 bstore_experts_json(json_t **rows);
/* One active expert as the API shows it, or *row = NULL. */
cd_err	 bstore_expert_json(long long expert_id, json_t **row);

/* An expert's Connect account (strings in the caller's arena). */
typedef struct expert_account {
	long long	 id;
	const char	*account;	/* acct_…, or NULL before it is created */
	long long	 charges_enabled, payouts_enabled;
	const char	*nonce;		/* for its Idempotency-Keys; "" if none yet */
} expert_account;
/* The expert row of a user; *found false if the user is no expert. */
cd_err	 bstore_expert_of_user(cd_arena *, long long user_id, expert_account *,
	    bool *found);
/* An expert's cancellation policy in force (its own, else the platform's). */
typedef struct expert_policy {
	long long	 expert_id, full_hours, late_bps;
} expert_policy;
/* Inside a transaction: writes the guard row of the user's expert row,
 * then reads its policy; *found false if the user is no expert. */
cd_err	 bstore_expert_policy(long long user_id, expert_policy *, bool *found);
/* Makes p the expert's own policy. */
cd_err	 bstore_set_expert_policy(const expert_policy *p);
/* Stores the expert's nonce unless one is stored already. */
cd_err	 bstore_expert_nonce(long long expert_id, const char *nonce);
/* Stores the expert's account id unless one is stored already. */
cd_err	 bstore_expert_account(long long expert_id, const char *account);

/* platform_settings.platform_fee_bps; *found false if it is not set. */
cd_err	 bstore_fee_bps(long long *bps, bool *found);
/* What booking an expert takes: who they are, their rate, their account. */
typedef struct expert_terms {
	long long	 user_id, rate, onboarded;
	const char	*account;	/* NULL if none */
	long long	 full_hours, late_bps;	/* its cancellation policy now */
} expert_terms;
cd_err	 bstore_expert_terms(cd_arena *, long long expert_id, expert_terms *,
	    bool *found);
/* Writes the user's hold guard row (booking_hold_guards), see create.c. */
cd_err	 bstore_guard_user(long long user_id);
/* Whether the user holds as many unpaid slots as allowed already. */
cd_err	 bstore_unpaid_holds_full(long long user_id, bool *full);
/* How many holding bookings of the expert but except overlap [start, end). */
cd_err	 bstore_overlaps(long long expert_id, const char *start,
	    const char *end, long long except, long long *n);
/* A new booking's row (times "YYYY-MM-DD HH:MM:SS" UTC). */
typedef struct booking_row {
	long long	 user_id, expert_id;
	const char	*start, *end;
	long long	 minutes, price, fee, payout;
	long long	 full_hours, late_bps;	/* the policy it is made under */
	const char	*status;
	const char	*nonce;
	const char	*destination;	/* NULL: not a destination charge */
	const char	*key;		/* the client's Idempotency-Key, or NULL */
} booking_row;
cd_err	 bstore_insert(const booking_row *, long long *id);
/* The customer's booking made with b's Idempotency-Key, and whether it was
 * for b's expert, start and end. */
typedef struct booking_keyed {
	long long	 id, same;
} booking_keyed;
cd_err	 bstore_keyed(const booking_row *b, booking_keyed *, bool *found);
/* The booking's pending payment row and its PaymentIntent id. */
cd_err	 bstore_record_intent(long long booking_id, const char *payment_intent,
	    long long amount_cents);

/* What the handlers decide on: a booking's people, states and payment. */
typedef struct booking_state {
	long long	 id;
	long long	 user_id;		/* the customer */
	long long	 expert_user_id;	/* the expert's user */
	const char	*status;		/* bookings.status */
	const char	*payment_status;	/* payments.status, or NULL */
	const char	*payment_intent;	/* pi_…, or NULL */
	const char	*nonce;			/* for its Idempotency-Keys */
	long long	 holds;			/* holds its time (BOOKING_HOLDS) */
	long long	 started;		/* its start time has come */
	long long	 charged_back;		/* BOOKING_CHARGED_BACK */
} booking_state;
cd_err	 bstore_state(cd_arena *, long long booking_id, booking_state *,
	    bool *found);
/* One booking as the API shows it, or *row = NULL. */
cd_err	 bstore_booking_json(long long booking_id, json_t **row);
/* The user's bookings, as customer and as expert, newest first (≤ 200). */
cd_err	 bstore_bookings_json(long long user_id, json_t **rows);
/* A booking as a move decides on it (times "YYYY-MM-DD HH:MM:SS" UTC). */
typedef struct booking_moving {
	long long	 user_id, expert_id, minutes;
	long long	 scheduled;	/* scheduled, and no cancel decided */
	long long	 movable;	/* BOOKING_MOVABLE */
	long long	 full_hours;	/* the policy's full-refund hours */
	long long	 charged_back;	/* BOOKING_CHARGED_BACK */
	const char	*start;
} booking_moving;
cd_err	 bstore_moving(cd_arena *, long long booking_id, booking_moving *,
	    bool *found);
/* A movable booking to [start, end); *moved false if it no longer is. */
cd_err	 bstore_move(long long booking_id, const char *start, const char *end,
	    bool *moved);
/*
 * scheduled -> completed once it has started and unless a cancel decided
 * its refund (*cancelling); *done: this call did it.
 */
cd_err	 bstore_complete(long long booking_id, bool *done, bool *cancelling);
/* The cancellation's refund as decided, read back under the row's lock. */
typedef struct booking_decision {
	long long	 scheduled;	/* still scheduled */
	long long	 decided;	/* a refund is decided */
	long long	 refund;	/* the decided refund's cents */
	bool		 fresh;		/* decided by this call */
} booking_decision;
/*
 * Decides refund_cents as the cancellation's refund unless one is decided
 * already (only while scheduled and before the start) and reads back what
 * stands; *found false if there is no booking.
 */
cd_err	 bstore_decide_refund(long long booking_id, long long refund_cents,
	    booking_decision *, bool *found);

/*
 * A booking's line in its expert's next manual payout (BOOKING_LINE_CENTS):
 * owed, or (negative) taken back after a refund of a booking paid out.
 */
typedef struct owed_booking {
	long long	 id, expert_id;
	const char	*expert_name;
	long long	 cents;
} owed_booking;
/* Every booking with a line, by expert then booking, in arena a. */
cd_err	 bstore_owed(cd_arena *, owed_booking **rows, size_t *n);
/* One expert's lines (expert_name NULL), in arena a. */
cd_err	 bstore_owed_of(cd_arena *, long long expert_id, owed_booking **rows,
	    size_t *n);
/* Bookings paid by destination charges, as the API lists them. */
cd_err	 bstore_destination_json(json_t **rows);
/* A paid payout row. */
cd_err	 bstore_payout_insert(long long expert_id, long long amount_cents,
	    long long admin_id, long long *payout_id);
/* A booking's line into a payout. */
cd_err	 bstore_payout_item(long long payout_id, long long booking_id,
	    long long cents);

/* The admin metrics' figures, each from its statement. */
typedef struct booking_counts {
	long long	 total, paid, awaiting_payment, scheduled, completed;
	long long	 cancelled, payment_failed;
} booking_counts;
typedef struct payment_counts {
	long long	 total, pending, succeeded, failed, refunded;
	long long	 partially_refunded;
} payment_counts;
typedef struct booking_figures {
	booking_counts	 bookings;
	payment_counts	 payments;
	long long	 revenue, owed, paid_out;	/* cents */
	long long	 last_hour, last_24h;		/* bookings created */
	long long	 payments_ok_24h, payments_decided_24h;
	long long	 revenue_30d;
	/* what customers paid for and have not used yet */
	long long	 live_help_cents, voice_cents;
	long long	 tokens, paid_cents, granted_tokens;
} booking_figures;
cd_err	 bstore_figures(booking_figures *);

#endif
