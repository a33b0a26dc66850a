/*
 * Per-request arena: a list of chunks, bump-allocated.  The first chunk is
 * kept across requests so a typical request allocates nothing from malloc.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "arena.h"

#define CHUNK_SIZE 16384
#define ALIGN (sizeof(max_align_t))

struct chunk {
	struct chunk	*next;
	size_t		 size, used;
	max_align_t	 data[];
};

/* One deferred cleanup; the nodes themselves live in the arena. */
struct cleanup {
	struct cleanup	*next;
	cd_cleanup_fn	 fn;
	void		*arg;
};

struct cd_arena {
	struct chunk	*head;	/* newest first; the last one is kept */
	struct cleanup	*cleanups;	/* newest first */
};

static struct chunk *
chunk_new(size_t size)
{
	struct chunk *c;

	/* Chunks start on an ALIGN boundary, so every offset handed out is one. */
	if ((c = aligned_alloc(ALIGN, (sizeof(*c) + size + ALIGN - 1) &
	    ~(ALIGN - 1))) == NULL)
		abort();
	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

cd_arena *
arena_new(void)
{
	cd_arena *a;

	if ((a = malloc(sizeof(*a))) == NULL)
		abort();
	a->head = chunk_new(CHUNK_SIZE);
	a->cleanups = NULL;
	return a;
}

void
arena_defer(cd_arena *a, cd_cleanup_fn fn, void *arg)
{
	struct cleanup *c = arena_alloc(a, sizeof(*c));

	c->fn = fn;
	c->arg = arg;
	c->next = a->cleanups;
	a->cleanups = c;
}

/*
 * Each entry is unlinked before it runs, so a cleanup that defers another
 * (or fails half way through a long list) never runs anything twice.
 */
void
arena_run_cleanups(cd_arena *a)
{
	struct cleanup *c;

	while ((c = a->cleanups) != NULL) {
		a->cleanups = c->next;
		c->fn(c->arg);
	}
}

static void
drop_json(void *j)
{
	json_decref(j);
}

json_t *
arena_json(cd_arena *a, json_t *j)
{
	if (j != NULL)
		arena_defer(a, drop_json, j);
	return j;
}

void
arena_reset(cd_arena *a)
{
	struct chunk *c;

	arena_run_cleanups(a);

	while (a->head->next != NULL) {
		c = a->head;
		a->head = c->next;
		free(c);
	}
	a->head->used = 0;
}

void
arena_free(cd_arena *a)
{
	if (a == NULL)
		return;
	arena_reset(a);
	free(a->head);
	free(a);
}

void *
arena_alloc(cd_arena *a, size_t n)
{
	struct chunk *c = a->head;
	void *p;

	n = (n + ALIGN - 1) & ~(ALIGN - 1);
	if (n == 0)
		n = ALIGN;
	if (c->size - c->used < n) {
		c = chunk_new(n > CHUNK_SIZE ? n : CHUNK_SIZE);
		c->next = a->head;
		a->head = c;
	}
	p = (char *)c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

char *
arena_strndup(cd_arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
arena_strdup(cd_arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *
arena_printf(cd_arena *a, const char *fmt, ...)
{
	struct chunk *c = a->head;
	size_t room = c->size - c->used;	/* a multiple of ALIGN */
	char *p = (char *)c->data + c->used;
	va_list ap;
	int n;

	/* One pass when the text fits where the next allocation would go. */
	va_start(ap, fmt);
	n = vsnprintf(p, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	if ((size_t)n < room) {
		c->used += ((size_t)n + 1 + ALIGN - 1) & ~(ALIGN - 1);
		return p;
	}
	p = arena_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}
