/*
 * Rendering compiled Mustache templates over jansson values; see template.h
 * and, for the limits that keep a render bounded, the top of template.c.
 */
#include <stdio.h>
#include <string.h>

#include "escape.h"
#include "template_impl.h"

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
