/*
 * Unit tests for the growable byte buffer (src/core/buf.c) and the numbers
 * for people written into it (src/core/format.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "format.h"
#include "unit.h"

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

/* What fn writes for v, in a buffer of its own. */
static const char *
formatted(void (*fn)(cd_buf *, long long), long long v)
{
	static cd_buf b = CD_BUF_INIT;

	buf_reset(&b);
	fn(&b, v);
	return buf_cstr(&b);
}

START_TEST(numbers_for_people)
{
	ck_assert_str_eq(formatted(format_count, 20833), "20,833");
	ck_assert_str_eq(formatted(format_count, 999), "999");
	ck_assert_str_eq(formatted(format_cents, 4900), "$49.00");
	ck_assert_str_eq(formatted(format_cents, 123456789), "$1,234,567.89");
	ck_assert_str_eq(formatted(format_cents, -5), "-$0.05");
	ck_assert_str_eq(formatted(format_bps, 5000), "50%");
	ck_assert_str_eq(formatted(format_bps, 3333), "33.33%");
	ck_assert_str_eq(formatted(format_bps, 5), "0.05%");
	ck_assert_str_eq(formatted(format_bps, 0), "0%");
	ck_assert_str_eq(formatted(format_bps, 10000), "100%");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("buf");

	tcase_add_test(tc, buf_grows);
	tcase_add_test(tc, numbers_for_people);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
