/*
 * Paid consultations: Quick Chat (chat10), Live Video (video15) and
 * Diagnostic.  A paid session opens one consultation (a `sessions` row under
 * the UNIQUE stripe_session_id) with the buyer as its customer participant;
 * the room's other participant, a mechanic, is added later by an admin.
 *
 * A full refund of a consultation nobody has started yet (status still
 * 'waiting': no mechanic has joined) closes it, so the room stops taking
 * messages.  One that is already under way is left as it is: the work was
 * done, and closing it is a decision for the people in the room.
 */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "holdings.h"
#include "log.h"
#include "products.h"

/* Plan codes (checkout item_code, products.code) and the session type each opens. */
static const struct {
	const char	*plan;
	const char	*type;
} plans[] = {
	{ "chat10", "chat" },
	{ "video15", "video" },
	{ "diagnostic", "diagnostic" },
};

static cd_sql q_session = CD_SQL(
    "INSERT INTO sessions (stripe_session_id, user_id, type, plan, amount_cents)"
    " VALUES (?, ?, ?, ?, ?)");
static cd_sql q_customer = CD_SQL(
    "INSERT INTO session_participants (session_id, user_id, role)"
    " VALUES (?, ?, 'customer')");
static cd_sql q_by_stripe = CD_SQL(
    "SELECT id, type FROM sessions WHERE stripe_session_id = ?");
static cd_sql q_close_unstarted = CD_SQL(
    "UPDATE sessions SET status = 'closed'"
    " WHERE stripe_session_id = ? AND status = 'waiting'");

static const char *
plan_type(const char *plan)
{
	size_t i;

	for (i = 0; plan && i < sizeof(plans) / sizeof(plans[0]); i++)
		if (strcmp(plans[i].plan, plan) == 0)
			return plans[i].type;
	return NULL;
}

static cd_err
grant(const cd_checkout *ck, bool *granted)
{
	const char *type = plan_type(ck->item_code);
	long long id;
	cd_err err;

	*granted = false;
	if (type == NULL) {
		/* Only checkout.c records consultations, and only for these plans. */
		log_error("consultation %s: unknown plan", ck->stripe_session_id);
		return CD_INTERNAL;
	}
	if ((err = db_insert_once(&q_session, granted, &id, "sissi",
	    ck->stripe_session_id, ck->user_id, type, ck->item_code,
	    ck->amount_cents)) != CD_OK || !*granted)
		return err;
	return db_exec(&q_customer, NULL, "ii", id, ck->user_id);
}

static cd_err
reverse(const cd_checkout *ck, long long refunded_cents, long long *units)
{
	unsigned long long n = 0;
	cd_err err;

	*units = 0;
	if (refunded_cents < ck->amount_cents)
		return CD_OK;	/* a partial refund is a goodwill gesture */
	if ((err = db_exec(&q_close_unstarted, &n, "s",
	    ck->stripe_session_id)) != CD_OK)
		return err;
	*units = (long long)n;
	return CD_OK;
}

void
consultation_room(long long session_id, char *out, size_t outlen)
{
	snprintf(out, outlen, "/chat/%lld", session_id);
}

void
consultation_route(const char *type, long long session_id, char *out,
    size_t outlen)
{
	if (type != NULL && strcmp(type, "chat") == 0)
		consultation_room(session_id, out, outlen);
	else
		snprintf(out, outlen, "/thank-you?session=%lld", session_id);
}

/* A chat goes straight to its room; video and diagnostic to the thank-you
 * page, which names the consultation and says what happens next. */
static cd_err
route(const cd_checkout *ck, char *out, size_t outlen)
{
	struct room { long long id; const char *type; } room = { 0, NULL };
	static const cd_col room_cols[] = {
		DB_INT(struct room, id), DB_TEXT(struct room, type),
	};
	size_t n;
	cd_err err;

	if ((err = db_fetch(&q_by_stripe, ck->arena, room_cols,
	    DB_NCOLS(room_cols), &room, sizeof(room), 1, &n, "s",
	    ck->stripe_session_id)) != CD_OK)
		return err;
	consultation_route(room.type, room.id, out, outlen);
	return CD_OK;
}

const cd_product product_consultation = { "consultation", grant, reverse, route, NULL, NULL };
