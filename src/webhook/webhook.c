/*
 * creditdesk-webhook: POST /api/stripe/webhook.
 *
 * The signature is checked on the raw body before anything is parsed or
 * stored.  A database failure answers 5xx so that Stripe delivers again.
 */
#include <string.h>
#include <time.h>

#include "app.h"
#include "cfg.h"
#include "db.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "stripe.h"

static cd_err
bad_signature(cd_req *r, cd_sig sig)
{
	static const char *const why[] = {
		[SIG_MALFORMED] = "The Stripe-Signature header is missing or malformed.",
		[SIG_MISMATCH] = "No signature matches the payload.",
		[SIG_STALE] = "The signature timestamp is outside the tolerance.",
	};

	log_warn("webhook: rejected signature (%d)", (int)sig);
	return req_fail(r, CD_BAD_REQUEST, "invalid_signature", why[sig]);
}

static cd_err
receive(cd_req *r)
{
	const char *header = req_param(r, "HTTP_STRIPE_SIGNATURE"), *answer;
	json_error_t jerr;
	json_t *event;
	bool duplicate;
	cd_sig sig;
	cd_err err;

	sig = header == NULL ? SIG_MALFORMED : stripe_sig_verify(header, r->body,
	    r->body_len, cfg->webhook_secrets, cfg->nwebhook_secrets,
	    (long long)time(NULL), cfg->webhook_tolerance);
	if (sig != SIG_OK)
		return bad_signature(r, sig);
	event = req_own(r, json_loadb(r->body, r->body_len, 0, &jerr));
	if (!json_is_object(event))
		return req_fail(r, CD_BAD_REQUEST, "invalid_json",
		    "The event is not a JSON object.");
	err = event_accept_in(event, r->body, r->body_len, "webhook", &duplicate,
	    r->arena);
	if (err == CD_BAD_REQUEST)
		return req_fail(r, err, "invalid_event",
		    "The event's id, type or object id is missing or too long.");
	metrics_count(M_WEBHOOK_RECEIVED);
	if (err != CD_OK) {
		metrics_count(M_WEBHOOK_FAILED);
		return err == CD_STRIPE ? CD_STRIPE : CD_DB;
	}
	if (duplicate)
		metrics_count(M_WEBHOOK_DUPLICATE);
	/* Two possible answers: written out, not built per event. */
	answer = duplicate ? "{\"received\":true,\"duplicate\":true}" :
	    "{\"received\":true,\"duplicate\":false}";
	resp_json_text(r, 200, answer, strlen(answer));
	return CD_OK;
}

static const cd_route routes[] = {
	{ "POST", "/api/stripe/webhook", receive, R_RAW | R_ANON },
};

static const cd_app app = {
	"creditdesk-webhook", routes, 1, NULL, 1 << 20
};

int
main(void)
{
	return app_run(&app);
}
