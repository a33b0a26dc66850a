/*
 * creditdesk-credits: balances and consumption of what users bought.
 */
#include "app.h"
#include "credits.h"
#include "credits_store.h"

static const cd_route routes[] = {
	{ "GET", "/api/live-help-hour", live_help_summary, R_USER },
	{ "POST", "/api/live-help-hour/{id}/book", live_help_book, R_USER },
	{ "POST", "/api/live-help-hour/{id}/cancel", live_help_cancel, R_USER },
	{ "GET", "/api/voice-therapy/credits", voice_credits, R_USER },
	{ "POST", "/api/voice-therapy/start", voice_start, R_USER },
	{ "POST", "/api/voice-therapy/end", voice_end, R_USER },
	{ "GET", "/api/boost-packs", boost_packs, 0 },
	{ "GET", "/api/credits/balance", credit_balance, R_USER },
	{ "GET", "/api/credits/transactions", credit_transactions, R_USER },
	{ "GET", "/api/credits/subscriptions", subscriptions_list, R_USER },
};

/* Live Help's summary: the session check and its reads in one statement. */
static int
init(void)
{
	app_session_sql(live_help_summary, &live_help_session_sql);
	return 0;
}

static const cd_app app = {
	"creditdesk-credits", routes, sizeof(routes) / sizeof(routes[0]), init, 0
};

int
main(void)
{
	return app_run(&app);
}
