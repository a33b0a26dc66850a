/*
 * Unit tests for the pure parts of the core: routing, arena, buffer,
 * escapers, the error table, declared-field validation, media types and
 * what each database error number means.
 */
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "arena.h"
#include "buf.h"
#include "db.h"
#include "error.h"
#include "escape.h"
#include "fulfil.h"
#include "request.h"
#include "stripe.h"
#include "voice.h"

START_TEST(route_literal_and_ids)
{
	long long ids[4] = { 0 };

	ck_assert_int_eq(route_match("/api/me", "/api/me", ids, 4), 1);
	ck_assert_int_eq(route_match("/api/me", "/api/me/", ids, 4), 0);
	ck_assert_int_eq(route_match("/api/me", "/api/m", ids, 4), 0);
	ck_assert_int_eq(route_match("/api/x/{id}/book", "/api/x/42/book", ids, 4), 1);
	ck_assert_int_eq(ids[0], 42);
	ck_assert_int_eq(route_match("/a/{id}/b/{id}", "/a/7/b/9", ids, 4), 1);
	ck_assert_int_eq(ids[0], 7);
	ck_assert_int_eq(ids[1], 9);
}
END_TEST

START_TEST(route_rejects_bad_ids)
{
	long long ids[1];

	ck_assert_int_eq(route_match("/s/{id}", "/s/0", ids, 1), 0);
	ck_assert_int_eq(route_match("/s/{id}", "/s/-1", ids, 1), 0);
	ck_assert_int_eq(route_match("/s/{id}", "/s/01", ids, 1), 0);
	ck_assert_int_eq(route_match("/s/{id}", "/s/1x", ids, 1), 0);
	ck_assert_int_eq(route_match("/s/{id}", "/s/", ids, 1), 0);
	ck_assert_int_eq(route_match("/s/{id}", "/s/99999999999999999999", ids, 1), 0);
	ck_assert_int_eq(route_match("/s/{id}", "/s/9007199254740992", ids, 1), 0);
	ck_assert_int_eq(route_match("/s/{id}", "/s/9007199254740991", ids, 1), 1);
	ck_assert_int_eq(route_match("/s/{id}/{id}", "/s/1/2", ids, 1), 0);
}
END_TEST

START_TEST(media_type_exact)
{
	static const char *const json[] = {
		"application/json", "application/json; charset=utf-8",
		"Application/JSON", "APPLICATION/JSON;charset=UTF-8",
		"application/json ;charset=utf-8", "application/json\t",
	};
	static const char *const other[] = {
		"application/jsonx", "application/json-seq", "application/json+x",
		"application/jso", "application/x-www-form-urlencoded",
		"text/json", " application/json", "application/json, text/html",
		"application/json/x", "", "application/jsonp; charset=utf-8",
	};
	size_t i;

	for (i = 0; i < sizeof(json) / sizeof(*json); i++)
		ck_assert_msg(media_type_is(json[i], "application/json"),
		    "%s refused", json[i]);
	for (i = 0; i < sizeof(other) / sizeof(*other); i++)
		ck_assert_msg(!media_type_is(other[i], "application/json"),
		    "%s accepted", other[i]);
	ck_assert(!media_type_is(NULL, "application/json"));
}
END_TEST

START_TEST(https_from_cgi_or_public_url)
{
	ck_assert(reached_over_https("on", "http://127.0.0.1:8080"));
	ck_assert(reached_over_https(NULL, "https://creditdesk.example"));
	ck_assert(reached_over_https("", "HTTPS://creditdesk.example/"));
	ck_assert(!reached_over_https(NULL, "http://127.0.0.1:8080"));
	ck_assert(!reached_over_https("off", "http://creditdesk.example"));
	ck_assert(!reached_over_https(NULL, "httpsx://creditdesk.example"));
	ck_assert(!reached_over_https(NULL, NULL));
}
END_TEST

START_TEST(arena_allocates_and_resets)
{
	cd_arena *a = arena_new();
	char *big, *s;
	int i;

	for (i = 0; i < 1000; i++) {
		s = arena_printf(a, "item-%d", i);
		ck_assert_str_eq(s, arena_printf(a, "item-%d", i));
	}
	big = arena_alloc(a, 100000);
	memset(big, 'x', 100000);
	ck_assert_uint_eq((uintptr_t)big % sizeof(max_align_t), 0);
	arena_reset(a);
	s = arena_strndup(a, "abcdef", 3);
	ck_assert_str_eq(s, "abc");
	arena_free(a);
}
END_TEST

START_TEST(buf_grows)
{
	cd_buf b = CD_BUF_INIT;
	char *p;
	int i;

	ck_assert_str_eq(buf_cstr(&b), "");
	for (i = 0; i < 10000; i++)
		buf_printf(&b, "%d,", i % 10);
	ck_assert_uint_eq(b.len, 20000);
	buf_reset(&b);
	buf_puts(&b, "x");
	buf_putc(&b, 'y');
	p = buf_steal(&b);
	ck_assert_str_eq(p, "xy");
	ck_assert_ptr_null(b.data);
	free(p);
}
END_TEST

START_TEST(escapers)
{
	cd_buf b = CD_BUF_INIT;
	char s[64];

	esc_html(&b, "<a href=\"x\">Tom & 'Jerry'</a>", 30);
	ck_assert_str_eq(buf_cstr(&b),
	    "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
	buf_reset(&b);
	esc_url_arg(&b, "/dashboard?x=1&y=a b");
	ck_assert_str_eq(buf_cstr(&b), "%2Fdashboard%3Fx%3D1%26y%3Da%20b");
	buf_free(&b);

	strcpy(s, "a%20b+c%2F");
	ck_assert(url_decode(s));
	ck_assert_str_eq(s, "a b c/");
	strcpy(s, "bad%2");
	ck_assert(!url_decode(s));
	strcpy(s, "nul%00");
	ck_assert(!url_decode(s));
	strcpy(s, "%zz");
	ck_assert(!url_decode(s));

	ck_assert(local_path_ok("/dashboard"));
	ck_assert(local_path_ok("/chat/5?x=1"));
	ck_assert(!local_path_ok("//evil.example"));
	ck_assert(!local_path_ok("/\\evil.example"));
	ck_assert(!local_path_ok("https://evil.example"));
	ck_assert(!local_path_ok("/a\r\nSet-Cookie: x"));
	ck_assert(header_value_ok("text/html"));
	ck_assert(!header_value_ok("a\r\nb"));
}
END_TEST

START_TEST(error_table)
{
	ck_assert_int_eq(cd_err_status(CD_BAD_REQUEST), 400);
	ck_assert_int_eq(cd_err_status(CD_UNAUTHORIZED), 401);
	ck_assert_int_eq(cd_err_status(CD_PAYMENT_REQUIRED), 402);
	ck_assert_int_eq(cd_err_status(CD_FORBIDDEN), 403);
	ck_assert_int_eq(cd_err_status(CD_NOT_FOUND), 404);
	ck_assert_int_eq(cd_err_status(CD_METHOD_NOT_ALLOWED), 405);
	ck_assert_int_eq(cd_err_status(CD_CONFLICT), 409);
	ck_assert_int_eq(cd_err_status(CD_TOO_LARGE), 413);
	ck_assert_int_eq(cd_err_status(CD_UNSUPPORTED_MEDIA), 415);
	ck_assert_int_eq(cd_err_status(CD_STRIPE), 502);
	ck_assert_int_eq(cd_err_status(CD_DB), 503);
	ck_assert_int_eq(cd_err_status((cd_err)999), 500);
	ck_assert_str_eq(cd_err_code(CD_DB), "database_unavailable");
}
END_TEST

static const cd_field fields[] = {
	{ "quantity", F_INT, F_REQUIRED, 1, 5, NULL },
	{ "boostPackId", F_ID, 0, 1, 32, "Boost pack ID is required" },
	{ "email", F_EMAIL, 0, 3, 254, NULL },
	{ "name", F_STR, 0, 1, 10, NULL },
};

/* Validates body against the table with a request that has no FastCGI side. */
static cd_err
validate(const char *body, cd_value *v, const char **code)
{
	static cd_req r;
	cd_err err;

	memset(&r, 0, sizeof(r));
	r.arena = arena_new();
	r.json = json_loads(body, JSON_ALLOW_NUL, NULL);
	ck_assert_ptr_nonnull(r.json);
	err = req_fields(&r, fields, 4, v);
	*code = r.err_code ? strdup(r.err_code) : NULL;
	json_decref(r.json);
	arena_free(r.arena);
	return err;
}

START_TEST(fields_validate)
{
	static const struct {
		const char *body;
		cd_err err;
		const char *code;
	} cases[] = {
		{ "{\"quantity\":3}", CD_OK, NULL },
		{ "{\"quantity\":\"3\"}", CD_OK, NULL },
		{ "{\"quantity\":0}", CD_BAD_REQUEST, "invalid_quantity" },
		{ "{\"quantity\":6}", CD_BAD_REQUEST, "invalid_quantity" },
		{ "{\"quantity\":\"abc\"}", CD_BAD_REQUEST, "invalid_quantity" },
		{ "{\"quantity\":\"3 \"}", CD_BAD_REQUEST, "invalid_quantity" },
		{ "{\"quantity\":\" 3\"}", CD_BAD_REQUEST, "invalid_quantity" },
		{ "{\"quantity\":2.5}", CD_BAD_REQUEST, "invalid_quantity" },
		{ "{\"quantity\":true}", CD_BAD_REQUEST, "invalid_quantity" },
		{ "{\"quantity\":\"99999999999999999999\"}", CD_BAD_REQUEST, "invalid_quantity" },
		{ "{}", CD_BAD_REQUEST, "missing_quantity" },
		{ "{\"quantity\":null}", CD_BAD_REQUEST, "missing_quantity" },
		{ "{\"quantity\":1,\"boostPackId\":\"boost-small\"}", CD_OK, NULL },
		{ "{\"quantity\":1,\"boostPackId\":\"x y\"}", CD_BAD_REQUEST, "invalid_boost_pack_id" },
		{ "{\"quantity\":1,\"boostPackId\":\"\"}", CD_BAD_REQUEST, "invalid_boost_pack_id" },
		{ "{\"quantity\":1,\"email\":\"a@b.co\"}", CD_OK, NULL },
		{ "{\"quantity\":1,\"email\":\"a@b\"}", CD_BAD_REQUEST, "invalid_email" },
		{ "{\"quantity\":1,\"email\":\"a b@c.de\"}", CD_BAD_REQUEST, "invalid_email" },
		{ "{\"quantity\":1,\"name\":\"0123456789\"}", CD_OK, NULL },
		{ "{\"quantity\":1,\"name\":\"0123456789a\"}", CD_BAD_REQUEST, "invalid_name" },
		{ "{\"quantity\":1,\"name\":\"a\\u0000b\"}", CD_BAD_REQUEST, "invalid_name" },
		{ "{\"quantity\":1,\"name\":5}", CD_BAD_REQUEST, "invalid_name" },
	};
	const char *code;
	cd_value v[4];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cd_err err = validate(cases[i].body, v, &code);

		ck_assert_msg(err == cases[i].err, "case %zu (%s): got %d", i,
		    cases[i].body, (int)err);
		if (cases[i].code)
			ck_assert_str_eq(code, cases[i].code);
		else
			ck_assert_ptr_null(code);
		free((char *)code);
	}
	ck_assert_int_eq(validate("{\"quantity\":\"4\"}", v, &code), CD_OK);
	ck_assert(v[0].present);
	ck_assert_int_eq(v[0].i, 4);
	ck_assert(!v[1].present);
	ck_assert_int_eq(validate("{\"quantity\":1,\"email\":\"   \"}", v, &code),
	    CD_BAD_REQUEST);
	ck_assert_str_eq(code, "invalid_email");
	free((char *)code);
}
END_TEST

/* An email field hands the handler its normalised spelling. */
START_TEST(fields_normalise_email)
{
	static const cd_field email[] = { { "email", F_EMAIL, F_REQUIRED, 3, 254, NULL } };
	static cd_req r;
	cd_value v;

	memset(&r, 0, sizeof(r));
	r.arena = arena_new();
	r.json = json_loads("{\"email\":\" \\uff21da@Example.CO\\t\"}", 0, NULL);
	ck_assert_int_eq(req_fields(&r, email, 1, &v), CD_OK);
	ck_assert_str_eq(v.s, "ada@example.co");
	json_decref(r.json);
	arena_free(r.arena);
}
END_TEST

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

/* Voice minutes by the server's clock: capped, lowered by the client at most by the grace. */
START_TEST(voice_charge)
{
	/* elapsed, client, available minutes, grace -> seconds charged */
	ck_assert_int_eq(voice_charge_seconds(620, 100, 15, 30), 590);	/* early: grace only */
	ck_assert_int_eq(voice_charge_seconds(620, 600, 15, 30), 600);	/* within grace */
	ck_assert_int_eq(voice_charge_seconds(120, 900, 15, 30), 120);	/* client over: server */
	ck_assert_int_eq(voice_charge_seconds(920, 920, 15, 30), 900);	/* late: capped */
	ck_assert_int_eq(voice_charge_seconds(5000, 0, 15, 30), 870);	/* cap, less grace */
	ck_assert_int_eq(voice_charge_seconds(20, 0, 15, 30), 0);	/* never below 0 */
	ck_assert_int_eq(voice_charge_seconds(-3, 10, 15, 30), 0);	/* clock skew */
	ck_assert_int_eq(voice_charge_seconds(61, -1, 15, 30), 61);	/* no report */
	ck_assert_int_eq(voice_charge_seconds(61, 61, 0, 30), 0);	/* nothing available */
}
END_TEST

/*
 * Database errors: a node that cannot serve (gone, or cut off from its
 * cluster: 1047, or 1205/1213 while not ready) is never a conflict.
 */
START_TEST(db_error_classes)
{
	ck_assert_int_eq(db_classify(2013, false, true), DB_FAULT_GONE);	/* lost */
	ck_assert_int_eq(db_classify(2002, true, true), DB_FAULT_GONE);	/* refused */
	ck_assert_int_eq(db_classify(1047, true, false), DB_FAULT_GONE);	/* not primary */
	ck_assert_int_eq(db_classify(1180, true, true), DB_FAULT_GONE);	/* at COMMIT */
	ck_assert_int_eq(db_classify(1205, true, false), DB_FAULT_GONE);	/* causal read */
	ck_assert_int_eq(db_classify(1213, true, false), DB_FAULT_GONE);
	ck_assert_int_eq(db_classify(1205, true, true), DB_FAULT_BUSY);	/* lock wait */
	ck_assert_int_eq(db_classify(1213, true, true), DB_FAULT_BUSY);	/* certification */
	ck_assert_int_eq(db_classify(1205, false, false), DB_FAULT_BUSY);	/* one server */
	ck_assert_int_eq(db_classify(1213, false, true), DB_FAULT_BUSY);
	ck_assert_int_eq(db_classify(1062, true, false), DB_FAULT_KEY);	/* duplicate */
	ck_assert_int_eq(db_classify(4025, false, true), DB_FAULT_KEY);	/* CHECK */
	ck_assert_int_eq(db_classify(1452, false, true), DB_FAULT_KEY);	/* foreign key */
	ck_assert_int_eq(db_classify(1064, false, true), DB_FAULT_BROKEN);	/* syntax */
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("core");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, route_literal_and_ids);
	tcase_add_test(tc, route_rejects_bad_ids);
	tcase_add_test(tc, media_type_exact);
	tcase_add_test(tc, https_from_cgi_or_public_url);
	tcase_add_test(tc, arena_allocates_and_resets);
	tcase_add_test(tc, buf_grows);
	tcase_add_test(tc, escapers);
	tcase_add_test(tc, error_table);
	tcase_add_test(tc, fields_validate);
	tcase_add_test(tc, fields_normalise_email);
	tcase_add_test(tc, stripe_ids);
	tcase_add_test(tc, voice_charge);
	tcase_add_test(tc, db_error_classes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
