/*
 * The compiled form of a template, shared by template.c (compiling, sets
 * and loading) and template_render.c.  Nothing outside those two files
 * includes this.
 */
#ifndef CD_TEMPLATE_IMPL_H
#define CD_TEMPLATE_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "template.h"

#define TPL_MAX_NEST	32		/* sections open at once in one template */
#define TPL_MAX_DEPTH	64		/* sections and partials at render time */
#ifndef TPL_MAX_STEPS
#define TPL_MAX_STEPS	(1UL << 24)	/* node visits in one render */
#endif
#ifndef TPL_MAX_OUTPUT
#define TPL_MAX_OUTPUT	(1UL << 26)	/* bytes one render may append */
#endif
#define TPL_MAX_DELIM	16		/* bytes in a set delimiter */
#define TPL_MAX_FILE	(4 << 20)	/* bytes in a template file */

enum ntype { N_TEXT, N_VAR, N_RAW, N_SECTION, N_INVERTED, N_PARTIAL };

struct node {
	enum ntype	 type;
	size_t		 off, len;	/* TEXT: text; PARTIAL: indentation */
	size_t		 key;		/* offset of the name in names */
	int		 nparts;	/* parts of a dotted name, 0 for "." */
	bool		 standalone;	/* PARTIAL: alone on its line */
	size_t		 end;		/* SECTION, INVERTED: past the body */
};

struct cd_tpl {
	char		*name;
	char		*src;		/* NUL-terminated copy of the source */
	struct node	*nodes;
	size_t		 nnodes, cap;
	cd_buf		 names;
};

struct cd_tpl_set {
	cd_tpl		**v;		/* sorted by name */
	size_t		 n, cap;
};

#endif
