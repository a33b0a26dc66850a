/*
 * The pages family's statements: what each page shows, read with a few
 * static statements.  Every statement of the family is declared once in
 * pages_store.c.  What a page reshapes (formats money and counts, turns 0/1
 * into booleans, picks by a value) comes back as C structs, strings in the
 * caller's arena; rows a template shows as they are come back as JSON rows
 * (caller owns the reference; a missing row is NULL).
 */
#ifndef CD_PAGES_STORE_H
#define CD_PAGES_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "arena.h"
#include "error.h"

/* Products on sale. */
typedef struct page_product {
	const char	*code, *name, *description;
	long long	 unit_amount_cents;
} page_product;
cd_err	 pstore_products(cd_arena *, page_product **rows, size_t *n);
/* The settings a page states in words {tokens_per_credit, voice_minutes, voice_days}. */
cd_err	 pstore_settings_json(json_t **row);
/* The ledger's tokens per credit shown (0 when it is not set). */
/* Boost packs on sale, in their order. */
typedef struct page_pack {
	const char	*id, *name;
	long long	 credits, bonus_credits, total_credits, price_cents;
	const char	*badge;
} page_pack;
cd_err	 pstore_packs(cd_arena *, page_pack **rows, size_t *n);
/* The user's next Voice expiry {expires, expires_iso}. */
cd_err	 pstore_voice_json(long long user_id, json_t **row);
/* The user's credit balance. */
typedef struct page_balance {
	long long	 balance, bonus_earned;
	long long	 frozen;	/* held by an open dispute */
} page_balance;
cd_err	 pstore_balance(long long user_id, page_balance *, bool *found);
/* The user's consultations, newest first (≤ 50). */
typedef struct page_session {
	long long	 id;
	const char	*type;
	long long	 is_chat;
	const char	*plan_name, *status, *created, *created_iso;
} page_session;
cd_err	 pstore_my_sessions(cd_arena *, long long user_id, page_session **rows,
	    size_t *n);
/* The user's bookings as customer, latest start first (≤ 50). */
typedef struct page_booking {
	long long	 id;
	const char	*expert_name;
	long long	 duration_minutes, price_cents;
	const char	*start, *start_iso, *status;
	long long	 can_cancel;		/* scheduled, not started */
	long long	 expert_id, can_pay;	/* an unpaid hold still held */
	long long	 can_move;		/* BOOKING_MOVABLE */
	long long	 refunded_cents;	/* by refunds or a lost chargeback */
} page_booking;
cd_err	 pstore_my_bookings(cd_arena *, long long user_id, page_booking **rows,
	    size_t *n);
/* The expert this user is, and whether Stripe pays them out. */
typedef struct page_expert_account {
	long long	 id, has_account, payouts_active;
	long long	 full_hours, late_bps;	/* the policy new bookings take */
} page_expert_account;
cd_err	 pstore_my_expert(long long user_id, page_expert_account *, bool *found);
/* The bookings of the expert this user is (≤ 100). */
typedef struct page_expert_booking {
	long long	 id;
	const char	*customer;
	long long	 duration_minutes, payout_cents;
	const char	*start, *start_iso, *status;
	long long	 can_complete;
} page_expert_booking;
cd_err	 pstore_expert_bookings(cd_arena *, long long user_id,
	    page_expert_booking **rows, size_t *n);
/* The user's latest ledger entries (≤ 10). */
typedef struct page_transaction {
	long long	 id;
	const char	*description;
	long long	 credits_delta, balance_after;
	const char	*created, *created_iso;
} page_transaction;
cd_err	 pstore_transactions(cd_arena *, long long user_id,
	    page_transaction **rows, size_t *n);
/*
 * The user's payments, newest first (≤ 50): kind is the checkout's product
 * or "booking"; name its pack's, plan's, product's or expert's; units the
 * hours (Live Help) or minutes (Voice AI Therapy, a booking); state paid,
 * refunded, partly_refunded, disputed or charged_back.
 */
typedef struct page_payment {
	const char	*kind, *name;
	long long	 units, amount_cents, refunded_cents;
	const char	*state, *paid, *paid_iso;
} page_payment;
cd_err	 pstore_payments(cd_arena *, long long user_id, page_payment **rows,
	    size_t *n);
/* What one checkout of the user bought. */
typedef struct page_purchase {
	const char	*product;
	long long	 quantity;
	const char	*status, *pack_name;
	long long	 pack_credits;
	const char	*plan_name;
	long long	 monthly_credits;
	const char	*product_name;
} page_purchase;
cd_err	 pstore_purchase(cd_arena *, long long checkout_id, long long user_id,
	    page_purchase *, bool *found);
/* Upcoming Live Help slots (≤ 60), with the user's seat. */
typedef struct page_slot {
	long long	 id;
	const char	*starts_iso, *starts;
	long long	 minutes, seats_left, full, mine;
	long long	 final;		/* inside the cancel window: booked for good */
} page_slot;
cd_err	 pstore_slots(cd_arena *, long long user_id, page_slot **rows,
	    size_t *n);
/* The user's booked Live Help slots not yet over (≤ 100). */
typedef struct page_booked_slot {
	long long	 id;
	const char	*starts_iso, *starts;
	long long	 can_cancel;
} page_booked_slot;
cd_err	 pstore_booked_slots(cd_arena *, long long user_id,
	    page_booked_slot **rows, size_t *n);
/* The Live Help cancel policy {cancel_hours}. */
cd_err	 pstore_policy_json(json_t **row);
/* One consultation the user takes part in. */
typedef struct page_consultation {
	long long	 id;
	const char	*type, *status;
	long long	 amount_cents, is_video;
	const char	*plan_name, *email, *mechanic;
} page_consultation;
cd_err	 pstore_consultation(cd_arena *, long long user_id, long long id,
	    page_consultation *, bool *found);
/* Subscription plans on sale; premium: the plan includes the premium tier. */
typedef struct page_plan {
	const char	*id, *name;
	long long	 monthly_credits, price_cents, premium;
} page_plan;
cd_err	 pstore_plans(cd_arena *, page_plan **rows, size_t *n);
/* The user's current subscription, and the plan it renews as. */
typedef struct page_subscription {
	long long	 id;
	const char	*status;
	long long	 ending;
	const char	*period_end_iso, *period_end, *plan_id, *name;
	long long	 monthly_credits, premium;
	page_plan	 renews;	/* its premium is not read */
} page_subscription;
cd_err	 pstore_subscription(cd_arena *, long long user_id,
	    page_subscription *, bool *found);
/* Paid consultations no mechanic has yet, oldest first. */
cd_err	 pstore_waiting_json(json_t **rows);
/* The user's open Voice session {id, available_minutes, started_iso}. */
cd_err	 pstore_voice_open_json(long long user_id, json_t **row);
/* Active experts (bio and cancellation policy only for one). */
typedef struct page_expert {
	long long	 id;
	const char	*name, *headline, *bio;
	long long	 rate_cents_per_minute;
	long long	 full_hours, late_bps;	/* what a booking now is made under */
} page_expert;
cd_err	 pstore_experts(cd_arena *, page_expert **rows, size_t *n);
cd_err	 pstore_expert(cd_arena *, long long id, page_expert *, bool *found);
/* The expert's bookable hours of the next days. */
typedef struct page_hour {
	const char	*start_iso, *start;
	long long	 busy;
} page_hour;
cd_err	 pstore_hours(cd_arena *, long long expert_id, page_hour **rows,
	    size_t *n);
/* The user's unpaid holds of the expert's time they can still pay. */
typedef struct page_hold {
	long long	 id, duration_minutes, price_cents;
	const char	*start_iso, *start, *until_iso, *until;
} page_hold;
cd_err	 pstore_my_holds(cd_arena *, long long user_id, long long expert_id,
	    page_hold **rows, size_t *n);
/* The user's booking of the expert that can still move; else *found false. */
typedef struct page_moving {
	long long	 id, duration_minutes;
	const char	*start_iso, *start;
	long long	 full_hours, late_bps;	/* its expert's cancellation policy */
} page_moving;
cd_err	 pstore_movable(cd_arena *, long long booking_id, long long user_id,
	    long long expert_id, page_moving *, bool *found);
/* The admin's counts {users, fulfilled, live_help}. */
cd_err	 pstore_counts_json(json_t **row);
/* The latest books check and its findings. */
cd_err	 pstore_books_run_json(json_t **row);
cd_err	 pstore_books_findings_json(json_t **rows);
/* Mechanics, for Assign. */
cd_err	 pstore_mechanics_json(json_t **rows);
/* Users matching q (all when ""), newest first (≤ 20). */
typedef struct page_user {
	long long	 id;
	const char	*email, *name, *role, *tier;
} page_user;
cd_err	 pstore_users(cd_arena *, const char *q, page_user **rows, size_t *n);
/*
 * An audit entry.  user_id is text ("42"), NULL for an entry of no user;
 * created is set by pstore_audit only, created_iso by both.
 */
typedef struct page_audit {
	long long	 id;
	const char	*action, *entity_type, *entity_id, *user_id;
	const char	*user_email, *details, *severity, *created_iso, *created;
} page_audit;
/* The audit log's filters, each off when "" (user: an id or an email). */
typedef struct page_audit_filter {
	const char	*action, *user, *from, *to;	/* from, to: days */
	long long	 tz;	/* the days' zone, minutes east of UTC */
} page_audit_filter;
/* Up to limit entries below id before, newest first, filtered. */
cd_err	 pstore_audit(cd_arena *, const page_audit_filter *, long long before,
	    long long limit, page_audit **rows, size_t *n);
/* The actions the audit log holds, for the filter. */
cd_err	 pstore_audit_actions_json(json_t **rows);
/* Up to limit entries below id before, newest first (user_email NULL). */
cd_err	 pstore_audit_page(cd_arena *, long long before, long long limit,
	    page_audit **rows, size_t *n);

#endif
