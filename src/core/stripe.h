/*
 * Stripe API client over libcurl.  The code knows Stripe only as a base URL
 * (STRIPE_API_BASE), so the same calls reach api.stripe.com or the local
 * emulator.  Parameters are a jansson object encoded as Stripe's nested form
 * (a[b][0][c]=v); every POST that creates something carries an
 * Idempotency-Key, and a transport failure is retried once with the same key.
 * A Stripe error returns CD_STRIPE after logging Stripe's message (never the
 * key); an object Stripe does not have (HTTP 404) is CD_NOT_FOUND.
 */
#ifndef CD_STRIPE_H
#define CD_STRIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "buf.h"
#include "error.h"

/* method "GET" or "POST"; params may be NULL; idem_key required for creates. */
cd_err	 stripe_call(const char *method, const char *path, json_t *params,
	    const char *idem_key, json_t **out);
/*
 * GET /v1/<kind>/<id>, e.g. ("charges", "ch_", id): an id that is not of
 * that kind, or that Stripe does not have, is CD_NOT_FOUND.
 */
cd_err	 stripe_retrieve(const char *kind, const char *prefix, const char *id,
	    json_t **out);
/*
 * As stripe_retrieve, with Stripe's expand[] path (NULL: none), e.g.
 * "invoice.subscription": the related objects stay nested as Stripe
 * answers them.
 */
cd_err	 stripe_retrieve_with(const char *kind, const char *prefix,
	    const char *id, const char *expand, json_t **out);
/*
 * As stripe_retrieve, with one related object expanded in the same call
 * (Stripe's expand[], e.g. a PaymentIntent's "latest_charge"): the related
 * object is moved to *related (NULL when the field is empty) and the field
 * keeps its id, so the object has the shape an unexpanded retrieve gives.
 */
cd_err	 stripe_retrieve_expanded(const char *kind, const char *prefix,
	    const char *id, const char *field, json_t **out, json_t **related);
/*
 * Replay (creditdesk-replay): with a source set, every call is answered by
 * it (from the objects as stored events carried them) instead of Stripe,
 * since there is no historical Stripe to ask; a POST is answered with what
 * Stripe answered it live, as the local record kept it.  NULL returns to
 * the real API.
 */
typedef cd_err (*stripe_replay_fn)(const char *method, const char *path,
    const json_t *params, json_t **out);
void	 stripe_replay_source(stripe_replay_fn);
/*
 * While list is not NULL, every answer to a GET is appended to it as
 * {"path", "params", "object"}: what an event's handler saw, kept with the
 * event so that a replay sees the same (events.c, creditdesk-replay).
 */
void	 stripe_record(json_t *list);
/*
 * GET a list endpoint page after page (params: filters and "limit"),
 * appending every object to all.  A list longer than max_pages pages is
 * CD_STRIPE (logged): no caller takes a part of a list for the whole.
 */
cd_err	 stripe_list(const char *path, const json_t *params, size_t max_pages,
	    json_t *all);
/*
 * What Stripe said about the last call that it refused (HTTP status, its
 * error code and param, "" when absent); all zero after a call that did not
 * get an error answer.  A responder makes one call at a time.
 */
struct stripe_error {
	long	status;
	char	type[32];
	char	code[64];
	char	param[64];
};
const struct stripe_error *stripe_last_error(void);
/* The last call's Idempotency-Key was first used with other parameters. */
bool	 stripe_idempotency_conflict(void);
/*
 * The last call was a refund of a charge its customer's bank charged back
 * (a dispute not won yet): the dispute decides its money, not a refund.
 */
bool	 stripe_charge_disputed(void);
/* The last call was refused because Stripe has no object named by param. */
bool	 stripe_missing(const char *param);

/*
 * The Idempotency-Key of one action on one of our records: "<kind>-<id>-
 * <nonce>-<action>", the nonce being the random value stored with the row
 * when it was created; rows made before nonces had "" and keep the key
 * they had ("<kind>-<id>-<action>").  out holds at least 160 bytes.
 */
void	 stripe_key(char *out, size_t n, const char *kind, long long id,
	    const char *nonce, const char *action);
/* Stripe ids are short and of one alphabet; everything else is refused. */
bool	 stripe_id_ok(const char *id, const char *prefix);
/* Stripe's nested form encoding of an object. */
void	 stripe_form_encode(const json_t *params, cd_buf *out);

/*
 * Webhook signatures: header "t=…,v1=…[,v1=…]", HMAC-SHA256 over "t.payload",
 * compared in constant time against every configured secret, and rejected
 * when t is more than tolerance seconds from now (stripe_sig.c lists
 * exactly which headers parse).
 */
typedef enum cd_sig {
	SIG_OK,
	SIG_MALFORMED,	/* missing header, an item not key=value, no single t, no v1 */
	SIG_MISMATCH,	/* no v1 matches any secret */
	SIG_STALE	/* outside the tolerance window */
} cd_sig;

cd_sig	 stripe_sig_verify(const char *header, const void *payload, size_t len,
	    const char *const *secrets, size_t nsecrets, long long now,
	    long tolerance);
/* Builds a header for payload (used by tools, tests and the benchmark). */
void	 stripe_sig_sign(const char *secret, long long t, const void *payload,
	    size_t len, cd_buf *out);

#endif
