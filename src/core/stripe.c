/*
 * Stripe API client over libcurl; see stripe.h.
 *
 * Each FastCGI child is one process handling one request at a time, so it
 * keeps one curl easy handle for its whole life: curl_easy_reset() between
 * calls drops the options but keeps the connection cache, and the TLS
 * connection to Stripe is reused instead of being set up for every call.
 *
 * A call fails over the network in two ways.  A transport error (no
 * connection, timeout, connection dropped) is retried once; a POST is
 * retried only when it carries an Idempotency-Key, or when the request
 * cannot have reached Stripe, because otherwise a retry could create the
 * object twice.  An HTTP error from Stripe is an answer, not a failure of
 * the transport, and is never retried: it is logged with Stripe's message
 * and reported as CD_STRIPE.  Neither the secret key nor the parameters we
 * sent are ever logged.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cfg.h"
#include "log.h"
#include "metrics.h"
#include "stripe.h"

#define STRIPE_VERSION		"2024-06-20"
#define STRIPE_MAX_RESPONSE	(4u << 20)	/* the largest list is far smaller */
#define STRIPE_MAX_IDEM		255		/* Stripe's limit on the key */
#define LOG_MSG_MAX		300

/* Factored out for the unit tests, which declare them themselves. */
int	 stripe_build_url(const char *, const char *, const char *,
	    const json_t *, cd_buf *);
cd_err	 stripe_parse_response(const char *, const char *, long, const char *,
	    size_t, json_t **);

/* ---- Form encoding ------------------------------------------------------ */

/*
 * application/x-www-form-urlencoded with RFC 3986's unreserved characters
 * left as they are and everything else, space included, as %XX.  The
 * brackets that give the nesting are written literally (Stripe accepts both
 * spellings); brackets inside a key or a value are encoded, so the nesting
 * cannot be forged by a metadata key.
 */
static void
pct_encode(cd_buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char c;
	char esc[3];
	size_t i, run;

	for (i = 0; i < n; i += run) {
		for (run = 0; i + run < n; run++) {
			c = (unsigned char)s[i + run];
			if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
			    c == '_' || c == '~'))
				break;
		}
		if (run > 0) {
			buf_append(out, s + i, run);
			continue;
		}
		c = (unsigned char)s[i];
		esc[0] = '%';
		esc[1] = hex[c >> 4];
		esc[2] = hex[c & 0xf];
		buf_append(out, esc, 3);
		run = 1;
	}
}

/* The shortest "%.*g" that reads back as the same double. */
static void
put_real(cd_buf *out, double d)
{
	char tmp[40];
	int prec;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	pct_encode(out, tmp, strlen(tmp));
}

/*
 * Appends "&key=value" for a scalar, or recurses with key extended by
 * "[name]" or "[index]".  key holds the encoded prefix; start is where the
 * encoding began in out, so that the first pair has no '&'.
 */
static void
encode_value(cd_buf *out, size_t start, cd_buf *key, const json_t *v)
{
	size_t keep = key->len, i, klen;
	const char *k;
	void *it;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		for (it = json_object_iter((json_t *)v); it != NULL;
		    it = json_object_iter_next((json_t *)v, it)) {
			k = json_object_iter_key(it);
#if JANSSON_VERSION_HEX >= 0x020e00
			klen = json_object_iter_key_len(it);
#else
			klen = strlen(k);
#endif
			if (keep > 0)
				buf_putc(key, '[');
			pct_encode(key, k, klen);
			if (keep > 0)
				buf_putc(key, ']');
			encode_value(out, start, key,
			    json_object_iter_value(it));
			key->len = keep;
		}
		return;
	case JSON_ARRAY:
		for (i = 0; i < json_array_size(v); i++) {
			buf_printf(key, "[%zu]", i);
			encode_value(out, start, key, json_array_get(v, i));
			key->len = keep;
		}
		return;
	case JSON_NULL:
		return;
	default:
		break;
	}
	if (out->len > start)
		buf_putc(out, '&');
	buf_append(out, key->data, key->len);
	buf_putc(out, '=');
	switch (json_typeof(v)) {
	case JSON_STRING:
		pct_encode(out, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		put_real(out, json_real_value(v));
		break;
	case JSON_TRUE:
		buf_puts(out, "true");
		break;
	default:
		buf_puts(out, "false");
		break;
	}
}

/*
 * Objects and arrays with nothing in them produce nothing: Stripe reads a
 * present-but-empty value ("metadata=") as "unset", which a caller asks for
 * explicitly with an empty string.
 */
void
stripe_form_encode(const json_t *params, cd_buf *out)
{
	cd_buf key = CD_BUF_INIT;

	if (params == NULL || !json_is_object(params))
		return;
	encode_value(out, out->len, &key, params);
	buf_free(&key);
}

/* ---- Request and response ---------------------------------------------- */

/*
 * base + path, with GET parameters as the query string.  path must be an
 * absolute path without spaces or control characters; a trailing '/' on the
 * base is dropped so that "https://host/" works too.
 */
int
stripe_build_url(const char *base, const char *method, const char *path,
    const json_t *params, cd_buf *url)
{
	size_t blen, mark;
	const char *p;

	if (base == NULL || *base == '\0' || path == NULL || path[0] != '/')
		return -1;
	for (p = path; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return -1;
	blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	buf_append(url, base, blen);
	buf_puts(url, path);
	if (strcmp(method, "GET") == 0 && params != NULL) {
		mark = url->len;
		buf_putc(url, strchr(path, '?') ? '&' : '?');
		stripe_form_encode(params, url);
		if (url->len == mark + 1) {
			url->len = mark;	/* nothing to send */
			url->data[mark] = '\0';
		}
	}
	return 0;
}

/*
 * Copies Stripe's message for the log: control characters become '?', the
 * length is bounded, and the secret key is blanked should Stripe ever echo
 * it back (before truncation, so that no prefix of it survives either).
 */
static void
log_message(char *dst, size_t dstlen, const char *msg)
{
	const char *key = cfg ? cfg->stripe_secret_key : NULL;
	size_t klen = key ? strlen(key) : 0, o = 0, n;
	unsigned char c;

	while (*msg != '\0' && o + 1 < dstlen) {
		if (klen >= 8 && strncmp(msg, key, klen) == 0) {
			n = klen < dstlen - 1 - o ? klen : dstlen - 1 - o;
			memset(dst + o, '*', n);
			o += n;
			msg += klen;
			continue;
		}
		c = (unsigned char)*msg++;
		dst[o++] = c < ' ' || c == 0x7f ? '?' : (char)c;
	}
	dst[o] = '\0';
}

static struct stripe_error last_error;

const struct stripe_error *
stripe_last_error(void)
{
	return &last_error;
}

/*
 * Stripe answers 400 when a parameter names an object it does not have
 * (param says which) and 404 when the path does; both say resource_missing.
 */
bool
stripe_missing(const char *param)
{
	return strcmp(last_error.code, "resource_missing") == 0 &&
	    (last_error.status == 404 || strcmp(last_error.param, param) == 0);
}

bool
stripe_charge_disputed(void)
{
	return strcmp(last_error.code, "charge_disputed") == 0;
}

bool
stripe_idempotency_conflict(void)
{
	return strcmp(last_error.type, "idempotency_error") == 0;
}

/* Copies an error field, if it is a string, into a last_error buffer. */
static void
error_field(char *dst, size_t size, const json_t *error, const char *name)
{
	const char *v = json_string_value(json_object_get(error, name));

	snprintf(dst, size, "%s", v ? v : "");
}

cd_err
stripe_parse_response(const char *method, const char *path, long status,
    const char *body, size_t len, json_t **out)
{
	char msg[LOG_MSG_MAX + 1];
	const char *m;
	json_error_t jerr;
	json_t *j;

	*out = NULL;
	j = json_loadb(body ? body : "", len, 0, &jerr);
	memset(&last_error, 0, sizeof(last_error));
	if (status < 200 || status > 299) {
		last_error.status = status;
		error_field(last_error.type, sizeof(last_error.type),
		    json_object_get(j, "error"), "type");
		error_field(last_error.code, sizeof(last_error.code),
		    json_object_get(j, "error"), "code");
		error_field(last_error.param, sizeof(last_error.param),
		    json_object_get(j, "error"), "param");
		m = json_string_value(json_object_get(json_object_get(j,
		    "error"), "message"));
		log_message(msg, sizeof(msg), m ? m : "(no error message)");
		log_error("stripe %s %s: HTTP %ld: %s", method, path, status,
		    msg);
		json_decref(j);
		/* Stripe has no such object: a fact about the id, not an outage. */
		return status == 404 ? CD_NOT_FOUND : CD_STRIPE;
	}
	if (!json_is_object(j)) {
		log_error("stripe %s %s: HTTP %ld with a body that is not a "
		    "JSON object", method, path, status);
		json_decref(j);
		return CD_STRIPE;
	}
	*out = j;
	return CD_OK;
}

/* ---- Transport ---------------------------------------------------------- */

struct sink {
	cd_buf	buf;
	bool	too_large;
};

static size_t
sink_write(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;

	n *= size;	/* size is always 1 */
	if (n > STRIPE_MAX_RESPONSE - s->buf.len) {
		s->too_large = true;
		return 0;	/* curl stops with CURLE_WRITE_ERROR */
	}
	buf_append(&s->buf, p, n);
	return n;
}

/*
 * The per-process handle.  A child forked after a call must not share the
 * parent's connections, so a handle made in another process is abandoned
 * (not cleaned up, which would close the parent's sockets).
 */
static CURL *
handle(void)
{
	static CURL *h;
	static pid_t owner;
	static bool global_done;

	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return NULL;
		global_done = true;
	}
	if (h != NULL && owner != getpid())
		h = NULL;
	if (h == NULL) {
		h = curl_easy_init();
		owner = getpid();
	}
	return h;
}

/* A header value we put on the wire: printable ASCII, bounded. */
static bool
header_safe(const char *s, size_t max)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e)
			return false;
	return n > 0 && n <= max;
}

/* Errors where curl never sent a byte, so any request may be retried. */
static bool
not_sent(CURLcode rc)
{
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	    rc == CURLE_COULDNT_RESOLVE_PROXY;
}

static struct curl_slist *
make_headers(const char *key, const char *idem_key, bool post)
{
	struct curl_slist *l = NULL, *n;
	cd_buf auth = CD_BUF_INIT, idem = CD_BUF_INIT;
	bool ok = true;

	buf_printf(&auth, "Authorization: Bearer %s", key);
#define ADD(s) do {							\
	if (ok && (n = curl_slist_append(l, (s))) != NULL)		\
		l = n;							\
	else								\
		ok = false;						\
} while (0)
	ADD(buf_cstr(&auth));
	ADD("Stripe-Version: " STRIPE_VERSION);
	ADD("Accept: application/json");
	/* No "Expect: 100-continue" round trip for larger bodies. */
	ADD("Expect:");
	if (post)
		ADD("Content-Type: application/x-www-form-urlencoded");
	if (idem_key != NULL) {
		buf_printf(&idem, "Idempotency-Key: %s", idem_key);
		ADD(buf_cstr(&idem));
	}
#undef ADD
	memset(auth.data, 0, auth.len);
	buf_free(&auth);
	buf_free(&idem);
	if (!ok) {
		curl_slist_free_all(l);
		return NULL;
	}
	return l;
}

static stripe_replay_fn replay_source;

/* Where the answers to GETs go while an event is handled (NULL: nowhere). */
static json_t *recording;

void
stripe_record(json_t *list)
{
	recording = list;
}

/* One answer Stripe gave: what was asked and what came back. */
static void
record_answer(const char *path, const json_t *params, const json_t *out)
{
	if (recording != NULL && out != NULL)
		json_array_append_new(recording, json_pack("{s:s,s:O?,s:O}", "path",
		    path, "params", params, "object", out));
}

void
stripe_replay_source(stripe_replay_fn fn)
{
	replay_source = fn;
}

cd_err
stripe_call(const char *method, const char *path, json_t *params,
    const char *idem_key, json_t **out)
{
	char errbuf[CURL_ERROR_SIZE];
	cd_buf url = CD_BUF_INIT, body = CD_BUF_INIT;
	struct sink sink = { CD_BUF_INIT, false };
	struct curl_slist *hdrs = NULL;
	const char *key;
	CURLcode rc = CURLE_OK;
	cd_err err = CD_INTERNAL;
	bool post, retry;
	long status = 0, timeout;
	int attempt;
	CURL *h = NULL;

	*out = NULL;
	memset(&last_error, 0, sizeof(last_error));
	if (method == NULL || path == NULL)
		return CD_INTERNAL;
	if (replay_source != NULL)
		return replay_source(method, path, params, out);
	post = strcmp(method, "POST") == 0;
	if (!post && strcmp(method, "GET") != 0) {
		log_error("stripe %s: unsupported method", path);
		return CD_INTERNAL;
	}
	key = cfg ? cfg->stripe_secret_key : NULL;
	if (key == NULL || !header_safe(key, 1024)) {
		log_error("stripe %s %s: STRIPE_SECRET_KEY is not set or not "
		    "a valid header value", method, path);
		return CD_INTERNAL;
	}
	if (idem_key != NULL && !header_safe(idem_key, STRIPE_MAX_IDEM)) {
		log_error("stripe %s %s: invalid idempotency key", method, path);
		return CD_INTERNAL;
	}
	if (stripe_build_url(cfg->stripe_api_base, method, path, params,
	    &url) != 0) {
		log_error("stripe %s %s: bad STRIPE_API_BASE or path", method,
		    path);
		goto out;
	}
	if (post)
		stripe_form_encode(params, &body);
	if ((h = handle()) == NULL ||
	    (hdrs = make_headers(key, idem_key, post)) == NULL) {
		log_error("stripe %s %s: cannot set up libcurl", method, path);
		goto out;
	}
	timeout = cfg->stripe_timeout_ms > 0 ? cfg->stripe_timeout_ms : 10000;
	curl_easy_setopt(h, CURLOPT_URL, buf_cstr(&url));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "creditdesk");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (post) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body.len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, buf_cstr(&body));
	} else
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);

	for (attempt = 1; attempt <= 2; attempt++) {
		errbuf[0] = '\0';
		buf_reset(&sink.buf);
		if ((rc = curl_easy_perform(h)) == CURLE_OK)
			break;
		if (sink.too_large) {
			log_error("stripe %s %s: response larger than %u bytes",
			    method, path, STRIPE_MAX_RESPONSE);
			err = CD_STRIPE;
			goto out;
		}
		retry = attempt == 1 && (!post || idem_key != NULL ||
		    not_sent(rc));
		log_warn("stripe %s %s: %s%s", method, path,
		    errbuf[0] ? errbuf : curl_easy_strerror(rc),
		    retry ? "; retrying" : "");
		if (!retry)
			break;
	}
	if (rc != CURLE_OK) {
		err = CD_STRIPE;
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	err = stripe_parse_response(method, path, status, sink.buf.data,
	    sink.buf.len, out);
	if (err == CD_OK && !post)
		record_answer(path, params, *out);
out:
	if (err == CD_STRIPE)
		metrics_count(M_STRIPE_ERRORS);
	/* Drop the options, which point into this frame; keep the connections. */
	if (h != NULL)
		curl_easy_reset(h);
	if (hdrs != NULL)
		curl_slist_free_all(hdrs);
	buf_free(&url);
	buf_free(&body);
	buf_free(&sink.buf);
	return err;
}

void
stripe_key(char *out, size_t n, const char *kind, long long id,
    const char *nonce, const char *action)
{
	if (nonce == NULL || *nonce == '\0')
		snprintf(out, n, "%s-%lld-%s", kind, id, action);
	else
		snprintf(out, n, "%s-%lld-%s-%s", kind, id, nonce, action);
}

bool
stripe_id_ok(const char *id, const char *prefix)
{
	size_t n;

	if (id == NULL || strncmp(id, prefix, strlen(prefix)) != 0)
		return false;
	for (n = 0; id[n] != '\0'; n++)
		if (!(id[n] >= 'A' && id[n] <= 'Z') && !(id[n] >= 'a' &&
		    id[n] <= 'z') && !(id[n] >= '0' && id[n] <= '9') && id[n] != '_')
			return false;
	return n > strlen(prefix) && n < 255;
}

cd_err
stripe_retrieve(const char *kind, const char *prefix, const char *id,
    json_t **out)
{
	return stripe_retrieve_with(kind, prefix, id, NULL, out);
}

cd_err
stripe_retrieve_with(const char *kind, const char *prefix, const char *id,
    const char *expand, json_t **out)
{
	char path[320];
	json_t *params = NULL;
	cd_err err;

	*out = NULL;
	if (!stripe_id_ok(id, prefix))
		return CD_NOT_FOUND;
	snprintf(path, sizeof(path), "/v1/%s/%s", kind, id);
	if (expand != NULL)
		params = json_pack("{s:[s]}", "expand", expand);
	err = stripe_call("GET", path, params, NULL, out);
	json_decref(params);
	return err;
}

cd_err
stripe_retrieve_expanded(const char *kind, const char *prefix, const char *id,
    const char *field, json_t **out, json_t **related)
{
	json_t *rel;
	cd_err err;

	*related = NULL;
	if ((err = stripe_retrieve_with(kind, prefix, id, field, out)) != CD_OK)
		return err;
	rel = json_object_get(*out, field);
	if (json_is_object(rel) && json_is_string(json_object_get(rel, "id"))) {
		/*
		 * The answer as Stripe gave it may be kept for a replay
		 * (stripe_record): the field becomes an id in a copy only.
		 */
		json_t *copy = json_copy(*out);

		if (copy == NULL) {
			json_decref(*out);
			*out = NULL;
			return CD_INTERNAL;
		}
		*related = json_incref(rel);
		json_object_set(copy, field, json_object_get(rel, "id"));
		json_decref(*out);
		*out = copy;
	}
	return CD_OK;
}

cd_err
stripe_list(const char *path, const json_t *params, size_t max_pages,
    json_t *all)
{
	const char *after = NULL;
	json_t *page = NULL, *data;
	cd_err err = CD_OK;
	size_t n;

	for (n = 0; n < max_pages; n++) {
		json_t *p = json_deep_copy(params);

		if (after != NULL)
			json_object_set_new(p, "starting_after", json_string(after));
		json_decref(page);
		page = NULL;
		err = stripe_call("GET", path, p, NULL, &page);
		json_decref(p);
		if (err != CD_OK)
			break;
		data = json_object_get(page, "data");
		json_array_extend(all, data);
		if (!json_is_true(json_object_get(page, "has_more")) ||
		    json_array_size(data) == 0)
			break;
		after = json_string_value(json_object_get(json_array_get(data,
		    json_array_size(data) - 1), "id"));
	}
	/* more than max_pages: a part of the list would pass for the whole */
	if (err == CD_OK && n == max_pages) {
		log_error("stripe GET %s: more than %zu pages; not read whole",
		    path, max_pages);
		err = CD_STRIPE;
	}
	json_decref(page);
	return err;
}
