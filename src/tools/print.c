/*
 * A report row as "lead columns key=value key=value"; see print.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "print.h"

void
print_row(const json_t *row, const char *k1, int w1, const char *k2, int w2)
{
	const char *key;
	json_t *v;

	printf("  %-*s", w1, jstr(row, k1) ?: "");
	if (k2 != NULL)
		printf(" %-*s", w2, jstr(row, k2) ?: "");
	json_object_foreach((json_t *)row, key, v) {
		char *text;

		if (strcmp(key, k1) == 0 || (k2 != NULL && strcmp(key, k2) == 0))
			continue;
		text = json_is_string(v) ? strdup(json_string_value(v)) :
		    json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		printf(" %s=%s", key, text ? text : "?");
		free(text);
	}
	putchar('\n');
}
