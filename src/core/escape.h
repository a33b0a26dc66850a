/*
 * One escaper per output context.  Templates escape with esc_html by
 * default; URL arguments and header values have their own.
 */
#ifndef CD_ESCAPE_H
#define CD_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* HTML text and quoted attribute values: & < > " ' escaped. */
void	 esc_html(cd_buf *, const char *, size_t);
/* A query-string argument or path segment: all but unreserved %-encoded. */
void	 esc_url_arg(cd_buf *, const char *);
/* The value of one hex digit, or -1. */
int	 hex_value(char);
/* Decodes %XX and '+' in place; returns false on a bad escape or a NUL. */
bool	 url_decode(char *);
/* A header value must not contain CR, LF or NUL. */
bool	 header_value_ok(const char *);
/* A local redirect target: starts with one '/', not "//" or "/\". */
bool	 local_path_ok(const char *);

#endif
