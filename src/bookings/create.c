/*
 * POST /api/bookings: hold an expert's time slot, then ask Stripe for a
 * PaymentIntent.
 *
 * Two transactions around one Stripe call, because a network call must not
 * run while row locks are held.  The first writes the expert's guard row,
 * checks for an overlapping booking and inserts ours: every booking of one
 * expert passes through that write, so concurrent requests for the same slot
 * are serialized and exactly one of them finds it free.  The PaymentIntent
 * is created with the booking's id and random value in its Idempotency-Key,
 * and the second transaction records it.  If Stripe fails the booking becomes
 * payment_failed, which frees the slot (a declined card does not: the hold
 * stays until it expires, see booking_pay.h).  A free expert (rate 0) is scheduled
 * at once with no PaymentIntent.  A request with the Idempotency-Key of an
 * earlier one is answered with the booking that one made (booking_pay_again),
 * so the retry of a request whose answer was lost finds its booking instead
 * of a conflict with it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "bookings.h"
#include "calc.h"
#include "crypto.h"
#include "booking_pay.h"
#include "booking_store.h"
#include "db.h"
#include "fulfil.h"
#include "log.h"
#include "stripe.h"

#define MAX_AHEAD (366LL * 86400)	/* how far ahead a slot can be booked */

static const cd_field fields[] = {
	{ "expertId", F_INT, F_REQUIRED, 1, CD_MAX_ID, NULL },
	{ "startTime", F_STR, F_REQUIRED, 1, 64, NULL },
	{ "durationMinutes", F_INT, F_REQUIRED, BOOKING_MIN_MINUTES,
	    BOOKING_MAX_MINUTES, NULL },
};

struct newbooking {
	cd_req		*r;
	long long	 expert_id;
	long long	 minutes;
	long long	 fee_bps;
	char		 start[20], end[20];	/* "YYYY-MM-DD HH:MM:SS" UTC */
	booking_money	 money;
	long long	 id;
	const char	*key;		/* the client's Idempotency-Key, or NULL */
	bool		 again;		/* id was made with key before */
	char		 nonce[CD_TOKEN_LEN + 1];	/* for Stripe's Idempotency-Keys */
	char		 destination[64];	/* an onboarded expert's account, or "" */
};

static json_t *
created_details(const struct newbooking *b)
{
	return json_pack("{s:I,s:s,s:I,s:I,s:I,s:I}", "expertId",
	    (json_int_t)b->expert_id, "startTime", b->start, "durationMinutes",
	    (json_int_t)b->minutes, "priceCents", (json_int_t)b->money.price,
	    "platformFeeCents", (json_int_t)b->money.fee, "payoutCents",
	    (json_int_t)b->money.payout);
}

/* A user may hold only so many unpaid slots at a time. */
static cd_err
unpaid_holds_ok(cd_req *r)
{
	bool full;
	cd_err err;

	if ((err = bstore_unpaid_holds_full(r->user->id, &full)) != CD_OK)
		return err;
	if (full)
		return req_fail(r, CD_CONFLICT, "too_many_unpaid_bookings",
		    "You already have the maximum number of bookings awaiting payment."
		    " Pay for or cancel one of them first.");
	return CD_OK;
}

/*
 * A request repeating an earlier one's Idempotency-Key gets the booking that
 * one made (b->again); the key of another expert or time is refused.
 */
static cd_err
repeated(struct newbooking *b)
{
	booking_row asked = { .user_id = b->r->user->id,
	    .expert_id = b->expert_id, .start = b->start, .end = b->end,
	    .key = b->key };
	booking_keyed k;
	bool found;
	cd_err err;

	if (b->key == NULL)
		return CD_OK;
	if ((err = bstore_keyed(&asked, &k, &found)) != CD_OK || !found)
		return err;
	if (!k.same)
		return req_key_reused(b->r, "booking");
	b->id = k.id;
	b->again = true;
	return CD_OK;
}

static cd_err
hold_tx(void *arg)
{
	struct newbooking *b = arg;
	cd_req *r = b->r;
	expert_terms e;
	booking_row row;
	long long n;
	bool found, listed = false;
	cd_err err;

	b->destination[0] = '\0';	/* a retried transaction starts over */
	b->again = false;
	/*
	 * Both guard rows are written before the first plain read, so every
	 * read below sees each hold this expert and this user committed before
	 * us.  Always expert first, then user.
	 */
	if ((err = booking_guard_expert(b->expert_id, true, &found)) != CD_OK ||
	    (err = bstore_guard_user(r->user->id)) != CD_OK ||
	    (err = repeated(b)) != CD_OK || b->again)
		return err;
	if (found && (err = bstore_expert_terms(r->arena, b->expert_id, &e,
	    &listed)) != CD_OK)
		return err;
	if (!found || !listed)
		return req_fail(r, CD_NOT_FOUND, "expert_not_found",
		    "No expert with this id.");
	/* An onboarded expert is paid by a destination charge, not manually. */
	if (e.onboarded && e.account != NULL)
		snprintf(b->destination, sizeof(b->destination), "%s", e.account);
	if (e.user_id == r->user->id)
		return req_fail(r, CD_BAD_REQUEST, "own_expert_profile",
		    "You cannot book yourself.");
	if (!booking_money_compute(e.rate, b->minutes, b->fee_bps, &b->money))
		return CD_INTERNAL;
	if (b->money.price > 0 && (err = unpaid_holds_ok(r)) != CD_OK)
		return err;
	if ((err = bstore_overlaps(b->expert_id, b->start, b->end, 0, &n)) !=
	    CD_OK)
		return err;
	if (n > 0)
		return req_fail(r, CD_CONFLICT, "booking_conflict",
		    "The expert is already booked for part of this time.");
	row = (booking_row){ r->user->id, b->expert_id, b->start, b->end,
	    b->minutes, b->money.price, b->money.fee, b->money.payout,
	    e.full_hours, e.late_bps,
	    b->money.price > 0 ? "awaiting_payment" : "scheduled", b->nonce,
	    *b->destination && b->money.price > 0 ? b->destination : NULL,
	    b->key };
	if ((err = bstore_insert(&row, &b->id)) != CD_OK)
		return err;
	if (b->money.price > 0)
		return CD_OK;	/* BOOKING_CREATED comes with its PaymentIntent */
	return audit_write("BOOKING_CREATED", "booking",
	    arena_printf(r->arena, "%lld", b->id), r->user->id,
	    req_own(r, created_details(b)), "info");
}

struct intent {
	struct newbooking	*b;
	const char		*pi_id;
};

static cd_err
record_tx(void *arg)
{
	struct intent *in = arg;
	struct newbooking *b = in->b;
	json_t *details;
	cd_err err;

	if ((err = bstore_record_intent(b->id, in->pi_id, b->money.price)) != CD_OK)
		return err;
	details = req_own(b->r, created_details(b));
	json_object_set_new(details, "paymentIntent", json_string(in->pi_id));
	return audit_write("BOOKING_CREATED", "booking",
	    arena_printf(b->r->arena, "%lld", b->id), b->r->user->id, details,
	    "info");
}

/* Gives the slot back when the booking cannot be paid for. */
static void
release(struct newbooking *b, const char *why)
{
	bool done;

	log_error("booking %lld: %s; released", b->id, why);
	if (booking_release(b->id, &done) != CD_OK)
		log_error("booking %lld: could not be released", b->id);
}

static cd_err
create_intent(struct newbooking *b, const char **secret)
{
	cd_req *r = b->r;
	struct intent in = { b, NULL };
	json_t *params, *pi = NULL;
	char key[160];
	cd_err err;

	params = req_own(r, json_pack("{s:I,s:s,s:{s:s,s:s,s:s},s:{s:b}}",
	    "amount", (json_int_t)b->money.price, "currency", "usd",
	    "metadata", "booking_id", arena_printf(r->arena, "%lld", b->id),
	    "user_id", arena_printf(r->arena, "%lld", r->user->id),
	    "expert_id", arena_printf(r->arena, "%lld", b->expert_id),
	    "automatic_payment_methods", "enabled", 1));
	if (*b->destination) {
		json_object_set_new(params, "application_fee_amount",
		    json_integer(b->money.fee));
		json_object_set_new(params, "transfer_data", json_pack("{s:s}",
		    "destination", b->destination));
	}
	stripe_key(key, sizeof(key), "booking", b->id, b->nonce, "pi");
	err = stripe_call("POST", "/v1/payment_intents", params, key, &pi);
	req_own(r, pi);
	if (err == CD_OK && (!stripe_id_ok(jstr(pi, "id"), "pi_") ||
	    jstr(pi, "client_secret") == NULL ||
	    jint(pi, "amount") != b->money.price))
		err = CD_STRIPE;
	if (err != CD_OK) {
		release(b, "no PaymentIntent");
		return req_fail(r, CD_STRIPE, "stripe_error",
		    "The payment could not be set up. The slot was not booked; please try again.");
	}
	in.pi_id = jstr(pi, "id");
	if ((err = db_tx(record_tx, &in)) != CD_OK) {
		release(b, "PaymentIntent not recorded");
		return err;
	}
	*secret = jstr(pi, "client_secret");
	return CD_OK;
}

cd_err
booking_start(cd_req *r, const char *s, long long *start)
{
	long long now = (long long)time(NULL);

	if (!booking_parse_time(s, start))
		return req_fail(r, CD_BAD_REQUEST, "invalid_start_time",
		    "startTime must be a UTC time as YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM.");
	if (*start <= now)
		return req_fail(r, CD_BAD_REQUEST, "start_time_in_past",
		    "startTime must be in the future.");
	if (*start > now + MAX_AHEAD)
		return req_fail(r, CD_BAD_REQUEST, "start_time_too_far",
		    "startTime must be within the next 366 days.");
	return CD_OK;
}

cd_err
booking_create(cd_req *r)
{
	struct newbooking b;
	cd_value v[sizeof(fields) / sizeof(fields[0])];
	const char *secret = NULL;
	long long start;
	bool found;
	cd_err err;

	if ((err = req_fields(r, fields, sizeof(fields) / sizeof(fields[0]), v)) !=
	    CD_OK || (err = booking_start(r, v[1].s, &start)) != CD_OK)
		return err;
	if (!booking_duration_ok(v[2].i))
		return req_fail(r, CD_BAD_REQUEST, "invalid_duration_minutes",
		    "durationMinutes must be a multiple of 15 from 15 to 240.");
	memset(&b, 0, sizeof(b));
	if ((err = req_idempotency_key(r, &b.key)) != CD_OK)
		return err;
	if (random_token(b.nonce) != 0)
		return CD_INTERNAL;
	b.r = r;
	b.expert_id = v[0].i;
	b.minutes = v[2].i;
	booking_format_time(start, b.start);
	booking_format_time(start + b.minutes * 60, b.end);
	if ((err = bstore_fee_bps(&b.fee_bps, &found)) != CD_OK)
		return err;
	if (!found) {
		log_error("platform_settings has no platform_fee_bps");
		return CD_INTERNAL;
	}
	if ((err = db_tx(hold_tx, &b)) != CD_OK)
		return err;
	if (b.again)
		return booking_pay_again(r, b.id);
	if (b.money.price > 0 && (err = create_intent(&b, &secret)) != CD_OK)
		return err;
	return booking_respond(r, 201, b.id, secret, true);
}
