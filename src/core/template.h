/*
 * Mustache templates over jansson values, following the public Mustache
 * specification: interpolation (escaped {{x}}, raw {{{x}}} and {{&x}}, dotted
 * names, implicit iterator {{.}}), sections and inverted sections, comments,
 * partials with indentation, and set delimiters, with standalone-line rules.
 *
 * Templates are compiled once, at start-up; a malformed template fails the
 * load with a message naming the file and line, so a responder never starts
 * with a broken page.
 */
#ifndef CD_TEMPLATE_H
#define CD_TEMPLATE_H

#include <jansson.h>

#include "buf.h"

typedef struct cd_tpl cd_tpl;
typedef struct cd_tpl_set cd_tpl_set;

/* Compiles one template from memory; NULL and *err (malloc'd) on error. */
cd_tpl	*tpl_compile(const char *name, const char *src, size_t len, char **err);
void	 tpl_free(cd_tpl *);

/* Loads every DIR/NAME.mustache as template NAME; NULL and *err on error. */
cd_tpl_set *tpl_load_dir(const char *dir, char **err);
/* A set built in memory (tests, the render tool); takes ownership of t. */
cd_tpl_set *tpl_set_new(void);
int	 tpl_set_add(cd_tpl_set *, cd_tpl *t);
const cd_tpl *tpl_get(const cd_tpl_set *, const char *name);
void	 tpl_set_free(cd_tpl_set *);

/* Renders t with data; partials are looked up in set (may be NULL). */
void	 tpl_render(const cd_tpl *t, const cd_tpl_set *set, const json_t *data,
	    cd_buf *out);

#endif
