/*
 * Per-request arena.  Everything a request allocates hangs off its arena and
 * is released at one point, when the request ends (arena_reset), so a
 * long-lived FastCGI child never leaks between requests.
 */
#ifndef CD_ARENA_H
#define CD_ARENA_H

#include <stddef.h>

typedef struct cd_arena cd_arena;

cd_arena *arena_new(void);
void	 arena_free(cd_arena *);
void	 arena_reset(cd_arena *);	/* keep the first chunk, drop the rest */
void	*arena_alloc(cd_arena *, size_t);	/* zeroed, aligned for any type */
char	*arena_strdup(cd_arena *, const char *);
char	*arena_strndup(cd_arena *, const char *, size_t);
char	*arena_printf(cd_arena *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
