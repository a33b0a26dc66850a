/*
 * What Stripe itself says was paid, for creditdesk-check --stripe: every
 * Checkout Session on the account, page after page, reduced to its id and
 * whether it is paid.  The invariants compare that list with our records in
 * SQL, so the comparison is one statement however long the list is.
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

cd_err
check_stripe_list(char **out)
{
	json_t *all = json_array(), *params, *list, *s;
	cd_err err;
	size_t i;

	*out = NULL;
	params = json_pack("{s:i}", "limit", PAGE_LIMIT);
	err = stripe_list("/v1/checkout/sessions", params, MAX_PAGES, all);
	json_decref(params);
	if (err != CD_OK) {
		json_decref(all);
		return err;
	}
	list = json_array();
	json_array_foreach(all, i, s)
		json_array_append_new(list, json_pack("{s:O,s:i}", "id",
		    json_object_get(s, "id"), "paid", paid(s) ? 1 : 0));
	*out = json_dumps(list, JSON_COMPACT);
	json_decref(list);
	json_decref(all);
	return *out != NULL ? CD_OK : CD_INTERNAL;
}
