/*
 * creditdesk-replay: rebuilds what payments determine from the records
 * they came from, and compares the rebuild with the live database.
 *
 *	CD_DB_NAME=<scratch> CD_REPLAY_LIVE_DB=<live> creditdesk-replay [--user ID]
 *
 * The scratch database is empty and migrated (scripts/replay.sh makes it).
 * Into it go the catalogue and, from live, what people created: users and
 * their Checkout Sessions (as opened: status open, no PaymentIntent), and
 * the experts.  Then one timeline, oldest first: every processed Stripe
 * event (as stored in stripe_events.payload) and every local action that
 * payments depend on (a Live Help slot booked, or booked and cancelled, a
 * Voice AI Therapy session ended with its usage rows, credits spent, a
 * consultation taken by a mechanic, an expert booking created, cancelled,
 * completed, moved or paid out: replay_bookings.c), each run with the database's
 * clock set to when it took effect live.  Events go through
 * event_accept(), the webhook's own code; the Stripe client answers its
 * retrieve() calls with what Stripe answered the live handler
 * (stripe_event_answers), or else from the stored events (the latest event
 * about that object so far), since there is no historical Stripe to ask.
 * An event takes its place at the moment it took effect live: when its
 * handler's first transaction committed (effect_at; else when it was
 * processed), or for a Checkout Session when the session was fulfilled, and
 * for a booking's PaymentIntent when the booking was paid, if that was
 * earlier (the success page, the buyer's confirm-payment).
 *
 * Last, the payment-determined tables (replay.c's compared[]) are compared
 * row by row on natural keys (Stripe ids; a user's ledger by its position),
 * leaving out wall-clock times and auto-increment ids.  --user limits the
 * copy and the comparison to one user.
 *
 * Exit status: 0 the rebuild equals live, 1 differences (printed), 2 the
 * replay could not run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "db.h"
#include "events.h"
#include "holdings.h"
#include "ledger.h"
#include "log.h"
#include "print.h"
#include "replay.h"
#include "stripe.h"

/* Every statement names the live database; only [A-Za-z0-9_] is accepted. */
static char live[65];

/* The latest object each stored event carried so far, by Stripe id. */
static json_t *seen;

/*
 * What Stripe answered the live handler of the event being replayed
 * (stripe_event_answers), in the order asked; each is used once.  Events
 * handled before answers were kept have none, and fall back to the bodies.
 */
static json_t *answers;

/* The next unused answer to the same GET (path and parameters), or NULL. */
static json_t *
answer_for(const char *path, const json_t *params)
{
	json_t *a;
	size_t i;

	json_array_foreach(answers, i, a) {
		json_t *asked = json_object_get(a, "params");

		if (json_is_true(json_object_get(a, "used")) ||
		    strcmp(jstr(a, "path") ?: "", path) != 0 ||
		    !(json_is_null(asked) ? params == NULL || json_object_size(params) == 0 :
		    json_equal(asked, params)))
			continue;
		json_object_set_new(a, "used", json_true());
		return json_object_get(a, "object");
	}
	return NULL;
}

/*
 * A subscription no stored event carried (invoice.paid names it, and only
 * customer.subscription.* events carry it): the one the product keeps in
 * its row, as retrieve() returns it, with its user and the plan it renews
 * as (the checkout's, or a plan change's) as its metadata.  The row holds the latest state,
 * which is where a replay ends: status and period end only move forward.
 */
struct kept_sub {
	const char	*status;
	long long	 cancel_at_period_end, user_id;
	const char	*plan_id;
	long long	 period_end;
};

static const cd_col kept_sub_cols[] = {
	DB_TEXT(struct kept_sub, status),
	DB_INT(struct kept_sub, cancel_at_period_end),
	DB_INT(struct kept_sub, user_id),
	DB_TEXT(struct kept_sub, plan_id),
	DB_INT(struct kept_sub, period_end),
};

static cd_err
subscription_as_kept(const char *id, json_t **out)
{
	static cd_sql *q;
	struct kept_sub row;
	cd_arena *a = arena_new();
	bool found;
	cd_err err;

	if ((err = db_fetch_row(live_sql(&q, "SELECT status, cancel_at_period_end,"
	    " user_id, COALESCE(renews_as, plan_id),"
	    " COALESCE(UNIX_TIMESTAMP(current_period_end), 0)"
	    " FROM @.subscriptions WHERE stripe_subscription_id = ?"), a,
	    kept_sub_cols, DB_NCOLS(kept_sub_cols), &row, sizeof(row), &found,
	    "s", id)) != CD_OK || !found) {
		arena_free(a);
		if (err == CD_OK)
			log_warn("replay: no stored event carried subscription %s", id);
		return err != CD_OK ? err : CD_NOT_FOUND;
	}
	/* Stripe's metadata values are strings */
	*out = json_pack("{s:s,s:s,s:s,s:I,s:b,s:{s:o,s:s}}", "id", id,
	    "object", "subscription", "status", row.status,
	    "current_period_end", (json_int_t)row.period_end,
	    "cancel_at_period_end", row.cancel_at_period_end != 0,
	    "metadata", "user_id", json_sprintf("%lld", row.user_id),
	    "item", row.plan_id);
	arena_free(a);
	return *out != NULL ? CD_OK : CD_INTERNAL;
}

/*
 * Stripe during the replay: GET /v1/<kind>/<id> is the latest object so
 * far with that id; GET /v1/checkout/sessions?payment_intent=… lists the
 * sessions so far of that PaymentIntent; a POST (a booking's refund) is
 * answered by replay_bookings.c.  Anything else has no answer.
 */
static cd_err
from_events(const char *method, const char *path, const json_t *params,
    json_t **out)
{
	const char *id = strrchr(path, '/') + 1, *pi = jstr(params, "payment_intent");
	json_t *o, *list;
	const char *key;

	*out = NULL;
	if (strcmp(method, "GET") != 0)
		return replay_booking_post(path, params, out);
	if ((o = answer_for(path, params)) != NULL) {
		/* what live saw is also the latest state so far */
		if (json_is_string(json_object_get(o, "id")))
			json_object_set(seen, jstr(o, "id"), o);
		*out = json_deep_copy(o);
		return CD_OK;
	}
	if (strcmp(path, "/v1/checkout/sessions") == 0 && pi != NULL) {
		list = json_array();
		json_object_foreach(seen, key, o)
			if (strncmp(key, "cs_", 3) == 0 &&
			    strcmp(jstr(o, "payment_intent") ?: "", pi) == 0)
				json_array_append(list, o);
		*out = json_pack("{s:o,s:b}", "data", list, "has_more", 0);
		return CD_OK;
	}
	if ((o = json_object_get(seen, id)) == NULL) {
		if (strncmp(path, "/v1/subscriptions/", 18) == 0)
			return subscription_as_kept(id, out);
		log_warn("replay: no stored event carried %s", path);
		return CD_NOT_FOUND;
	}
	*out = json_deep_copy(o);
	return CD_OK;
}

cd_sql *
on_live(const char *text)
{
	size_t n = strlen(text) + 64 * 16, len = 0;
	char *out = malloc(n + 1);
	cd_sql *q = calloc(1, sizeof(*q));
	const char *p;

	if (out == NULL || q == NULL)
		abort();
	for (p = text; *p; p++) {
		if (p[0] == '@' && p[1] == '.') {
			len += (size_t)snprintf(out + len, n - len, "`%s`.", live);
			p++;
		} else if (len < n)
			out[len++] = *p;
	}
	out[len] = '\0';
	q->text = out;
	return q;
}

cd_sql *
live_sql(cd_sql **q, const char *text)
{
	if (*q == NULL)
		*q = on_live(text);
	return *q;
}

/*
 * The catalogue, whole; then what people created, as before they paid.
 * Experts name their users: the copy does not check foreign keys (with
 * --user, most of those users are not copied).
 */
static const char *const copy_steps[] = {
	"SET foreign_key_checks = 0",
	"REPLACE INTO platform_settings SELECT * FROM @.platform_settings",
	"REPLACE INTO products SELECT * FROM @.products",
	"REPLACE INTO boost_packs SELECT * FROM @.boost_packs",
	"REPLACE INTO subscription_plans SELECT * FROM @.subscription_plans",
	"REPLACE INTO live_help_slots SELECT * FROM @.live_help_slots",
	"UPDATE live_help_slots SET booked = 0",
	"REPLACE INTO experts SELECT * FROM @.experts",
	"INSERT INTO users SELECT * FROM @.users" OF_USER("id"),
	"INSERT INTO checkout_sessions SELECT * FROM @.checkout_sessions"
	OF_USER("user_id"),
	"UPDATE checkout_sessions SET status = 'open', payment_intent_id = NULL,"
	" fulfilled_at = NULL" OF_USER("user_id"),
	"SET foreign_key_checks = 1",
};

static cd_err
copy_inputs(long long user)
{
	static cd_sql who = CD_SQL("SET @replay_user = ?");
	cd_err err;
	size_t i;

	if ((err = db_exec(&who, NULL, "i", user)) != CD_OK)
		return err;
	for (i = 0; i < sizeof(copy_steps) / sizeof(copy_steps[0]); i++) {
		if ((err = db_exec(on_live(copy_steps[i]), NULL, "")) != CD_OK) {
			log_error("replay: copying the inputs failed at step %zu", i + 1);
			return err;
		}
	}
	return CD_OK;
}

/*
 * The timeline: (kind, ref, at) oldest first; at equal times events first,
 * as a payment precedes what it pays for.  With --user, the events about
 * the user's Checkout Sessions, their PaymentIntents and what names those
 * (charges, refunds, disputes), about the user's subscriptions (their
 * invoices, and the refunds of those), about the PaymentIntents of the
 * user's bookings, and the user's disputes.
 */
static const char timeline_sql[] =
    "SELECT kind, ref, at FROM ("
    " SELECT 0 AS kind, e.id AS ref, LEAST(COALESCE(e.effect_at, e.processed_at),"
    "  COALESCE(cs.fulfilled_at, e.processed_at), COALESCE(bp.at, e.processed_at)) AS at"
    "  FROM @.stripe_events e"
    "  LEFT JOIN @.checkout_sessions cs ON e.type LIKE 'checkout.session.%'"
    "   AND cs.stripe_session_id = e.object_id" REPLAY_BOOKING_PAID
    "  WHERE e.processed_at IS NOT NULL AND (@replay_user = 0 OR EXISTS (SELECT 1"
    "   FROM @.checkout_sessions u WHERE u.user_id = @replay_user AND"
    "   (u.stripe_session_id = e.object_id OR u.payment_intent_id IN (e.object_id,"
    "   JSON_VALUE(e.payload, '$.data.object.payment_intent'))))"
    "  OR EXISTS (SELECT 1 FROM @.subscriptions s WHERE s.user_id = @replay_user"
    "   AND s.stripe_subscription_id IN (e.object_id,"
    "   JSON_VALUE(e.payload, '$.data.object.subscription')))"
    "  OR EXISTS (SELECT 1 FROM @.subscription_allocations a JOIN @.subscriptions s"
    "   ON s.id = a.subscription_id WHERE s.user_id = @replay_user"
    "   AND a.stripe_invoice_id = JSON_VALUE(e.payload, '$.data.object.invoice'))"
    "  OR EXISTS (SELECT 1 FROM @.disputes d WHERE d.user_id = @replay_user"
    "   AND d.stripe_dispute_id = e.object_id)"
    "  OR EXISTS (SELECT 1 FROM @.bookings b WHERE b.user_id = @replay_user"
    "   AND b.payment_intent_id IN (e.object_id,"
    "   JSON_VALUE(e.payload, '$.data.object.payment_intent'))))"
    " UNION ALL SELECT 1, r.id, r.created_at FROM @.live_help_redemptions r"
    OF_USER("r.user_id")
    " UNION ALL SELECT 2, s.id, s.ended_at FROM @.voice_therapy_sessions s"
    OF_USER("s.user_id") " AND s.status = 'ended'"
    " UNION ALL SELECT 3, t.id, t.created_at FROM @.credit_transactions t"
    OF_USER("t.user_id") " AND t.transaction_type = 'consumption'"
    " UNION ALL SELECT 4, s.id, MIN(p.joined_at) FROM @.sessions s"
    " JOIN @.session_participants p ON p.session_id = s.id"
    "  AND p.role IN ('mechanic', 'left')"
    OF_USER("s.user_id") " GROUP BY s.id"
    REPLAY_BOOKING_STEPS
    " UNION ALL SELECT 9, c.id, MAX(b.created_at) FROM @.audit_log c"
    " JOIN @.audit_log b ON b.user_id = c.user_id AND b.action = 'LIVE_HELP_BOOKED'"
    "  AND b.entity_id = c.entity_id AND b.created_at <= c.created_at"
    OF_USER("c.user_id") " AND c.action = 'LIVE_HELP_CANCELLED' GROUP BY c.id"
    " UNION ALL SELECT 10, c.id, c.created_at FROM @.audit_log c"
    OF_USER("c.user_id") " AND c.action = 'LIVE_HELP_CANCELLED'"
    ") x ORDER BY at, kind, ref";

/* A kept answer: the GET asked (path, parameters as JSON) and Stripe's body. */
struct answer_row {
	const char	*path, *params, *object;
};

static const cd_col answer_cols[] = {
	DB_TEXT(struct answer_row, path),
	DB_TEXT(struct answer_row, params),
	DB_TEXT(struct answer_row, object),
};

/* The answers kept for event_id, parsed, into answers. */
static cd_err
load_answers(const char *event_id)
{
	static cd_sql *q;
	struct answer_row *rows;
	cd_arena *a;
	cd_err err;
	size_t i, n;

	json_array_clear(answers);
	if (event_id == NULL)
		return CD_OK;
	a = arena_new();
	if ((err = db_fetch_all(live_sql(&q, "SELECT path, params, object"
	    " FROM @.stripe_event_answers WHERE event_id = ? ORDER BY seq"), a,
	    answer_cols, DB_NCOLS(answer_cols), sizeof(*rows), &rows, &n,
	    "s", event_id)) != CD_OK)
		n = 0;
	for (i = 0; i < n; i++) {
		json_t *params = rows[i].params ?
		    json_loads(rows[i].params, 0, NULL) : json_null();
		json_t *object = json_loads(rows[i].object ?: "", 0, NULL);

		if (object != NULL)
			json_array_append_new(answers, json_pack("{s:s,s:o,s:o}",
			    "path", rows[i].path, "params", params ?: json_null(),
			    "object", object));
		else
			json_decref(params);
	}
	arena_free(a);
	return err;
}

/* A stored event: its body as Stripe sent it, and where it came from. */
struct stored_event {
	const char	*payload, *source;
};

static const cd_col stored_event_cols[] = {
	DB_TEXT(struct stored_event, payload),
	DB_TEXT(struct stored_event, source),
};

static cd_err
replay_event(long long ref)
{
	static cd_sql *q;
	struct stored_event row;
	json_t *event = NULL, *object;
	cd_arena *a = arena_new();
	bool found, dup;
	cd_err err;

	if ((err = db_fetch_row(live_sql(&q, "SELECT payload, source"
	    " FROM @.stripe_events WHERE id = ?"), a, stored_event_cols,
	    DB_NCOLS(stored_event_cols), &row, sizeof(row), &found, "i",
	    ref)) != CD_OK || !found)
		goto out;
	event = row.payload ? json_loads(row.payload, 0, NULL) : NULL;
	if ((err = load_answers(jstr(event, "id"))) != CD_OK)
		goto out;
	object = json_object_get(json_object_get(event, "data"), "object");
	if (json_is_string(json_object_get(object, "id")))
		json_object_set(seen, jstr(object, "id"), object);
	err = event == NULL ? CD_OK : event_accept(event, row.payload,
	    strlen(row.payload), row.source, &dup);
	if (err != CD_OK)
		log_error("replay: event %s could not be replayed", jstr(event, "id"));
out:
	json_decref(event);
	arena_free(a);
	return err;
}

/* Redemption id booked: its seat and its hour used. */
static cd_err
redeemed(long long id)
{
	static cd_sql use = CD_SQL(
	    "UPDATE user_live_help_totals t JOIN live_help_redemptions r"
	    " ON r.user_id = t.user_id SET t.hours_used = t.hours_used + r.hours"
	    " WHERE r.id = ?");
	static cd_sql seat = CD_SQL(
	    "UPDATE live_help_slots s JOIN live_help_redemptions r ON r.slot_id = s.id"
	    " SET s.booked = s.booked + r.hours WHERE r.id = ?");
	unsigned long long n = 0;
	cd_err err;

	if ((err = db_exec(&use, &n, "i", id)) != CD_OK)
		return err;
	/* No hours to use: the purchase never replayed. */
	return n == 1 ? db_exec(&seat, NULL, "i", id) : CD_CONFLICT;
}

/* A booked Live Help hour: the redemption, the seat, the hour used. */
static cd_err
redemption_tx(void *arg)
{
	static cd_sql *copy;
	long long ref = *(long long *)arg;
	cd_err err;

	if ((err = db_exec(live_sql(&copy, "INSERT INTO live_help_redemptions"
	    " SELECT * FROM @.live_help_redemptions WHERE id = ?"), NULL, "i",
	    ref)) != CD_OK)
		return err;
	return redeemed(ref);
}

/*
 * A Live Help hour booked and cancelled later: the redemption row is gone,
 * so its audit rows are the record (LIVE_HELP_BOOKED, LIVE_HELP_CANCELLED:
 * the user, the slot).  Both steps are named by the cancellation's audit
 * id; the booking is replayed like any other, the cancellation gives the
 * seat and the hour back and removes the redemption.
 */
static cd_err
cancelled_booked_tx(void *arg)
{
	static cd_sql *q;
	long long id = 0;
	cd_err err;

	if ((err = db_insert(live_sql(&q, "INSERT INTO live_help_redemptions (user_id,"
	    " slot_id) SELECT user_id, CAST(entity_id AS UNSIGNED) FROM @.audit_log"
	    " WHERE id = ?"), &id, "i", *(long long *)arg)) != CD_OK)
		return err;
	return redeemed(id);
}

/* Whose Live Help hour an audit row names, and its slot. */
struct seat_of {
	long long	 user_id, slot_id;
};

static const cd_col seat_of_cols[] = {
	DB_INT(struct seat_of, user_id),
	DB_INT(struct seat_of, slot_id),
};

static cd_err
cancelled_tx(void *arg)
{
	static cd_sql *who;
	static cd_sql seat = CD_SQL(
	    "UPDATE live_help_slots s JOIN live_help_redemptions r ON r.slot_id = s.id"
	    " SET s.booked = s.booked - r.hours WHERE r.user_id = ? AND r.slot_id = ?");
	static cd_sql gone = CD_SQL(
	    "DELETE FROM live_help_redemptions WHERE user_id = ? AND slot_id = ?");
	unsigned long long n = 0;
	struct seat_of row;
	long long user, slot;
	bool found, to_refund;
	cd_err err;

	if ((err = db_fetch_row(live_sql(&who, "SELECT user_id,"
	    " CAST(entity_id AS UNSIGNED) FROM @.audit_log WHERE id = ?"), NULL,
	    seat_of_cols, DB_NCOLS(seat_of_cols), &row, sizeof(row), &found, "i",
	    *(long long *)arg)) != CD_OK || !found)
		return err != CD_OK ? err : CD_NOT_FOUND;
	user = row.user_id;
	slot = row.slot_id;
	/* The hour back as the live cancel gave it: perhaps to a refund. */
	if ((err = live_help_hour_back(user, &to_refund)) != CD_OK ||
	    (err = db_exec(&seat, NULL, "ii", user, slot)) != CD_OK ||
	    (err = db_exec(&gone, &n, "ii", user, slot)) != CD_OK)
		return err;
	/* Nothing booked to cancel: the booking never replayed. */
	return n == 1 ? CD_OK : CD_CONFLICT;
}

/*
 * An ended voice session and its usage, each usage row on the credit of the
 * same Checkout Session (credit ids differ between the two databases).
 */
static cd_err
voice_tx(void *arg)
{
	static cd_sql *session, *usage, *count;
	static cd_sql take = CD_SQL(
	    "UPDATE voice_therapy_credits c JOIN voice_therapy_usage u ON u.credit_id = c.id"
	    " SET c.minutes_remaining = c.minutes_remaining - u.minutes"
	    " WHERE u.session_id = ?");
	/* As the deduction does: a credit with no minutes left is used up. */
	static cd_sql used_up = CD_SQL(
	    "UPDATE voice_therapy_credits c JOIN voice_therapy_usage u ON u.credit_id = c.id"
	    " SET c.is_active = (c.minutes_remaining > 0) WHERE u.session_id = ?");
	long long ref = *(long long *)arg;
	unsigned long long used = 0;
	long long kept;
	cd_err err;

	if ((err = db_exec(live_sql(&session, "INSERT INTO voice_therapy_sessions"
	    " SELECT * FROM @.voice_therapy_sessions WHERE id = ?"), NULL, "i",
	    ref)) != CD_OK ||
	    (err = db_exec(live_sql(&usage, "INSERT INTO voice_therapy_usage"
	    " (session_id, credit_id, minutes, created_at)"
	    " SELECT u.session_id, c.id, u.minutes, u.created_at"
	    " FROM @.voice_therapy_usage u JOIN @.voice_therapy_credits lc"
	    "  ON lc.id = u.credit_id"
	    " JOIN voice_therapy_credits c ON c.stripe_session_id = lc.stripe_session_id"
	    " WHERE u.session_id = ? ORDER BY u.id"), &used, "i", ref)) != CD_OK ||
	    (err = db_fetch_int(live_sql(&count, "SELECT COUNT(*)"
	    " FROM @.voice_therapy_usage WHERE session_id = ?"), &kept, "i",
	    ref)) != CD_OK)
		return err;
	/* A usage row whose credit never replayed: not this session. */
	if ((unsigned long long)kept != used)
		return CD_CONFLICT;
	if ((err = db_exec(&take, NULL, "i", ref)) != CD_OK)
		return err;
	return db_exec(&used_up, NULL, "i", ref);
}

/* A live ledger row, as the ledger takes it (metadata as stored JSON). */
struct spent {
	long long	 user_id, delta;
	const char	*type, *activity, *description, *metadata;
};

static const cd_col spent_cols[] = {
	DB_INT(struct spent, user_id),
	DB_INT(struct spent, delta),
	DB_TEXT(struct spent, type),
	DB_TEXT(struct spent, activity),
	DB_TEXT(struct spent, description),
	DB_TEXT(struct spent, metadata),
};

/* Credits spent, through the ledger as they were spent live. */
static cd_err
spend_tx(void *arg)
{
	static cd_sql *q;
	long long after, ref = *(long long *)arg;
	struct spent row;
	cd_arena *a = arena_new();
	json_t *meta;
	cd_entry e;
	bool found;
	cd_err err;

	if ((err = db_fetch_row(live_sql(&q, "SELECT user_id, credits_delta,"
	    " transaction_type, activity_type, description, metadata"
	    " FROM @.credit_transactions WHERE id = ?"), a, spent_cols,
	    DB_NCOLS(spent_cols), &row, sizeof(row), &found, "i", ref)) != CD_OK ||
	    !found) {
		arena_free(a);
		return err;
	}
	meta = json_loads(row.metadata ?: "{}", 0, NULL);
	e = (cd_entry){ row.user_id, row.delta, 0, row.type, row.activity,
	    row.description, meta };
	err = ledger_apply(&e, &after);
	json_decref(meta);
	arena_free(a);
	return err;
}

/*
 * A consultation a mechanic took (the first to join it): it is started, so
 * a refund no longer closes it.  Found by its Checkout Session (the ids of
 * the two databases differ).
 */
static cd_err
taken_tx(void *arg)
{
	static cd_sql *q;
	long long ref = *(long long *)arg;
	unsigned long long n = 0;
	cd_err err;

	if ((err = db_exec(live_sql(&q, "UPDATE sessions r JOIN @.sessions l"
	    " ON l.stripe_session_id = r.stripe_session_id"
	    " SET r.status = 'active' WHERE l.id = ? AND r.status = 'waiting'"), &n,
	    "i", ref)) != CD_OK)
		return err;
	/* No waiting consultation: its payment never replayed. */
	return n == 1 ? CD_OK : CD_CONFLICT;
}

/*
 * One step of the timeline by its kind, at the time it took effect live:
 * the database's clock (NOW(), UTC_TIMESTAMP()) reads that time while it
 * runs, so what depends on the clock (an unpaid hold's expiry, whether a
 * booking paid for has started) is decided as it was then.
 */
static const char *const kinds[] = { "stripe_events", "live_help_redemptions",
	"voice_therapy_sessions", "credit_transactions", "sessions", "bookings",
	"bookings", "bookings", "payouts", "live_help_booked", "live_help_cancelled",
	"bookings", "bookings", "bookings" };
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static cd_err
replay_step(int kind, const char *at, long long ref)
{
	static cd_sql clock = CD_SQL("SET timestamp = UNIX_TIMESTAMP(?)");
	cd_err err;

	if (at != NULL && (err = db_exec(&clock, NULL, "s", at)) != CD_OK)
		return err;
	switch (kind) {
	case 0: return replay_event(ref);
	case 1: return db_tx(redemption_tx, &ref);
	case 2: return db_tx(voice_tx, &ref);
	case 3: return db_tx(spend_tx, &ref);
	case 4: return db_tx(taken_tx, &ref);
	case 5: return db_tx(replay_booking_created, &ref);
	case 6: return db_tx(replay_booking_completed, &ref);
	case 7: return replay_booking_cancelled(ref);
	case 8: return db_tx(replay_payout, &ref);
	case 9: return db_tx(cancelled_booked_tx, &ref);
	case 10: return db_tx(cancelled_tx, &ref);
	case 11: return replay_booking_released(ref);
	case 13: return db_tx(replay_booking_decided, &ref);
	default: return db_tx(replay_booking_moved, &ref);
	}
}

/*
 * Replays the timeline; a step that fails (an event about something not
 * covered, a consumption whose purchase never replayed) is appended to
 * failed as {"table", "side": "not replayed", "id"}: the live row's id.
 */
/* A step of the timeline (timeline_sql's columns). */
struct step {
	long long	 kind, ref;
	const char	*at;
};

static const cd_col step_cols[] = {
	DB_INT(struct step, kind),
	DB_INT(struct step, ref),
	DB_TEXT(struct step, at),
};

static cd_err
replay_timeline(size_t *steps, json_t *failed)
{
	static cd_sql wall = CD_SQL("SET timestamp = DEFAULT");
	struct step *rows;
	cd_arena *a = arena_new();
	cd_err err;
	size_t i, n;

	if ((err = replay_bookings_prepare()) != CD_OK ||
	    (err = db_fetch_all(on_live(timeline_sql), a, step_cols,
	    DB_NCOLS(step_cols), sizeof(*rows), &rows, &n, "")) != CD_OK) {
		arena_free(a);
		return err;
	}
	for (i = 0; i < n; i++) {
		int kind = (int)(rows[i].kind % NKINDS);

		/* Rolled back; the rest still replays, and this is reported. */
		if (replay_step(kind, rows[i].at, rows[i].ref) != CD_OK)
			json_array_append_new(failed, json_pack("{s:s,s:s,s:I}",
			    "table", kinds[kind], "side", "not replayed",
			    "id", (json_int_t)rows[i].ref));
	}
	*steps = n;
	arena_free(a);
	return db_exec(&wall, NULL, "");
}

/*
 * A compared table: what to read ("@." marks the live database; the rebuild
 * is read by the same text without it), the columns that payments determine
 * (the first being the natural key) and the name shown.
 */
struct compared {
	const char	*name;
	const char	*from;
	const char	*cols;
};

static const struct compared compared[] = {
	{ "checkout_sessions", "@.checkout_sessions",
	    "stripe_session_id, user_id, status, payment_intent_id" },
	{ "live_help_purchases", "@.live_help_purchases",
	    "stripe_session_id, user_id, hours, amount_cents, hours_refunded,"
	    " hours_owed" },
	{ "user_live_help_totals", "@.user_live_help_totals",
	    "user_id, hours_total, hours_used, hours_frozen" },
	{ "voice_therapy_credits", "@.voice_therapy_credits",
	    "stripe_session_id, user_id, minutes_purchased, minutes_remaining,"
	    " minutes_refunded, amount_cents, is_active, minutes_frozen" },
	{ "boost_pack_purchases", "@.boost_pack_purchases",
	    "stripe_session_id, user_id, boost_pack_id, payment_intent_id, amount_cents,"
	    " credits_applied, credits_refunded" },
	{ "user_credits", "@.user_credits",
	    "user_id, balance, total_earned, total_spent, bonus_earned, frozen" },
	/* A user's ledger by position: the nth row of one is the nth of the other. */
	{ "credit_transactions", "(SELECT ROW_NUMBER() OVER (PARTITION BY user_id"
	    " ORDER BY id) AS position, t.* FROM @.credit_transactions t) l",
	    "CONCAT(user_id, '#', position) AS row_key, user_id, credits_delta,"
	    " balance_before, balance_after, transaction_type, activity_type, description" },
	{ "payment_reversals", "(SELECT r.*, cs.user_id FROM @.payment_reversals r"
	    " JOIN @.checkout_sessions cs ON cs.stripe_session_id = r.stripe_session_id) r",
	    "stripe_refund_id, stripe_session_id, payment_intent_id, product, amount_cents,"
	    " units_reversed, user_id" },
	/* A subscription's invoice refunds: reversals named by the charge. */
	{ "subscription_reversals", "(SELECT r.*, cs.user_id FROM @.payment_reversals r"
	    " LEFT JOIN @.checkout_sessions cs ON cs.payment_intent_id = r.payment_intent_id"
	    " WHERE r.product = 'subscription') r",
	    "stripe_refund_id, payment_intent_id, amount_cents, units_reversed, user_id" },
	/* renews_as is kept from the first copy after migration 041 on */
	{ "subscriptions", "@.subscriptions",
	    "stripe_subscription_id, user_id, plan_id,"
	    " COALESCE(renews_as, plan_id) AS renews_as, stripe_session_id, status,"
	    " cancel_at_period_end" },
	{ "subscription_allocations", "(SELECT a.*, s.user_id, s.stripe_subscription_id"
	    " FROM @.subscription_allocations a"
	    " JOIN @.subscriptions s ON s.id = a.subscription_id) a",
	    "stripe_invoice_id, stripe_subscription_id, user_id, plan_id, credits,"
	    " credits_reversed" },
	/* Consultations: the paid session's room. */
	{ "sessions", "@.sessions",
	    "stripe_session_id, user_id, type, plan, amount_cents, status" },
	/* Of Checkout payments and of bookings' (booking ids are the same in both). */
	{ "disputes", "@.disputes",
	    "stripe_dispute_id, user_id, charge_id, payment_intent_id, amount_cents, reason,"
	    " status, stripe_session_id, booking_id, product, units_frozen, units_reversed,"
	    " units_lost" },
	/* Expert bookings: copied with their ids, so the id is the key. */
	{ "bookings", "@.bookings",
	    "id, user_id, expert_id, status, price_cents, platform_fee_cents, payout_cents,"
	    " payment_intent_id, cancel_refund_cents, refunded_cents, fee_refunded_cents,"
	    " payout_refunded_cents, dispute_status, destination_account, stripe_transfer_id,"
	    " stripe_application_fee_id" },
	{ "payments", "(SELECT p.*, b.user_id FROM @.payments p"
	    " JOIN @.bookings b ON b.id = p.booking_id) p",
	    "stripe_payment_intent_id, booking_id, user_id, amount_cents, status,"
	    " failed_attempts, last_failed_charge" },
	{ "refunds", "(SELECT r.*, p.stripe_payment_intent_id, b.user_id FROM @.refunds r"
	    " JOIN @.payments p ON p.id = r.payment_id JOIN @.bookings b ON b.id = p.booking_id) r",
	    "stripe_refund_id, stripe_payment_intent_id, user_id, amount_cents, reason,"
	    " stripe_transfer_reversal_id" },
	/* A payout and its bookings; replayed for everyone only (no user_id). */
	{ "payouts", "(SELECT p.*, NULL AS user_id, (SELECT GROUP_CONCAT(CONCAT("
	    "i.booking_id, ':', i.amount_cents) ORDER BY i.booking_id) FROM @.payout_items i"
	    " WHERE i.payout_id = p.id) AS items FROM @.payouts p) p",
	    "id, expert_id, amount_cents, status, items" },
};

/* text without its "@." marks: the same statement on the rebuild. */
static void
strip_live(const char *text, char *out, size_t n)
{
	size_t len = 0;

	for (; *text && len + 1 < n; text++) {
		if (text[0] == '@' && text[1] == '.')
			text++;
		else
			out[len++] = *text;
	}
	out[len] = '\0';
}

/* Rows of one side that the other lacks: the same SELECT on both. */
static cd_err
compare_one(const struct compared *c, json_t *diffs)
{
	char on_live_side[1024], on_rebuild[1024], text[8192];
	json_t *rows, *row;
	cd_err err;
	size_t i;

	snprintf(on_live_side, sizeof(on_live_side),
	    "SELECT %s FROM %s" OF_USER("user_id"), c->cols, c->from);
	strip_live(on_live_side, on_rebuild, sizeof(on_rebuild));
	snprintf(text, sizeof(text),
	    "SELECT 'live only' AS side, x.* FROM ((%s) EXCEPT (%s)) x"
	    " UNION ALL SELECT 'replay only', y.* FROM ((%s) EXCEPT (%s)) y"
	    " ORDER BY 2, 1", on_live_side, on_rebuild, on_rebuild, on_live_side);
	if ((err = db_rows(on_live(text), &rows, "")) != CD_OK)
		return err;
	json_array_foreach(rows, i, row) {
		json_object_set_new(row, "table", json_string(c->name));
		json_array_append(diffs, row);
	}
	json_decref(rows);
	return CD_OK;
}

static bool
name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0, i;

	if (n == 0 || n > 64)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

int
main(int argc, char **argv)
{
	json_t *diffs = json_array(), *d;
	long long user = 0;
	size_t i, steps = 0;
	bool as_json = false;
	int a;

	log_init("creditdesk-replay");
	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--user") == 0 && a + 1 < argc)
			user = atoll(argv[++a]);
		else if (strcmp(argv[a], "--json") == 0)
			as_json = true;
		else {
			fprintf(stderr, "usage: creditdesk-replay [--json] [--user ID]\n");
			return 2;
		}
	}
	if (!name_ok(getenv("CD_REPLAY_LIVE_DB"))) {
		fprintf(stderr, "replay: CD_REPLAY_LIVE_DB must name the live database\n");
		return 2;
	}
	snprintf(live, sizeof(live), "%s", getenv("CD_REPLAY_LIVE_DB"));
	if (cfg_load() != 0 || db_open() != CD_OK)
		return 2;
	if (strcmp(live, cfg->db_name) == 0) {
		fprintf(stderr, "replay: CD_DB_NAME must be a scratch database, not live\n");
		return 2;
	}
	seen = json_object();
	answers = json_array();
	stripe_replay_source(from_events);
	if (copy_inputs(user) != CD_OK || replay_timeline(&steps, diffs) != CD_OK)
		return 2;
	for (i = 0; i < sizeof(compared) / sizeof(compared[0]); i++)
		if (compare_one(&compared[i], diffs) != CD_OK)
			return 2;
	if (as_json) {
		d = json_pack("{s:b,s:I,s:O}", "ok", json_array_size(diffs) == 0,
		    "steps", (json_int_t)steps, "differences", diffs);
		json_dumpf(d, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(d);
	} else {
		json_array_foreach(diffs, i, d)
			print_row(d, "table", 22, "side", 12);
		printf("replay: %zu steps replayed; %zu difference%s\n", steps,
		    json_array_size(diffs), json_array_size(diffs) == 1 ? "" : "s");
	}
	db_close();
	return json_array_size(diffs) > 0 ? 1 : 0;
}
