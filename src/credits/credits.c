/*
 * creditdesk-credits: balances and consumption of what users bought.
 */
#include "app.h"
#include "credits.h"

static const cd_route routes[] = {
	{ "GET", "/api/live-help-hour", live_help_summary, R_USER },
	{ "POST", "/api/live-help-hour/{id}/book", live_help_book, R_USER },
};

static const cd_app app = {
	"creditdesk-credits", routes, sizeof(routes) / sizeof(routes[0]), NULL, 0
};

int
main(void)
{
	return app_run(&app);
}
