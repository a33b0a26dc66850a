/*
 * libFuzzer harness for the booking start-time parser
 * (booking_parse_time in src/billing/calc.c).
 *
 * The input is one NUL-terminated string.  Besides memory errors the harness
 * checks that every accepted time formats back to the same text: the parser
 * accepts exactly one spelling of each instant, so anything it normalizes
 * (February 30, hour 24) would show up as a difference.
 *
 * Built and run by tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "calc.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, out[20], back[21];
	long long t;

	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (booking_parse_time(s, &t)) {
		booking_format_time(t, out);
		memcpy(back, out, 19);
		back[10] = 'T';
		back[19] = 'Z';
		back[20] = '\0';
		if (strlen(s) == 16 ? strncmp(s, back, 16) != 0 ||
		    strcmp(back + 16, ":00Z") != 0 : strcmp(s, back) != 0)
			abort();
	}
	free(s);
	return 0;
}
