/*
 * Per-request arena.  Everything a request allocates hangs off its arena and
 * is released at one point, when the request ends (arena_reset), so a
 * long-lived FastCGI child never leaks between requests.
 *
 * What does not live in the arena's memory (a jansson value, a handle) is
 * released there too: arena_defer() puts a cleanup on the arena's list, and
 * reset runs the list, newest first, each entry once, before the memory
 * goes.  A function that takes its resources from an arena has one exit and
 * no frees of its own.
 */
#ifndef CD_ARENA_H
#define CD_ARENA_H

#include <stddef.h>

typedef struct cd_arena cd_arena;
typedef void (*cd_cleanup_fn)(void *);
struct json_t;

cd_arena *arena_new(void);
void	 arena_free(cd_arena *);
void	 arena_reset(cd_arena *);	/* keep the first chunk, drop the rest */
void	*arena_alloc(cd_arena *, size_t);	/* zeroed, aligned for any type */
char	*arena_strdup(cd_arena *, const char *);
char	*arena_strndup(cd_arena *, const char *, size_t);
char	*arena_printf(cd_arena *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

/* Runs fn(arg) at the next reset (or free): newest first, exactly once. */
void	 arena_defer(cd_arena *, cd_cleanup_fn fn, void *arg);
/* Runs the cleanups now, newest first, and empties the list (reset does it too). */
void	 arena_run_cleanups(cd_arena *);
/* The arena takes the caller's reference of j (may be NULL) and drops it at reset; returns j. */
struct json_t *arena_json(cd_arena *, struct json_t *j);

#endif
