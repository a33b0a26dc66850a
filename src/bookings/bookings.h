/*
 * creditdesk-bookings: experts, bookings paid by PaymentIntent, refunds and
 * payouts.  bookings.c holds the route table; each file serves one part, and
 * booking_store.c holds the family's statements.
 */
#ifndef CD_BOOKINGS_H
#define CD_BOOKINGS_H

#include <jansson.h>

#include "booking_store.h"
#include "request.h"

/* experts.c */
cd_err	 experts_list(cd_req *);
cd_err	 expert_get(cd_req *);
cd_err	 expert_set_policy(cd_req *);

/* connect.c */
cd_err	 expert_connect(cd_req *);
cd_err	 expert_connect_state(cd_req *);

/* create.c */
cd_err	 booking_create(cd_req *);
/*
 * A new booking's startTime s (as the API takes it) as *start, epoch
 * seconds: in the future and within the next 366 days, else a 400.
 */
cd_err	 booking_start(cd_req *, const char *s, long long *start);

/* move.c: POST /api/bookings/{id}/reschedule */
cd_err	 booking_reschedule(cd_req *);

/* payments.c */
cd_err	 booking_confirm_payment(cd_req *);
cd_err	 booking_pay(cd_req *);
/*
 * The payment form of the customer's booking id again (200 {booking,
 * clientSecret}): the client secret of its PaymentIntent as Stripe has it
 * now, for a customer back to pay (POST /api/bookings/{id}/pay) or a request
 * repeated with its Idempotency-Key.  One paid meanwhile is applied first
 * and answered, like a scheduled one, with no secret; otherwise 409: a lapsed
 * hold (hold_expired), a cancelled PaymentIntent or a released hold
 * (hold_released), a payment still being set up (payment_not_ready).
 */
cd_err	 booking_pay_again(cd_req *, long long id);
/*
 * 409 payment_disputed: the booking's payment is charged back, so the
 * dispute decides what becomes of it; what (e.g. "cancelled") cannot be done.
 */
cd_err	 booking_refuse_disputed(cd_req *, const char *what);
cd_err	 booking_cancel(cd_req *);
cd_err	 booking_cancel_quote(cd_req *);

/* mine.c */
cd_err	 bookings_list(cd_req *);
cd_err	 booking_complete(cd_req *);
/*
 * One booking as the API shows it (request-owned), or NULL with CD_OK when
 * there is none.
 */
cd_err	 booking_load(cd_req *, long long id, json_t **booking);
/* The booking's state (booking_store.h; strings request-owned); *found false if none. */
cd_err	 booking_state_of(cd_req *, long long id, booking_state *, bool *found);
/* The same if it is the signed-in user's own booking; otherwise 404. */
cd_err	 booking_own_state(cd_req *, long long id, booking_state *);
/* {booking} (plus clientSecret when with_secret) for this id. */
cd_err	 booking_respond(cd_req *, int status, long long id,
	    const char *client_secret, bool with_secret);

/* admin.c */
cd_err	 payouts_pending(cd_req *);
cd_err	 payout_create(cd_req *);
cd_err	 metrics(cd_req *);

#endif
