/*
 * HTML pages from templates; see page.h.
 */
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "page.h"
#include "session.h"
#include "template.h"

static cd_tpl_set *templates;

/*
 * Every page's Content-Security-Policy.  Scripts and styles come only from
 * our own /static/ files (no inline code, so an injected <script> or
 * on*= attribute never runs); pages talk only to us.  Stripe's hosted
 * checkout is reached by navigation (the page's script follows the URL the
 * POST returned), which no directive governs, so Stripe's origin appears
 * nowhere.  nosniff and Referrer-Policy are set on every response by nginx
 * (nginx/security-headers.conf), not here.
 */
static const char csp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; form-action 'self'; "
    "frame-src 'none'; frame-ancestors 'none'; object-src 'none'; "
    "base-uri 'none'";

int
page_init(void)
{
	char *err = NULL;

	if ((templates = tpl_load_dir(cfg->template_dir, &err)) == NULL) {
		log_error("templates: %s", err ? err : "cannot load");
		free(err);
		return -1;
	}
	return 0;
}

cd_err
page_render(cd_req *r, int status, const char *name, json_t *data)
{
	const cd_tpl *t = templates ? tpl_get(templates, name) : NULL;
	json_t *ctx;
	cd_buf out = CD_BUF_INIT;

	if (t == NULL) {
		log_error("page: no template %s", name);
		return CD_INTERNAL;
	}
	/* A shallow copy: the layout keys must not leak into the caller's data. */
	ctx = data ? json_copy(data) : json_object();
	if (r->user != NULL) {
		json_object_set_new(ctx, "me", session_user_json(r->user));
		json_object_set_new(ctx, "csrf", json_string(r->user->csrf));
		if (strcmp(r->user->role, "admin") == 0)
			json_object_set_new(ctx, "isAdmin", json_true());
	}
	tpl_render(t, templates, ctx, &out);
	resp_header(r, "Cache-Control", "no-store");
	resp_header(r, "Content-Security-Policy", csp);
	resp_html(r, status, buf_cstr(&out), out.len);
	buf_free(&out);
	json_decref(ctx);
	return CD_OK;
}

void
page_error(cd_req *r, cd_err err)
{
	json_t *data = json_pack("{s:i,s:s}", "status", cd_err_status(err),
	    "message", r->err_message ? r->err_message : cd_err_message(err));

	if (templates == NULL ||
	    page_render(r, cd_err_status(err), "error", data) != CD_OK)
		resp_html(r, cd_err_status(err), cd_err_message(err),
		    strlen(cd_err_message(err)));
	json_decref(data);
}
