/*
 * Unit tests for Voice AI Therapy charging (src/billing/voice.c).
 */
#include <check.h>
#include <stdlib.h>

#include "voice.h"
#include "unit.h"

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

int
main(void)
{
	Suite *s = suite_create("voice");
	TCase *tc = tcase_create("voice");

	tcase_add_test(tc, voice_charge);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
