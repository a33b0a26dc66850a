/*
 * Configuration from the environment, read once at start-up into a
 * read-only struct.  Secrets live here and are never logged.
 */
#ifndef CD_CFG_H
#define CD_CFG_H

#include <stddef.h>

#define CD_MAX_WEBHOOK_SECRETS 4

typedef struct cd_cfg {
	/* MariaDB: unix socket if set, else host:port over TCP. */
	const char	*db_host;		/* CD_DB_HOST, 127.0.0.1 */
	unsigned	 db_port;		/* CD_DB_PORT, 3306 */
	const char	*db_socket;		/* CD_DB_SOCKET */
	const char	*db_user;		/* CD_DB_USER, creditdesk */
	const char	*db_password;		/* CD_DB_PASSWORD */
	const char	*db_name;		/* CD_DB_NAME, creditdesk */
	/* Seconds a statement may take before the connection is given up
	 * (a lock wait gives up at a third of it): CD_DB_TIMEOUT, 30. */
	long		 db_timeout;

	const char	*stripe_api_base;	/* STRIPE_API_BASE */
	const char	*stripe_secret_key;	/* STRIPE_SECRET_KEY */
	const char	*webhook_secrets[CD_MAX_WEBHOOK_SECRETS];
	size_t		 nwebhook_secrets;	/* STRIPE_WEBHOOK_SECRET, comma-separated */
	long		 webhook_tolerance;	/* seconds, 300 */

	/* Stripe.js for the pages that take a card, and the CSP that allows it. */
	const char	*stripe_js_url;		/* STRIPE_JS_URL, Stripe's v3 */
	const char	*stripe_publishable_key; /* STRIPE_PUBLISHABLE_KEY */
	const char	*stripe_js_origin;	/* scheme://host[:port] of stripe_js_url */
	const char	*stripe_frame_src;	/* STRIPE_FRAME_SRC, origins of its iframes */
	const char	*stripe_connect_src;	/* origins Stripe.js calls from the page */

	const char	*public_url;		/* CD_PUBLIC_URL, for success/cancel URLs */
	const char	*template_dir;		/* CD_TEMPLATE_DIR */
	size_t		 body_limit;		/* CD_BODY_LIMIT, bytes of JSON body */
	long		 stripe_timeout_ms;	/* CD_STRIPE_TIMEOUT_MS */
	long		 session_idle;		/* CD_SESSION_IDLE, seconds without a request, 1800 */
} cd_cfg;

extern const cd_cfg *cfg;

/* Reads the environment; returns 0, or -1 after logging what is wrong. */
int	 cfg_load(void);

#endif
