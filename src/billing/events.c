/*
 * Stripe event handling; see events.h.
 *
 * No handler trusts the payload alone: each retrieves the object the event
 * is about from Stripe and acts on its current state, so late, repeated and
 * out-of-order deliveries all converge on the same result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "booking_pay.h"
#include "db.h"
#include "dispute.h"
#include "events.h"
#include "fulfil.h"
#include "log.h"
#include "products.h"
#include "stripe.h"

static cd_sql q_record = CD_SQL(
    "INSERT INTO stripe_events (event_id, type, object_id, stripe_created, payload, source)"
    " VALUES (?, ?, ?, ?, ?, ?)");
/* An event no handler acts on is stored already processed: one commit. */
static cd_sql q_record_done = CD_SQL(
    "INSERT INTO stripe_events (event_id, type, object_id, stripe_created, payload, source,"
    " processed_at, processed_by) VALUES (?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6), source)");
static cd_sql q_state = CD_SQL(
    "SELECT processed_at FROM stripe_events WHERE event_id = ?");
/* processed_by: reconcile's, of an event the webhook stored, is a recovery. */
static cd_sql q_processed = CD_SQL(
    "UPDATE stripe_events SET processed_at = UTC_TIMESTAMP(6), processed_by = ?"
    " WHERE event_id = ? AND processed_at IS NULL");

/*
 * When the event took effect: each transaction of its handler stamps the
 * row before it commits, and the first stamp stays.  The event is marked
 * processed in a transaction of its own afterwards, so a local action can
 * commit in between; the replay of the books places the event at this time.
 */
static cd_sql q_effect = CD_SQL(
    "UPDATE stripe_events SET effect_at = COALESCE(effect_at, UTC_TIMESTAMP(6))"
    " WHERE event_id = ?");

static cd_sql q_answer = CD_SQL(
    "INSERT INTO stripe_event_answers (event_id, seq, path, params, object)"
    " VALUES (?, ?, ?, ?, ?)");

/*
 * A handler acts on the event's object; whatever it retrieves or creates
 * belongs to the event's arena a, released once the event is handled.
 */
typedef cd_err (*event_fn)(const json_t *object, cd_arena *a);

/* The arena keeps what a retrieve of id returned; an unknown id is CD_OK. */
static cd_err
kept(cd_err err, const char *id, const char *prefix, cd_arena *a, json_t **out)
{
	arena_json(a, *out);
	if (err == CD_NOT_FOUND) {
		log_warn("event object %.60s is not a %s Stripe has",
		    id ? id : "(none)", prefix);
		return CD_OK;
	}
	return err;
}

/*
 * The object an event is about, as Stripe has it now (owned by a).  An id
 * of the wrong kind, or one Stripe never had, is *out = NULL: nothing to
 * act on, and nothing for Stripe to retry.
 */
static cd_err
retrieve(const char *kind, const char *prefix, const json_t *object,
    cd_arena *a, json_t **out)
{
	const char *id = jstr(object, "id");
	cd_err err = stripe_retrieve(kind, prefix, id, out);

	return kept(err, id, prefix, a, out);
}

/* A Checkout Session, as fulfilment retrieves it (fulfil_retrieve). */
static cd_err
retrieve_session(const json_t *object, cd_arena *a, json_t **out)
{
	const char *id = jstr(object, "id");
	cd_err err = fulfil_retrieve(id, out);

	return kept(err, id, "cs_", a, out);
}

/* Not one of ours, or refused as not matching: nothing for Stripe to retry. */
static cd_err
settled(cd_err err)
{
	return err == CD_NOT_FOUND || err == CD_FORBIDDEN ? CD_OK : err;
}

/* One call, a subscription's first invoice included (fulfil_retrieve). */
static cd_err
on_session_paid(const json_t *object, cd_arena *a)
{
	cd_fulfilment f;
	json_t *session;
	cd_err err;

	if ((err = retrieve_session(object, a, &session)) !=
	    CD_OK || session == NULL)
		return err;
	return settled(fulfil_session_object(session, 0, &f));
}

static cd_err
on_session_failed(const json_t *object, cd_arena *a)
{
	json_t *session;
	cd_err err;

	if ((err = retrieve("checkout/sessions", "cs_", object, a, &session)) !=
	    CD_OK || session == NULL ||
	    strcmp(jstr(session, "payment_status") ?: "", "paid") == 0)
		return err;
	return fulfil_failed(jstr(session, "id"));
}

static cd_err
on_session_expired(const json_t *object, cd_arena *a)
{
	json_t *session;
	cd_err err;

	if ((err = retrieve("checkout/sessions", "cs_", object, a, &session)) !=
	    CD_OK || session == NULL ||
	    strcmp(jstr(session, "status") ?: "", "expired") != 0)
		return err;
	return fulfil_expired(jstr(session, "id"));
}

static cd_err
on_charge_refunded(const json_t *object, cd_arena *a)
{
	json_t *charge;
	cd_err err;

	if ((err = retrieve("charges", "ch_", object, a, &charge)) != CD_OK ||
	    charge == NULL)
		return err;
	if ((err = fulfil_refund(charge)) != CD_OK ||
	    (err = booking_refund_seen(charge)) != CD_OK)
		return err;
	return subscription_refund(charge);
}

/* One call: the intent with its latest charge (a destination charge's
 * transfer and fee) expanded. */
static cd_err
on_intent_succeeded(const json_t *object, cd_arena *a)
{
	json_t *pi = NULL, *charge = NULL;
	cd_err err;

	err = stripe_retrieve_expanded("payment_intents", "pi_",
	    jstr(object, "id"), "latest_charge", &pi, &charge);
	arena_json(a, pi);
	arena_json(a, charge);
	if (err != CD_OK)
		return err == CD_NOT_FOUND ? CD_OK : err;
	return settled(booking_payment_succeeded_with(pi, charge));
}

/* Passes the object as Stripe has it now to fn; one it never had: nothing. */
static cd_err
with_current(const char *kind, const char *prefix, const json_t *object,
    cd_arena *a, cd_err (*fn)(const json_t *))
{
	json_t *current;
	cd_err err;

	if ((err = retrieve(kind, prefix, object, a, &current)) != CD_OK ||
	    current == NULL)
		return err;
	return fn(current);
}

/* A booking's PaymentIntent; anyone else's (a Checkout Session's) is ignored. */
static cd_err
on_intent_failed(const json_t *object, cd_arena *a)
{
	json_t *pi;
	cd_err err;

	if ((err = retrieve("payment_intents", "pi_", object, a, &pi)) != CD_OK ||
	    pi == NULL)
		return err;
	return settled(booking_payment_failed(pi));
}

static cd_err
on_invoice_paid(const json_t *object, cd_arena *a)
{
	(void)a;
	return subscription_allocate_invoice(jstr(object, "id"));
}

/*
 * One call: the dispute with its charge expanded.  A charge that did not
 * come expanded (a replay of an answer kept without it) is retrieved.
 */
static cd_err
with_dispute(const json_t *object, cd_arena *a,
    cd_err (*fn)(const json_t *dispute, const json_t *charge))
{
	const char *id = jstr(object, "id");
	json_t *d, *charge = NULL;
	cd_err err;

	err = stripe_retrieve_expanded("disputes", "dp_", id, "charge", &d,
	    &charge);
	arena_json(a, charge);
	if ((err = kept(err, id, "dp_", a, &d)) != CD_OK || d == NULL)
		return err;
	if (charge == NULL) {
		err = stripe_retrieve("charges", "ch_", jstr(d, "charge"), &charge);
		arena_json(a, charge);
		if (err != CD_OK && err != CD_NOT_FOUND)
			return err;
	}
	return fn(d, charge);
}

static cd_err
on_dispute_created(const json_t *object, cd_arena *a)
{
	return with_dispute(object, a, dispute_opened);
}

static cd_err
on_dispute_updated(const json_t *object, cd_arena *a)
{
	return with_dispute(object, a, dispute_updated);
}

static cd_err
on_dispute_closed(const json_t *object, cd_arena *a)
{
	return with_dispute(object, a, dispute_closed);
}

/* One call: the subscription, fetched after taking its ticket. */
static cd_err
on_subscription(const json_t *object, cd_arena *a)
{
	(void)a;
	return subscription_sync(jstr(object, "id"));
}

/*
 * The subscription's status (past_due) is what changed: sync it, from the
 * subscription expanded with the invoice (one call).
 */
static cd_err
on_invoice_failed(const json_t *object, cd_arena *a)
{
	json_t *invoice = NULL, *sub = NULL;
	cd_err err;

	err = stripe_retrieve_expanded("invoices", "in_", jstr(object, "id"),
	    "subscription", &invoice, &sub);
	arena_json(a, invoice);
	arena_json(a, sub);
	if (err != CD_OK)
		return err == CD_NOT_FOUND ? CD_OK : err;
	if (sub != NULL)
		return subscription_sync_object(sub, 0);
	if (jstr(invoice, "subscription") != NULL)
		return subscription_sync(jstr(invoice, "subscription"));
	return CD_OK;
}

static cd_err
on_account(const json_t *object, cd_arena *a)
{
	return with_current("accounts", "acct_", object, a, booking_account_seen);
}

static const struct {
	const char	*type;
	event_fn	 fn;
} handlers[] = {
	{ "checkout.session.completed", on_session_paid },
	{ "checkout.session.async_payment_succeeded", on_session_paid },
	{ "checkout.session.async_payment_failed", on_session_failed },
	{ "checkout.session.expired", on_session_expired },
	{ "payment_intent.succeeded", on_intent_succeeded },
	{ "payment_intent.payment_failed", on_intent_failed },
	{ "charge.refunded", on_charge_refunded },
	{ "charge.dispute.created", on_dispute_created },
	{ "charge.dispute.updated", on_dispute_updated },
	{ "charge.dispute.closed", on_dispute_closed },
	{ "invoice.paid", on_invoice_paid },
	{ "invoice.payment_failed", on_invoice_failed },
	{ "customer.subscription.updated", on_subscription },
	{ "customer.subscription.deleted", on_subscription },
	{ "account.updated", on_account },
};

/*
 * What stripe_events can hold: an event id, a type and the id of the object
 * it is about (when it has one), within their column sizes.  A signed event
 * that does not fit is refused as bad input (400), never a database error
 * (503), which would make Stripe redeliver it for days.
 */
#define EVENT_TYPE_MAX	100	/* stripe_events.type */
#define OBJECT_ID_MAX	255	/* stripe_events.object_id */

/* A string of 1 to max bytes without an embedded NUL. */
static bool
fits(const json_t *s, size_t max)
{
	size_t n = json_string_length(s);

	return json_is_string(s) && n > 0 && n <= max &&
	    strlen(json_string_value(s)) == n;
}

static bool
event_fits(const json_t *event, const json_t *object)
{
	const char *id = jstr(event, "id"), *type = jstr(event, "type");
	const json_t *oid = json_object_get(object, "id");

	if (!stripe_id_ok(id, "evt_") ||
	    !fits(json_object_get(event, "type"), EVENT_TYPE_MAX) ||
	    (oid != NULL && !json_is_null(oid) && !fits(oid, OBJECT_ID_MAX))) {
		log_warn("event refused: id, type or object id missing or too"
		    " long (id %.40s, type %.40s)", id ? id : "(none)",
		    type ? type : "(none)");
		return false;
	}
	return true;
}

static event_fn
handler_for(const char *type)
{
	size_t i;

	for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (strcmp(handlers[i].type, type) == 0)
			return handlers[i].fn;
	return NULL;
}

struct processing {
	const char	*event_id;
	const char	*source;	/* "webhook" or "reconcile": who processes it */
	const json_t	*answers;	/* what Stripe answered the handler */
	cd_arena	*arena;
};

/* json_dumps of v, released with arena a. */
static char *
dump(const json_t *v, cd_arena *a)
{
	char *text = json_dumps(v, JSON_COMPACT);

	if (text != NULL)
		arena_defer(a, free, text);
	return text;
}

/*
 * Marks the event processed and, the one time that happens, keeps what
 * Stripe answered its handler (stripe_event_answers), for a replay.
 */
static cd_err
processed_tx(void *arg)
{
	const struct processing *p = arg;
	unsigned long long n = 0;
	const json_t *params;
	const char *object;
	json_t *ans;
	cd_err err;
	size_t i;

	if ((err = db_exec(&q_processed, &n, "ss", p->source, p->event_id)) != CD_OK || n == 0)
		return err;
	json_array_foreach(p->answers, i, ans) {
		params = json_object_get(ans, "params");
		if ((object = dump(json_object_get(ans, "object"), p->arena)) == NULL)
			return CD_INTERNAL;
		if ((err = db_exec(&q_answer, NULL, "sisss", p->event_id,
		    (long long)i, jstr(ans, "path"), json_is_null(params) ? NULL :
		    dump(params, p->arena), object)) != CD_OK)
			return err;
	}
	return CD_OK;
}

/* Whether an earlier delivery of the event already processed it. */
static cd_err
already_processed(const char *id, cd_arena *a, bool *done)
{
	const char *processed_at;
	cd_err err;

	err = db_fetch_text(&q_state, a, &processed_at, NULL, "s", id);
	*done = processed_at != NULL;
	return err;
}

/* Runs the event's handler, recording what Stripe answers it. */
static cd_err
handle(const char *id, const char *source, event_fn fn, const json_t *object,
    cd_arena *a)
{
	struct processing p = { id, source, NULL, a };
	json_t *answers = arena_json(a, json_array());
	cd_err err;

	p.answers = answers;
	stripe_record(answers);
	db_tx_epilogue(&q_effect, id);
	err = fn(object, a);
	db_tx_epilogue(NULL, NULL);
	stripe_record(NULL);
	/* Left unprocessed on an error: Stripe retries, reconcile too. */
	return err == CD_OK ? db_tx(processed_tx, &p) : err;
}

cd_err
event_accept_in(const json_t *event, const char *raw, size_t rawlen,
    const char *source, bool *duplicate, cd_arena *a)
{
	const char *id = jstr(event, "id"), *type = jstr(event, "type");
	const json_t *object = json_object_get(json_object_get(event, "data"),
	    "object");
	event_fn fn;
	bool fresh;
	cd_err err;

	*duplicate = false;
	if (!json_is_object(object) || !event_fits(event, object))
		return CD_BAD_REQUEST;
	fn = handler_for(type);
	if ((err = db_insert_once(fn != NULL ? &q_record : &q_record_done, &fresh,
	    NULL, "sssibs", id, type, jstr(object, "id"), jint(event, "created"),
	    raw, rawlen, source)) != CD_OK)
		return err;
	if (fresh && fn == NULL)
		return CD_OK;
	if (!fresh && ((err = already_processed(id, a, duplicate)) != CD_OK ||
	    *duplicate))
		return err;
	if (fn == NULL)		/* stored unprocessed before it had no handler */
		return db_exec(&q_processed, NULL, "ss", source, id);
	return handle(id, source, fn, object, a);
}

cd_err
event_accept(const json_t *event, const char *raw, size_t rawlen,
    const char *source, bool *duplicate)
{
	cd_arena *a = arena_new();
	cd_err err;

	err = event_accept_in(event, raw, rawlen, source, duplicate, a);
	arena_free(a);
	return err;
}
