/*
 * Number formatting; see format.h.
 */
#include "format.h"

/* |n| without overflow for LLONG_MIN. */
static unsigned long long
magnitude(long long n)
{
	return n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
}

static void
put_grouped(cd_buf *b, unsigned long long v)
{
	char digits[32];
	int n = 0, i;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	for (i = n - 1; i >= 0; i--) {
		buf_putc(b, digits[i]);
		if (i > 0 && i % 3 == 0)
			buf_putc(b, ',');
	}
}

void
format_count(cd_buf *b, long long n)
{
	if (n < 0)
		buf_putc(b, '-');
	put_grouped(b, magnitude(n));
}

void
format_cents(cd_buf *b, long long cents)
{
	unsigned long long v = magnitude(cents);

	if (cents < 0)
		buf_putc(b, '-');
	buf_putc(b, '$');
	put_grouped(b, v / 100);
	buf_printf(b, ".%02llu", v % 100);
}

void
format_bps(cd_buf *b, long long bps)
{
	if (bps % 100 == 0)
		buf_printf(b, "%lld%%", bps / 100);
	else
		buf_printf(b, "%lld.%02lld%%", bps / 100, bps % 100);
}
