/*
 * Unit tests for the route tables' matcher (src/core/app.c).
 */
#include <check.h>
#include <stdlib.h>

#include "app.h"
#include "unit.h"

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

int
main(void)
{
	Suite *s = suite_create("app");
	TCase *tc = tcase_create("app");

	tcase_add_test(tc, route_literal_and_ids);
	tcase_add_test(tc, route_rejects_bad_ids);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
