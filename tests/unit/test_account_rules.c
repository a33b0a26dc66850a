/*
 * Unit tests for the account rules: how emails are normalised, which
 * passwords are refused, and how long a throttled sign-in waits.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "account_rules.h"
#include "buf.h"
#include "unit.h"

/* The normalised spelling of s, or NULL when s is refused. */
static char *
norm(const char *s, size_t len)
{
	cd_buf b = CD_BUF_INIT;

	if (email_normalize(s, len, &b) != 0) {
		buf_free(&b);
		return NULL;
	}
	buf_cstr(&b);
	return buf_steal(&b);
}

static void
assert_norm(const char *in, const char *want)
{
	char *got = norm(in, strlen(in));

	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, want);
	free(got);
}

START_TEST(email_trimmed_and_lower_cased)
{
	assert_norm("  Ada@Example.TEST \t\n", "ada@example.test");
	assert_norm("ada@example.test", "ada@example.test");
	/* NBSP and the ideographic space are white space after NFKC */
	assert_norm("\xc2\xa0" "ada@example.test" "\xe3\x80\x80", "ada@example.test");
	/* non-ASCII capitals lower-case too: ÉMILE -> émile */
	assert_norm("\xc3\x89MILE@example.test", "\xc3\xa9mile@example.test");
}
END_TEST

START_TEST(email_nfkc)
{
	/* fullwidth letters and the "fi" ligature are their plain letters */
	assert_norm("\xef\xbc\xa1\xef\xbd\x84\xef\xbd\x81@example.test", "ada@example.test");
	assert_norm("\xef\xac\x81nn@example.test", "finn@example.test");
	/* U+210C (black-letter H) is an H, which then lower-cases */
	assert_norm("\xe2\x84\x8c" "ans@example.test", "hans@example.test");
	/* e + combining acute composes to one é */
	assert_norm("e\xcc\x81mile@example.test", "\xc3\xa9mile@example.test");
}
END_TEST

START_TEST(email_look_alikes_stay_distinct)
{
	char *latin = norm("paypal@example.test", 19);
	/* Cyrillic а (U+0430) in place of the first Latin a */
	char *cyrillic = norm("p\xd0\xb0ypal@example.test", 20);

	ck_assert_ptr_nonnull(latin);
	ck_assert_ptr_nonnull(cyrillic);
	ck_assert_str_ne(latin, cyrillic);
	free(latin);
	free(cyrillic);
	/* ß is not folded into ss (a collation would have) */
	assert_norm("stra\xc3\x9f" "e@example.test", "stra\xc3\x9f" "e@example.test");
}
END_TEST

START_TEST(email_invalid_utf8_refused)
{
	ck_assert_ptr_null(norm("a\xff@example.test", 15));
	ck_assert_ptr_null(norm("a\xc3@example.test", 15));
	assert_norm("   ", "");
}
END_TEST

static cd_pw_verdict
check(const char *pw)
{
	const char *why;

	return password_check(pw, &why);
}

START_TEST(password_length_in_characters)
{
	ck_assert_int_eq(check(""), PW_TOO_SHORT);
	ck_assert_int_eq(check("Xk4-Pq9zw"), PW_TOO_SHORT);		/* 9 */
	ck_assert_int_eq(check("Xk4-Pq9zwW"), PW_OK);			/* 10 */
	/* nine characters but eighteen bytes: still too short */
	ck_assert_int_eq(check("\xc3\xa9\xc3\xa0\xc3\xbc\xc3\xb6\xc3\xa7"
	    "\xc3\xb1\xc3\xa5\xc3\xb8\xc3\xa6"), PW_TOO_SHORT);
}
END_TEST

START_TEST(password_one_character_refused)
{
	ck_assert_int_eq(check("aaaaaaaaaaaa"), PW_ONE_CHARACTER);
	ck_assert_int_eq(check("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"), PW_ONE_CHARACTER);
	ck_assert_int_ne(check("aaaaaaaaaab"), PW_ONE_CHARACTER);
}
END_TEST

START_TEST(password_common_refused)
{
	const char *why = NULL;

	/* words and patterns from the cracklib dictionary */
	ck_assert_int_eq(password_check("password123", &why), PW_GUESSABLE);
	ck_assert_ptr_nonnull(why);
	ck_assert_int_eq(check("qwertyuiop"), PW_GUESSABLE);
	ck_assert_int_eq(check("football123"), PW_GUESSABLE);
	ck_assert_int_eq(check("1234567890"), PW_GUESSABLE);
	ck_assert_int_eq(check("abcdefghijkl"), PW_GUESSABLE);
	/* fine ones, the demo data's included */
	ck_assert_int_eq(password_check("correct horse battery 1a2b", &why), PW_OK);
	ck_assert_ptr_null(why);
	ck_assert_int_eq(check("demo-password"), PW_OK);
	ck_assert_int_eq(check("Xk4-Pq9z-wW2m"), PW_OK);
}
END_TEST

START_TEST(signin_lock_doubles_up_to_cap)
{
	ck_assert_int_eq(signin_lock_seconds(0, 10, 60, 86400), 0);
	ck_assert_int_eq(signin_lock_seconds(9, 10, 60, 86400), 0);
	ck_assert_int_eq(signin_lock_seconds(10, 10, 60, 86400), 60);
	ck_assert_int_eq(signin_lock_seconds(11, 10, 60, 86400), 120);
	ck_assert_int_eq(signin_lock_seconds(12, 10, 60, 86400), 240);
	ck_assert_int_eq(signin_lock_seconds(20, 10, 60, 86400), 61440);
	ck_assert_int_eq(signin_lock_seconds(21, 10, 60, 86400), 86400);
	ck_assert_int_eq(signin_lock_seconds(1000000, 10, 60, 86400), 86400);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("account");
	TCase *tc = tcase_create("account");

	tcase_add_test(tc, email_trimmed_and_lower_cased);
	tcase_add_test(tc, email_nfkc);
	tcase_add_test(tc, email_look_alikes_stay_distinct);
	tcase_add_test(tc, email_invalid_utf8_refused);
	tcase_add_test(tc, password_length_in_characters);
	tcase_add_test(tc, password_one_character_refused);
	tcase_add_test(tc, password_common_refused);
	tcase_add_test(tc, signin_lock_doubles_up_to_cap);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
