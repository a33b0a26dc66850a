/*
 * Unit tests for the growable byte buffer (src/core/buf.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
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

int
main(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("buf");

	tcase_add_test(tc, buf_grows);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
