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

#include "bookings.h"
#include "cfg.h"
#include "crypto.h"
#include "booking_pay.h"
#include "db.h"
#include "stripe.h"

static cd_sql q_me = CD_SQL(
    "SELECT id, stripe_account_id, charges_enabled, payouts_enabled, stripe_nonce"
    " FROM experts WHERE user_id = ?");
static cd_sql q_nonce = CD_SQL(
    "UPDATE experts SET stripe_nonce = ? WHERE id = ? AND stripe_nonce = ''");
static cd_sql q_account = CD_SQL(
    "UPDATE experts SET stripe_account_id = ? WHERE id = ? AND stripe_account_id IS NULL");

/* The signed-in user's expert row, with a nonce; 403 if they are no expert. */
static cd_err
my_expert(cd_req *r, json_t **row)
{
	char nonce[CD_TOKEN_LEN + 1];
	cd_err err;

	if ((err = db_row(&q_me, row, "i", r->user->id)) != CD_OK)
		return err;
	if (*row == NULL)
		return req_fail(r, CD_FORBIDDEN, "not_an_expert",
		    "Only experts can connect a Stripe account.");
	req_own(r, *row);
	if (*jstr(*row, "stripe_nonce") != '\0')
		return CD_OK;
	if (random_token(nonce) != 0 ||
	    (err = db_exec(&q_nonce, NULL, "si", nonce, jint(*row, "id"))) != CD_OK ||
	    (err = db_row(&q_me, row, "i", r->user->id)) != CD_OK)
		return err != CD_OK ? err : CD_INTERNAL;
	req_own(r, *row);
	return CD_OK;
}

static json_t *
state(const json_t *row, const char *url)
{
	bool onboarded = jint(row, "charges_enabled") && jint(row, "payouts_enabled");

	return json_pack("{s:s?,s:b,s:b,s:b,s:s?}", "accountId",
	    jstr(row, "stripe_account_id"), "chargesEnabled",
	    (int)jint(row, "charges_enabled"), "payoutsEnabled",
	    (int)jint(row, "payouts_enabled"), "onboarded", onboarded, "url", url);
}

/*
 * An account that is not yet onboarded is asked for at Stripe, as
 * account.updated would be, so an expert back from onboarding sees the
 * state at once even if the event is still on its way.  If Stripe cannot be
 * reached the stored state is shown.
 */
static cd_err
sync_account(cd_req *r, json_t **row)
{
	json_t *acct = NULL;
	cd_err err;

	if (jstr(*row, "stripe_account_id") == NULL ||
	    (jint(*row, "charges_enabled") && jint(*row, "payouts_enabled")))
		return CD_OK;
	err = stripe_retrieve("accounts", "acct_", jstr(*row, "stripe_account_id"),
	    &acct);
	req_own(r, acct);
	if (err != CD_OK)
		return CD_OK;
	if (booking_account_seen(acct) != CD_OK ||
	    db_row(&q_me, row, "i", r->user->id) != CD_OK || *row == NULL)
		return CD_DB;
	req_own(r, *row);
	return CD_OK;
}

cd_err
expert_connect_state(cd_req *r)
{
	json_t *row;
	cd_err err;

	if ((err = my_expert(r, &row)) != CD_OK ||
	    (err = sync_account(r, &row)) != CD_OK)
		return err;
	resp_json(r, 200, state(row, NULL));
	return CD_OK;
}

/* The expert's Express account, created at Stripe the first time. */
static cd_err
ensure_account(cd_req *r, json_t **row)
{
	json_t *params, *acct = NULL;
	char key[160];
	cd_err err;

	if (jstr(*row, "stripe_account_id") != NULL)
		return CD_OK;
	params = req_own(r, json_pack("{s:s,s:s,s:{s:I}}", "type", "express",
	    "email", r->user->email, "metadata", "expert_id",
	    (json_int_t)jint(*row, "id")));
	stripe_key(key, sizeof(key), "expert", jint(*row, "id"),
	    jstr(*row, "stripe_nonce"), "account");
	err = stripe_call("POST", "/v1/accounts", params, key, &acct);
	req_own(r, acct);
	if (err != CD_OK || !stripe_id_ok(jstr(acct, "id"), "acct_"))
		return req_fail(r, CD_STRIPE, "stripe_error",
		    "The Stripe account could not be created. Please try again.");
	if ((err = db_exec(&q_account, NULL, "si", jstr(acct, "id"),
	    jint(*row, "id"))) != CD_OK ||
	    (err = db_row(&q_me, row, "i", r->user->id)) != CD_OK)
		return err;
	req_own(r, *row);
	return CD_OK;
}

cd_err
expert_connect(cd_req *r)
{
	char token[CD_TOKEN_LEN + 1];
	json_t *row, *params, *link = NULL;
	cd_err err;

	if ((err = my_expert(r, &row)) != CD_OK ||
	    (err = ensure_account(r, &row)) != CD_OK)
		return err;
	if (random_token(token) != 0)
		return CD_INTERNAL;
	params = req_own(r, json_pack("{s:s,s:s,s:s,s:s}", "account",
	    jstr(row, "stripe_account_id"), "type", "account_onboarding",
	    "refresh_url", arena_printf(r->arena, "%s/dashboard?connect=refresh",
	    cfg->public_url), "return_url", arena_printf(r->arena,
	    "%s/dashboard?connect=return", cfg->public_url)));
	err = stripe_call("POST", "/v1/account_links", params,
	    arena_printf(r->arena, "expert-%lld-link-%s", jint(row, "id"), token),
	    &link);
	req_own(r, link);
	if (err != CD_OK || jstr(link, "url") == NULL)
		return req_fail(r, CD_STRIPE, "stripe_error",
		    "Stripe onboarding could not be started. Please try again.");
	resp_json(r, 200, state(row, jstr(link, "url")));
	return CD_OK;
}
