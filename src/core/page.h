/*
 * HTML pages from templates/.  The template set is compiled once when a
 * responder starts (page_init fails loudly on a broken template); page_render
 * adds what every page's layout needs (the signed-in user and the CSRF token)
 * and renders NAME with the partials "header" and "footer" available.
 */
#ifndef CD_PAGE_H
#define CD_PAGE_H

#include <jansson.h>

#include "request.h"

int	 page_init(void);
/* Renders template name with data (borrowed) as a 200/other page. */
cd_err	 page_render(cd_req *, int status, const char *name, json_t *data);
/* A plain HTML error page for err (used for R_PAGE routes). */
void	 page_error(cd_req *, cd_err);

#endif
