/*
 * HTML pages from templates; see page.h.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cfg.h"
#include "log.h"
#include "page.h"
#include "session.h"
#include "template.h"

static cd_tpl_set *templates;
static char *csp;	/* built once from the configuration */

/*
 * Every page's Content-Security-Policy, built once from the configuration.
 * Scripts and styles come only from our own /static/ files (no inline code,
 * so an injected <script> or on*= attribute never runs) and from the one
 * origin Stripe.js is loaded from; frames only from Stripe's card-form
 * origin; pages talk to us (and, for real Stripe.js, to Stripe's API).
 * nosniff and Referrer-Policy are set on every response by nginx
 * (nginx/security-headers.conf), not here.
 */
static int
build_csp(void)
{
	cd_buf b = CD_BUF_INIT;

	buf_puts(&b, "default-src 'self'; script-src 'self' ");
	buf_puts(&b, cfg->stripe_js_origin);
	buf_puts(&b, "; style-src 'self'; connect-src 'self'");
	if (cfg->stripe_connect_src != NULL) {
		buf_puts(&b, " ");
		buf_puts(&b, cfg->stripe_connect_src);
	}
	buf_puts(&b, "; frame-src ");
	buf_puts(&b, cfg->stripe_frame_src);
	buf_puts(&b, "; form-action 'self'; frame-ancestors 'none'; "
	    "object-src 'none'; base-uri 'none'");
	csp = strdup(buf_cstr(&b));
	buf_free(&b);
	return csp == NULL ? -1 : 0;
}

int
page_init(void)
{
	char *err = NULL;

	if ((templates = tpl_load_dir(cfg->template_dir, &err)) == NULL) {
		log_error("templates: %s", err ? err : "cannot load");
		free(err);
		return -1;
	}
	return build_csp();
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
	/* Pages that take a card include the "stripe_js" partial. */
	json_object_set_new(ctx, "stripeJsUrl", json_string(cfg->stripe_js_url));
	json_object_set_new(ctx, "stripeKey",
	    json_string(cfg->stripe_publishable_key));
	if (r->user != NULL) {
		json_object_set_new(ctx, "me", session_user_json(r->user));
		json_object_set_new(ctx, "csrf", json_string(r->user->csrf));
		if (strcmp(r->user->role, "admin") == 0)
			json_object_set_new(ctx, "isAdmin", json_true());
		if (strcmp(r->user->role, "mechanic") == 0)
			json_object_set_new(ctx, "isMechanic", json_true());
		if (strcmp(r->user->role, "expert") == 0)
			json_object_set_new(ctx, "isExpert", json_true());
	}
	tpl_render(t, templates, ctx, &out);
	resp_header(r, "Cache-Control", "no-store");
	resp_header(r, "Content-Security-Policy", csp);
	resp_html(r, status, buf_cstr(&out), out.len);
	buf_free(&out);
	json_decref(ctx);
	return CD_OK;
}

/* The error page's heading (and title) by its status. */
static const char *
error_heading(int status)
{
	switch (status) {
	case 404:
		return "Not found";
	case 403:
		return "Not allowed";
	default:
		return "Sorry, that did not work";
	}
}

void
page_error(cd_req *r, cd_err err)
{
	int status = cd_err_status(err);
	json_t *data = json_pack("{s:i,s:s,s:s}", "status", status,
	    "title", error_heading(status),
	    "message", r->err_message ? r->err_message : cd_err_message(err));

	if (templates == NULL ||
	    page_render(r, cd_err_status(err), "error", data) != CD_OK)
		resp_html(r, cd_err_status(err), cd_err_message(err),
		    strlen(cd_err_message(err)));
	json_decref(data);
}
