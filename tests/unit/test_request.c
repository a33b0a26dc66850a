/*
 * Unit tests for request parsing (src/core/request.c): media types, https
 * detection, Idempotency-Keys and declared-field validation.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "arena.h"
#include "request.h"
#include "unit.h"

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

START_TEST(idempotency_keys)
{
	static const char *const good[] = {
		"a", "0f9c2b7e5d1a4c3b8e6f0a9d2c4b6e8f", "order-17_v2.retry:1",
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	};
	static const char *const bad[] = {
		"", " ", "has space", "tab\t", "new\nline", "semi;colon", "\xc3\xa9",
		"slash/", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	};
	size_t i;

	ck_assert_uint_eq(strlen(good[3]), 64);
	ck_assert_uint_eq(strlen(bad[8]), 65);
	for (i = 0; i < sizeof(good) / sizeof(*good); i++)
		ck_assert_msg(idempotency_key_ok(good[i]), "%s refused", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ck_assert_msg(!idempotency_key_ok(bad[i]), "%s accepted", bad[i]);
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

/* A text field counts characters, not bytes, and refuses only-blank text. */
START_TEST(fields_text)
{
	static const cd_field text[] = { { "name", F_TEXT, F_REQUIRED, 1, 3, NULL } };
	static const struct {
		const char *body;
		cd_err err;
	} cases[] = {
		{ "{\"name\":\"abc\"}", CD_OK },
		{ "{\"name\":\"abcd\"}", CD_BAD_REQUEST },
		{ "{\"name\":\"\\u00e9\\u00e9\\u00e9\"}", CD_OK },		/* 6 bytes, 3 characters */
		{ "{\"name\":\"\\u540d\\ud83d\\ude00x\"}", CD_OK },	/* 3, 4 and 1 bytes */
		{ "{\"name\":\"\\u00e9\\u00e9\\u00e9\\u00e9\"}", CD_BAD_REQUEST },
		{ "{\"name\":\"\"}", CD_BAD_REQUEST },
		{ "{\"name\":\" \"}", CD_BAD_REQUEST },
		{ "{\"name\":\"\\t\\n\"}", CD_BAD_REQUEST },
		{ "{\"name\":\"\\u00a0\\u3000\\u200b\"}", CD_BAD_REQUEST },	/* Unicode blanks */
		{ "{\"name\":\"\\u00a0a\"}", CD_OK },
		{ "{\"name\":\"a\\u0000\"}", CD_BAD_REQUEST },
	};
	static cd_req r;
	cd_value v;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&r, 0, sizeof(r));
		r.arena = arena_new();
		r.json = json_loads(cases[i].body, JSON_ALLOW_NUL, NULL);
		ck_assert_ptr_nonnull(r.json);
		ck_assert_msg(req_fields(&r, text, 1, &v) == cases[i].err, "case %zu: %s",
		    i, cases[i].body);
		if (cases[i].err != CD_OK)
			ck_assert_str_eq(r.err_code, "invalid_name");
		json_decref(r.json);
		arena_free(r.arena);
	}
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

int
main(void)
{
	Suite *s = suite_create("request");
	TCase *tc = tcase_create("request");

	tcase_add_test(tc, media_type_exact);
	tcase_add_test(tc, https_from_cgi_or_public_url);
	tcase_add_test(tc, idempotency_keys);
	tcase_add_test(tc, fields_validate);
	tcase_add_test(tc, fields_normalise_email);
	tcase_add_test(tc, fields_text);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
