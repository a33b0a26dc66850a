/*
 * The pure parts of booking: reading a start time, checking a duration and
 * splitting a price into the platform's fee and the expert's payout.  No I/O
 * and no clock, so the unit tests can pin every edge.
 */
#ifndef CD_BOOKINGS_CALC_H
#define CD_BOOKINGS_CALC_H

#include <stdbool.h>

#include "booking_pay.h"

#define BOOKING_MIN_MINUTES	15
#define BOOKING_MAX_MINUTES	240
#define BOOKING_STEP_MINUTES	15

typedef struct booking_money {
	long long	 price;		/* rate × minutes */
	long long	 fee;		/* round-half-up(price × bps / 10000) */
	long long	 payout;	/* price − fee */
} booking_money;

/*
 * "YYYY-MM-DDTHH:MM:SSZ" or "YYYY-MM-DDTHH:MM" (both UTC) to seconds since
 * the epoch.  Every field is a fixed number of digits and is range-checked
 * against the real calendar (leap years included); anything else, including
 * trailing bytes, other offsets and fractions, is refused.
 */
bool	 booking_parse_time(const char *s, long long *epoch);
/* "YYYY-MM-DD HH:MM:SS" for the database; out holds at least 20 bytes. */
void	 booking_format_time(long long epoch, char *out);
/* 15..240 minutes in steps of 15. */
bool	 booking_duration_ok(long long minutes);
/*
 * Integer cents only: false for negative input, a fee outside 0..10000 basis
 * points or a price that would not fit.
 */
bool	 booking_money_compute(long long rate_cents_per_minute, long long minutes,
	    long long fee_bps, booking_money *out);

typedef enum { CANCEL_FULL, CANCEL_PARTIAL, CANCEL_STARTED } booking_cancel_tier;

/*
 * The cancellation policy: a full refund up to full_hours before the start
 * (inclusive), late_bps of the price (rounded half up) after that, nothing
 * once the booking has started (seconds_to_start <= 0).
 */
booking_cancel_tier booking_cancel_refund(long long price,
	    long long seconds_to_start, long long full_hours, long long late_bps,
	    long long *refund);
/*
 * Splits a refund between the platform's fee and the expert's payout in
 * proportion to the price: fee part = round-half-up(refund × fee / price),
 * the payout part the rest, so the parts add up to the refund exactly.
 */
void	 booking_refund_divide(long long price, long long fee, long long refund,
	    booking_split *out);

/* A booking's cancellation terms, read by booking_terms_of (booking_pay.h). */
typedef struct booking_terms {
	long long	 price;		/* cents */
	long long	 fee;		/* the platform's fee, cents */
	long long	 to_start;	/* seconds until it starts, by the DB clock */
	long long	 full_hours;	/* the expert's policy, or the platform's */
	long long	 late_bps;
	long long	 decided;	/* refund a cancel already decided, or -1 */
} booking_terms;

/*
 * What cancelling now takes back: the tier by the policy and the clock, and
 * the refund split between fee and payout (the decided refund, once a
 * cancel has decided one).
 */
booking_cancel_tier booking_refund_quote(const booking_terms *,
	    booking_split *out);

#endif
