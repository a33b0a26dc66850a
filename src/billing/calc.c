/*
 * Booking arithmetic and time parsing; see calc.h.
 *
 * The calendar conversion is the days-from-civil algorithm done in plain
 * integers rather than timegm(), which is neither standard C nor bounded in
 * what it accepts (it normalizes "February 30" instead of refusing it).
 */
#include <limits.h>
#include <stdio.h>

#include "calc.h"

/* n digits at s as a number, or -1. */
static int
digits(const char *s, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static bool
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
	static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && leap(y) ? 29 : dm[m - 1];
}

/* Days since 1970-01-01 of a valid proleptic Gregorian date. */
static long long
days_from_civil(int y, int m, int d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(long long z, int *y, int *m, int *d)
{
	long long era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

bool
booking_parse_time(const char *s, long long *epoch)
{
	int y, mo, d, h, mi, sec = 0;
	size_t len;

	if (s == NULL)
		return false;
	for (len = 0; len < 21 && s[len] != '\0'; len++)
		;
	if (len != 16 && len != 20)
		return false;
	if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':')
		return false;
	if (len == 20 && (s[16] != ':' || s[19] != 'Z'))
		return false;
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	h = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	if (len == 20)
		sec = digits(s + 17, 2);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 ||
	    mi < 0 || mi > 59 || sec < 0 || sec > 59)
		return false;
	if (d > days_in_month(y, mo))
		return false;
	*epoch = days_from_civil(y, mo, d) * 86400LL + h * 3600LL + mi * 60LL + sec;
	return true;
}

void
booking_format_time(long long epoch, char *out)
{
	long long days = epoch / 86400, rem = epoch % 86400;
	int y, m, d;

	if (rem < 0) {
		rem += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	snprintf(out, 20, "%04d-%02d-%02d %02d:%02d:%02d", y, m, d,
	    (int)(rem / 3600), (int)(rem % 3600 / 60), (int)(rem % 60));
}

bool
booking_duration_ok(long long minutes)
{
	return minutes >= BOOKING_MIN_MINUTES && minutes <= BOOKING_MAX_MINUTES &&
	    minutes % BOOKING_STEP_MINUTES == 0;
}

bool
booking_money_compute(long long rate, long long minutes, long long fee_bps,
    booking_money *out)
{
	if (rate < 0 || minutes < 0 || fee_bps < 0 || fee_bps > 10000)
		return false;
	if (minutes > 0 && rate > LLONG_MAX / minutes)
		return false;
	out->price = rate * minutes;
	/* price × bps must fit before the division; 10000 ≥ bps bounds it. */
	if (out->price > (LLONG_MAX - 5000) / 10000)
		return false;
	out->fee = (out->price * fee_bps + 5000) / 10000;
	out->payout = out->price - out->fee;
	return true;
}

/* round-half-up(a × b / c) for non-negative a, b and positive c. */
static long long
mul_div_half_up(long long a, long long b, long long c)
{
	return (long long)(((__int128)a * b * 2 + c) / ((__int128)c * 2));
}

booking_cancel_tier
booking_cancel_refund(long long price, long long seconds_to_start,
    long long full_hours, long long late_bps, long long *refund)
{
	if (seconds_to_start <= 0) {
		*refund = 0;
		return CANCEL_STARTED;
	}
	if (seconds_to_start >= full_hours * 3600) {
		*refund = price;
		return CANCEL_FULL;
	}
	*refund = mul_div_half_up(price, late_bps, 10000);
	return CANCEL_PARTIAL;
}

void
booking_refund_divide(long long price, long long fee, long long refund,
    booking_split *out)
{
	out->refund = refund;
	out->fee = price > 0 ? mul_div_half_up(refund, fee, price) : 0;
	out->payout = refund - out->fee;
}

booking_cancel_tier
booking_refund_quote(const booking_terms *t, booking_split *out)
{
	booking_cancel_tier tier;
	long long refund;

	tier = booking_cancel_refund(t->price, t->to_start, t->full_hours,
	    t->late_bps, &refund);
	booking_refund_divide(t->price, t->fee, t->decided >= 0 ? t->decided :
	    refund, out);
	return tier;
}
