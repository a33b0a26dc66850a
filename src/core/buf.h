/*
 * Growable byte buffer.  Used to build response bodies, form-encoded Stripe
 * requests and rendered templates.  The buffer owns its memory; buf_free()
 * releases it.  Appends abort on allocation failure (a responder that cannot
 * allocate cannot answer anyway and multiwatch restarts it).
 */
#ifndef CD_BUF_H
#define CD_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct cd_buf {
	char	*data;	/* always NUL-terminated when len > 0 or after buf_cstr() */
	size_t	 len;
	size_t	 cap;
} cd_buf;

#define CD_BUF_INIT { NULL, 0, 0 }

void	 buf_append(cd_buf *, const void *, size_t);
void	 buf_puts(cd_buf *, const char *);
void	 buf_putc(cd_buf *, char);
void	 buf_printf(cd_buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 buf_vprintf(cd_buf *, const char *, va_list);
const char *buf_cstr(cd_buf *);	/* "" for an empty buffer */
void	 buf_reset(cd_buf *);	/* keep capacity, drop contents */
void	 buf_free(cd_buf *);
char	*buf_steal(cd_buf *);	/* caller owns the result (malloc'd) */

struct cd_arena;
/* An empty buffer that lives in arena a; its memory goes at a's reset. */
cd_buf	*buf_in(struct cd_arena *a);

#endif
