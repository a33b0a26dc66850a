/*
 * Starting and recording Checkout Sessions; see checkout.h.
 *
 * Every session is recorded locally (who, what, how many, how much) in the
 * same transaction as its audit row; fulfilment later trusts that record and
 * Stripe's paid status, never what the browser sends.
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "cfg.h"
#include "checkout.h"
#include "checkout_store.h"
#include "crypto.h"
#include "db.h"
#include "fulfil.h"
#include "log.h"
#include "stripe.h"

static json_t *
sale_params(cd_req *r, const struct sale *s)
{
	json_t *meta, *price, *p;

	meta = json_pack("{s:s,s:s,s:s,s:s}", "user_id",
	    arena_printf(r->arena, "%lld", r->user->id), "product", s->product,
	    "item", s->item_code, "quantity",
	    arena_printf(r->arena, "%lld", s->quantity));
	price = json_pack("{s:s,s:I,s:{s:s,s:s}}", "currency", s->currency,
	    "unit_amount", (json_int_t)s->unit_amount, "product_data",
	    "name", s->name, "description", s->description);
	if (s->subscription)
		json_object_set_new(price, "recurring", json_pack("{s:s}",
		    "interval", "month"));
	p = json_pack("{s:s,s:s,s:[{s:I,s:o}],s:O}",
	    "mode", s->subscription ? "subscription" : "payment",
	    "client_reference_id", arena_printf(r->arena, "%lld", r->user->id),
	    "line_items", "quantity", (json_int_t)s->quantity, "price_data", price,
	    "metadata", meta);
	json_object_set_new(p, s->subscription ? "subscription_data" :
	    "payment_intent_data", json_pack("{s:o}", "metadata", meta));
	if (s->embedded) {
		json_object_set_new(p, "ui_mode", json_string("embedded"));
		json_object_set_new(p, "return_url", json_string(arena_printf(
		    r->arena, "%s/checkout/success?session_id={CHECKOUT_SESSION_ID}",
		    cfg->public_url)));
	} else {
		json_object_set_new(p, "success_url", json_string(arena_printf(
		    r->arena, "%s/checkout/success?session_id={CHECKOUT_SESSION_ID}",
		    cfg->public_url)));
		json_object_set_new(p, "cancel_url", json_string(arena_printf(
		    r->arena, "%s/?checkout=cancelled", cfg->public_url)));
	}
	if (s->customer != NULL)
		json_object_set_new(p, "customer", json_string(s->customer));
	else
		json_object_set_new(p, "customer_email", json_string(r->user->email));
	return p;
}

struct record {
	cd_req			*r;
	const struct sale	*sale;
	const json_t		*session;
	bool			 created;
};

static cd_err
record_tx(void *arg)
{
	struct record *rec = arg;
	const struct sale *s = rec->sale;
	const char *id = jstr(rec->session, "id");
	session_record row = { id, rec->r->user->id, s->product, s->item_code,
	    s->quantity, s->quantity * s->unit_amount, s->currency,
	    s->subscription ? "subscription" : "payment", s->client_ref,
	    jstr(rec->session, "url"), jstr(rec->session, "client_secret") };
	json_t *details;
	cd_err err;

	if ((err = cstore_record_session(&row, &rec->created)) != CD_OK ||
	    !rec->created)
		return err;
	details = req_own(rec->r, json_pack("{s:s,s:s,s:I,s:I}", "product",
	    s->product, "item", s->item_code, "quantity", (json_int_t)s->quantity,
	    "amountCents", (json_int_t)(s->quantity * s->unit_amount)));
	if (s->audit_extra != NULL)
		json_object_update(details, (json_t *)s->audit_extra);
	err = audit_write(s->audit_action ? s->audit_action : "CHECKOUT_STARTED",
	    "checkout_session", id, rec->r->user->id, details, "info");
	return err;
}

/*
 * A retry with the same client key gets the session it already created;
 * the key sent with another purchase (product, item or quantity) is refused.
 */
static cd_err
existing_session(cd_req *r, const struct sale *s, json_t **out)
{
	session_ref row;
	bool found;
	cd_err err;

	*out = NULL;
	if (s->client_ref == NULL)
		return CD_OK;
	if ((err = cstore_session_by_ref(r->arena, r->user->id, s->client_ref,
	    &row, &found)) != CD_OK || !found)
		return err;
	if (strcmp(row.product, s->product) != 0 ||
	    strcmp(row.item_code ?: "", s->item_code ?: "") != 0 ||
	    row.quantity != s->quantity)
		return req_fail(r, CD_CONFLICT, "session_id_reused",
		    "This session_id was already used for another purchase.");
	if (row.expired)
		return req_fail(r, CD_CONFLICT, "checkout_expired",
		    "The checkout this session_id started has expired; start a new one with a new session_id.");
	*out = json_pack("{s:s?,s:s?,s:s?}", "id", row.stripe_session_id,
	    "url", row.url, "client_secret", row.client_secret);
	return CD_OK;
}

/*
 * The user row's random value for Idempotency-Keys, written the first time
 * it is needed (the guarded UPDATE keeps the first of racing writers).
 */
static cd_err
user_nonce(cd_req *r, const char **nonce)
{
	char fresh[CD_TOKEN_LEN + 1];
	bool found;
	cd_err err;

	for (int i = 0; i < 2; i++) {
		if ((err = cstore_user_nonce(r->arena, r->user->id, nonce,
		    &found)) != CD_OK)
			return err;
		if (!found)
			return CD_INTERNAL;
		if (*nonce == NULL)
			*nonce = "";
		if (**nonce != '\0')
			return CD_OK;
		if (random_token(fresh) != 0 ||
		    (err = cstore_set_user_nonce(r->user->id, fresh)) != CD_OK)
			return err != CD_OK ? err : CD_INTERNAL;
	}
	return CD_INTERNAL;
}

/* "user-<id>-<nonce>-<action>", the action made from parts. */
static const char *
user_key(cd_req *r, const char *nonce, const char *action)
{
	size_t n = strlen(nonce) + strlen(action) + 64;
	char *key = arena_alloc(r->arena, n);

	stripe_key(key, n, "user", r->user->id, nonce, action);
	return key;
}

cd_err
start_checkout(cd_req *r, const struct sale *s, json_t **session)
{
	char token[CD_TOKEN_LEN + 1];
	struct record rec = { r, s, NULL, false };
	const char *key, *nonce, *ref;
	json_t *params;
	cd_err err;

	if ((err = existing_session(r, s, session)) != CD_OK || *session != NULL) {
		req_own(r, *session);
		return err;
	}
	if ((err = user_nonce(r, &nonce)) != CD_OK)
		return err;
	/* The client's key makes its retries one request; else a fresh one. */
	if (s->stripe_ref != NULL)
		ref = s->stripe_ref;
	else if (s->client_ref != NULL)
		ref = s->client_ref;
	else if (random_token(token) == 0)
		ref = token;
	else
		return CD_INTERNAL;
	/* Another customer (one replacing a deleted one) is another request. */
	key = user_key(r, nonce, s->customer != NULL ?
	    arena_printf(r->arena, "checkout-%s-%s", ref, s->customer) :
	    arena_printf(r->arena, "checkout-%s", ref));
	params = req_own(r, sale_params(r, s));
	err = stripe_call("POST", "/v1/checkout/sessions", params, key, session);
	if (err != CD_OK)
		return err;
	req_own(r, *session);
	if (!stripe_id_ok(jstr(*session, "id"), "cs_"))
		return CD_STRIPE;
	rec.session = *session;
	return db_tx(record_tx, &rec);
}

cd_err
load_product(cd_req *r, const char *code, struct sale *s)
{
	product_row row;
	bool found;
	cd_err err;

	if ((err = cstore_product(r->arena, code, &row, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "product_not_found",
		    "This product is not for sale.");
	s->product = s->item_code = code;
	s->unit_amount = row.unit_amount;
	s->currency = row.currency;
	s->name = row.name;
	s->description = row.description;
	return CD_OK;
}

void
hosted_reply(cd_req *r, const json_t *session)
{
	resp_json(r, 200, json_pack("{s:O,s:O}", "url", json_object_get(session,
	    "url"), "session_id", json_object_get(session, "id")));
}

/* The stored customer. */
static cd_err
stored_customer(cd_req *r, const char **customer)
{
	return cstore_customer(r->arena, r->user->id, customer);
}

/* Creates a Stripe customer for the user under idempotency key idem. */
static cd_err
create_customer(cd_req *r, const char *idem, const char **id)
{
	json_t *params, *created;
	cd_err err;

	params = req_own(r, json_pack("{s:s,s:s,s:{s:I}}", "email",
	    r->user->email, "name", r->user->name, "metadata", "user_id",
	    (json_int_t)r->user->id));
	err = stripe_call("POST", "/v1/customers", params, idem, &created);
	req_own(r, created);
	if (err != CD_OK)
		return err;
	*id = jstr(created, "id");
	return stripe_id_ok(*id, "cus_") ? CD_OK : CD_STRIPE;
}

/*
 * Concurrent first purchases all send the same Idempotency-Key, so Stripe
 * creates one customer and answers each with it; the guarded UPDATE stores
 * it once, and everyone reads back what was stored.  The key names the user
 * row by id and its stored random value, so a reused id (a database restored
 * from a backup, on the same Stripe account) never gets another user's
 * customer.
 */
static cd_err
stripe_customer(cd_req *r, const char **customer)
{
	const char *created, *nonce;
	cd_err err;

	if ((err = stored_customer(r, customer)) != CD_OK || *customer != NULL)
		return err;
	if ((err = user_nonce(r, &nonce)) != CD_OK ||
	    (err = create_customer(r, user_key(r, nonce, "customer"),
	    &created)) != CD_OK ||
	    (err = cstore_set_customer(r->user->id, created)) != CD_OK)
		return err;
	return stored_customer(r, customer);
}

/*
 * Replaces a stored customer that Stripe no longer has.  Everyone replacing
 * the same one sends the same key (it names the gone customer), the UPDATE
 * only takes effect while the gone one is still stored, and everyone reads
 * back what was stored: concurrent checkouts end with one new customer.
 */
static cd_err
replace_customer(cd_req *r, const char **customer)
{
	const char *gone = *customer, *created, *nonce;
	cd_err err;

	log_warn("stripe customer %s of user %lld no longer exists; replacing it",
	    gone, r->user->id);
	if ((err = user_nonce(r, &nonce)) != CD_OK ||
	    (err = create_customer(r, user_key(r, nonce, arena_printf(r->arena,
	    "customer-%s", gone)), &created)) != CD_OK ||
	    (err = cstore_replace_customer(r->user->id, gone, created)) != CD_OK)
		return err;
	return stored_customer(r, customer);
}

cd_err
start_customer_checkout(cd_req *r, struct sale *s, json_t **session)
{
	cd_err err;

	if ((err = stripe_customer(r, &s->customer)) != CD_OK)
		return err;
	err = start_checkout(r, s, session);
	if (err == CD_OK || !stripe_missing("customer"))
		return err;
	if ((err = replace_customer(r, &s->customer)) != CD_OK)
		return err;
	return start_checkout(r, s, session);
}
