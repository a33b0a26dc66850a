/*
 * Unit tests for the Stripe client (form encoding, URL building, response
 * handling and the HTTP exchange itself against a scripted server thread),
 * webhook signatures and the crypto helpers.
 *
 * Signature vectors were computed independently of this code, e.g.
 *   printf '%s' '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test
 * and the scrypt vectors come from RFC 7914 and `openssl kdf ... SCRYPT`.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <check.h>
#include <jansson.h>

#include "buf.h"
#include "cfg.h"
#include "crypto.h"
#include "stripe.h"
#include "unit.h"

/* Pure helpers of stripe.c that stripe.h does not export. */
int	 stripe_build_url(const char *, const char *, const char *,
	    const json_t *, cd_buf *);
cd_err	 stripe_parse_response(const char *, const char *, long, const char *,
	    size_t, json_t **);

/* ---- Helpers ------------------------------------------------------------ */

/* Captures what the code under test logs to stderr. */
static int saved_stderr = -1;
static FILE *capture_file;

static void
capture_begin(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	ck_assert_ptr_nonnull(capture_file);
	saved_stderr = dup(2);
	ck_assert_int_ge(saved_stderr, 0);
	ck_assert_int_ge(dup2(fileno(capture_file), 2), 0);
}

static void
capture_end(cd_buf *out)
{
	char chunk[4096];
	size_t n;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	rewind(capture_file);
	while ((n = fread(chunk, 1, sizeof(chunk), capture_file)) > 0)
		buf_append(out, chunk, n);
	fclose(capture_file);
	buf_cstr(out);
}

/* Encodes the JSON text s and compares with want exactly. */
static void
check_form(const char *json, const char *want)
{
	json_error_t err;
	json_t *j = json_loads(json, 0, &err);
	cd_buf b = CD_BUF_INIT;

	ck_assert_msg(j != NULL, "bad test JSON: %s", err.text);
	stripe_form_encode(j, &b);
	ck_assert_str_eq(buf_cstr(&b), want);
	buf_free(&b);
	json_decref(j);
}

/* ---- Form encoding ------------------------------------------------------ */

START_TEST(form_scalars)
{
	check_form("{\"mode\":\"payment\",\"quantity\":3,\"livemode\":false,"
	    "\"skip\":null,\"capture\":true,\"neg\":-42,"
	    "\"big\":9007199254740993}",
	    "mode=payment&quantity=3&livemode=false&capture=true&neg=-42"
	    "&big=9007199254740993");
}
END_TEST

START_TEST(form_nested_metadata)
{
	check_form("{\"metadata\":{\"user_id\":\"42\",\"product\":\"live_help\","
	    "\"hours\":\"3\"},\"customer_email\":\"a+b@example.com\"}",
	    "metadata[user_id]=42&metadata[product]=live_help&metadata[hours]=3"
	    "&customer_email=a%2Bb%40example.com");
}
END_TEST

START_TEST(form_line_items)
{
	check_form("{\"mode\":\"payment\",\"line_items\":[{\"price_data\":"
	    "{\"currency\":\"usd\",\"unit_amount\":999,\"product_data\":"
	    "{\"name\":\"Quick Chat\"}},\"quantity\":1},{\"price\":\"price_2\","
	    "\"quantity\":2}],\"payment_method_types\":[\"card\"],"
	    "\"expand\":[\"payment_intent\",\"line_items\"]}",
	    "mode=payment"
	    "&line_items[0][price_data][currency]=usd"
	    "&line_items[0][price_data][unit_amount]=999"
	    "&line_items[0][price_data][product_data][name]=Quick%20Chat"
	    "&line_items[0][quantity]=1"
	    "&line_items[1][price]=price_2&line_items[1][quantity]=2"
	    "&payment_method_types[0]=card"
	    "&expand[0]=payment_intent&expand[1]=line_items");
}
END_TEST

START_TEST(form_special_chars)
{
	check_form("{\"success_url\":\"https://x.test/ok?session_id="
	    "{CHECKOUT_SESSION_ID}&a=b c\",\"name\":\"\\u00dcml & = + / ~._-\","
	    "\"pct\":\"100%\",\"nl\":\"a\\r\\nb\"}",
	    "success_url=https%3A%2F%2Fx.test%2Fok%3Fsession_id%3D"
	    "%7BCHECKOUT_SESSION_ID%7D%26a%3Db%20c"
	    "&name=%C3%9Cml%20%26%20%3D%20%2B%20%2F%20~._-"
	    "&pct=100%25&nl=a%0D%0Ab");
}
END_TEST

START_TEST(form_keys_are_encoded)
{
	/* Brackets in a key are data, not nesting. */
	check_form("{\"metadata\":{\"a[b]\":\"c\",\"sp ace&x=y\":\"1\"}}",
	    "metadata[a%5Bb%5D]=c&metadata[sp%20ace%26x%3Dy]=1");
}
END_TEST

START_TEST(form_arrays_and_empties)
{
	check_form("{\"a\":[[1,2],[],{\"b\":null}],\"e\":{},\"f\":[],"
	    "\"g\":\"\",\"h\":[null,true]}",
	    "a[0][0]=1&a[0][1]=2&g=&h[1]=true");
	check_form("{}", "");
	check_form("{\"only\":null}", "");
}
END_TEST

START_TEST(form_reals)
{
	check_form("{\"a\":1.5,\"b\":0.1,\"c\":-2.0,\"d\":1e100}",
	    "a=1.5&b=0.1&c=-2&d=1e%2B100");
}
END_TEST

START_TEST(form_nul_and_append)
{
	json_t *j = json_object();
	cd_buf b = CD_BUF_INIT;

	json_object_set_new(j, "s", json_stringn("a\0b", 3));
	json_object_set_new(j, "t", json_integer(7));
	buf_puts(&b, "prefix?");
	stripe_form_encode(j, &b);
	/* No '&' before the first pair even when out already has text. */
	ck_assert_str_eq(buf_cstr(&b), "prefix?s=a%00b&t=7");
	buf_reset(&b);
	stripe_form_encode(NULL, &b);
	stripe_form_encode(json_object_get(j, "t"), &b);	/* not an object */
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
	json_decref(j);
}
END_TEST

START_TEST(url_building)
{
	cd_buf u = CD_BUF_INIT;
	json_t *p = json_pack("{s:[s]}", "expand", "payment_intent");
	json_t *empty = json_object();

	ck_assert_int_eq(stripe_build_url("http://127.0.0.1:12111/", "GET",
	    "/v1/checkout/sessions/cs_1", p, &u), 0);
	ck_assert_str_eq(buf_cstr(&u), "http://127.0.0.1:12111/v1/checkout/"
	    "sessions/cs_1?expand[0]=payment_intent");
	buf_reset(&u);
	ck_assert_int_eq(stripe_build_url("https://api.stripe.com", "GET",
	    "/v1/events?limit=100", p, &u), 0);
	ck_assert_str_eq(buf_cstr(&u),
	    "https://api.stripe.com/v1/events?limit=100&expand[0]=payment_intent");
	buf_reset(&u);
	ck_assert_int_eq(stripe_build_url("https://api.stripe.com", "GET",
	    "/v1/events", empty, &u), 0);
	ck_assert_str_eq(buf_cstr(&u), "https://api.stripe.com/v1/events");
	buf_reset(&u);
	/* POST parameters go in the body, never the URL. */
	ck_assert_int_eq(stripe_build_url("https://api.stripe.com", "POST",
	    "/v1/refunds", p, &u), 0);
	ck_assert_str_eq(buf_cstr(&u), "https://api.stripe.com/v1/refunds");
	buf_reset(&u);
	ck_assert_int_eq(stripe_build_url("https://h", "GET", "v1/x", NULL,
	    &u), -1);
	ck_assert_int_eq(stripe_build_url("https://h", "GET", "/v1/x y", NULL,
	    &u), -1);
	ck_assert_int_eq(stripe_build_url("https://h", "GET", "/v1/x\r\n",
	    NULL, &u), -1);
	ck_assert_int_eq(stripe_build_url(NULL, "GET", "/v1/x", NULL, &u), -1);
	ck_assert_int_eq(stripe_build_url("", "GET", "/v1/x", NULL, &u), -1);
	buf_free(&u);
	json_decref(p);
	json_decref(empty);
}
END_TEST

/* ---- Response handling -------------------------------------------------- */

static cd_cfg tcfg;

static void
setup_cfg(void)
{
	memset(&tcfg, 0, sizeof(tcfg));
	tcfg.stripe_api_base = "http://127.0.0.1:1";
	tcfg.stripe_secret_key = "sk_test_unitSECRETkey123";
	tcfg.stripe_timeout_ms = 2000;
	cfg = &tcfg;
}

START_TEST(response_ok)
{
	const char *body = "{\"id\":\"cs_1\",\"payment_status\":\"paid\"}";
	json_t *out = NULL;

	ck_assert_int_eq(stripe_parse_response("GET", "/v1/x", 200, body,
	    strlen(body), &out), CD_OK);
	ck_assert_str_eq(json_string_value(json_object_get(out, "id")), "cs_1");
	json_decref(out);
}
END_TEST

START_TEST(response_bad_bodies)
{
	json_t *out = (json_t *)1;
	cd_buf log = CD_BUF_INIT;

	capture_begin();
	ck_assert_int_eq(stripe_parse_response("GET", "/v1/x", 200, "nope", 4,
	    &out), CD_STRIPE);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(stripe_parse_response("GET", "/v1/x", 200, "[1]", 3,
	    &out), CD_STRIPE);
	ck_assert_ptr_null(out);
	/* A truncated object: the length, not the NUL, bounds the body. */
	ck_assert_int_eq(stripe_parse_response("GET", "/v1/x", 200,
	    "{\"id\":\"x\"}", 5, &out), CD_STRIPE);
	ck_assert_int_eq(stripe_parse_response("GET", "/v1/x", 200, NULL, 0,
	    &out), CD_STRIPE);
	ck_assert_int_eq(stripe_parse_response("POST", "/v1/y", 500,
	    "<html>", 6, &out), CD_STRIPE);
	ck_assert_ptr_null(out);
	capture_end(&log);
	ck_assert_ptr_nonnull(strstr(log.data,
	    "stripe POST /v1/y: HTTP 500: (no error message)"));
	buf_free(&log);
}
END_TEST

/* The last error's status, code and param, and what counts as missing. */
START_TEST(response_error_detail)
{
	const char *param = "{\"error\":{\"type\":\"invalid_request_error\","
	    "\"message\":\"No such customer: 'cus_x'\",\"code\":"
	    "\"resource_missing\",\"param\":\"customer\"}}";
	const char *path = "{\"error\":{\"code\":\"resource_missing\","
	    "\"param\":\"id\",\"message\":\"No such customer\"}}";
	const char *other = "{\"error\":{\"code\":\"parameter_missing\","
	    "\"param\":\"customer\",\"message\":\"Missing\"}}";
	json_t *out = NULL;
	cd_buf log = CD_BUF_INIT;

	setup_cfg();
	capture_begin();
	ck_assert_int_eq(stripe_parse_response("POST", "/v1/checkout/sessions",
	    400, param, strlen(param), &out), CD_STRIPE);
	ck_assert_int_eq(stripe_last_error()->status, 400);
	ck_assert_str_eq(stripe_last_error()->code, "resource_missing");
	ck_assert_str_eq(stripe_last_error()->param, "customer");
	ck_assert(stripe_missing("customer"));
	ck_assert(!stripe_missing("payment_intent"));
	/* A 404 about the path is about whatever the path names. */
	ck_assert_int_eq(stripe_parse_response("GET", "/v1/customers/cus_x",
	    404, path, strlen(path), &out), CD_NOT_FOUND);
	ck_assert(stripe_missing("customer"));
	ck_assert_int_eq(stripe_parse_response("POST", "/v1/checkout/sessions",
	    400, other, strlen(other), &out), CD_STRIPE);
	ck_assert(!stripe_missing("customer"));
	/* No error body at all: no code, nothing missing. */
	ck_assert_int_eq(stripe_parse_response("POST", "/v1/x", 500, "oops", 4,
	    &out), CD_STRIPE);
	ck_assert_int_eq(stripe_last_error()->status, 500);
	ck_assert_str_eq(stripe_last_error()->code, "");
	ck_assert(!stripe_missing("customer"));
	/* A success clears it. */
	ck_assert_int_eq(stripe_parse_response("GET", "/v1/x", 200, "{}", 2,
	    &out), CD_OK);
	json_decref(out);
	ck_assert_int_eq(stripe_last_error()->status, 0);
	capture_end(&log);
	buf_free(&log);
}
END_TEST

START_TEST(response_idempotency_conflict)
{
	const char *conflict = "{\"error\":{\"type\":\"idempotency_error\","
	    "\"message\":\"Keys for idempotent requests can only be used with the"
	    " same parameters they were first used with.\"}}";
	const char *card = "{\"error\":{\"type\":\"card_error\","
	    "\"code\":\"card_declined\",\"message\":\"Declined\"}}";
	json_t *out = NULL;
	cd_buf log = CD_BUF_INIT;

	setup_cfg();
	capture_begin();
	ck_assert_int_eq(stripe_parse_response("POST", "/v1/checkout/sessions",
	    400, conflict, strlen(conflict), &out), CD_STRIPE);
	ck_assert_str_eq(stripe_last_error()->type, "idempotency_error");
	ck_assert(stripe_idempotency_conflict());
	ck_assert_int_eq(stripe_parse_response("POST", "/v1/payment_intents",
	    402, card, strlen(card), &out), CD_STRIPE);
	ck_assert(!stripe_idempotency_conflict());
	ck_assert_int_eq(stripe_parse_response("GET", "/v1/x", 200, "{}", 2,
	    &out), CD_OK);
	json_decref(out);
	ck_assert(!stripe_idempotency_conflict());
	capture_end(&log);
	buf_free(&log);
}
END_TEST

/* A list of `list_pages` pages of one object each, served as Stripe would. */
static int list_pages, list_served;
static cd_err
list_source(const char *method, const char *path, const json_t *params,
    json_t **out)
{
	(void)method;
	(void)path;
	(void)params;
	list_served++;
	*out = json_pack("{s:[{s:s}],s:b}", "data", "id",
	    list_served == 1 ? "evt_1" : "evt_n", "has_more",
	    list_served < list_pages);
	return CD_OK;
}

START_TEST(list_pages_and_limit)
{
	json_t *all = json_array(), *params = json_pack("{s:i}", "limit", 1);
	cd_buf log = CD_BUF_INIT;

	capture_begin();
	stripe_replay_source(list_source);
	/* the whole list within the limit */
	list_pages = 3;
	list_served = 0;
	ck_assert_int_eq(stripe_list("/v1/events", params, 3, all), CD_OK);
	ck_assert_int_eq(json_array_size(all), 3);
	/* longer than the limit: an error, never a part taken for the whole */
	list_pages = 5;
	list_served = 0;
	json_array_clear(all);
	ck_assert_int_eq(stripe_list("/v1/events", params, 3, all), CD_STRIPE);
	ck_assert_int_eq(list_served, 3);
	stripe_replay_source(NULL);
	capture_end(&log);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&log), "not read whole"));
	buf_free(&log);
	json_decref(params);
	json_decref(all);
}
END_TEST

START_TEST(response_error_logged)
{
	const char *body = "{\"error\":{\"type\":\"card_error\",\"message\":"
	    "\"Your card was declined.\\nreally\",\"code\":\"card_declined\"}}";
	const char *leak = "{\"error\":{\"message\":\"Invalid API Key provided: "
	    "sk_test_unitSECRETkey123\"}}";
	json_t *out = NULL, *j;
	cd_buf log = CD_BUF_INIT;
	char pad[291], *long_body;

	setup_cfg();
	capture_begin();
	ck_assert_int_eq(stripe_parse_response("POST", "/v1/payment_intents",
	    402, body, strlen(body), &out), CD_STRIPE);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(stripe_parse_response("GET", "/v1/charges", 401,
	    leak, strlen(leak), &out), CD_STRIPE);
	/* A key that straddles the truncation point leaves no prefix. */
	memset(pad, 'a', 290);
	pad[290] = '\0';
	j = json_pack("{s:{s:s++}}", "error", "message", pad,
	    "sk_test_unitSECRETkey123", " tail");
	long_body = json_dumps(j, 0);
	ck_assert_int_eq(stripe_parse_response("GET", "/v1/long", 400,
	    long_body, strlen(long_body), &out), CD_STRIPE);
	free(long_body);
	json_decref(j);
	capture_end(&log);
	/* One line each: the newline in Stripe's message is neutralised. */
	ck_assert_ptr_nonnull(strstr(log.data, "stripe POST /v1/payment_intents:"
	    " HTTP 402: Your card was declined.?really\n"));
	ck_assert_ptr_nonnull(strstr(log.data, "stripe GET /v1/charges: HTTP 401:"
	    " Invalid API Key provided: ************************\n"));
	ck_assert_ptr_nonnull(strstr(log.data, "stripe GET /v1/long: HTTP 400: "
	    "aaaaaaaaaa"));
	ck_assert_ptr_nonnull(strstr(log.data, "a**********\n"));
	ck_assert_ptr_null(strstr(log.data, "SECRET"));
	ck_assert_ptr_null(strstr(log.data, "sk_"));
	buf_free(&log);
}
END_TEST

/* ---- stripe_call against a scripted HTTP server ------------------------- */

enum act {
	RESPOND,	/* send status and body, keep the connection */
	DROP,		/* close the connection without answering */
	HANG,		/* never answer; wait for the client to give up */
	HUGE		/* 200 with a 5 MiB body */
};

struct step {
	enum act	 act;
	int		 status;
	const char	*body;
};

struct server {
	int			 lfd;
	unsigned short		 port;
	const struct step	*steps;
	int			 nsteps;
	atomic_int		 stop;
	int			 nconn, nreq;	/* read after join */
	cd_buf			 reqs[8];	/* raw requests, headers and body */
	pthread_t		 thread;
};

/* Reads until pred is true or the peer closes; 0 on close or stop. */
static int
read_some(struct server *s, int fd, cd_buf *b)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	char chunk[8192];
	ssize_t n;

	while (!atomic_load(&s->stop)) {
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		n = read(fd, chunk, sizeof(chunk));
		if (n <= 0)
			return 0;
		buf_append(b, chunk, (size_t)n);
		return 1;
	}
	return 0;
}

/* Reads one request (headers and Content-Length body) into b. */
static int
read_request(struct server *s, int fd, cd_buf *b)
{
	const char *end, *cl;
	size_t hlen, blen = 0;

	while ((end = b->data ? strstr(b->data, "\r\n\r\n") : NULL) == NULL)
		if (!read_some(s, fd, b))
			return 0;
	hlen = (size_t)(end - b->data) + 4;
	if ((cl = strcasestr(b->data, "\r\nContent-Length:")) != NULL &&
	    cl < end)
		blen = strtoul(cl + 17, NULL, 10);
	while (b->len < hlen + blen)
		if (!read_some(s, fd, b))
			return 0;
	return 1;
}

static void
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0 && (w = write(fd, p, n)) > 0) {
		p += w;
		n -= (size_t)w;
	}
}

static void *
server_main(void *arg)
{
	struct server *s = arg;
	struct pollfd pfd = { s->lfd, POLLIN, 0 };
	const struct step *st;
	cd_buf hdr = CD_BUF_INIT, scratch = CD_BUF_INIT;
	char *big;
	int fd = -1;

	while (s->nreq < s->nsteps && !atomic_load(&s->stop)) {
		if (fd < 0) {
			if (poll(&pfd, 1, 50) <= 0)
				continue;
			if ((fd = accept(s->lfd, NULL, NULL)) < 0)
				continue;
			s->nconn++;
		}
		if (!read_request(s, fd, &s->reqs[s->nreq])) {
			buf_reset(&s->reqs[s->nreq]);
			close(fd);
			fd = -1;
			continue;
		}
		st = &s->steps[s->nreq++];
		switch (st->act) {
		case RESPOND:
			buf_reset(&hdr);
			buf_printf(&hdr, "HTTP/1.1 %d X\r\nContent-Type: "
			    "application/json\r\nContent-Length: %zu\r\n\r\n%s",
			    st->status, strlen(st->body), st->body);
			write_all(fd, hdr.data, hdr.len);
			break;
		case HUGE:
			big = malloc(5u << 20);
			memset(big, ' ', 5u << 20);
			buf_reset(&hdr);
			buf_printf(&hdr, "HTTP/1.1 200 OK\r\nContent-Length: "
			    "%u\r\n\r\n", 5u << 20);
			write_all(fd, hdr.data, hdr.len);
			write_all(fd, big, 5u << 20);
			free(big);
			/* FALLTHROUGH */
		case HANG:
			while (read_some(s, fd, &scratch))
				;
			/* FALLTHROUGH */
		case DROP:
			close(fd);
			fd = -1;
			break;
		}
	}
	if (fd >= 0)
		close(fd);
	buf_free(&hdr);
	buf_free(&scratch);
	return NULL;
}

static struct server *
server_start(const struct step *steps, int nsteps)
{
	struct server *s = calloc(1, sizeof(*s));
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	static char base[64];

	ck_assert_ptr_nonnull(s);
	ck_assert_int_le(nsteps, 8);
	s->steps = steps;
	s->nsteps = nsteps;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(s->lfd = socket(AF_INET, SOCK_STREAM, 0), 0);
	ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(s->lfd, 8), 0);
	ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&sa, &len), 0);
	s->port = ntohs(sa.sin_port);
	snprintf(base, sizeof(base), "http://127.0.0.1:%u", s->port);
	setup_cfg();
	tcfg.stripe_api_base = base;
	ck_assert_int_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
	return s;
}

/* Stops the thread; the requests it recorded stay readable. */
static void
server_stop(struct server *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	close(s->lfd);
}

static void
server_free(struct server *s)
{
	int i;

	for (i = 0; i < 8; i++)
		buf_free(&s->reqs[i]);
	free(s);
}

/* The value of header name in request r, or NULL. */
static char *
header_of(cd_buf *r, const char *name, char *val, size_t vlen)
{
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\r\n%s: ", name);
	if (r->data == NULL || (p = strcasestr(r->data, pat)) == NULL)
		return NULL;
	p += strlen(pat);
	e = strstr(p, "\r\n");
	snprintf(val, vlen, "%.*s", (int)(e - p), p);
	return val;
}

static const char *
body_of(cd_buf *r)
{
	return strstr(r->data, "\r\n\r\n") + 4;
}

START_TEST(call_get_ok_and_reuse)
{
	static const struct step steps[] = {
		{ RESPOND, 200, "{\"id\":\"cs_1\",\"payment_status\":\"paid\"}" },
		{ RESPOND, 200, "{\"object\":\"list\",\"data\":[]}" },
	};
	struct server *s = server_start(steps, 2);
	json_t *params = json_pack("{s:[s]}", "expand", "payment_intent");
	json_t *out = NULL;
	char v[256];

	ck_assert_int_eq(stripe_call("GET", "/v1/checkout/sessions/cs_1", params,
	    NULL, &out), CD_OK);
	ck_assert_str_eq(json_string_value(json_object_get(out, "payment_status")),
	    "paid");
	json_decref(out);
	ck_assert_int_eq(stripe_call("GET", "/v1/events", NULL, NULL, &out),
	    CD_OK);
	ck_assert_str_eq(json_string_value(json_object_get(out, "object")),
	    "list");
	json_decref(out);
	json_decref(params);
	server_stop(s);

	ck_assert_int_eq(s->nreq, 2);
	ck_assert_int_eq(s->nconn, 1);		/* the connection was reused */
	ck_assert_int_eq(strncmp(s->reqs[0].data, "GET /v1/checkout/sessions/"
	    "cs_1?expand[0]=payment_intent HTTP/1.1\r\n", 62), 0);
	ck_assert_int_eq(strncmp(s->reqs[1].data, "GET /v1/events HTTP/1.1\r\n",
	    25), 0);
	ck_assert_str_eq(header_of(&s->reqs[0], "Authorization", v, sizeof(v)),
	    "Bearer sk_test_unitSECRETkey123");
	ck_assert_str_eq(header_of(&s->reqs[0], "Stripe-Version", v, sizeof(v)),
	    "2024-06-20");
	ck_assert_ptr_null(header_of(&s->reqs[0], "Idempotency-Key", v,
	    sizeof(v)));
	ck_assert_ptr_null(header_of(&s->reqs[0], "Content-Type", v, sizeof(v)));
	server_free(s);
}
END_TEST

START_TEST(call_post_body_and_headers)
{
	static const struct step steps[] = {
		{ RESPOND, 200, "{\"id\":\"cs_2\",\"url\":\"https://x\"}" },
		{ RESPOND, 200, "{\"id\":\"re_1\"}" },
		{ RESPOND, 200, "{\"id\":\"cus_1\"}" },
	};
	struct server *s = server_start(steps, 3);
	json_t *params = json_pack("{s:s,s:{s:s}}", "mode", "payment",
	    "metadata", "user_id", "7");
	json_t *out = NULL;
	char v[256], *big = malloc(1100001);

	ck_assert_int_eq(stripe_call("POST", "/v1/checkout/sessions", params,
	    "checkout-7-abc", &out), CD_OK);
	ck_assert_str_eq(json_string_value(json_object_get(out, "id")), "cs_2");
	json_decref(out);
	ck_assert_int_eq(stripe_call("POST", "/v1/refunds", NULL, "refund-9",
	    &out), CD_OK);
	json_decref(out);
	json_decref(params);
	/* A body over 1 MiB must not wait for "100 Continue". */
	memset(big, 'x', 1100000);
	big[1100000] = '\0';
	params = json_pack("{s:s}", "description", big);
	free(big);
	ck_assert_int_eq(stripe_call("POST", "/v1/customers", params, "c-1",
	    &out), CD_OK);
	json_decref(out);
	json_decref(params);
	server_stop(s);

	ck_assert_int_eq(strncmp(s->reqs[0].data,
	    "POST /v1/checkout/sessions HTTP/1.1\r\n", 37), 0);
	ck_assert_str_eq(header_of(&s->reqs[0], "Content-Type", v, sizeof(v)),
	    "application/x-www-form-urlencoded");
	ck_assert_str_eq(header_of(&s->reqs[0], "Idempotency-Key", v, sizeof(v)),
	    "checkout-7-abc");
	ck_assert_str_eq(header_of(&s->reqs[0], "Stripe-Version", v, sizeof(v)),
	    "2024-06-20");
	ck_assert_str_eq(body_of(&s->reqs[0]), "mode=payment&metadata[user_id]=7");
	ck_assert_str_eq(header_of(&s->reqs[1], "Content-Length", v, sizeof(v)),
	    "0");
	ck_assert_str_eq(body_of(&s->reqs[1]), "");
	ck_assert_ptr_null(header_of(&s->reqs[2], "Expect", v, sizeof(v)));
	ck_assert_str_eq(header_of(&s->reqs[2], "Content-Length", v, sizeof(v)),
	    "1100012");
	ck_assert_int_eq(strncmp(body_of(&s->reqs[2]), "description=xxx", 15), 0);
	ck_assert_int_eq(s->nconn, 1);
	server_free(s);
}
END_TEST

START_TEST(call_retry_same_idempotency_key)
{
	static const struct step steps[] = {
		{ DROP, 0, NULL },
		{ RESPOND, 200, "{\"id\":\"pi_1\"}" },
	};
	struct server *s = server_start(steps, 2);
	json_t *params = json_pack("{s:i,s:s}", "amount", 999, "currency", "usd");
	json_t *out = NULL;
	char a[256], b[256];
	cd_buf log = CD_BUF_INIT;

	capture_begin();
	ck_assert_int_eq(stripe_call("POST", "/v1/payment_intents", params,
	    "booking-5", &out), CD_OK);
	capture_end(&log);
	json_decref(out);
	json_decref(params);
	server_stop(s);

	ck_assert_int_eq(s->nreq, 2);
	ck_assert_int_eq(s->nconn, 2);
	ck_assert_str_eq(header_of(&s->reqs[0], "Idempotency-Key", a, sizeof(a)),
	    "booking-5");
	ck_assert_str_eq(header_of(&s->reqs[1], "Idempotency-Key", b, sizeof(b)),
	    "booking-5");
	ck_assert_str_eq(body_of(&s->reqs[0]), body_of(&s->reqs[1]));
	ck_assert_ptr_nonnull(strstr(log.data, "stripe POST /v1/payment_intents: "));
	ck_assert_ptr_nonnull(strstr(log.data, "; retrying"));
	ck_assert_ptr_null(strstr(log.data, "SECRET"));
	ck_assert_ptr_null(strstr(log.data, "amount"));
	buf_free(&log);
	server_free(s);
}
END_TEST

START_TEST(call_post_without_key_not_retried)
{
	static const struct step steps[] = {
		{ DROP, 0, NULL },
		{ RESPOND, 200, "{\"id\":\"x\"}" },
	};
	struct server *s = server_start(steps, 2);
	json_t *out = (json_t *)1;
	cd_buf log = CD_BUF_INIT;

	capture_begin();
	ck_assert_int_eq(stripe_call("POST", "/v1/customers/cus_1", NULL, NULL,
	    &out), CD_STRIPE);
	capture_end(&log);
	ck_assert_ptr_null(out);
	ck_assert_ptr_null(strstr(log.data, "retrying"));
	buf_free(&log);
	server_stop(s);
	ck_assert_int_eq(s->nreq, 1);
	server_free(s);
}
END_TEST

START_TEST(call_timeout_retried_once)
{
	static const struct step steps[] = {
		{ HANG, 0, NULL },
		{ HANG, 0, NULL },
		{ RESPOND, 200, "{}" },
	};
	struct server *s = server_start(steps, 3);
	json_t *out = (json_t *)1;
	cd_buf log = CD_BUF_INIT;

	tcfg.stripe_timeout_ms = 300;
	capture_begin();
	ck_assert_int_eq(stripe_call("GET", "/v1/events", NULL, NULL, &out),
	    CD_STRIPE);
	capture_end(&log);
	ck_assert_ptr_null(out);
	server_stop(s);
	ck_assert_int_eq(s->nreq, 2);
	ck_assert_ptr_nonnull(strstr(log.data, "timed out"));
	buf_free(&log);
	server_free(s);
}
END_TEST

START_TEST(call_http_error)
{
	static const struct step steps[] = {
		{ RESPOND, 400, "{\"error\":{\"message\":\"No such price: "
		    "'price_x'\",\"type\":\"invalid_request_error\"}}" },
	};
	struct server *s = server_start(steps, 1);
	json_t *params = json_pack("{s:s}", "price", "unit_private_param");
	json_t *out = (json_t *)1;
	cd_buf log = CD_BUF_INIT;

	capture_begin();
	ck_assert_int_eq(stripe_call("POST", "/v1/checkout/sessions", params,
	    "k1", &out), CD_STRIPE);
	capture_end(&log);
	ck_assert_ptr_null(out);
	json_decref(params);
	server_stop(s);
	ck_assert_int_eq(s->nreq, 1);	/* an answer is never retried */
	ck_assert_ptr_nonnull(strstr(log.data, "stripe POST /v1/checkout/"
	    "sessions: HTTP 400: No such price: 'price_x'\n"));
	ck_assert_ptr_null(strstr(log.data, "SECRET"));
	ck_assert_ptr_null(strstr(log.data, "unit_private_param"));
	buf_free(&log);
	server_free(s);
}
END_TEST

START_TEST(call_response_too_large)
{
	static const struct step steps[] = {
		{ HUGE, 0, NULL },
		{ RESPOND, 200, "{}" },
	};
	struct server *s = server_start(steps, 2);
	json_t *out = (json_t *)1;
	cd_buf log = CD_BUF_INIT;

	capture_begin();
	ck_assert_int_eq(stripe_call("GET", "/v1/events", NULL, NULL, &out),
	    CD_STRIPE);
	capture_end(&log);
	ck_assert_ptr_null(out);
	server_stop(s);
	ck_assert_int_eq(s->nreq, 1);
	ck_assert_ptr_nonnull(strstr(log.data, "response larger than"));
	buf_free(&log);
	server_free(s);
}
END_TEST

START_TEST(call_refused_and_bad_setup)
{
	static const struct step none[] = { { RESPOND, 200, "{}" } };
	struct server *s = server_start(none, 1);
	json_t *out = (json_t *)1;
	cd_buf log = CD_BUF_INIT;

	capture_begin();
	/* Nothing listens on port 1. */
	tcfg.stripe_api_base = "http://127.0.0.1:1";
	ck_assert_int_eq(stripe_call("POST", "/v1/refunds", NULL, NULL, &out),
	    CD_STRIPE);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(stripe_call("DELETE", "/v1/x", NULL, NULL, &out),
	    CD_INTERNAL);
	ck_assert_int_eq(stripe_call("POST", "/v1/x", NULL, "a\r\nX-Evil: 1",
	    &out), CD_INTERNAL);
	ck_assert_int_eq(stripe_call("GET", "v1/no-slash", NULL, NULL, &out),
	    CD_INTERNAL);
	tcfg.stripe_secret_key = "";
	ck_assert_int_eq(stripe_call("GET", "/v1/x", NULL, NULL, &out),
	    CD_INTERNAL);
	capture_end(&log);
	server_stop(s);
	ck_assert_int_eq(s->nreq, 0);
	/* A refused connection never reached Stripe, so even a bare POST is
	 * tried twice. */
	ck_assert_ptr_nonnull(strstr(log.data, "; retrying"));
	buf_free(&log);
	server_free(s);
}
END_TEST

/* ---- Webhook signatures ------------------------------------------------- */

#define EVT1		"{\"id\":\"evt_1\"}"
#define T1		1700000000LL
/* HMAC-SHA256 of "1700000000.{"id":"evt_1"}" under whsec_test / whsec_old */
#define SIG_TEST	"c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
#define SIG_OLD		"ef1b1b7e4b312671a75ef2a03e10529f7834a6528a49db77ad6568c8c8017843"
/* of "1700000000.a\0b" (with the NUL) under whsec_test */
#define SIG_NUL		"473ed9fa197a1ed3d5a0ed5c700ee596ef1ec944994ae1cb6e8c59bd4990dba3"
#define H1		"t=1700000000,v1=" SIG_TEST

static const char *const test_secret[] = { "whsec_test" };

static cd_sig
verify(const char *header, const char *payload, long long now)
{
	return stripe_sig_verify(header, payload, strlen(payload), test_secret,
	    1, now, 300);
}

START_TEST(sig_stripe_docs_example)
{
	/*
	 * The header from Stripe's "verify manually" documentation.  Its
	 * secret and payload are not published, so it can only show that
	 * such a header parses (a mismatch, not malformed) and that v0 is
	 * ignored.  The same shape with our own vector must verify.
	 */
	const char *docs = "t=1492774577,"
	    "v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,"
	    "v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39";
	/* printf '%s' '1492774577.{"id":"evt_doc"}' | openssl dgst -sha256 -hmac whsec_doc */
	const char *ours = "t=1492774577,"
	    "v1=ba25c31aa81b84d0ab10ab045847bad23fd1ea30c9eabd4d00c8bb8fb02f14b9,"
	    "v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39";
	const char *v0only = "t=1492774577,"
	    "v0=ba25c31aa81b84d0ab10ab045847bad23fd1ea30c9eabd4d00c8bb8fb02f14b9";
	const char *secret[] = { "whsec_doc" };
	const char *p = "{\"id\":\"evt_doc\"}";

	ck_assert_int_eq(stripe_sig_verify(docs, p, strlen(p), secret, 1,
	    1492774577, 300), SIG_MISMATCH);
	ck_assert_int_eq(stripe_sig_verify(ours, p, strlen(p), secret, 1,
	    1492774577, 300), SIG_OK);
	/* A correct MAC under another scheme is not accepted (downgrade). */
	ck_assert_int_eq(stripe_sig_verify(v0only, p, strlen(p), secret, 1,
	    1492774577, 300), SIG_MALFORMED);
}
END_TEST

START_TEST(sig_known_vector)
{
	cd_buf b = CD_BUF_INIT;

	ck_assert_int_eq(verify(H1, EVT1, T1), SIG_OK);
	stripe_sig_sign("whsec_test", T1, EVT1, strlen(EVT1), &b);
	ck_assert_str_eq(buf_cstr(&b), H1);
	buf_reset(&b);
	stripe_sig_sign("whsec_old", T1, EVT1, strlen(EVT1), &b);
	ck_assert_str_eq(buf_cstr(&b), "t=1700000000,v1=" SIG_OLD);
	buf_free(&b);
}
END_TEST

START_TEST(sig_tolerance_window)
{
	ck_assert_int_eq(verify(H1, EVT1, T1 + 300), SIG_OK);
	ck_assert_int_eq(verify(H1, EVT1, T1 + 301), SIG_STALE);
	ck_assert_int_eq(verify(H1, EVT1, T1 - 300), SIG_OK);
	ck_assert_int_eq(verify(H1, EVT1, T1 - 301), SIG_STALE);  /* future */
	ck_assert_int_eq(verify(H1, EVT1, 0), SIG_STALE);
	ck_assert_int_eq(verify(H1, EVT1, LLONG_MIN), SIG_STALE);
	ck_assert_int_eq(verify(H1, EVT1, LLONG_MAX), SIG_STALE);
	/* The signature is checked first: a forgery is never "stale". */
	ck_assert_int_eq(verify(H1, "{\"id\":\"evt_2\"}", T1 + 10000),
	    SIG_MISMATCH);
	/* A negative tolerance means no slack at all. */
	ck_assert_int_eq(stripe_sig_verify(H1, EVT1, strlen(EVT1), test_secret,
	    1, T1, -5), SIG_OK);
	ck_assert_int_eq(stripe_sig_verify(H1, EVT1, strlen(EVT1), test_secret,
	    1, T1 + 1, -5), SIG_STALE);
}
END_TEST

START_TEST(sig_tampering)
{
	char h[128];

	ck_assert_int_eq(verify(H1, "{\"id\":\"evt_2\"}", T1), SIG_MISMATCH);
	ck_assert_int_eq(verify(H1, "{\"id\":\"evt_1\"} ", T1), SIG_MISMATCH);
	ck_assert_int_eq(verify(H1, "", T1), SIG_MISMATCH);
	/* Each signature digit flipped in turn. */
	for (size_t i = 16; i < strlen(H1); i++) {
		snprintf(h, sizeof(h), "%s", H1);
		h[i] = h[i] == '0' ? '1' : '0';
		ck_assert_int_eq(verify(h, EVT1, T1), SIG_MISMATCH);
	}
	/* Another t changes the signed text. */
	ck_assert_int_eq(verify("t=1700000001,v1=" SIG_TEST, EVT1, T1),
	    SIG_MISMATCH);
	ck_assert_int_eq(stripe_sig_verify(H1, EVT1, strlen(EVT1),
	    (const char *[]){ "whsec_tesT" }, 1, T1, 300), SIG_MISMATCH);
	ck_assert_int_eq(stripe_sig_verify(H1, EVT1, strlen(EVT1), NULL, 0, T1,
	    300), SIG_MISMATCH);
}
END_TEST

START_TEST(sig_multiple_v1_and_rotation)
{
	const char *rot[] = { "whsec_new", "whsec_test" };
	const char *old[] = { "whsec_old" };
	const char *both = "t=1700000000,v1=" SIG_OLD ",v1=" SIG_TEST;

	ck_assert_int_eq(verify("t=1700000000,v1=" "00000000000000000000000000"
	    "00000000000000000000000000000000000000,v1=" SIG_TEST, EVT1, T1),
	    SIG_OK);
	ck_assert_int_eq(verify("v1=" SIG_TEST ",t=1700000000", EVT1, T1),
	    SIG_OK);
	ck_assert_int_eq(stripe_sig_verify(H1, EVT1, strlen(EVT1), rot, 2, T1,
	    300), SIG_OK);
	ck_assert_int_eq(stripe_sig_verify(both, EVT1, strlen(EVT1), old, 1, T1,
	    300), SIG_OK);
	ck_assert_int_eq(stripe_sig_verify(both, EVT1, strlen(EVT1), rot, 2, T1,
	    300), SIG_OK);
	ck_assert_int_eq(stripe_sig_verify(H1, EVT1, strlen(EVT1), old, 1, T1,
	    300), SIG_MISMATCH);
	/*
	 * Upper-case hex is not a v1 (stripe-python compares lower-case
	 * text): ignored, so alone it leaves no v1, beside a good one it
	 * changes nothing.
	 */
	ck_assert_int_eq(verify("t=1700000000,v1=C89214B5B5DA833DAED6F0B8C5BB6B"
	    "D58CEA9022BD80CCC78230F3942D632925", EVT1, T1), SIG_MALFORMED);
	ck_assert_int_eq(verify("t=1700000000,v1=C89214B5B5DA833DAED6F0B8C5BB6B"
	    "D58CEA9022BD80CCC78230F3942D632925,v1=" SIG_TEST, EVT1, T1), SIG_OK);
	ck_assert_int_eq(verify("t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6b"
	    "d58cea9022bd80ccc78230f3942d63292F", EVT1, T1), SIG_MALFORMED);
	/* Unknown keys, an empty key and an empty value are ignored. */
	ck_assert_int_eq(verify("t=1700000000,foo=1,v2=x,v0=y,=z,v1=,"
	    " v1=" SIG_OLD ",v1=" SIG_TEST, EVT1, T1), SIG_OK);
}
END_TEST

START_TEST(sig_empty_secret_never_used)
{
	const char *empty[] = { "", NULL };
	cd_buf b = CD_BUF_INIT;

	/* Anyone can compute a MAC under the empty key. */
	stripe_sig_sign("", T1, EVT1, strlen(EVT1), &b);
	ck_assert_int_eq(stripe_sig_verify(buf_cstr(&b), EVT1, strlen(EVT1),
	    empty, 2, T1, 300), SIG_MISMATCH);
	buf_free(&b);
}
END_TEST

START_TEST(sig_nul_in_payload)
{
	const char *h = "t=1700000000,v1=" SIG_NUL;

	ck_assert_int_eq(stripe_sig_verify(h, "a\0b", 3, test_secret, 1, T1,
	    300), SIG_OK);
	ck_assert_int_eq(stripe_sig_verify(h, "a", 1, test_secret, 1, T1, 300),
	    SIG_MISMATCH);
	ck_assert_int_eq(stripe_sig_verify(h, "a\0c", 3, test_secret, 1, T1,
	    300), SIG_MISMATCH);
	ck_assert_int_eq(stripe_sig_verify(h, "a\0b\0", 4, test_secret, 1, T1,
	    300), SIG_MISMATCH);
}
END_TEST

START_TEST(sig_malformed)
{
	static const char *const bad[] = {
		"",
		"t=",
		"v1=abc",
		"t=1700000000",
		"v1=" SIG_TEST,
		"t=,v1=" SIG_TEST,
		"t=12a,v1=" SIG_TEST,
		"t=-1700000000,v1=" SIG_TEST,
		"t=+1700000000,v1=" SIG_TEST,
		"t=1700000000.5,v1=" SIG_TEST,
		"t= 1700000000,v1=" SIG_TEST,
		"t=1700000000 ,v1=" SIG_TEST,
		" t=1700000000,v1=" SIG_TEST,
		"t=1700000000, v1=" SIG_TEST,
		"t=1700000000,v1=" SIG_TEST " ",
		"t=1700000000,v1 =" SIG_TEST,
		"T=1700000000,v1=" SIG_TEST,
		"t=1700000000,V1=" SIG_TEST,
		"t=1700000000;v1=" SIG_TEST,
		"t=9223372036854775808,v1=" SIG_TEST,
		"t=99999999999999999999999999,v1=" SIG_TEST,
		"t=1700000000,t=1700000000,v1=" SIG_TEST,
		"t=1700000000,v1=" SIG_TEST "0",
		"t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc"
		    "78230f3942d63292",
		"t=1700000000,v1=g89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc"
		    "78230f3942d632925",
		"t=1700000000,v1=0x9214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc"
		    "78230f3942d632925",
		"t=1700000000,v1=",
		"t=1700000000=1,v1=" SIG_TEST,
		"t1700000000,v1" SIG_TEST,
		",,,",
		/* Every item is key=value with one '=' (stripe-go's rule). */
		",t=1700000000,v1=" SIG_TEST,
		"t=1700000000,,v1=" SIG_TEST,
		"t=1700000000,v1=" SIG_TEST ",",
		"t=1700000000,foo,v1=" SIG_TEST,
		"t=1700000000,v0=a=b,v1=" SIG_TEST,
		"t=1700000000,v1=" SIG_TEST "=",
		"t=1700000000,v1==" SIG_TEST,
		/* Upper-case hex is no v1, so none is left. */
		"t=1700000000,v1=C89214B5B5DA833DAED6F0B8C5BB6BD58CEA9022BD80CCC"
		    "78230F3942D632925",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(verify(bad[i], EVT1, T1) == SIG_MALFORMED,
		    "header %zu (%s) not rejected as malformed", i, bad[i]);
	ck_assert_int_eq(stripe_sig_verify(NULL, EVT1, strlen(EVT1),
	    test_secret, 1, T1, 300), SIG_MALFORMED);
}
END_TEST

START_TEST(sig_extreme_timestamps)
{
	cd_buf b = CD_BUF_INIT;

	/* The largest t still parses; it is stale for any sane clock. */
	stripe_sig_sign("whsec_test", LLONG_MAX, EVT1, strlen(EVT1), &b);
	ck_assert_int_eq(strncmp(b.data, "t=9223372036854775807,v1=", 25), 0);
	ck_assert_int_eq(verify(b.data, EVT1, T1), SIG_STALE);
	ck_assert_int_eq(verify(b.data, EVT1, LLONG_MIN), SIG_STALE);
	ck_assert_int_eq(verify(b.data, EVT1, LLONG_MAX), SIG_OK);
	buf_reset(&b);
	stripe_sig_sign("whsec_test", 0, EVT1, strlen(EVT1), &b);
	ck_assert_int_eq(verify(b.data, EVT1, 0), SIG_OK);
	ck_assert_int_eq(verify(b.data, EVT1, LLONG_MIN), SIG_STALE);
	ck_assert_int_eq(verify(b.data, EVT1, -300), SIG_OK);
	/* Leading zeros name the same t, which is what is signed. */
	ck_assert_int_eq(verify("t=0001700000000,v1=" SIG_TEST, EVT1, T1),
	    SIG_OK);
	buf_free(&b);
}
END_TEST

START_TEST(sig_sign_roundtrip)
{
	const char *secrets[] = { "whsec_a", "whsec_b" };
	char payload[300];
	cd_buf b = CD_BUF_INIT;
	size_t n;

	for (n = 0; n < sizeof(payload); n++)
		payload[n] = (char)(n * 7);
	for (n = 0; n <= sizeof(payload); n += 23) {
		buf_reset(&b);
		stripe_sig_sign(secrets[n % 2], T1 + (long long)n, payload, n,
		    &b);
		ck_assert_int_eq(stripe_sig_verify(b.data, payload, n, secrets,
		    2, T1 + (long long)n, 300), SIG_OK);
		ck_assert_int_eq(stripe_sig_verify(b.data, payload, n,
		    secrets + (n % 2 ? 0 : 1), 1, T1 + (long long)n, 300),
		    SIG_MISMATCH);
	}
	buf_free(&b);
}
END_TEST

/* ---- Crypto ------------------------------------------------------------- */

START_TEST(crypto_sha256)
{
	char h[CD_SHA256_HEX];

	sha256_hex("abc", 3, h);
	ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
	sha256_hex("", 0, h);
	ck_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855");
}
END_TEST

START_TEST(crypto_hmac)
{
	char h[CD_SHA256_HEX];
	const char *d2 = "what do ya want for nothing?";

	/* RFC 4231 test cases 2 and 1. */
	hmac_sha256_hex("Jefe", d2, strlen(d2), h);
	ck_assert_str_eq(h, "5bdcc146bf60754e6a042426089575c7"
	    "5a003f089d2739839dec58b964ec3843");
	hmac_sha256_hex("\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b"
	    "\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b", "Hi There", 8, h);
	ck_assert_str_eq(h, "b0344c61d8db38535ca8afceaf0bf12b"
	    "881dc200c9833da726e9376c2e32cff7");
	/* The webhook vector, through the general helper. */
	hmac_sha256_hex("whsec_test", "1700000000." EVT1,
	    strlen("1700000000." EVT1), h);
	ck_assert_str_eq(h, SIG_TEST);
}
END_TEST

START_TEST(crypto_ct_equal)
{
	ck_assert(ct_equal("abcdef", "abcdef", 6));
	ck_assert(!ct_equal("abcdef", "abcdeg", 6));
	ck_assert(!ct_equal("Abcdef", "abcdef", 6));
	ck_assert(ct_equal("abc", "abd", 2));
	ck_assert(ct_equal("x", "y", 0));
}
END_TEST

START_TEST(crypto_password_roundtrip)
{
	cd_buf a = CD_BUF_INIT, b = CD_BUF_INIT;
	const char *salt, *hash;

	ck_assert_int_eq(password_hash("correct horse", &a), 0);
	ck_assert_int_eq(password_hash("correct horse", &b), 0);
	ck_assert_int_eq(strncmp(a.data, "scrypt$16384$8$1$", 17), 0);
	salt = a.data + 17;
	ck_assert_ptr_nonnull(hash = strchr(salt, '$'));
	ck_assert_int_eq(hash - salt, 24);		/* 16 bytes */
	ck_assert_uint_eq(strlen(hash + 1), 44);	/* 32 bytes */
	ck_assert_uint_eq(a.len, 17 + 24 + 1 + 44);
	/* A fresh salt each time. */
	ck_assert_str_ne(a.data, b.data);
	ck_assert_int_ne(strncmp(a.data, b.data, 17 + 24), 0);
	ck_assert(password_verify("correct horse", a.data));
	ck_assert(password_verify("correct horse", b.data));
	ck_assert(!password_verify("correct horsE", a.data));
	ck_assert(!password_verify("correct horse ", a.data));
	ck_assert(!password_verify("", a.data));
	ck_assert(!password_verify(NULL, a.data));
	ck_assert(!password_verify("correct horse", NULL));
	buf_reset(&a);
	ck_assert_int_eq(password_hash("", &a), 0);
	ck_assert(password_verify("", a.data));
	ck_assert(!password_verify(" ", a.data));
	ck_assert_int_eq(password_hash(NULL, &b), -1);
	buf_free(&a);
	buf_free(&b);
}
END_TEST

START_TEST(crypto_password_vectors)
{
	/* RFC 7914 section 12: scrypt("password", "NaCl", 1024, 8, 16, 64). */
	const char *rfc = "scrypt$1024$8$16$TmFDbA==$/bq+HJ00cgB4VucZDQHp/nxq18vI"
	    "I3gw53N2Y0s3MWIurzDZLiKjiG/xCSedmDDaxyevuUqD7m2DYMvfoswGQA==";
	/* openssl kdf -keylen 32 -kdfopt pass:'correct horse'
	 *   -kdfopt salt:saltsaltsaltsalt -kdfopt n:16384 -kdfopt r:8
	 *   -kdfopt p:1 SCRYPT, in base64. */
	const char *ours = "scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
	    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=";

	ck_assert(password_verify("password", rfc));
	ck_assert(!password_verify("passwore", rfc));
	ck_assert(password_verify("correct horse", ours));
	ck_assert(!password_verify("correct horse!", ours));
}
END_TEST

START_TEST(crypto_password_tampered)
{
	static const char *const bad[] = {
		/* each a small change to the valid vector above */
		"scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "2idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdQ==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$8192$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$8$2$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		/* non-canonical base64: same bytes, other trailing bits */
		"scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdB==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKZ=",
		/* syntax */
		"scrypt$016384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$+16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=$",
		"scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY= ",
		"scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==",
		"scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$",
		"scrypt$16384$8$1$$1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$8$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$8$1$c2FsdHNh bHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY",
		"Scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"bcrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"",
		"scrypt$",
		/* out-of-bounds parameters, rejected before any work */
		"scrypt$16385$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$1$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$0$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$1048576$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$1073741824$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$18446744073709551616$8$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$0$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$64$1$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$8$0$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$8$17$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$8$1000000$c2FsdHNhbHRzYWx0c2FsdA==$"
		    "1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		/* salt and key lengths out of range */
		"scrypt$16384$8$1$YWJj$1idRgu6ns74sljt005o5BblTKV7Jul0HPGT6aXWnXKY=",
		"scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$YWJjZGVm",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!password_verify("correct horse", bad[i]),
		    "tampered hash %zu accepted: %s", i, bad[i]);
}
END_TEST

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

START_TEST(crypto_random_token)
{
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	enum { N = 2000 };
	static char tok[N][CD_TOKEN_LEN + 1];
	int seen[256] = { 0 };
	size_t i, j;

	for (i = 0; i < N; i++) {
		ck_assert_int_eq(random_token(tok[i]), 0);
		ck_assert_uint_eq(strlen(tok[i]), CD_TOKEN_LEN);
		ck_assert_uint_eq(strspn(tok[i], alpha), CD_TOKEN_LEN);
		/* 256 bits in 43 characters: the last holds 4 bits, 2 zero. */
		ck_assert_int_eq((int)(strchr(alpha, tok[i][42]) - alpha) % 4, 0);
		for (j = 0; j < CD_TOKEN_LEN; j++)
			seen[(unsigned char)tok[i][j]]++;
	}
	/* Every character of the alphabet shows up. */
	for (j = 0; j < 64; j++)
		ck_assert_int_gt(seen[(unsigned char)alpha[j]], 0);
	qsort(tok, N, sizeof(tok[0]), cmp_str);
	for (i = 1; i < N; i++)
		ck_assert_str_ne(tok[i - 1], tok[i]);
}
END_TEST

/* ---- Runner ------------------------------------------------------------- */

/* A Stripe id is its prefix and a safe body: never a path or a query. */
START_TEST(stripe_ids)
{
	ck_assert(stripe_id_ok("cs_test_a1B2", "cs_"));
	ck_assert(!stripe_id_ok("cs_", "cs_"));
	ck_assert(!stripe_id_ok("pi_123", "cs_"));
	ck_assert(!stripe_id_ok("cs_../../v1/x", "cs_"));
	ck_assert(!stripe_id_ok("cs_a?b", "cs_"));
	ck_assert(!stripe_id_ok(NULL, "cs_"));
}
END_TEST

static Suite *
stripe_suite(void)
{
	Suite *s = suite_create("stripe");
	TCase *form = tcase_create("form");
	TCase *resp = tcase_create("response");
	TCase *call = tcase_create("call");
	TCase *sig = tcase_create("signature");
	TCase *cry = tcase_create("crypto");

	tcase_add_test(form, form_scalars);
	tcase_add_test(form, form_nested_metadata);
	tcase_add_test(form, form_line_items);
	tcase_add_test(form, form_special_chars);
	tcase_add_test(form, form_keys_are_encoded);
	tcase_add_test(form, form_arrays_and_empties);
	tcase_add_test(form, form_reals);
	tcase_add_test(form, form_nul_and_append);
	tcase_add_test(form, url_building);
	tcase_add_test(form, stripe_ids);
	suite_add_tcase(s, form);

	tcase_add_test(resp, response_ok);
	tcase_add_test(resp, response_bad_bodies);
	tcase_add_test(resp, response_error_logged);
	tcase_add_test(resp, response_error_detail);
	tcase_add_test(resp, response_idempotency_conflict);
	tcase_add_test(resp, list_pages_and_limit);
	suite_add_tcase(s, resp);

	tcase_set_timeout(call, 30);
	tcase_add_test(call, call_get_ok_and_reuse);
	tcase_add_test(call, call_post_body_and_headers);
	tcase_add_test(call, call_retry_same_idempotency_key);
	tcase_add_test(call, call_post_without_key_not_retried);
	tcase_add_test(call, call_timeout_retried_once);
	tcase_add_test(call, call_http_error);
	tcase_add_test(call, call_response_too_large);
	tcase_add_test(call, call_refused_and_bad_setup);
	suite_add_tcase(s, call);

	tcase_add_test(sig, sig_stripe_docs_example);
	tcase_add_test(sig, sig_known_vector);
	tcase_add_test(sig, sig_tolerance_window);
	tcase_add_test(sig, sig_tampering);
	tcase_add_test(sig, sig_multiple_v1_and_rotation);
	tcase_add_test(sig, sig_empty_secret_never_used);
	tcase_add_test(sig, sig_nul_in_payload);
	tcase_add_test(sig, sig_malformed);
	tcase_add_test(sig, sig_extreme_timestamps);
	tcase_add_test(sig, sig_sign_roundtrip);
	suite_add_tcase(s, sig);

	tcase_set_timeout(cry, 60);	/* scrypt under valgrind is slow */
	tcase_add_test(cry, crypto_sha256);
	tcase_add_test(cry, crypto_hmac);
	tcase_add_test(cry, crypto_ct_equal);
	tcase_add_test(cry, crypto_password_roundtrip);
	tcase_add_test(cry, crypto_password_vectors);
	tcase_add_test(cry, crypto_password_tampered);
	tcase_add_test(cry, crypto_random_token);
	suite_add_tcase(s, cry);
	return s;
}


int
main(void)
{
	return unit_run(stripe_suite());
}

