/*
 * Mustache templates; see template.h and https://github.com/mustache/spec.
 *
 * A template is compiled once into a flat array of nodes.  A section node
 * records the index one past its body, so rendering is a loop over a slice
 * of that array that recurses only into section bodies and partials; the
 * source is never parsed again.  Text nodes and partial indentation point
 * into the template's own copy of its source.  Names live in one pool, with
 * the parts of a dotted name separated by NULs, so each part goes to
 * json_object_get() as it is, without copying at render time.
 *
 * Standalone lines (a section, inverted, close, comment, partial or
 * set-delimiter tag alone on its line, with only blanks around it) are cut
 * out at compile time, as the spec requires.  A standalone partial keeps the
 * blanks before it as indentation, written before each line of its output.
 *
 * Rendering never fails: the output is whatever the data produces.  To keep
 * a partial that includes itself from exhausting the stack, sections and
 * partials nested deeper than TPL_MAX_DEPTH at render time render nothing.
 * And because a few lines of partials that include themselves twice can ask
 * for 2^64 renders, a render stops after TPL_MAX_STEPS node visits or
 * TPL_MAX_OUTPUT bytes, so no template, however written, can turn one
 * request into unbounded work.  Real pages stay orders of magnitude below.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "escape.h"
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

/*
 * Compilation.
 */

struct tag {
	char		 type;		/* 0 for a variable, else # ^ / > ! & { = */
	size_t		 at, end;	/* the whole tag, delimiters included */
	size_t		 name, nlen;	/* the trimmed content */
};

struct open {
	size_t		 node, at;	/* the section node and its tag */
	size_t		 name, nlen;
};

struct comp {
	cd_tpl		*t;
	const char	*label;		/* for messages: a file name or the name */
	const char	*src;
	size_t		 len;
	char		 otag[TPL_MAX_DELIM + 1], ctag[TPL_MAX_DELIM + 1];
	size_t		 olen, clen;
	struct open	 open[TPL_MAX_NEST];
	int		 depth;
	char		*err;
};

static bool
blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool
space(char c)
{
	return blank(c) || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int
lineof(const char *s, size_t at)
{
	int line = 1;

	while (at-- > 0)
		if (*s++ == '\n')
			line++;
	return line;
}

/* Records the first error, as "LABEL:LINE: message"; returns false. */
static bool
fail(struct comp *c, size_t at, const char *fmt, ...)
{
	cd_buf b = CD_BUF_INIT;
	va_list ap;

	if (c->err != NULL)
		return false;
	buf_printf(&b, "%s:%d: ", c->label, lineof(c->src, at));
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	c->err = buf_steal(&b);
	return false;
}

static struct node *
add_node(struct comp *c, enum ntype type)
{
	cd_tpl *t = c->t;
	struct node *n;

	if (t->nnodes == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->nodes = reallocarray(t->nodes, t->cap, sizeof(*t->nodes));
		if (t->nodes == NULL)
			abort();
	}
	n = &t->nodes[t->nnodes++];
	memset(n, 0, sizeof(*n));
	n->type = type;
	return n;
}

static void
add_text(struct comp *c, size_t from, size_t to)
{
	struct node *n;

	if (from >= to)
		return;
	n = add_node(c, N_TEXT);
	n->off = from;
	n->len = to - from;
}

/* A name is one word: not empty, no blanks, no NUL. */
static bool
name_ok(struct comp *c, const struct tag *g)
{
	const char *s = c->src + g->name;
	size_t i;

	if (g->nlen == 0)
		return fail(c, g->at, "empty tag");
	for (i = 0; i < g->nlen; i++)
		if (space(s[i]) || s[i] == '\0')
			return fail(c, g->at, "bad name '%.*s'",
			    (int)g->nlen, s);
	return true;
}

/*
 * Validates the name of tag g and puts it in the pool, split at dots when
 * dotted, so n->key names the first part and n->nparts counts them.
 */
static bool
add_name(struct comp *c, const struct tag *g, struct node *n, bool dotted)
{
	const char *s = c->src + g->name;
	size_t i;

	if (!name_ok(c, g))
		return false;
	n->key = c->t->names.len;
	if (!dotted || (g->nlen == 1 && s[0] == '.')) {
		n->nparts = dotted ? 0 : 1;
		buf_append(&c->t->names, s, g->nlen);
		buf_putc(&c->t->names, '\0');
		return true;
	}
	n->nparts = 1;
	for (i = 0; i < g->nlen; i++) {
		if (s[i] == '.' && (i == 0 || i + 1 == g->nlen ||
		    s[i + 1] == '.'))
			return fail(c, g->at, "bad name '%.*s'",
			    (int)g->nlen, s);
		if (s[i] == '.')
			n->nparts++;
		buf_putc(&c->t->names, s[i] == '.' ? '\0' : s[i]);
	}
	buf_putc(&c->t->names, '\0');
	return true;
}

/* Parses the tag whose opening delimiter starts at "at". */
static bool
parse_tag(struct comp *c, size_t at, struct tag *g)
{
	char close[TPL_MAX_DELIM + 2];
	size_t p = at + c->olen, q, clen = c->clen;
	const char *hit;

	g->at = at;
	g->type = 0;
	if (p < c->len && c->src[p] != '\0' && strchr("#^/>!&{=", c->src[p]))
		g->type = c->src[p++];
	memcpy(close, c->ctag, c->clen + 1);
	if (g->type == '{' || g->type == '=') {
		close[0] = g->type == '{' ? '}' : '=';
		memcpy(close + 1, c->ctag, c->clen + 1);
		clen++;
	}
	hit = memmem(c->src + p, c->len - p, close, clen);
	if (hit == NULL)
		return fail(c, at, "unclosed tag '%s'", c->otag);
	q = (size_t)(hit - c->src);
	g->end = q + clen;
	while (p < q && space(c->src[p]))
		p++;
	while (q > p && space(c->src[q - 1]))
		q--;
	g->name = p;
	g->nlen = q - p;
	return true;
}

/* Takes "{{=OPEN CLOSE=}}": two words, without blanks or '='. */
static bool
set_delims(struct comp *c, const struct tag *g)
{
	const char *s = c->src + g->name, *e = s + g->nlen, *o, *x;
	size_t olen, xlen;

	o = s;
	while (s < e && !space(*s) && *s != '=')
		s++;
	olen = (size_t)(s - o);
	while (s < e && space(*s))
		s++;
	x = s;
	while (s < e && !space(*s) && *s != '=')
		s++;
	xlen = (size_t)(s - x);
	if (s != e || olen == 0 || xlen == 0 ||
	    olen > TPL_MAX_DELIM || xlen > TPL_MAX_DELIM ||
	    memchr(o, '\0', olen) || memchr(x, '\0', xlen))
		return fail(c, g->at, "bad delimiter tag");
	memcpy(c->otag, o, olen);
	c->otag[olen] = '\0';
	c->olen = olen;
	memcpy(c->ctag, x, xlen);
	c->ctag[xlen] = '\0';
	c->clen = xlen;
	return true;
}

static bool
close_section(struct comp *c, const struct tag *g)
{
	const struct open *o;

	if (!name_ok(c, g))
		return false;
	if (c->depth == 0)
		return fail(c, g->at, "'%.*s' closes no open section",
		    (int)g->nlen, c->src + g->name);
	o = &c->open[c->depth - 1];
	if (o->nlen != g->nlen ||
	    memcmp(c->src + o->name, c->src + g->name, g->nlen) != 0)
		return fail(c, g->at, "'%.*s' closes section '%.*s' "
		    "opened on line %d", (int)g->nlen, c->src + g->name,
		    (int)o->nlen, c->src + o->name, lineof(c->src, o->at));
	c->t->nodes[o->node].end = c->t->nnodes;
	c->depth--;
	return true;
}

/* Turns a parsed tag into nodes; indent is the blanks of a standalone line. */
static bool
emit_tag(struct comp *c, const struct tag *g, bool standalone, size_t indent)
{
	struct node *n;
	struct open *o;

	switch (g->type) {
	case '!':
		return true;
	case '=':
		return set_delims(c, g);
	case '/':
		return close_section(c, g);
	case '>':
		n = add_node(c, N_PARTIAL);
		n->standalone = standalone;
		n->off = indent;
		n->len = standalone ? g->at - indent : 0;
		return add_name(c, g, n, false);
	case '#':
	case '^':
		if (c->depth == TPL_MAX_NEST)
			return fail(c, g->at, "sections nested deeper than %d",
			    TPL_MAX_NEST);
		o = &c->open[c->depth++];
		o->node = c->t->nnodes;
		o->at = g->at;
		o->name = g->name;
		o->nlen = g->nlen;
		n = add_node(c, g->type == '#' ? N_SECTION : N_INVERTED);
		return add_name(c, g, n, true);
	default:
		n = add_node(c, g->type == 0 ? N_VAR : N_RAW);
		return add_name(c, g, n, true);
	}
}

/*
 * Whether tag g, found with the text since the last tag starting at pos,
 * stands alone on its line.  If it does, *ls is where the line starts and
 * *next is past the line's end, newline included.
 */
static bool
standalone(const struct comp *c, const struct tag *g, size_t pos,
    size_t *ls, size_t *next)
{
	const char *s = c->src;
	size_t i, q;

	if (g->type == 0 || strchr("#^/>!=", g->type) == NULL)
		return false;
	for (i = g->at; i > pos && s[i - 1] != '\n'; i--)
		if (!blank(s[i - 1]))
			return false;
	if (i == pos && pos > 0 && s[pos - 1] != '\n')
		return false;
	for (q = g->end; q < c->len && blank(s[q]); q++)
		continue;
	if (q < c->len && s[q] == '\r' && q + 1 < c->len && s[q + 1] == '\n')
		q++;
	else if (q < c->len && s[q] != '\n')
		return false;
	*ls = i;
	*next = q < c->len ? q + 1 : q;
	return true;
}

static bool
compile(struct comp *c)
{
	size_t pos = 0, at, ls, next;
	const char *hit;
	struct tag g;
	bool alone;

	while (pos < c->len) {
		hit = memmem(c->src + pos, c->len - pos, c->otag, c->olen);
		if (hit == NULL)
			break;
		at = (size_t)(hit - c->src);
		if (!parse_tag(c, at, &g))
			return false;
		ls = at;
		alone = standalone(c, &g, pos, &ls, &next);
		add_text(c, pos, alone ? ls : at);
		if (!emit_tag(c, &g, alone, ls))
			return false;
		pos = alone ? next : g.end;
	}
	add_text(c, pos, c->len);
	if (c->depth > 0)
		return fail(c, c->open[c->depth - 1].at,
		    "section '%.*s' is never closed",
		    (int)c->open[c->depth - 1].nlen,
		    c->src + c->open[c->depth - 1].name);
	return true;
}

/* Compiles with label, not name, in error messages (a file's path). */
static cd_tpl *
compile_labelled(const char *name, const char *label, const char *src,
    size_t len, char **err)
{
	struct comp c;
	cd_tpl *t;

	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->name = strdup(name ? name : "")) == NULL ||
	    (t->src = malloc(len + 1)) == NULL)
		abort();
	memcpy(t->src, src, len);
	t->src[len] = '\0';
	memset(&c, 0, sizeof(c));
	c.t = t;
	c.label = label;
	c.src = t->src;
	c.len = len;
	strcpy(c.otag, "{{");
	strcpy(c.ctag, "}}");
	c.olen = c.clen = 2;
	if (compile(&c))
		return t;
	if (err != NULL)
		*err = c.err;
	else
		free(c.err);
	tpl_free(t);
	return NULL;
}

cd_tpl *
tpl_compile(const char *name, const char *src, size_t len, char **err)
{
	return compile_labelled(name, name ? name : "template", src, len, err);
}

void
tpl_free(cd_tpl *t)
{
	if (t == NULL)
		return;
	free(t->name);
	free(t->src);
	free(t->nodes);
	buf_free(&t->names);
	free(t);
}

/*
 * Sets of templates, for partials.
 */

cd_tpl_set *
tpl_set_new(void)
{
	cd_tpl_set *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		abort();
	return s;
}

/* Index of name in s, or where it would go. */
static size_t
set_find(const cd_tpl_set *s, const char *name, bool *found)
{
	size_t lo = 0, hi = s->n, mid;
	int cmp;

	*found = false;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((cmp = strcmp(name, s->v[mid]->name)) == 0) {
			*found = true;
			return mid;
		}
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* A template of the same name is replaced (and freed). */
int
tpl_set_add(cd_tpl_set *s, cd_tpl *t)
{
	size_t i;
	bool found;

	if (s == NULL || t == NULL) {
		tpl_free(t);
		return -1;
	}
	i = set_find(s, t->name, &found);
	if (found) {
		tpl_free(s->v[i]);
		s->v[i] = t;
		return 0;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = reallocarray(s->v, s->cap, sizeof(*s->v));
		if (s->v == NULL)
			abort();
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
	s->v[i] = t;
	s->n++;
	return 0;
}

const cd_tpl *
tpl_get(const cd_tpl_set *s, const char *name)
{
	size_t i;
	bool found;

	if (s == NULL || name == NULL)
		return NULL;
	i = set_find(s, name, &found);
	return found ? s->v[i] : NULL;
}

void
tpl_set_free(cd_tpl_set *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		tpl_free(s->v[i]);
	free(s->v);
	free(s);
}

static char *
sfmt(const char *fmt, ...)
{
	cd_buf b = CD_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	return buf_steal(&b);
}

/*
 * Reads a whole regular file; NULL with errno set, EINVAL for anything else
 * (O_NONBLOCK so that a FIFO named like a template cannot hang the load).
 */
static char *
slurp(const char *path, size_t *len)
{
	struct stat st;
	char *p = NULL;
	ssize_t r;
	size_t got = 0;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1)
		goto err;
	if (!S_ISREG(st.st_mode) || st.st_size > TPL_MAX_FILE) {
		errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		goto err;
	}
	if ((p = malloc((size_t)st.st_size + 1)) == NULL)
		abort();
	while (got < (size_t)st.st_size) {
		r = read(fd, p + got, (size_t)st.st_size - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;	/* the file shrank under us */
			goto err;
		}
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return p;
err:
	saved = errno;
	free(p);
	close(fd);
	errno = saved;
	return NULL;
}

/* Loads DIR/NAME.mustache for every NAME; other entries are ignored. */
cd_tpl_set *
tpl_load_dir(const char *dir, char **err)
{
	static const char ext[] = ".mustache";
	const size_t elen = sizeof(ext) - 1;
	cd_tpl_set *s = tpl_set_new();
	struct dirent *de;
	char *path = NULL, *name = NULL, *src = NULL, *e = NULL;
	size_t nlen, len;
	cd_tpl *t;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		e = sfmt("%s: %s", dir, strerror(errno));
		goto err;
	}
	while ((de = readdir(d)) != NULL) {
		nlen = strlen(de->d_name);
		if (nlen <= elen || strcmp(de->d_name + nlen - elen, ext) != 0)
			continue;
		path = sfmt("%s/%s", dir, de->d_name);
		name = strndup(de->d_name, nlen - elen);
		if (name == NULL)
			abort();
		if ((src = slurp(path, &len)) == NULL) {
			e = sfmt("%s: %s", path, errno == EINVAL ?
			    "not a regular file" : strerror(errno));
			goto err;
		}
		if ((t = compile_labelled(name, path, src, len, &e)) == NULL)
			goto err;
		tpl_set_add(s, t);
		free(path);
		free(name);
		free(src);
		path = name = src = NULL;
	}
	closedir(d);
	return s;
err:
	if (d != NULL)
		closedir(d);
	free(path);
	free(name);
	free(src);
	tpl_set_free(s);
	if (err != NULL)
		*err = e;
	else
		free(e);
	return NULL;
}

/*
 * Rendering.
 */

/* The context stack and the indentation stack live on the C stack. */
struct ctx {
	const json_t		*v;
	const struct ctx	*up;
};

struct indent {
	const char		*s;
	size_t			 len;
	const struct indent	*up;
};

struct render {
	const cd_tpl_set	*set;
	cd_buf			*out;
	const struct indent	*ind;	/* of the partial being rendered */
	bool			 bol;	/* indentation is due before output */
	int			 depth;
	unsigned long		 steps;
	size_t			 start;	/* out->len when the render began */
};

/* Whether the render has used up its budget; see the top of the file. */
static bool
spent(const struct render *r)
{
	return r->steps >= TPL_MAX_STEPS ||
	    r->out->len - r->start > TPL_MAX_OUTPUT;
}

static void
put_indent(cd_buf *out, const struct indent *i)
{
	if (i == NULL)
		return;
	put_indent(out, i->up);
	buf_append(out, i->s, i->len);
}

/* Writes the indentation a line of an indented partial is owed. */
static void
flush(struct render *r)
{
	if (r->bol) {
		r->bol = false;
		put_indent(r->out, r->ind);
	}
}

/* Template text: each of its lines is owed the partial's indentation. */
static void
put_text(struct render *r, const char *s, size_t n)
{
	const char *nl;
	size_t k;

	if (r->ind == NULL) {
		buf_append(r->out, s, n);
		return;
	}
	while (n > 0 && !spent(r)) {
		nl = memchr(s, '\n', n);
		k = nl ? (size_t)(nl - s) + 1 : n;
		flush(r);
		buf_append(r->out, s, k);
		r->bol = nl != NULL;
		s += k;
		n -= k;
	}
}

/* Shortest %g that reads back as the same double: 1.21, not 1.2100000000000. */
static void
fmt_real(char *tmp, size_t sz, double d)
{
	int prec;

	for (prec = 1; prec < 17; prec++) {
		snprintf(tmp, sz, "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			return;
	}
	snprintf(tmp, sz, "%.17g", d);
}

/*
 * Strings as they are, numbers as JSON would write them (85, 1.21), booleans
 * as true and false; null, objects and arrays as nothing.
 */
static void
put_value(struct render *r, const json_t *v, bool escape)
{
	char tmp[64];
	const char *s = tmp;
	size_t n;

	if (v == NULL)
		return;
	switch (json_typeof(v)) {
	case JSON_STRING:
		s = json_string_value(v);
		n = json_string_length(v);
		break;
	case JSON_INTEGER:
		n = (size_t)snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		break;
	case JSON_REAL:
		fmt_real(tmp, sizeof(tmp), json_real_value(v));
		n = strlen(tmp);
		break;
	case JSON_TRUE:
		s = "true";
		n = 4;
		break;
	case JSON_FALSE:
		s = "false";
		n = 5;
		break;
	default:
		return;
	}
	if (n == 0)
		return;
	flush(r);
	if (escape)
		esc_html(r->out, s, n);
	else
		buf_append(r->out, s, n);
}

/*
 * The first part of a name is looked up from the top of the context stack
 * down; the other parts only inside what the part before found.
 */
static const json_t *
lookup(const struct ctx *c, const char *key, int nparts)
{
	const json_t *v = NULL;
	int i;

	if (nparts == 0)
		return c->v;
	for (; c != NULL; c = c->up)
		if (json_is_object(c->v) &&
		    (v = json_object_get(c->v, key)) != NULL)
			break;
	for (i = 1; v != NULL && i < nparts; i++) {
		key += strlen(key) + 1;
		v = json_is_object(v) ? json_object_get(v, key) : NULL;
	}
	return v;
}

/* Only a miss, null, false and the empty list are falsey. */
static bool
truthy(const json_t *v)
{
	if (v == NULL || json_is_null(v) || json_is_false(v))
		return false;
	return !json_is_array(v) || json_array_size(v) > 0;
}

static void render_range(struct render *, const cd_tpl *, size_t, size_t,
    const struct ctx *);

static void
render_section(struct render *r, const cd_tpl *t, size_t i,
    const struct ctx *c)
{
	const struct node *n = &t->nodes[i];
	const json_t *v = lookup(c, t->names.data + n->key, n->nparts);
	struct ctx top = { v, c };
	size_t k;

	if (r->depth >= TPL_MAX_DEPTH)
		return;
	r->depth++;
	if (n->type == N_INVERTED) {
		if (!truthy(v))
			render_range(r, t, i + 1, n->end, c);
	} else if (json_is_array(v)) {
		/* An empty body costs no node visits; each element counts. */
		for (k = 0; k < json_array_size(v) && !spent(r); k++) {
			r->steps++;
			top.v = json_array_get(v, k);
			render_range(r, t, i + 1, n->end, &top);
		}
	} else if (truthy(v))
		render_range(r, t, i + 1, n->end, &top);
	r->depth--;
}

/*
 * A standalone partial adds its indentation to the one in force; an inline
 * one starts without any, as if its text were pasted into the line.
 */
static void
render_partial(struct render *r, const cd_tpl *t, const struct node *n,
    const struct ctx *c)
{
	const cd_tpl *p = tpl_get(r->set, t->names.data + n->key);
	const struct indent *saved = r->ind;
	struct indent ind = { t->src + n->off, n->len, r->ind };

	if (p == NULL || r->depth >= TPL_MAX_DEPTH)
		return;
	r->depth++;
	if (n->standalone) {
		/* An empty level would cost a call per line and write nothing. */
		if (ind.len > 0)
			r->ind = &ind;
		r->bol = true;
	} else {
		flush(r);
		r->ind = NULL;
	}
	render_range(r, p, 0, p->nnodes, c);
	r->ind = saved;
	r->bol = n->standalone;
	r->depth--;
}

static void
render_range(struct render *r, const cd_tpl *t, size_t from, size_t to,
    const struct ctx *c)
{
	const struct node *n;
	size_t i = from;

	while (i < to) {
		if (spent(r))
			return;
		r->steps++;
		n = &t->nodes[i];
		switch (n->type) {
		case N_TEXT:
			put_text(r, t->src + n->off, n->len);
			break;
		case N_VAR:
		case N_RAW:
			put_value(r, lookup(c, t->names.data + n->key,
			    n->nparts), n->type == N_VAR);
			break;
		case N_SECTION:
		case N_INVERTED:
			render_section(r, t, i, c);
			i = n->end;
			continue;
		case N_PARTIAL:
			render_partial(r, t, n, c);
			break;
		}
		i++;
	}
}

void
tpl_render(const cd_tpl *t, const cd_tpl_set *set, const json_t *data,
    cd_buf *out)
{
	struct render r = { set, out, NULL, false, 0, 0, out->len };
	struct ctx root = { data, NULL };

	if (t != NULL)
		render_range(&r, t, 0, t->nnodes, &root);
}
