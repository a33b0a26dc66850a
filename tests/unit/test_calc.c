/*
 * Unit tests for the pure booking helpers (src/billing/calc.c): the strict
 * start-time parser, durations, and the fee/payout split in integer cents.
 *
 * Epoch values were computed independently, e.g.
 *   date -u -d 2024-02-29T23:59:59Z +%s   → 1709251199
 */
#include <limits.h>
#include <string.h>

#include <check.h>

#include "calc.h"
#include "unit.h"

static long long
parsed(const char *s)
{
	long long t = -1;

	ck_assert_msg(booking_parse_time(s, &t), "refused %s", s);
	return t;
}

START_TEST(time_forms)
{
	ck_assert_int_eq(parsed("1970-01-01T00:00:00Z"), 0);
	ck_assert_int_eq(parsed("1970-01-01T00:00"), 0);
	ck_assert_int_eq(parsed("2030-06-15T14:30:00Z"), 1907764200LL);
	ck_assert_int_eq(parsed("2030-06-15T14:30"), 1907764200LL);
	ck_assert_int_eq(parsed("2024-02-29T23:59:59Z"), 1709251199LL);
	ck_assert_int_eq(parsed("2000-02-29T00:00"), 951782400LL);
	ck_assert_int_eq(parsed("2038-01-19T03:14:08Z"), 2147483648LL);
	ck_assert_int_eq(parsed("2099-12-31T23:59:59Z"), 4102444799LL);
}
END_TEST

START_TEST(time_refused)
{
	static const char *const bad[] = {
		"", "2030", "2030-06-15", "2030-06-15 14:30", "2030-06-15T14:30Z",
		"2030-06-15T14:30:00", "2030-06-15T14:30:00+00:00",
		"2030-06-15T14:30:00.000Z", "2030-06-15T14:30:00z",
		"2030-06-15t14:30:00Z", "2030-06-15T14:30:00ZZ", "2030-06-15T14:30 ",
		" 2030-06-15T14:30", "2030/06/15T14:30", "2030-6-15T14:30:00Z",
		"2030-06-15T4:30:000Z", "+030-06-15T14:30", "2030-0a-15T14:30",
		"2030-13-01T00:00", "2030-00-01T00:00", "2030-06-00T00:00",
		"2030-06-31T00:00", "2030-02-29T00:00", "1900-02-29T00:00",
		"2100-02-29T00:00", "2030-06-15T24:00", "2030-06-15T23:60",
		"2030-06-15T23:59:60Z", "1969-12-31T23:59:59Z", "-030-06-15T14:30",
		"2030-06-15T14:3\xff", "2030-06-15T14:30:00Z\n",
	};
	long long t = 42;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!booking_parse_time(bad[i], &t), "accepted \"%s\"",
		    bad[i]);
	ck_assert(!booking_parse_time(NULL, &t));
	ck_assert_int_eq(t, 42);	/* untouched on failure */
}
END_TEST

START_TEST(time_embedded_nul)
{
	/* Only the bytes before a NUL count: this is the 16-byte form cut short. */
	static const char s[] = "2030-06-15T14:3\0" "0";
	long long t;

	ck_assert(!booking_parse_time(s, &t));
}
END_TEST

START_TEST(time_round_trip)
{
	char out[20];
	long long t;

	booking_format_time(0, out);
	ck_assert_str_eq(out, "1970-01-01 00:00:00");
	booking_format_time(1709251199LL, out);
	ck_assert_str_eq(out, "2024-02-29 23:59:59");
	booking_format_time(1907764200LL + 240 * 60, out);
	ck_assert_str_eq(out, "2030-06-15 18:30:00");
	/* Every day of four years, at an odd time of day, both ways. */
	for (t = 1704067200LL + 3723; t < 1704067200LL + 4 * 366 * 86400LL;
	    t += 86400) {
		char iso[21];
		long long back;

		booking_format_time(t, out);
		memcpy(iso, out, 19);
		iso[10] = 'T';
		iso[19] = 'Z';
		iso[20] = '\0';
		ck_assert(booking_parse_time(iso, &back));
		ck_assert_int_eq(back, t);
	}
}
END_TEST

START_TEST(durations)
{
	ck_assert(booking_duration_ok(15));
	ck_assert(booking_duration_ok(30));
	ck_assert(booking_duration_ok(225));
	ck_assert(booking_duration_ok(240));
	ck_assert(!booking_duration_ok(0));
	ck_assert(!booking_duration_ok(14));
	ck_assert(!booking_duration_ok(16));
	ck_assert(!booking_duration_ok(20));
	ck_assert(!booking_duration_ok(255));
	ck_assert(!booking_duration_ok(-15));
}
END_TEST

static booking_money
money(long long rate, long long minutes, long long bps)
{
	booking_money m;

	memset(&m, 0xff, sizeof(m));
	ck_assert(booking_money_compute(rate, minutes, bps, &m));
	ck_assert_int_eq(m.fee + m.payout, m.price);
	return m;
}

START_TEST(money_even)
{
	booking_money m = money(150, 30, 1000);

	ck_assert_int_eq(m.price, 4500);
	ck_assert_int_eq(m.fee, 450);
	ck_assert_int_eq(m.payout, 4050);
}
END_TEST

START_TEST(money_odd_cents)
{
	booking_money m;

	/* 1005 × 10% = 100.5 → 101 (half up); payout takes the rest. */
	m = money(67, 15, 1000);
	ck_assert_int_eq(m.price, 1005);
	ck_assert_int_eq(m.fee, 101);
	ck_assert_int_eq(m.payout, 904);
	/* 1455 × 10% = 145.5 → 146. */
	m = money(97, 15, 1000);
	ck_assert_int_eq(m.price, 1455);
	ck_assert_int_eq(m.fee, 146);
	ck_assert_int_eq(m.payout, 1309);
	/* 1004 × 10% = 100.4 → 100; 1006 → 100.6 → 101. */
	m = money(1004, 1, 1000);
	ck_assert_int_eq(m.fee, 100);
	m = money(1006, 1, 1000);
	ck_assert_int_eq(m.fee, 101);
	/* 1 cent: 0.1 → 0; 5 cents: 0.5 → 1. */
	m = money(1, 1, 1000);
	ck_assert_int_eq(m.fee, 0);
	ck_assert_int_eq(m.payout, 1);
	m = money(5, 1, 1000);
	ck_assert_int_eq(m.fee, 1);
	ck_assert_int_eq(m.payout, 4);
	/* Odd basis points: 333 × 12.5% = 41.625 → 42. */
	m = money(333, 1, 1250);
	ck_assert_int_eq(m.fee, 42);
	ck_assert_int_eq(m.payout, 291);
}
END_TEST

START_TEST(money_edges)
{
	booking_money m;

	m = money(0, 240, 1000);
	ck_assert_int_eq(m.price, 0);
	ck_assert_int_eq(m.fee, 0);
	ck_assert_int_eq(m.payout, 0);
	m = money(777, 45, 0);
	ck_assert_int_eq(m.fee, 0);
	ck_assert_int_eq(m.payout, 777 * 45);
	m = money(777, 45, 10000);
	ck_assert_int_eq(m.fee, 777 * 45);
	ck_assert_int_eq(m.payout, 0);
	/* The largest rate the schema allows (INT UNSIGNED) for 240 minutes. */
	m = money(4294967295LL, 240, 1000);
	ck_assert_int_eq(m.price, 1030792150800LL);
	ck_assert_int_eq(m.fee, 103079215080LL);
	ck_assert(!booking_money_compute(-1, 15, 1000, &m));
	ck_assert(!booking_money_compute(100, -15, 1000, &m));
	ck_assert(!booking_money_compute(100, 15, -1, &m));
	ck_assert(!booking_money_compute(100, 15, 10001, &m));
	ck_assert(!booking_money_compute(LLONG_MAX, 2, 1000, &m));
	ck_assert(!booking_money_compute(LLONG_MAX / 1000, 1000, 1000, &m));
}
END_TEST

/* The cancellation policy at its edges, in cents, half up. */
START_TEST(cancel_policy)
{
	long long refund = -1;

	/* 25 h and exactly 24 h before: everything back */
	ck_assert_int_eq(booking_cancel_refund(4500, 25 * 3600, 24, 5000, &refund), CANCEL_FULL);
	ck_assert_int_eq(refund, 4500);
	ck_assert_int_eq(booking_cancel_refund(4500, 24 * 3600, 24, 5000, &refund), CANCEL_FULL);
	ck_assert_int_eq(refund, 4500);
	/* a second inside 24 h, and 23 h: half */
	ck_assert_int_eq(booking_cancel_refund(4500, 24 * 3600 - 1, 24, 5000, &refund),
	    CANCEL_PARTIAL);
	ck_assert_int_eq(refund, 2250);
	ck_assert_int_eq(booking_cancel_refund(1999, 23 * 3600, 24, 5000, &refund), CANCEL_PARTIAL);
	ck_assert_int_eq(refund, 1000);		/* 999.5 rounds up */
	ck_assert_int_eq(booking_cancel_refund(1999, 60, 24, 3333, &refund), CANCEL_PARTIAL);
	ck_assert_int_eq(refund, 666);		/* 666.2667 */
	/* at and after the start: nothing */
	ck_assert_int_eq(booking_cancel_refund(4500, 0, 24, 5000, &refund), CANCEL_STARTED);
	ck_assert_int_eq(refund, 0);
	ck_assert_int_eq(booking_cancel_refund(4500, -60, 24, 5000, &refund), CANCEL_STARTED);
	ck_assert_int_eq(refund, 0);
}
END_TEST

/* A refund's fee and payout parts add up to it exactly. */
START_TEST(refund_divide)
{
	booking_split s;
	long long price, fee, refund;

	booking_refund_divide(4500, 450, 2250, &s);
	ck_assert_int_eq(s.refund, 2250);
	ck_assert_int_eq(s.fee, 225);
	ck_assert_int_eq(s.payout, 2025);
	booking_refund_divide(1999, 200, 1000, &s);
	ck_assert_int_eq(s.fee, 100);		/* 100.05 */
	ck_assert_int_eq(s.payout, 900);
	booking_refund_divide(4500, 450, 4500, &s);	/* full: exactly the fee back */
	ck_assert_int_eq(s.fee, 450);
	ck_assert_int_eq(s.payout, 4050);
	booking_refund_divide(0, 0, 0, &s);
	ck_assert_int_eq(s.fee + s.payout, 0);
	for (price = 1; price < 400; price += 7)
		for (fee = 0; fee <= price; fee += 13)
			for (refund = 0; refund <= price; refund += 11) {
				booking_refund_divide(price, fee, refund, &s);
				ck_assert_int_eq(s.fee + s.payout, refund);
				ck_assert(s.fee >= 0 && s.fee <= fee);
				ck_assert(s.payout >= 0 && s.payout <= price - fee);
			}
}
END_TEST

static Suite *
bookings_suite(void)
{
	Suite *s = suite_create("bookings");
	TCase *tc = tcase_create("calc");

	tcase_add_test(tc, time_forms);
	tcase_add_test(tc, time_refused);
	tcase_add_test(tc, time_embedded_nul);
	tcase_add_test(tc, time_round_trip);
	tcase_add_test(tc, durations);
	tcase_add_test(tc, money_even);
	tcase_add_test(tc, money_odd_cents);
	tcase_add_test(tc, money_edges);
	tcase_add_test(tc, cancel_policy);
	tcase_add_test(tc, refund_divide);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(bookings_suite());
}

