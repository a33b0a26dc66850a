/*
 * What Stripe itself says, for creditdesk-check --stripe: every Checkout
 * Session, succeeded PaymentIntent, refund and invoice on the account, page
 * after page, reduced to what the invariants compare, as one JSON document
 *
 *	{"sessions": [{"id", "paid"}],
 *	 "intents":  [{"id", "booking_id"}]	succeeded, of a booking (metadata)
 *	 "refunds":  [{"id", "charge", "payment_intent", "amount", "subscription"}]}
 *
 * (a refund's subscription: that of the invoice its PaymentIntent paid, from
 * Stripe's invoice list).  The invariants read it as tables in SQL, so each
 * comparison is one statement however long the lists are.
 */
#include <stdlib.h>
#include <string.h>

#include "invariants.h"
#include "stripe.h"

#define PAGE_LIMIT	100
#define MAX_PAGES	10000

static bool
paid(const json_t *session)
{
	const char *s = json_string_value(json_object_get(session, "payment_status"));

	return s != NULL && (strcmp(s, "paid") == 0 ||
	    strcmp(s, "no_payment_required") == 0);
}

static bool
is(const json_t *o, const char *key, const char *value)
{
	return strcmp(jstr(o, key) ?: "", value) == 0;
}

/* Every object of one Stripe list. */
static cd_err
list_all(const char *path, json_t **all)
{
	json_t *params = json_pack("{s:i}", "limit", PAGE_LIMIT);
	cd_err err;

	*all = json_array();
	err = stripe_list(path, params, MAX_PAGES, *all);
	json_decref(params);
	return err;
}

static json_t *
sessions(const json_t *all)
{
	json_t *out = json_array(), *s;
	size_t i;

	json_array_foreach(all, i, s)
		json_array_append_new(out, json_pack("{s:O,s:i}", "id",
		    json_object_get(s, "id"), "paid", paid(s) ? 1 : 0));
	return out;
}

/* Succeeded PaymentIntents of bookings (they carry the booking's id). */
static json_t *
intents(const json_t *all)
{
	json_t *out = json_array(), *pi;
	size_t i;

	json_array_foreach(all, i, pi) {
		const char *booking = jstr(json_object_get(pi, "metadata"), "booking_id");

		if (is(pi, "status", "succeeded") && booking != NULL)
			json_array_append_new(out, json_pack("{s:O,s:s}", "id",
			    json_object_get(pi, "id"), "booking_id", booking));
	}
	return out;
}

/* Succeeded refunds, each with its invoice's subscription if it has one. */
static json_t *
refunds(const json_t *all, const json_t *invoices)
{
	json_t *out = json_array(), *sub_of = json_object(), *re, *inv;
	size_t i;

	/* PaymentIntent -> the subscription its invoice belongs to */
	json_array_foreach(invoices, i, inv)
		if (jstr(inv, "payment_intent") != NULL && jstr(inv, "subscription") != NULL)
			json_object_set(sub_of, jstr(inv, "payment_intent"),
			    json_object_get(inv, "subscription"));
	json_array_foreach(all, i, re) {
		const char *pi = jstr(re, "payment_intent");
		const char *sub = pi ? jstr(sub_of, pi) : NULL;

		if (!is(re, "status", "succeeded"))
			continue;
		json_array_append_new(out, json_pack("{s:O,s:O,s:O,s:O,s:s?}", "id",
		    json_object_get(re, "id"), "charge", json_object_get(re, "charge"),
		    "payment_intent", json_object_get(re, "payment_intent"), "amount",
		    json_object_get(re, "amount"), "subscription", sub));
	}
	json_decref(sub_of);
	return out;
}

cd_err
check_stripe_list(char **out)
{
	static const char *const paths[] = { "/v1/checkout/sessions",
	    "/v1/payment_intents", "/v1/refunds", "/v1/invoices" };
	json_t *all[4] = { NULL }, *doc;
	cd_err err = CD_OK;
	size_t i;

	*out = NULL;
	for (i = 0; i < 4 && err == CD_OK; i++)
		err = list_all(paths[i], &all[i]);
	if (err == CD_OK) {
		doc = json_pack("{s:o,s:o,s:o}", "sessions", sessions(all[0]),
		    "intents", intents(all[1]), "refunds", refunds(all[2], all[3]));
		*out = json_dumps(doc, JSON_COMPACT);
		json_decref(doc);
		if (*out == NULL)
			err = CD_INTERNAL;
	}
	for (i = 0; i < 4; i++)
		json_decref(all[i]);
	return err;
}
