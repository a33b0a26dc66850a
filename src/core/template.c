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

#include "template_impl.h"

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
