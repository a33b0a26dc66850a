/*
 * creditdesk-pages: the HTML pages (explore, sign-in forms, dashboard,
 * billing, experts, thank-you, admin) and the admin audit-log API.
 *
 * Each handler reads what its page shows with a few static statements,
 * formats money and counts in C with format.h (integer arithmetic only: a
 * price is never a double), and hands one JSON object to its template.  The data
 * object is owned by the request from the moment it is created, and every
 * row set is attached to it as soon as it arrives, so an early return on a
 * database error leaks nothing.  The templates escape every value; none of
 * them uses triple braces.
 *
 * Pages read, they never write: every purchase and booking is a POST from
 * templates/static/app.js to the family that owns it.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "account_rules.h"
#include "app.h"
#include "booking_pay.h"
#include "db.h"
#include "escape.h"
#include "format.h"
#include "holdings.h"
#include "page.h"
#include "request.h"

/* Dates for people: the session runs in UTC, so the pages say so. */
#define HUMAN_TIME "'%Y-%m-%d %H:%i UTC'"
/* The same moment for <time datetime>, which app.js shows in the viewer's zone. */
#define ISO_TIME "'%Y-%m-%dT%H:%i:%sZ'"

static cd_sql q_products = CD_SQL(
    "SELECT code, name, description, unit_amount_cents FROM products "
    "WHERE active = 1");
/* The settings a page states in words: token rate, voice minutes and validity. */
static cd_sql q_settings = CD_SQL(
    "SELECT MAX(CASE WHEN name = 'tokens_per_credit' THEN int_value END) "
    "AS tokens_per_credit, "
    "MAX(CASE WHEN name = 'voice_minutes_per_pack' THEN int_value END) "
    "AS voice_minutes, "
    "MAX(CASE WHEN name = 'voice_validity_days' THEN int_value END) "
    "AS voice_days FROM platform_settings");
static cd_sql q_packs = CD_SQL(
    "SELECT id, name, credits, bonus_credits, "
    "credits + bonus_credits AS total_credits, price_cents, badge "
    "FROM boost_packs WHERE active = 1 ORDER BY sort_order, id");
/* The next expiry; the minutes themselves come from voice_available. */
static cd_sql q_voice = CD_SQL(
    "SELECT DATE_FORMAT(MIN(expires_at), " HUMAN_TIME ") AS expires, "
    "DATE_FORMAT(MIN(expires_at), " ISO_TIME ") AS expires_iso "
    "FROM voice_therapy_credits WHERE user_id = ? AND is_active = 1 "
    "AND minutes_remaining > 0 AND expires_at > UTC_TIMESTAMP()");
static cd_sql q_balance = CD_SQL(
    "SELECT balance, bonus_earned FROM user_credits WHERE user_id = ?");
static cd_sql q_my_sessions = CD_SQL(
    "SELECT s.id, s.type, s.type = 'chat' AS is_chat, "
    "COALESCE(pr.name, s.plan) AS plan_name, s.status, "
    "DATE_FORMAT(s.created_at, " HUMAN_TIME ") AS created "
    "FROM sessions s JOIN session_participants p ON p.session_id = s.id "
    "LEFT JOIN products pr ON pr.code = s.plan "
    "WHERE p.user_id = ? ORDER BY s.created_at DESC, s.id DESC LIMIT 50");
static cd_sql q_my_bookings = CD_SQL(
    "SELECT b.id, e.name AS expert_name, b.duration_minutes, b.price_cents, "
    "DATE_FORMAT(b.start_time, " HUMAN_TIME ") AS start, "
    "DATE_FORMAT(b.start_time, " ISO_TIME ") AS start_iso, "
    "REPLACE(b.status, '_', ' ') AS status, "
    "b.status = 'scheduled' AND b.start_time > UTC_TIMESTAMP() AS can_cancel "
    "FROM bookings b JOIN experts e ON e.id = b.expert_id "
    "WHERE b.user_id = ? ORDER BY b.start_time DESC, b.id DESC LIMIT 50");
/* The expert this user is, and whether Stripe pays them out (Connect). */
static cd_sql q_my_expert = CD_SQL(
    "SELECT id, stripe_account_id IS NOT NULL AS has_account, "
    "charges_enabled = 1 AND payouts_enabled = 1 AS payouts_active "
    "FROM experts WHERE user_id = ?");
/* The bookings of the expert this user is, for /expert/bookings. */
static cd_sql q_expert_bookings = CD_SQL(
    "SELECT b.id, u.name AS customer, b.duration_minutes, b.payout_cents, "
    "DATE_FORMAT(b.start_time, " HUMAN_TIME ") AS start, "
    "DATE_FORMAT(b.start_time, " ISO_TIME ") AS start_iso, "
    "REPLACE(b.status, '_', ' ') AS status, "
    "b.status = 'scheduled' AND b.start_time <= UTC_TIMESTAMP() AS can_complete "
    "FROM bookings b JOIN experts e ON e.id = b.expert_id JOIN users u ON u.id = b.user_id "
    "WHERE e.user_id = ? AND b.status IN ('scheduled', 'completed', 'cancelled_by_user') "
    "ORDER BY b.start_time DESC, b.id DESC LIMIT 100");
static cd_sql q_transactions = CD_SQL(
    "SELECT id, description, credits_delta, balance_after, "
    "DATE_FORMAT(created_at, " HUMAN_TIME ") AS created "
    "FROM credit_transactions WHERE user_id = ? ORDER BY id DESC LIMIT 10");
/* What a checkout of this user bought, for the notice after paying. */
static cd_sql q_purchase = CD_SQL(
    "SELECT cs.product, cs.quantity, cs.status, bp.name AS pack_name, "
    "bp.credits + bp.bonus_credits AS pack_credits, sp.name AS plan_name, "
    "sp.monthly_credits, pr.name AS product_name FROM checkout_sessions cs "
    "LEFT JOIN boost_packs bp ON cs.product = 'boost_pack' "
    "AND bp.id = CONVERT(cs.item_code USING ascii) "
    "LEFT JOIN subscription_plans sp ON cs.product = 'subscription' "
    "AND sp.id = CONVERT(cs.item_code USING ascii) "
    "LEFT JOIN products pr ON pr.code = cs.item_code "
    "WHERE cs.id = ? AND cs.user_id = ?");
/* Live Help slots, for /live-help. */
static cd_sql q_lh_slots = CD_SQL(
    "SELECT s.id, DATE_FORMAT(s.starts_at, " ISO_TIME ") AS starts_iso, "
    "DATE_FORMAT(s.starts_at, " HUMAN_TIME ") AS starts, "
    "TIMESTAMPDIFF(MINUTE, s.starts_at, s.ends_at) AS minutes, "
    "s.capacity - s.booked AS seats_left, s.booked >= s.capacity AS full, "
    "r.id IS NOT NULL AS mine FROM live_help_slots s "
    "LEFT JOIN live_help_redemptions r ON r.slot_id = s.id AND r.user_id = ? "
    "WHERE s.starts_at > UTC_TIMESTAMP() ORDER BY s.starts_at, s.id LIMIT 60");
static cd_sql q_lh_booked = CD_SQL(
    "SELECT s.id, DATE_FORMAT(s.starts_at, " ISO_TIME ") AS starts_iso, "
    "DATE_FORMAT(s.starts_at, " HUMAN_TIME ") AS starts, "
    "s.starts_at > UTC_TIMESTAMP() + INTERVAL p.int_value HOUR AS can_cancel "
    "FROM live_help_redemptions r JOIN live_help_slots s ON s.id = r.slot_id "
    "JOIN platform_settings p ON p.name = 'live_help_cancel_hours' "
    "WHERE r.user_id = ? AND s.ends_at > UTC_TIMESTAMP() "
    "ORDER BY s.starts_at, s.id LIMIT 100");
static cd_sql q_lh_policy = CD_SQL(
    "SELECT int_value AS cancel_hours FROM platform_settings "
    "WHERE name = 'live_help_cancel_hours'");
/* One consultation the user takes part in, for /thank-you. */
static cd_sql q_consultation = CD_SQL(
    "SELECT s.id, s.type, s.status, s.amount_cents, s.type = 'video' AS is_video, "
    "COALESCE(pr.name, s.plan) AS plan_name, u.email, "
    "(SELECT mu.name FROM session_participants mp JOIN users mu ON mu.id = mp.user_id "
    "WHERE mp.session_id = s.id AND mp.role = 'mechanic' ORDER BY mp.joined_at LIMIT 1) "
    "AS mechanic FROM sessions s "
    "JOIN session_participants me ON me.session_id = s.id AND me.user_id = ? "
    "JOIN users u ON u.id = s.user_id "
    "LEFT JOIN products pr ON pr.code = s.plan WHERE s.id = ?");
/* The plans on sale, and the user's current subscription (if any). */
static cd_sql q_plans = CD_SQL(
    "SELECT id, name, monthly_credits, price_cents FROM subscription_plans "
    "WHERE active = 1 ORDER BY price_cents, id");
static cd_sql q_subscription = CD_SQL(
    "SELECT s.id, s.status, s.cancel_at_period_end AS ending, "
    "DATE_FORMAT(s.current_period_end, " ISO_TIME ") AS period_end_iso, "
    "DATE_FORMAT(s.current_period_end, " HUMAN_TIME ") AS period_end, "
    "p.name, p.monthly_credits FROM subscriptions s "
    "JOIN subscription_plans p ON p.id = s.plan_id "
    "WHERE s.user_id = ? AND s.status IN ('active', 'trialing', 'past_due') "
    "ORDER BY s.id DESC LIMIT 1");
/* Paid consultations no mechanic has yet, oldest first (queue and admin). */
static cd_sql q_waiting = CD_SQL(
    "SELECT s.id, s.type, COALESCE(pr.name, s.plan) AS plan_name, u.name AS customer, "
    "DATE_FORMAT(s.created_at, " ISO_TIME ") AS created_iso, "
    "DATE_FORMAT(s.created_at, " HUMAN_TIME ") AS created FROM sessions s "
    "JOIN users u ON u.id = s.user_id LEFT JOIN products pr ON pr.code = s.plan "
    "WHERE s.status = 'waiting' AND NOT EXISTS (SELECT 1 FROM session_participants p "
    "WHERE p.session_id = s.id AND p.role = 'mechanic') "
    "ORDER BY s.created_at, s.id LIMIT 100");
/* The user's open Voice AI Therapy session, to resume its timer. */
static cd_sql q_voice_open = CD_SQL(
    "SELECT id, available_minutes, "
    "DATE_FORMAT(started_at, " ISO_TIME ") AS started_iso "
    "FROM voice_therapy_sessions WHERE user_id = ? AND status = 'active' "
    "ORDER BY id DESC LIMIT 1");
static cd_sql q_experts = CD_SQL(
    "SELECT id, name, headline, rate_cents_per_minute FROM experts "
    "WHERE active = 1 ORDER BY name, id");
static cd_sql q_expert = CD_SQL(
    "SELECT id, name, headline, bio, rate_cents_per_minute FROM experts "
    "WHERE id = ? AND active = 1");
/*
 * The bookable hours of the next days (08:00–19:00 UTC starts), each busy
 * when a booking or a live unpaid hold overlaps it (the same rule as
 * booking, BOOKING_HOLDS).  No customer, price or status leaves this query.
 */
static cd_sql q_hours = CD_SQL(
    "WITH RECURSIVE h (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM h WHERE n < 120) "
    "SELECT DATE_FORMAT(t.s, " ISO_TIME ") AS start_iso, "
    "DATE_FORMAT(t.s, " HUMAN_TIME ") AS start, "
    "EXISTS (SELECT 1 FROM bookings b WHERE b.expert_id = ? AND " BOOKING_HOLDS("b")
    " AND b.start_time < t.s + INTERVAL 1 HOUR AND b.end_time > t.s) AS busy "
    "FROM (SELECT TIMESTAMP(UTC_DATE()) + INTERVAL n HOUR AS s FROM h) t "
    "WHERE t.s > UTC_TIMESTAMP() + INTERVAL 1 HOUR AND HOUR(t.s) BETWEEN 8 AND 18 "
    "ORDER BY t.s LIMIT 44");
static cd_sql q_counts = CD_SQL(
    "SELECT (SELECT COUNT(*) FROM users) AS users, "
    "(SELECT COUNT(*) FROM checkout_sessions WHERE status = 'fulfilled') "
    "AS fulfilled, (SELECT COUNT(*) FROM live_help_purchases) AS live_help");
/*
 * The admin console's audit log: newest first, keyset-paginated on id, each
 * filter off when its value is empty (user: an id or an email; dates are
 * whole UTC days, both ends included).
 */
static cd_sql q_audit_filtered = CD_SQL(
    "SELECT a.id, a.action, a.entity_type, a.entity_id, a.user_id, "
    "u.email AS user_email, a.details, a.severity, "
    "DATE_FORMAT(a.created_at, " ISO_TIME ") AS created_iso, "
    "DATE_FORMAT(a.created_at, '%Y-%m-%d %H:%i:%s UTC') AS created "
    "FROM audit_log a LEFT JOIN users u ON u.id = a.user_id "
    "WHERE a.id < ? AND (? = '' OR a.action = ?) "
    "AND (? = '' OR a.user_id = ? OR u.email = ?) "
    "AND (? = '' OR a.created_at >= ?) "
    "AND (? = '' OR a.created_at < ? + INTERVAL 1 DAY) "
    "ORDER BY a.id DESC LIMIT ?");
static cd_sql q_audit_actions = CD_SQL(
    "SELECT DISTINCT action FROM audit_log ORDER BY action LIMIT 200");
static cd_sql q_users_search = CD_SQL(
    "SELECT id, email, name, role, tier FROM users "
    "WHERE ? = '' OR email LIKE CONCAT('%', ?, '%') OR name LIKE CONCAT('%', ?, '%') "
    "ORDER BY id DESC LIMIT 20");
static cd_sql q_mechanics = CD_SQL(
    "SELECT id, name, email FROM users WHERE role = 'mechanic' ORDER BY name, id LIMIT 200");
/* The latest books check (creditdesk-check --record) and its findings. */
static cd_sql q_books_run = CD_SQL(
    "SELECT id, DATE_FORMAT(ran_at, '%Y-%m-%d %H:%i:%s') AS ran, events_recovered,"
    " findings FROM integrity_runs ORDER BY id DESC LIMIT 1");
static cd_sql q_books_findings = CD_SQL(
    "SELECT f.code, f.finding FROM integrity_runs r, JSON_TABLE(r.details, '$[*]'"
    " COLUMNS (code VARCHAR(64) PATH '$.check', finding JSON PATH '$')) f"
    " WHERE r.id = (SELECT MAX(id) FROM integrity_runs) LIMIT 100");
static cd_sql q_audit_page = CD_SQL(
    "SELECT id, action, entity_type, entity_id, user_id, details, severity, "
    "created_at FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?");

/* A number formatted by format.h (integer arithmetic only), as JSON. */
static json_t *
jfmt(void (*f)(cd_buf *, long long), const char *prefix, long long n)
{
	cd_buf b = CD_BUF_INIT;
	json_t *s;

	buf_puts(&b, prefix);
	f(&b, n);
	s = json_string(buf_cstr(&b));
	buf_free(&b);
	return s;
}

/* 4900 → "$49.00"; 20833 → "20,833"; a ledger delta gets its "+". */
static json_t *jmoney(long long c) { return jfmt(format_cents, "", c); }
static json_t *jcount(long long n) { return jfmt(format_count, "", n); }
static json_t *jdelta(long long n) { return jfmt(format_count, n > 0 ? "+" : "", n); }
/* As jcount, but null for zero, so a template section can skip it. */
static json_t *jcount_nz(long long n) { return n ? jcount(n) : json_null(); }

/* n as "20,833", in the arena. */
static const char *
fmt_count(cd_req *r, long long n)
{
	cd_buf b = CD_BUF_INIT;
	const char *s;

	format_count(&b, n);
	s = arena_strdup(r->arena, buf_cstr(&b));
	buf_free(&b);
	return s;
}

static void
bool_col_one(json_t *row, const char *key)
{
	json_object_set_new(row, key, json_boolean(jint(row, key) != 0));
}

/* Turns row[key] (0/1 from SQL) into a JSON boolean, for template sections. */
static void
bool_col(json_t *rows, const char *key)
{
	json_t *row;
	size_t i;

	json_array_foreach(rows, i, row)
		bool_col_one(row, key);
}

/* Adds row[to] = f(row[from]) to every row. */
static void
fmt_col(json_t *rows, const char *from, const char *to,
    json_t *(*f)(long long))
{
	json_t *row;
	size_t i;

	json_array_foreach(rows, i, row)
		json_object_set_new(row, to, f(jint(row, from)));
}

/* "/login?redirect=<path>", URL-encoded, in the arena. */
static const char *
login_href(cd_req *r, const char *path)
{
	cd_buf b = CD_BUF_INIT;
	const char *s;

	buf_puts(&b, "/login?redirect=");
	esc_url_arg(&b, path);
	s = arena_strdup(r->arena, buf_cstr(&b));
	buf_free(&b);
	return s;
}

/*
 * Renders a page: sets its title and nav_<name> (the header marks that nav
 * link as current).  data stays owned by the request.
 */
static cd_err
render(cd_req *r, const char *name, const char *title, json_t *data)
{
	json_object_set_new(data, "title", json_string(title));
	json_object_set_new(data, arena_printf(r->arena, "nav_%s", name),
	    json_true());
	return page_render(r, 200, name, data);
}

/* Runs q for rows and attaches them to d under key. */
#define ROWS(d, key, q, ...) do {					\
	json_t *rows_;							\
	cd_err e_ = db_rows((q), &rows_, __VA_ARGS__);			\
	if (e_ != CD_OK)						\
		return e_;						\
	json_object_set_new((d), (key), rows_);				\
} while (0)

/* Runs q for one row and attaches it (or null) to d under key. */
#define ROW(d, key, q, ...) do {					\
	json_t *row_;							\
	cd_err e_ = db_row((q), &row_, __VA_ARGS__);			\
	if (e_ != CD_OK)						\
		return e_;						\
	json_object_set_new((d), (key), row_ ? row_ : json_null());	\
} while (0)

#define GET(d, key) json_object_get((d), (key))

/* The Live Help dropdown: 1–5 hours, each with its total price. */
static void
add_hours(cd_req *r, json_t *lh)
{
	long long unit = jint(lh, "unit_amount_cents");
	json_t *hours = json_array();
	int n;

	for (n = 1; n <= 5; n++)
		json_array_append_new(hours, json_pack("{s:i,s:s,s:o}", "n", n,
		    "label", n == 1 ? "1 hour" : arena_printf(r->arena, "%d hours", n),
		    "total", jmoney(unit * n)));
	json_object_set_new(lh, "hours", hours);
}

/*
 * The consultation cards, in this order.  Their Buy links go through the
 * sign-in page first when nobody is signed in.
 */
static const char *const consultations[] = { "chat10", "video15", "diagnostic" };

static json_t *
consultation_cards(cd_req *r, json_t *by_code)
{
	json_t *list = json_array(), *row;
	const char *href;
	size_t i;

	for (i = 0; i < sizeof(consultations) / sizeof(*consultations); i++) {
		if ((row = GET(by_code, consultations[i])) == NULL)
			continue;
		href = arena_printf(r->arena, "/api/checkout?plan=%s",
		    consultations[i]);
		json_object_set_new(row, "href",
		    json_string(r->user ? href : login_href(r, href)));
		json_array_append(list, row);
	}
	return list;
}

static cd_err
h_explore(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *byc = json_object(), *row;
	const char *v;
	size_t i;

	json_object_set_new(d, "products", byc);
	ROWS(d, "all", &q_products, "");
	json_array_foreach(GET(d, "all"), i, row) {
		json_object_set_new(row, "price",
		    jmoney(jint(row, "unit_amount_cents")));
		json_object_set(byc, jstr(row, "code"), row);
	}
	if ((row = GET(byc, "live_help")) != NULL) {
		add_hours(r, row);
		json_object_set(d, "liveHelp", row);
	}
	if ((row = GET(byc, "voice_therapy")) != NULL)
		json_object_set(d, "voice", row);
	json_object_set_new(d, "consultations", consultation_cards(r, byc));
	ROWS(d, "packs", &q_packs, "");
	fmt_col(GET(d, "packs"), "total_credits", "total", jcount);
	fmt_col(GET(d, "packs"), "price_cents", "price", jmoney);
	ROW(d, "settings", &q_settings, "");
	json_object_set_new(d, "isFirewall", json_boolean(r->user != NULL &&
	    strcmp(r->user->tier, "firewall") == 0));
	/* Checkout's cancel_url brings the buyer back here. */
	json_object_set_new(d, "checkoutCancelled", json_boolean(
	    (v = req_query(r, "checkout")) != NULL && strcmp(v, "cancelled") == 0));
	return render(r, "index", "Explore", d);
}

/* The redirect target after signing in: a local path, or the dashboard. */
static const char *
redirect_target(cd_req *r)
{
	const char *to = req_query(r, "redirect");

	if (to == NULL || strlen(to) > 1024 || !local_path_ok(to))
		return "/dashboard";
	return to;
}

static cd_err
sign_in_page(cd_req *r, const char *name, const char *title)
{
	json_t *d = req_own(r, json_object());
	const char *to = redirect_target(r);
	cd_buf b = CD_BUF_INIT;

	if (r->user != NULL) {
		resp_redirect(r, to);
		return CD_OK;
	}
	esc_url_arg(&b, to);
	json_object_set_new(d, "redirect", json_string(to));
	json_object_set_new(d, "redirectArg", json_string(buf_cstr(&b)));
	buf_free(&b);
	return render(r, name, title, d);
}

static cd_err
h_login(cd_req *r)
{
	return sign_in_page(r, "login", "Sign in");
}

static cd_err
h_register(cd_req *r)
{
	return sign_in_page(r, "register", "Create an account");
}

/* The ledger counts tokens; people are shown whole credits (d has "settings"). */
static long long
tokens_per_credit(json_t *d)
{
	long long n = jint(GET(d, "settings"), "tokens_per_credit");

	return n > 0 ? n : 1;
}

/*
 * ?purchased=<checkout id>: one sentence naming what was bought and where it
 * is, or that the payment is still being confirmed.  Another user's id, or
 * none, shows nothing.
 */
static cd_err
purchase_notice(cd_req *r, json_t *d)
{
	const char *v = req_query(r, "purchased"), *what, *where;
	long long id, n;
	json_t *p;
	cd_err err;

	if (v == NULL || (id = strtoll(v, NULL, 10)) <= 0)
		return CD_OK;
	if ((err = db_row(&q_purchase, &p, "ii", id, r->user->id)) != CD_OK)
		return err;
	if (p == NULL)
		return CD_OK;
	req_own(r, p);
	n = jint(p, "quantity");
	if (strcmp(jstr(p, "status"), "open") == 0) {
		json_object_set_new(d, "notice", json_string("Thank you: your "
		    "payment is being confirmed. What you bought appears here "
		    "as soon as it is, usually within a minute."));
		return CD_OK;
	}
	if (strcmp(jstr(p, "product"), "boost_pack") == 0) {
		what = arena_printf(r->arena, "%s (%s credits)",
		    jstr(p, "pack_name"), fmt_count(r, jint(p, "pack_credits")));
		where = "The credits are in your balance below.";
	} else if (strcmp(jstr(p, "product"), "subscription") == 0) {
		what = arena_printf(r->arena, "the %s plan (%s credits every month)",
		    jstr(p, "plan_name"), fmt_count(r, jint(p, "monthly_credits")));
		where = "Your plan and its renewal date are shown below.";
	} else if (strcmp(jstr(p, "product"), "live_help") == 0) {
		what = arena_printf(r->arena, "%lld Live Help hour%s", n,
		    n == 1 ? "" : "s");
		where = "Book a session with them under Live Help below.";
	} else if (strcmp(jstr(p, "product"), "voice_therapy") == 0) {
		what = "Voice AI Therapy minutes";
		where = "Start a session from Voice AI Therapy below.";
	} else {
		what = jstr(p, "product_name") ? jstr(p, "product_name") :
		    "a consultation";
		where = "It is listed under My consultations below.";
	}
	json_object_set_new(d, "notice", json_string(arena_printf(r->arena,
	    "Payment received: you bought %s. %s", what, where)));
	return CD_OK;
}

/* The Live Help card: hours bought and left, by the billing layer's rule. */
static cd_err
live_help_card(cd_req *r, json_t *d)
{
	cd_hours h;
	cd_err err;

	if ((err = live_help_hours(r->user->id, &h)) != CD_OK)
		return err;
	json_object_set_new(d, "liveHelp", json_pack("{s:I,s:I,s:I}",
	    "hours_total", (json_int_t)h.total, "hours_used", (json_int_t)h.used,
	    "remaining", (json_int_t)live_help_left(&h)));
	return CD_OK;
}

/* Voice minutes the user can spend now and the next expiry (dashboard, /voice). */
static cd_err
voice_card(cd_req *r, json_t *d)
{
	long long minutes;
	cd_err err;

	if ((err = voice_available(r->user->id, &minutes)) != CD_OK)
		return err;
	ROW(d, "voice", &q_voice, "i", r->user->id);
	json_object_set_new(GET(d, "voice"), "minutes", json_integer(minutes));
	return CD_OK;
}

static cd_err
h_dashboard(cd_req *r)
{
	json_t *d = req_own(r, json_object());
	const char *pay = req_query(r, "payment");
	long long uid = r->user->id;
	cd_err err;

	if ((err = live_help_card(r, d)) != CD_OK ||
	    (err = voice_card(r, d)) != CD_OK)
		return err;
	ROW(d, "credits", &q_balance, "i", uid);
	ROW(d, "settings", &q_settings, "");
	json_object_set_new(d, "balance", jcount(jint(GET(d, "credits"),
	    "balance") / tokens_per_credit(d)));
	ROWS(d, "sessions", &q_my_sessions, "i", uid);
	bool_col(GET(d, "sessions"), "is_chat");
	ROWS(d, "bookings", &q_my_bookings, "i", uid);
	fmt_col(GET(d, "bookings"), "price_cents", "price", jmoney);
	bool_col(GET(d, "bookings"), "can_cancel");
	ROW(d, "expert", &q_my_expert, "i", uid);
	if (json_is_object(GET(d, "expert"))) {
		bool_col_one(GET(d, "expert"), "has_account");
		bool_col_one(GET(d, "expert"), "payouts_active");
	}
	json_object_set_new(d, "paymentPending",
	    json_boolean(pay != NULL && strcmp(pay, "pending") == 0));
	if ((err = purchase_notice(r, d)) != CD_OK)
		return err;
	return render(r, "dashboard", "Dashboard", d);
}

static cd_err
h_billing(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *c, *row;
	long long uid = r->user->id, tpc;
	size_t i;
	cd_err err;

	ROWS(d, "packs", &q_packs, "");
	fmt_col(GET(d, "packs"), "total_credits", "total", jcount);
	fmt_col(GET(d, "packs"), "bonus_credits", "bonus", jcount_nz);
	fmt_col(GET(d, "packs"), "price_cents", "price", jmoney);
	ROW(d, "credits", &q_balance, "i", uid);
	c = GET(d, "credits");
	ROW(d, "settings", &q_settings, "");
	tpc = tokens_per_credit(d);
	json_object_set_new(d, "available", jcount(jint(c, "balance") / tpc));
	json_object_set_new(d, "bonusEarned",
	    jcount(jint(c, "bonus_earned") / tpc));
	ROWS(d, "transactions", &q_transactions, "i", uid);
	json_array_foreach(GET(d, "transactions"), i, row) {
		json_object_set_new(row, "delta",
		    jdelta(jint(row, "credits_delta") / tpc));
		json_object_set_new(row, "after",
		    jcount(jint(row, "balance_after") / tpc));
	}
	ROWS(d, "plans", &q_plans, "");
	fmt_col(GET(d, "plans"), "monthly_credits", "credits", jcount);
	fmt_col(GET(d, "plans"), "price_cents", "price", jmoney);
	ROW(d, "subscription", &q_subscription, "i", uid);
	if (!json_is_null(row = GET(d, "subscription"))) {
		bool_col_one(row, "ending");
		json_object_set_new(row, "credits",
		    jcount(jint(row, "monthly_credits")));
	}
	if ((err = purchase_notice(r, d)) != CD_OK)
		return err;
	return render(r, "billing", "Billing", d);
}

/*
 * /live-help: the upcoming slots with their free seats (Book spends one
 * hour), and the user's booked slots (Cancel gives the hour back while the
 * slot is more than live_help_cancel_hours away).
 */
static cd_err
h_live_help(cd_req *r)
{
	json_t *d = req_own(r, json_object());
	long long uid = r->user->id;
	const char *done = req_query(r, "done");
	cd_err err;

	if ((err = live_help_card(r, d)) != CD_OK)
		return err;
	ROWS(d, "slots", &q_lh_slots, "i", uid);
	bool_col(GET(d, "slots"), "mine");
	bool_col(GET(d, "slots"), "full");
	ROWS(d, "booked", &q_lh_booked, "i", uid);
	bool_col(GET(d, "booked"), "can_cancel");
	ROW(d, "policy", &q_lh_policy, "");
	if (done != NULL && strcmp(done, "booked") == 0)
		json_object_set_new(d, "notice", json_string("Booked: one Live "
		    "Help hour was used. The slot is listed under My Live Help."));
	else if (done != NULL && strcmp(done, "cancelled") == 0)
		json_object_set_new(d, "notice", json_string("Cancelled: the "
		    "hour is back in your balance."));
	return render(r, "live_help", "Live Help", d);
}

/*
 * /voice: a Voice AI Therapy session for a premium user with minutes: Start,
 * a timer of the minutes left, End (voice.js); an open session resumes.
 */
static cd_err
h_voice(cd_req *r)
{
	json_t *d = req_own(r, json_object());
	bool premium = strcmp(r->user->tier, "firewall") == 0;
	cd_err err;

	json_object_set_new(d, "premium", json_boolean(premium));
	if ((err = voice_card(r, d)) != CD_OK)
		return err;
	json_object_set_new(d, "hasMinutes", json_boolean(premium &&
	    jint(GET(d, "voice"), "minutes") > 0));
	ROW(d, "open", &q_voice_open, "i", r->user->id);
	return render(r, "voice", "Voice AI Therapy", d);
}

/* /expert/bookings: an expert's bookings, with Complete once one has started. */
static cd_err
h_expert_bookings(cd_req *r)
{
	json_t *d = req_own(r, json_object());

	ROWS(d, "bookings", &q_expert_bookings, "i", r->user->id);
	fmt_col(GET(d, "bookings"), "payout_cents", "payout", jmoney);
	bool_col(GET(d, "bookings"), "can_complete");
	return render(r, "expert_bookings", "My expert bookings", d);
}

/* /mechanic/queue: consultations waiting for a mechanic, each with Take. */
static cd_err
h_mechanic_queue(cd_req *r)
{
	json_t *d = req_own(r, json_object());

	ROWS(d, "waiting", &q_waiting, "");
	return render(r, "mechanic_queue", "Queue", d);
}

static cd_err
h_experts(cd_req *r)
{
	json_t *d = req_own(r, json_object());

	ROWS(d, "experts", &q_experts, "");
	fmt_col(GET(d, "experts"), "rate_cents_per_minute", "rate", jmoney);
	return render(r, "experts", "Experts", d);
}

static cd_err
h_schedule(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *e;
	const char *self;

	ROW(d, "expert", &q_expert, "i", r->ids[0]);
	if (json_is_null(e = GET(d, "expert")))
		return req_fail(r, CD_NOT_FOUND, "expert_not_found",
		    "There is no such expert.");
	json_object_set_new(e, "rate", jmoney(jint(e, "rate_cents_per_minute")));
	ROWS(d, "hours", &q_hours, "i", r->ids[0]);
	bool_col(GET(d, "hours"), "busy");
	json_object_set_new(d, "durations", json_pack("[{s:i,s:o},{s:i,s:o},{s:i,s:o}]",
	    "minutes", 15, "price", jmoney(jint(e, "rate_cents_per_minute") * 15),
	    "minutes", 30, "price", jmoney(jint(e, "rate_cents_per_minute") * 30),
	    "minutes", 60, "price", jmoney(jint(e, "rate_cents_per_minute") * 60)));
	self = arena_printf(r->arena, "/experts/%lld/schedule", r->ids[0]);
	json_object_set_new(d, "loginHref", json_string(login_href(r, self)));
	return render(r, "expert_schedule", jstr(e, "name"), d);
}

/*
 * /thank-you?session=<consultation id>: what was bought and what happens
 * next (a mechanic takes it, then gets in touch).  Only a participant sees
 * the consultation; anyone else gets the plain thank-you.
 */
static cd_err
h_thank_you(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *c;
	const char *v = req_query(r, "session");
	long long id;

	if (r->user != NULL && v != NULL && (id = strtoll(v, NULL, 10)) > 0) {
		ROW(d, "consultation", &q_consultation, "ii", r->user->id, id);
		if (!json_is_null(c = GET(d, "consultation"))) {
			json_object_set_new(c, "price", jmoney(jint(c, "amount_cents")));
			bool_col_one(c, "is_video");
		}
	}
	return render(r, "thank_you", "Thank you", d);
}

#define AUDIT_PAGE 15	/* rows per page: one screen */

/* A query parameter, or "" when absent or longer than max. */
static const char *
query_or_empty(cd_req *r, const char *name, size_t max)
{
	const char *v = req_query(r, name);

	return v != NULL && strlen(v) <= max ? v : "";
}

/* "YYYY-MM-DD" or ""; anything else is dropped (the filter is then off). */
static const char *
day_or_empty(cd_req *r, const char *name)
{
	const char *v = query_or_empty(r, name, 10);
	size_t i;

	for (i = 0; v[i] != '\0'; i++)
		if (i == 4 || i == 7 ? v[i] != '-' : !isdigit((unsigned char)v[i]))
			return "";
	return i == 10 ? v : "";
}

/* "/admin?action=…&user=…&from=…&to=…[&before=id]#audit", in the arena. */
static const char *
audit_href(cd_req *r, json_t *f, long long before)
{
	static const char *const keys[] = { "action", "user", "from", "to" };
	cd_buf b = CD_BUF_INIT;
	const char *s;
	size_t i;

	buf_puts(&b, "/admin?");
	for (i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		buf_printf(&b, "%s%s=", i ? "&" : "", keys[i]);
		esc_url_arg(&b, jstr(f, keys[i]));
	}
	if (before > 0)
		buf_printf(&b, "&before=%lld", before);
	buf_puts(&b, "#audit");
	s = arena_strdup(r->arena, buf_cstr(&b));
	buf_free(&b);
	return s;
}

/* The audit section: filters (echoed back), one page of rows, older/newest links. */
static cd_err
admin_audit(cd_req *r, json_t *d)
{
	const char *user = query_or_empty(r, "user", 254), *v;
	long long before = (v = req_query(r, "before")) ? strtoll(v, NULL, 10) : 0;
	json_t *f, *rows;
	cd_err err;

	f = json_pack("{s:s,s:s,s:s,s:s}", "action", query_or_empty(r, "action", 64),
	    "user", user, "from", day_or_empty(r, "from"), "to", day_or_empty(r, "to"));
	json_object_set_new(d, "filter", f);
	if (before <= 0)
		before = CD_MAX_ID;
	if ((err = db_rows(&q_audit_filtered, &rows, "isssisssssi", before,
	    jstr(f, "action"), jstr(f, "action"), user, strtoll(user, NULL, 10),
	    user, jstr(f, "from"), jstr(f, "from"), jstr(f, "to"), jstr(f, "to"),
	    (long long)AUDIT_PAGE + 1)) != CD_OK)
		return err;
	json_object_set_new(d, "audit", rows);
	if (json_array_size(rows) > AUDIT_PAGE) {
		json_array_remove(rows, AUDIT_PAGE);
		json_object_set_new(d, "olderHref", json_string(audit_href(r, f,
		    jint(json_array_get(rows, AUDIT_PAGE - 1), "id"))));
	}
	if (req_query(r, "before") != NULL)
		json_object_set_new(d, "newestHref", json_string(audit_href(r, f, 0)));
	ROWS(d, "actions", &q_audit_actions, "");
	return CD_OK;
}

/* Each user row gets its role and tier choices, the current one selected. */
static void
add_choices(json_t *users)
{
	static const char *const roles[] = { "customer", "expert", "mechanic", "admin" };
	static const char *const tiers[] = { "free", "firewall" };
	json_t *u, *list;
	size_t i, k;

	json_array_foreach(users, i, u) {
		list = json_array();
		for (k = 0; k < 4; k++)
			json_array_append_new(list, json_pack("{s:s,s:b}", "v", roles[k],
			    "sel", strcmp(roles[k], jstr(u, "role")) == 0));
		json_object_set_new(u, "roles", list);
		list = json_array();
		for (k = 0; k < 2; k++)
			json_array_append_new(list, json_pack("{s:s,s:b}", "v", tiers[k],
			    "sel", strcmp(tiers[k], jstr(u, "tier")) == 0));
		json_object_set_new(u, "tiers", list);
	}
}

/*
 * /admin: metrics and pending payouts (filled in by admin.js from the
 * bookings family's admin API), consultations waiting for a mechanic with
 * Assign, users with their role and tier, and the audit log.
 */
static cd_err
h_admin(cd_req *r)
{
	json_t *d = req_own(r, json_object());
	const char *q = query_or_empty(r, "q", 254);
	cd_err err;

	ROW(d, "counts", &q_counts, "");
	ROW(d, "books", &q_books_run, "");
	ROWS(d, "bookFindings", &q_books_findings, "");
	ROWS(d, "waiting", &q_waiting, "");
	ROWS(d, "mechanics", &q_mechanics, "");
	json_object_set_new(d, "q", json_string(q));
	ROWS(d, "users", &q_users_search, "sss", q, q, q);
	add_choices(GET(d, "users"));
	if ((err = admin_audit(r, d)) != CD_OK)
		return err;
	return render(r, "admin", "Admin", d);
}

/*
 * GET /api/admin/audit: newest first, keyset-paginated on id.  One row more
 * than asked for is read to learn whether another page exists.
 */
static const cd_field audit_fields[] = {
	{ "limit", F_INT, 0, 1, 100, NULL },
	{ "before", F_INT, 0, 1, CD_MAX_ID, NULL },
};

static json_t *
audit_entry(const json_t *row)
{
	const char *details = jstr(row, "details");
	json_t *parsed = details ? json_loads(details, JSON_DECODE_ANY, NULL) : NULL;

	if (parsed == NULL)
		parsed = details ? json_string(details) : json_object();
	return json_pack("{s:O,s:O,s:O,s:O,s:O,s:o,s:O,s:O}",
	    "id", json_object_get(row, "id"),
	    "action", json_object_get(row, "action"),
	    "entityType", json_object_get(row, "entity_type"),
	    "entityId", json_object_get(row, "entity_id"),
	    "userId", json_object_get(row, "user_id"),
	    "details", parsed,
	    "severity", json_object_get(row, "severity"),
	    "createdAt", json_object_get(row, "created_at"));
}

static cd_err
h_audit(cd_req *r)
{
	cd_value v[2];
	json_t *rows, *entries, *row, *next = json_null();
	long long limit, before;
	size_t i;
	cd_err err;

	if ((err = req_query_fields(r, audit_fields, 2, v)) != CD_OK)
		return err;
	limit = v[0].present ? v[0].i : 50;
	before = v[1].present ? v[1].i : CD_MAX_ID + 1;
	if ((err = db_rows(&q_audit_page, &rows, "ii", before, limit + 1)) != CD_OK)
		return err;
	req_own(r, rows);
	entries = json_array();
	json_array_foreach(rows, i, row) {
		if ((long long)i == limit) {
			json_decref(next);
			next = json_integer(jint(json_array_get(rows, i - 1), "id"));
			break;
		}
		json_array_append_new(entries, audit_entry(row));
	}
	resp_json(r, 200, json_pack("{s:o,s:o}", "entries", entries,
	    "nextCursor", next));
	return CD_OK;
}

/* /settings/account: change the password, sign out everywhere. */
static cd_err
h_account(cd_req *r)
{
	json_t *d = req_own(r, json_object());

	json_object_set_new(d, "minChars", json_integer(CD_PASSWORD_MIN_CHARS));
	return render(r, "account", "Account", d);
}

static const cd_route routes[] = {
	{ "GET", "/",			h_explore,	R_PAGE },
	{ "GET", "/login",		h_login,	R_PAGE },
	{ "GET", "/register",		h_register,	R_PAGE },
	{ "GET", "/dashboard",		h_dashboard,	R_USER | R_PAGE },
	{ "GET", "/settings/billing",	h_billing,	R_USER | R_PAGE },
	{ "GET", "/settings/account",	h_account,	R_USER | R_PAGE },
	{ "GET", "/live-help",		h_live_help,	R_USER | R_PAGE },
	{ "GET", "/mechanic/queue",	h_mechanic_queue, R_USER | R_MECHANIC | R_PAGE },
	{ "GET", "/voice",		h_voice,	R_USER | R_PAGE },
	{ "GET", "/expert/bookings",	h_expert_bookings, R_USER | R_EXPERT | R_PAGE },
	{ "GET", "/experts",		h_experts,	R_PAGE },
	{ "GET", "/experts/{id}/schedule", h_schedule,	R_PAGE },
	{ "GET", "/thank-you",		h_thank_you,	R_PAGE },
	{ "GET", "/admin",		h_admin,	R_USER | R_ADMIN | R_PAGE },
	{ "GET", "/api/admin/audit",	h_audit,	R_ADMIN },
};

static const cd_app app = {
	"creditdesk-pages", routes, sizeof(routes) / sizeof(*routes),
	page_init, 0
};

int
main(void)
{
	return app_run(&app);
}
