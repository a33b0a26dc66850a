/*
 * Per-request arena: a list of chunks, bump-allocated.  The first chunk is
 * kept across requests so a typical request allocates nothing from malloc.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

#define CHUNK_SIZE 16384
#define ALIGN (sizeof(max_align_t))

struct chunk {
	struct chunk	*next;
	size_t		 size, used;
	max_align_t	 data[];
};

struct cd_arena {
	struct chunk	*head;	/* newest first; the last one is kept */
};

static struct chunk *
chunk_new(size_t size)
{
	struct chunk *c;

	if ((c = malloc(sizeof(*c) + size)) == NULL)
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
	return a;
}

void
arena_reset(cd_arena *a)
{
	struct chunk *c;

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
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	p = arena_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}
