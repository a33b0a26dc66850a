/*
 * Stripe Connect for experts: POST /api/experts/me/connect creates the
 * expert's Express account once (the account id is written only if none is
 * stored; the Idempotency-Key comes from the expert row and its stored
 * random value, so retries and racing requests get the same account) and
 * answers an Account Link to continue onboarding.  GET shows the state,
 * which account.updated keeps (booking_account_seen) and GET itself brings
 * up to date while the account is not yet onboarded.
 */
#include <string.h>

#include "booking_pay.h"
#include "booking_store.h"
#include "bookings.h"
#include "cfg.h"
#include "crypto.h"
#include "db.h"
#include "stripe.h"

/* Reads the signed-in user's expert row again into *x; CD_DB if it is gone. */
static cd_err
reload(cd_req *r, expert_account *x)
{
	bool found;
	cd_err err;

	if ((err = bstore_expert_of_user(r->arena, r->user->id, x, &found)) != CD_OK)
		return err;
	return found ? CD_OK : CD_DB;
}

/* The signed-in user's expert row, with a nonce; 403 if they are no expert. */
static cd_err
my_expert(cd_req *r, expert_account *x)
{
	char nonce[CD_TOKEN_LEN + 1];
	bool found;
	cd_err err;

	if ((err = bstore_expert_of_user(r->arena, r->user->id, x, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_FORBIDDEN, "not_an_expert",
		    "Only experts can connect a Stripe account.");
	if (x->nonce != NULL && *x->nonce != '\0')
		return CD_OK;
	if (random_token(nonce) != 0 ||
	    (err = bstore_expert_nonce(x->id, nonce)) != CD_OK ||
	    (err = reload(r, x)) != CD_OK)
		return err != CD_OK ? err : CD_INTERNAL;
	return CD_OK;
}

static bool
onboarded(const expert_account *x)
{
	return x->charges_enabled && x->payouts_enabled;
}

static json_t *
state(const expert_account *x, const char *url)
{
	return json_pack("{s:s?,s:b,s:b,s:b,s:s?}", "accountId", x->account,
	    "chargesEnabled", (int)x->charges_enabled, "payoutsEnabled",
	    (int)x->payouts_enabled, "onboarded", onboarded(x), "url", url);
}

/*
 * An account that is not yet onboarded is asked for at Stripe, as
 * account.updated would be, so an expert back from onboarding sees the
 * state at once even if the event is still on its way.  If Stripe cannot be
 * reached the stored state is shown.
 */
static cd_err
sync_account(cd_req *r, expert_account *x)
{
	json_t *acct = NULL;
	cd_err err;

	if (x->account == NULL || onboarded(x))
		return CD_OK;
	err = stripe_retrieve("accounts", "acct_", x->account, &acct);
	req_own(r, acct);
	if (err != CD_OK)
		return CD_OK;
	if (booking_account_seen(acct) != CD_OK || reload(r, x) != CD_OK)
		return CD_DB;
	return CD_OK;
}

cd_err
expert_connect_state(cd_req *r)
{
	expert_account x;
	cd_err err;

	if ((err = my_expert(r, &x)) != CD_OK ||
	    (err = sync_account(r, &x)) != CD_OK)
		return err;
	resp_json(r, 200, state(&x, NULL));
	return CD_OK;
}

/* The expert's Express account, created at Stripe the first time. */
static cd_err
ensure_account(cd_req *r, expert_account *x)
{
	json_t *params, *acct = NULL;
	char key[160];
	cd_err err;

	if (x->account != NULL)
		return CD_OK;
	params = req_own(r, json_pack("{s:s,s:s,s:{s:I}}", "type", "express",
	    "email", r->user->email, "metadata", "expert_id", (json_int_t)x->id));
	stripe_key(key, sizeof(key), "expert", x->id, x->nonce, "account");
	err = stripe_call("POST", "/v1/accounts", params, key, &acct);
	req_own(r, acct);
	if (err != CD_OK || !stripe_id_ok(jstr(acct, "id"), "acct_"))
		return req_fail(r, CD_STRIPE, "stripe_error",
		    "The Stripe account could not be created. Please try again.");
	if ((err = bstore_expert_account(x->id, jstr(acct, "id"))) != CD_OK)
		return err;
	return reload(r, x);
}

cd_err
expert_connect(cd_req *r)
{
	char token[CD_TOKEN_LEN + 1];
	json_t *params, *link = NULL;
	expert_account x;
	cd_err err;

	if ((err = my_expert(r, &x)) != CD_OK ||
	    (err = ensure_account(r, &x)) != CD_OK)
		return err;
	if (random_token(token) != 0)
		return CD_INTERNAL;
	params = req_own(r, json_pack("{s:s,s:s,s:s,s:s}", "account",
	    x.account, "type", "account_onboarding",
	    "refresh_url", arena_printf(r->arena, "%s/dashboard?connect=refresh",
	    cfg->public_url), "return_url", arena_printf(r->arena,
	    "%s/dashboard?connect=return", cfg->public_url)));
	err = stripe_call("POST", "/v1/account_links", params,
	    arena_printf(r->arena, "expert-%lld-link-%s", x.id, token), &link);
	req_own(r, link);
	if (err != CD_OK || jstr(link, "url") == NULL)
		return req_fail(r, CD_STRIPE, "stripe_error",
		    "Stripe onboarding could not be started. Please try again.");
	resp_json(r, 200, state(&x, jstr(link, "url")));
	return CD_OK;
}
