/*
 * creditdesk-render TEMPLATE DATA.json [PARTIALS_DIR]
 *
 * Renders one Mustache template with JSON data and prints the result, the
 * way a responder would render it: same engine, same escaping, partials
 * loaded from a directory (by default the template's own).  It is for
 * designers checking a page and for tests that compare pages byte for byte.
 * Every *.mustache in the partials directory must compile, as at start-up.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

static const char *prog = "creditdesk-render";

static int
die(const char *what, const char *why)
{
	fprintf(stderr, "%s: %s%s%s\n", prog, what, why ? ": " : "",
	    why ? why : "");
	return EXIT_FAILURE;
}

/* Reads all of path; NULL and errno on failure. */
static char *
slurp(const char *path, size_t *len)
{
	cd_buf b = CD_BUF_INIT;
	char chunk[8192];
	size_t n;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	if (ferror(f)) {
		fclose(f);
		buf_free(&b);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	*len = b.len;
	return buf_steal(&b);
}

int
main(int argc, char *argv[])
{
	cd_buf out = CD_BUF_INIT;
	cd_tpl_set *set = NULL;
	cd_tpl *t = NULL;
	json_t *data = NULL;
	json_error_t jerr;
	char *src = NULL, *dircopy = NULL, *err = NULL;
	const char *dir;
	size_t len;
	int rc = EXIT_FAILURE;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: %s TEMPLATE DATA.json [PARTIALS_DIR]\n",
		    prog);
		return EXIT_FAILURE;
	}
	if ((src = slurp(argv[1], &len)) == NULL) {
		rc = die(argv[1], strerror(errno));
		goto out;
	}
	/* Named by its path, so that an error message points at the file. */
	if ((t = tpl_compile(argv[1], src, len, &err)) == NULL) {
		rc = die(err, NULL);
		goto out;
	}
	data = json_load_file(argv[2], JSON_DECODE_ANY, &jerr);
	if (data == NULL && jerr.line < 1) {
		rc = die(jerr.text, NULL);	/* it names the file */
		goto out;
	}
	if (data == NULL) {
		fprintf(stderr, "%s: %s:%d: %s\n", prog, argv[2], jerr.line,
		    jerr.text);
		goto out;
	}
	if ((dircopy = strdup(argv[1])) == NULL)
		abort();
	dir = argc == 4 ? argv[3] : dirname(dircopy);
	if ((set = tpl_load_dir(dir, &err)) == NULL) {
		rc = die(err, NULL);
		goto out;
	}
	tpl_render(t, set, data, &out);
	if (fwrite(out.data, 1, out.len, stdout) != out.len ||
	    fflush(stdout) == EOF) {
		rc = die("stdout", strerror(errno));
		goto out;
	}
	rc = EXIT_SUCCESS;
out:
	buf_free(&out);
	tpl_set_free(set);
	tpl_free(t);
	json_decref(data);
	free(src);
	free(dircopy);
	free(err);
	return rc;
}
