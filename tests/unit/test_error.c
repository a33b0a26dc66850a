/*
 * Unit tests for the error table (src/core/error.c).
 */
#include <check.h>
#include <stdlib.h>

#include "error.h"
#include "unit.h"

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

int
main(void)
{
	Suite *s = suite_create("error");
	TCase *tc = tcase_create("error");

	tcase_add_test(tc, error_table);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
