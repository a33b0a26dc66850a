/*
 * libFuzzer harness for the Mustache engine: compiles the input as a
 * template and renders it against one fixed JSON value.  The input is also
 * in the partial set as "self", so that recursion, indentation of nested
 * partials and the depth and step limits are exercised, next to a fixed
 * partial "p".  A compile error is a normal outcome; a crash, a leak, an
 * out-of-bounds access or a hang is a bug.
 *
 * Built and run by tests/fuzz/run.sh, with smaller step and output budgets
 * that only keep runs fast (the defaults are covered by a unit test).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

#define MAX_INPUT	2048	/* beyond this, work grows, not coverage */

static json_t *data;

static const char data_json[] =
    "{\"a\":\"<x>&'\\\"\",\"n\":42,\"r\":1.5,\"t\":true,\"f\":false,"
    "\"z\":null,\"e\":\"\",\"l\":[1,\"two\",{\"a\":\"in\"},[3,4]],"
    "\"o\":{\"a\":{\"b\":{\"c\":\"deep\"}},\"l\":[]},\"s\":\"{{a}}\","
    "\"nl\":\"x\\ny\\n\"}";

static const char partial[] =
    "{{#l}}\n  <{{.}}|{{a}}>\n{{/l}}\n{{^z}}\n{{{nl}}}{{/z}}\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if ((data = json_loads(data_json, 0, NULL)) == NULL)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t len)
{
	cd_buf out = CD_BUF_INIT;
	cd_tpl_set *set;
	cd_tpl *t, *p;
	char *err = NULL;

	if (len > MAX_INPUT)
		return 0;
	if ((t = tpl_compile("self", (const char *)in, len, &err)) == NULL) {
		if (err == NULL || strstr(err, "self:") != err)
			abort();	/* an error must say where */
		free(err);
		return 0;
	}
	if ((p = tpl_compile("p", partial, sizeof(partial) - 1, NULL)) == NULL)
		abort();
	set = tpl_set_new();
	tpl_set_add(set, t);
	tpl_set_add(set, p);
	tpl_render(tpl_get(set, "self"), set, data, &out);
	tpl_render(t, NULL, data, &out);
	buf_free(&out);
	tpl_set_free(set);
	return 0;
}
