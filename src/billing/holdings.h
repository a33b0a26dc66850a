/*
 * What a user holds, read by the families: the product reads that used to be
 * written in each responder.  The rule of each lives here once, next to the
 * writes that keep it true (product_live_help.c, voice.c,
 * product_consultation.c).
 */
#ifndef CD_HOLDINGS_H
#define CD_HOLDINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/*
 * Live Help hours: bought less refunded (total), redeemed into slots (used),
 * and held back by an open dispute (frozen).  Frozen hours stay in the total
 * but cannot be booked, so they count against what is left.
 */
typedef struct cd_hours {
	long long	 total;
	long long	 used;
	long long	 frozen;
} cd_hours;

/*
 * The user's hours, from user_live_help_totals, or when that row is missing
 * (data loaded by hand) summed from purchases and redemptions.
 */
cd_err	 live_help_hours(long long user_id, cd_hours *out);
/* The same sums alone, for a caller that has already read no totals row. */
cd_err	 live_help_hours_summed(long long user_id, cd_hours *out);
/* Hours the user can still book: total - used - frozen. */
long long live_help_left(const cd_hours *);
/*
 * A booked hour given back (its slot cancelled), inside the caller's
 * transaction: back to the user's hours, or, if a refund of theirs could not
 * take an hour back while it was booked (hours_owed), to that refund.
 * *to_refund: it went to the refund.
 */
cd_err	 live_help_hour_back(long long user_id, bool *to_refund);

/* Voice minutes the user can spend now: active, unexpired, not frozen. */
cd_err	 voice_available(long long user_id, long long *minutes);

/* A consultation's room, where customer and mechanic meet: /chat/{id}. */
void	 consultation_room(long long session_id, char *out, size_t outlen);
/*
 * Where a consultation lives for its buyer: a chat in its room, the others
 * on /thank-you?session={id}, the page that says what happens next.
 */
void	 consultation_route(const char *type, long long session_id, char *out,
	    size_t outlen);

#endif
