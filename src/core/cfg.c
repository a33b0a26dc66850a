/*
 * Configuration from the environment; see cfg.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"

static cd_cfg the_cfg;
const cd_cfg *cfg = &the_cfg;

static const char *
env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : dflt;
}

static int
env_long(const char *name, long dflt, long min, long max, long *out)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (v == NULL || *v == '\0') {
		*out = dflt;
		return 0;
	}
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max) {
		log_error("%s must be an integer from %ld to %ld", name, min, max);
		return -1;
	}
	*out = n;
	return 0;
}

/* Splits the comma-separated secret list; the copy lives for the process. */
static int
load_webhook_secrets(void)
{
	char *list, *tok, *save = NULL;

	if ((list = strdup(env_or("STRIPE_WEBHOOK_SECRET", ""))) == NULL)
		return -1;
	for (tok = strtok_r(list, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (the_cfg.nwebhook_secrets == CD_MAX_WEBHOOK_SECRETS) {
			log_error("STRIPE_WEBHOOK_SECRET: at most %d secrets",
			    CD_MAX_WEBHOOK_SECRETS);
			return -1;
		}
		the_cfg.webhook_secrets[the_cfg.nwebhook_secrets++] = tok;
	}
	return 0;
}

#define STRIPE_JS_DEFAULT "https://js.stripe.com/v3/"

/*
 * Stripe.js and the origins the Content-Security-Policy names for it.  Real
 * Stripe.js runs its iframes on js.stripe.com and checkout.stripe.com and
 * calls api.stripe.com from the page; a stand-in (the emulator) serves the
 * script and its iframes from its own origin and calls nothing from the page.
 */
static int
load_stripe_js(void)
{
	const char *url = env_or("STRIPE_JS_URL", STRIPE_JS_DEFAULT);
	const char *host, *end;
	bool real = strcmp(url, STRIPE_JS_DEFAULT) == 0;
	char *origin;

	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
		log_error("STRIPE_JS_URL must be an http(s) URL");
		return -1;
	}
	host = strstr(url, "//") + 2;
	end = host + strcspn(host, "/?#");
	if (end == host || strcspn(url, " ;,'\"") != strlen(url)) {
		log_error("STRIPE_JS_URL is not a usable URL");
		return -1;
	}
	if ((origin = strndup(url, (size_t)(end - url))) == NULL)
		return -1;
	the_cfg.stripe_js_url = url;
	the_cfg.stripe_js_origin = origin;
	the_cfg.stripe_publishable_key = env_or("STRIPE_PUBLISHABLE_KEY", "");
	the_cfg.stripe_frame_src = env_or("STRIPE_FRAME_SRC", real ?
	    "https://js.stripe.com https://checkout.stripe.com" : origin);
	the_cfg.stripe_connect_src = real ?
	    "https://api.stripe.com https://checkout.stripe.com" : NULL;
	if (strcspn(the_cfg.stripe_frame_src, ";,'\"") !=
	    strlen(the_cfg.stripe_frame_src)) {
		log_error("STRIPE_FRAME_SRC must be a space-separated list of origins");
		return -1;
	}
	return 0;
}

int
cfg_load(void)
{
	long port, limit, timeout, tolerance, idle, db_timeout;

	if (env_long("CD_DB_PORT", 3306, 1, 65535, &port) ||
	    env_long("CD_DB_TIMEOUT", 30, 3, 3600, &db_timeout) ||
	    env_long("CD_BODY_LIMIT", 65536, 1024, 16 << 20, &limit) ||
	    env_long("CD_STRIPE_TIMEOUT_MS", 10000, 100, 120000, &timeout) ||
	    env_long("CD_WEBHOOK_TOLERANCE", 300, 1, 86400, &tolerance) ||
	    env_long("CD_SESSION_IDLE", 1800, 60, 30L * 86400, &idle))
		return -1;
	the_cfg.db_host = env_or("CD_DB_HOST", "127.0.0.1");
	the_cfg.db_port = (unsigned)port;
	the_cfg.db_socket = env_or("CD_DB_SOCKET", NULL);
	the_cfg.db_user = env_or("CD_DB_USER", "creditdesk");
	the_cfg.db_password = env_or("CD_DB_PASSWORD", "");
	the_cfg.db_name = env_or("CD_DB_NAME", "creditdesk");
	the_cfg.db_timeout = db_timeout;
	the_cfg.stripe_api_base = env_or("STRIPE_API_BASE", "https://api.stripe.com");
	the_cfg.stripe_secret_key = env_or("STRIPE_SECRET_KEY", "");
	the_cfg.public_url = env_or("CD_PUBLIC_URL", "http://127.0.0.1:8080");
	the_cfg.template_dir = env_or("CD_TEMPLATE_DIR", "templates");
	the_cfg.body_limit = (size_t)limit;
	the_cfg.stripe_timeout_ms = timeout;
	the_cfg.webhook_tolerance = tolerance;
	the_cfg.session_idle = idle;
	return load_webhook_secrets() || load_stripe_js() ? -1 : 0;
}
