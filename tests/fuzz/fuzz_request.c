/*
 * libFuzzer harness for the hand-written request parsing: query-string
 * lookup and URL decoding, redirect-target checks, route matching with {id}
 * captures, and declared-field validation over arbitrary JSON.  A rejected
 * input is a normal outcome; a crash, leak or out-of-bounds access is a bug.
 *
 * Built and run by tests/fuzz/run.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "escape.h"
#include "request.h"

static const cd_field fields[] = {
	{ "quantity", F_INT, F_REQUIRED, 1, 5, NULL },
	{ "boostPackId", F_ID, 0, 1, 32, NULL },
	{ "email", F_EMAIL, 0, 3, 254, NULL },
	{ "name", F_STR, 0, 1, 100, NULL },
	{ "flag", F_BOOL, 0, 0, 0, NULL },
};

static const char *const patterns[] = {
	"/api/live-help-hour/{id}/book", "/chat/{id}", "/a/{id}/b/{id}", "/api/me",
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	cd_value v[5];
	long long ids[CD_MAX_ROUTE_IDS];
	cd_req r;
	size_t i;

	memcpy(s, data, size);
	s[size] = '\0';
	memset(&r, 0, sizeof(r));
	r.arena = arena_new();

	/* The input as a query string, then as a JSON body. */
	r.query = s;
	(void)req_query_fields(&r, fields, 5, v);
	(void)req_query(&r, "redirect");
	r.json = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
	if (json_is_object(r.json))
		(void)req_fields(&r, fields, 5, v);
	json_decref(r.json);

	for (i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
		(void)route_match(patterns[i], s, ids, CD_MAX_ROUTE_IDS);
	(void)local_path_ok(s);
	(void)url_decode(s);

	arena_free(r.arena);
	free(s);
	return 0;
}
