/*
 * Expert bookings paid by PaymentIntent: the state changes that both the
 * webhook and the bookings responder make, so that whoever gets there first
 * (payment_intent.succeeded, confirm-payment, the reconcile command) makes
 * the one transition and writes the one audit row, and the others change
 * nothing.
 *
 * Every function takes an object already RETRIEVED from Stripe, never a
 * webhook payload.  The local payments row (UNIQUE stripe_payment_intent_id)
 * decides which booking and what amount; Stripe's object decides whether it
 * is paid.  A guarded UPDATE (… WHERE status = 'pending') decides who wins.
 */
#ifndef CD_BOOKING_PAY_H
#define CD_BOOKING_PAY_H

#include <stdbool.h>
#include <jansson.h>

#include "arena.h"
#include "dispute.h"
#include "error.h"

/*
 * Whether booking alias b holds its expert's time: scheduled, or awaiting
 * payment and created within the hold window (booking_hold_minutes).  One
 * definition for every overlap check.
 */
#define BOOKING_HOLDS(b) \
	"(" b ".status = 'scheduled' OR (" b ".status = 'awaiting_payment'" \
	" AND " b ".created_at > UTC_TIMESTAMP(6) - INTERVAL (SELECT int_value" \
	" FROM platform_settings WHERE name = 'booking_hold_minutes') MINUTE))"

/*
 * Whether booking alias b is scheduled with no cancel decided yet (a cancel
 * sets cancel_refund_cents first, then refunds): what may still change it.
 */
#define BOOKING_SCHEDULED(b) \
	"(" b ".status = 'scheduled' AND " b ".cancel_refund_cents IS NULL)"
/* Its twin: scheduled with a cancel's refund decided and not made yet. */
#define BOOKING_CANCELLING(b) \
	"(" b ".status = 'scheduled' AND " b ".cancel_refund_cents IS NOT NULL)"

/*
 * Whether booking alias b's payment is charged back, the dispute still open
 * (PAYMENT_CHARGED_BACK): the bank takes the money back, so nothing may
 * refund it until the dispute is won (Stripe refuses: charge_disputed).  An
 * inquiry (warning_*) is not a chargeback yet and may still be refunded.
 * The first dispute alone names the booking, so dispute_status comes first:
 * only a payment ever disputed is looked up.  An inquiry that turns into a
 * chargeback in place is seen once its charge.dispute.updated is handled;
 * until then Stripe's refusal says it (stripe_charge_disputed).
 */
#define BOOKING_CHARGED_BACK(b) \
	"(" b ".dispute_status IS NOT NULL AND " \
	PAYMENT_CHARGED_BACK(b ".payment_intent_id") ")"

/*
 * Whether booking alias b may hold a payment that stands (succeeded, not
 * refunded): scheduled, completed, or cancelled by its customer when the
 * policy refunded nothing.  The money check's rule.
 */
#define BOOKING_KEEPS_PAYMENT(b) \
	"(" b ".status IN ('scheduled', 'completed') OR (" b ".status =" \
	" 'cancelled_by_user' AND " b ".cancel_refund_cents <=> 0))"

/*
 * The cancellation policy expert alias e takes bookings under now (its own,
 * else the platform's): a new booking keeps it (bookings.full_refund_hours,
 * late_refund_bps, migration 042), whatever either becomes later.
 */
#define EXPERT_FULL_REFUND_HOURS(e) \
	"COALESCE(" e ".cancel_full_refund_hours, (SELECT int_value" \
	" FROM platform_settings WHERE name = 'cancel_full_refund_hours'))"
#define EXPERT_LATE_REFUND_BPS(e) \
	"COALESCE(" e ".cancel_late_refund_bps, (SELECT int_value" \
	" FROM platform_settings WHERE name = 'cancel_late_refund_bps'))"
/*
 * The policy booking alias b (of expert alias e) was made under; a booking
 * made by a release from before its columns (a rolling deploy) reads its
 * expert's.
 */
#define BOOKING_FULL_REFUND_HOURS(b, e) \
	"COALESCE(" b ".full_refund_hours, " EXPERT_FULL_REFUND_HOURS(e) ")"
#define BOOKING_LATE_REFUND_BPS(b, e) \
	"COALESCE(" b ".late_refund_bps, " EXPERT_LATE_REFUND_BPS(e) ")"

/*
 * Whether booking alias b (of expert alias e) can move to another time:
 * scheduled, no cancel decided, its expert still taking bookings, still as
 * far from its start as a full refund allows (calc.h's CANCEL_FULL), so
 * that moving is never a way round the policy, and its payment not charged
 * back (the dispute decides whether the booking stands at all).  One
 * definition for the move and the pages.
 */
#define BOOKING_MOVABLE(b, e) \
	"(" BOOKING_SCHEDULED(b) " AND " e ".active = 1" \
	" AND " b ".start_time >= UTC_TIMESTAMP() + INTERVAL " \
	BOOKING_FULL_REFUND_HOURS(b, e) " HOUR AND NOT " BOOKING_CHARGED_BACK(b) ")"

/*
 * What booking alias b owes its expert now, with its payment alias p: the
 * payout less what refunds took back from it (BOOKING_OWED_CENTS) while the
 * booking stands (completed, or cancelled with its decided refund made;
 * paid; no dispute standing or lost), else nothing.
 */
#define BOOKING_OWED_CENTS "(b.payout_cents - b.payout_refunded_cents)"
#define BOOKING_EARNED_CENTS \
    "IF((b.status = 'completed' OR (b.status = 'cancelled_by_user'" \
    "  AND b.refunded_cents = b.cancel_refund_cents))" \
    "  AND p.status IN ('succeeded', 'partially_refunded')" \
    "  AND (b.dispute_status IS NULL OR b.dispute_status = 'won')," \
    "  CAST(b.payout_cents AS SIGNED) - b.payout_refunded_cents, 0)"
/*
 * A manual payout's line for booking alias b: what it owes now less what
 * payouts paid for it so far.  A booking paid out and then refunded, or lost
 * to a dispute, has a negative line: the expert's next payout takes it back.
 * BOOKING_LINES is the FROM ... WHERE of the bookings with a line (not
 * destination charges, where Stripe pays the expert); the payout and the
 * replay of one use it both.
 */
#define BOOKING_LINE_CENTS "(" BOOKING_EARNED_CENTS " - (SELECT" \
    " COALESCE(SUM(i.amount_cents), 0) FROM payout_items i WHERE i.booking_id = b.id))"
#define BOOKING_LINES \
    " FROM bookings b JOIN experts e ON e.id = b.expert_id" \
    " JOIN payments p ON p.booking_id = b.id" \
    " WHERE b.destination_account IS NULL AND " BOOKING_LINE_CENTS " <> 0"

/*
 * A succeeded PaymentIntent: payment 'succeeded' and booking 'scheduled'
 * (BOOKING_PAID), once.  CD_NOT_FOUND if no booking's payment has this
 * PaymentIntent, CD_FORBIDDEN if its amount or currency differs from ours;
 * a PaymentIntent that has not succeeded changes nothing.  If the booking
 * can no longer be held (cancelled, or its slot was taken after an earlier
 * failure or once its unpaid hold expired), the payment is refunded instead
 * of being kept.
 */
cd_err	 booking_payment_succeeded(const json_t *payment_intent);
/* The same, with the intent's latest charge when the caller has it already
 * (retrieved with the intent in one call); NULL: retrieved when needed. */
cd_err	 booking_payment_succeeded_with(const json_t *payment_intent,
	    const json_t *latest_charge);
/*
 * Writes the expert's guard row (experts.booking_version): every change of
 * an expert's bookings together with the time they hold, and every payout,
 * does this first in its transaction, so they run one at a time per expert
 * and each reads what the one before committed.  *found is false for an
 * expert that does not exist (or, with active_only, is inactive).
 */
cd_err	 booking_guard_expert(long long expert_id, bool active_only, bool *found);
/*
 * A failed PaymentIntent.  A declined card (back to requires_payment_method
 * with a last_payment_error): payment 'failed' with Stripe's message and one
 * more failed attempt (once per failed charge), and the booking keeps its
 * hold: it stays awaiting_payment until booking_hold_minutes have passed, and
 * another card may pay meanwhile.  A canceled PaymentIntent can never be
 * paid: booking 'payment_failed' from 'awaiting_payment', which frees the
 * slot.  The same CD_NOT_FOUND as above; a PaymentIntent that has not failed
 * changes nothing.
 */
cd_err	 booking_payment_failed(const json_t *payment_intent);
/* True if Stripe's PaymentIntent counts as failed (see above). */
bool	 booking_intent_failed(const json_t *payment_intent);
/*
 * charge.refunded for a booking's PaymentIntent, also when the refund was
 * made outside the app: once the charge is fully refunded, one refunds row
 * (UNIQUE payment_id and stripe_refund_id) and payment 'refunded'; after a
 * partial refund already recorded (a cancel's share), the row stays that
 * one and the booking is refunded the rest, fee and payout whole.  The
 * refund of our own cancel cancels the booking (BOOKING_CANCELLED), as the
 * app would once its record commits; another settles a cancel decided and
 * not made (BOOKING_CANCEL_SETTLED).  Not a booking's charge, or only
 * partly refunded → CD_OK, nothing changed.
 */
cd_err	 booking_refund_seen(const json_t *charge);
/*
 * account.updated: an expert's connected account as Stripe has it now
 * (charges_enabled, payouts_enabled) onto the expert's row.  A booking with
 * an expert whose account has both is a destination charge: the PaymentIntent
 * carries application_fee_amount (the platform fee) and
 * transfer_data[destination]; once paid the booking keeps the transfer and
 * application fee ids; its refunds reverse the transfer and refund the fee
 * in proportion; it is never owed a manual payout.
 */
cd_err	 booking_account_seen(const json_t *account);
/* A booking's payment, joined with its booking (strings in an arena). */
typedef struct booking_payment {
	long long	 payment_id, booking_id;
	long long	 amount_cents;		/* what the PaymentIntent must be */
	const char	*payment_intent;	/* pi_… */
	const char	*payment_status;	/* payments.status */
	long long	 user_id, expert_id;
	const char	*booking_status;	/* bookings.status */
	long long	 price_cents, fee_cents, payout_cents;
	long long	 refunded_cents, payout_refunded_cents;
	const char	*destination_account;	/* a destination charge's, or NULL */
	const char	*transfer_id;		/* its transfer once paid, or NULL */
	const char	*nonce;			/* the booking's idempotency nonce */
	long long	 cancel_decided;	/* a cancel fixed its refund (1/0) */
} booking_payment;

/*
 * The booking whose payment a PaymentIntent is, strings in arena a: the row
 * booking_disputed takes.  *found is false if there is none.
 */
cd_err	 booking_of_intent(const char *payment_intent, cd_arena *a,
	    booking_payment *row, bool *found);
/*
 * A dispute on a booking's payment, inside the caller's transaction (after
 * the expert's guard row, which it writes): to is "open", "won" or "lost",
 * and the booking's dispute_status moves only forward (NULL -> open -> won
 * or lost).  While open the booking is owed to nobody; won makes it owed
 * again; lost reverses the payment like a full refund (its one refunds row,
 * keyed by the dispute, the whole price refunded from fee and payout,
 * payment 'refunded'; a cancel decided and not made, or a booking that has
 * not started, is cancelled: BOOKING_CANCEL_SETTLED).  *cents is the payout held (open), released (won) or
 * the cents reversed (lost); *moved is false if the status had moved already.
 * Its audit details belong to arena a.
 */
cd_err	 booking_disputed(const booking_payment *row, const char *dispute_id,
	    const char *to, cd_arena *a, long long *cents, bool *moved);
/* What a refund gives back, and from whom: fee + payout == refund. */
typedef struct booking_split {
	long long	 refund;	/* cents to the customer */
	long long	 fee;		/* taken back from the platform's fee */
	long long	 payout;	/* taken back from the expert's payout */
} booking_split;

/*
 * Refunds a booking's succeeded payment at Stripe (Idempotency-Key
 * "booking-<id>-refund", so retries and racing callers make one refund) and
 * records it: refunds row, the booking's refunded cents split as in part
 * (NULL: the whole price, fee and payout), payment 'refunded' or
 * 'partially_refunded', REFUND_ISSUED.  With cancel, the same transaction
 * moves the booking from awaiting_payment or scheduled to cancelled_by_user
 * (BOOKING_CANCELLED); a part of 0 cents cancels without a refund, as does
 * cancel on a payment refunded in full another way.  Any other payment that
 * is not 'succeeded' is not refunded (CD_OK; *refunded false).
 */
cd_err	 booking_refund(long long booking_id, long long user_id,
	    const char *reason, bool cancel, const booking_split *part,
	    bool *refunded);

/*
 * The booking's status changes outside a payment event, for the bookings
 * family and the books' replay: booking_release() lets an unpaid hold go
 * (awaiting_payment to payment_failed); booking_cancel_unpaid() cancels a
 * booking that was never paid (to cancelled_by_user, its pending payment
 * to failed).  *done: the booking was in the state the change starts from.
 * Inside the caller's transaction.
 */
cd_err	 booking_release(long long booking_id, bool *done);
cd_err	 booking_cancel_unpaid(long long booking_id, bool *done);

struct booking_terms;
/*
 * The booking's cancellation terms (calc.h): its price and fee, the time to
 * its start by the database clock, its expert's policy (or the platform's),
 * and the refund already decided.  *found is false if there is no booking.
 */
cd_err	 booking_terms_of(long long booking_id, struct booking_terms *t,
	    bool *found);

/*
 * Finishes cancels whose decided refund Stripe did not make (the call
 * failed and the customer never tried again): refunds what was decided and
 * cancels, as the customer's cancel would have (same Idempotency-Key, so a
 * cancel finishing at the same moment makes one refund).  The periodic
 * job's; *done = bookings finished.
 */
cd_err	 booking_finish_cancels(long long *done);

#endif
