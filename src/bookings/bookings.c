/*
 * creditdesk-bookings: the route table.  Expert listings are public; every
 * booking route needs a signed-in user and checks ownership itself (another
 * user's booking is 404, as if it did not exist); payouts and metrics are
 * for admins.
 */
#include "app.h"
#include "bookings.h"

static const cd_route routes[] = {
	{ "GET", "/api/experts", experts_list, 0 },
	{ "GET", "/api/experts/{id}", expert_get, 0 },
	{ "GET", "/api/experts/me/connect", expert_connect_state, R_USER },
	{ "POST", "/api/experts/me/connect", expert_connect, R_USER },
	{ "POST", "/api/experts/me/policy", expert_set_policy, R_USER },
	{ "GET", "/api/bookings", bookings_list, R_USER },
	{ "POST", "/api/bookings", booking_create, R_USER },
	{ "POST", "/api/bookings/{id}/pay", booking_pay, R_USER },
	{ "POST", "/api/bookings/{id}/confirm-payment", booking_confirm_payment, R_USER },
	{ "GET", "/api/bookings/{id}/cancellation", booking_cancel_quote, R_USER },
	{ "POST", "/api/bookings/{id}/cancel", booking_cancel, R_USER },
	{ "POST", "/api/bookings/{id}/reschedule", booking_reschedule, R_USER },
	{ "POST", "/api/bookings/{id}/complete", booking_complete, R_USER },
	{ "GET", "/api/admin/payouts/pending", payouts_pending, R_ADMIN },
	{ "POST", "/api/admin/payouts", payout_create, R_ADMIN },
	{ "GET", "/api/admin/metrics", metrics, R_ADMIN },
};

static const cd_app app = {
	"creditdesk-bookings", routes, sizeof(routes) / sizeof(routes[0]), NULL, 0
};

int
main(void)
{
	return app_run(&app);
}
