/*
 * Unit tests for the database layer's pure part (src/core/db.c): what each
 * server or client error number means, on one server and on a cluster node.
 */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>

#include "db.h"
#include "unit.h"

/*
 * A node that cannot serve (gone, or cut off from its cluster: 1047, or
 * 1205/1213 while not ready) is never a conflict.
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
	Suite *s = suite_create("db");
	TCase *tc = tcase_create("db");

	tcase_add_test(tc, db_error_classes);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
