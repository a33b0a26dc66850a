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
#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include "app.h"
#include "db.h"
#include "escape.h"
#include "format.h"
#include "page.h"
#include "request.h"

/* Dates for people: the session runs in UTC, so the pages say so. */
#define HUMAN_TIME "'%Y-%m-%d %H:%i UTC'"

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
static cd_sql q_lh_totals = CD_SQL(
    "SELECT hours_total, hours_used FROM user_live_help_totals "
    "WHERE user_id = ?");
/* Used only when the totals row does not exist yet (see dashboard). */
static cd_sql q_lh_fallback = CD_SQL(
    "SELECT (SELECT COALESCE(SUM(CAST(hours AS SIGNED) - hours_refunded), 0) "
    "FROM live_help_purchases WHERE user_id = ?) AS hours_total, "
    "(SELECT COALESCE(SUM(hours), 0) FROM live_help_redemptions "
    "WHERE user_id = ?) AS hours_used");
static cd_sql q_voice = CD_SQL(
    "SELECT COALESCE(SUM(minutes_remaining), 0) AS minutes, "
    "DATE_FORMAT(MIN(expires_at), " HUMAN_TIME ") AS expires "
    "FROM voice_therapy_credits WHERE user_id = ? AND is_active = 1 "
    "AND minutes_remaining > 0 AND expires_at > UTC_TIMESTAMP()");
static cd_sql q_balance = CD_SQL(
    "SELECT balance, bonus_earned FROM user_credits WHERE user_id = ?");
static cd_sql q_my_sessions = CD_SQL(
    "SELECT s.id, s.type, COALESCE(pr.name, s.plan) AS plan_name, s.status, "
    "DATE_FORMAT(s.created_at, " HUMAN_TIME ") AS created "
    "FROM sessions s JOIN session_participants p ON p.session_id = s.id "
    "LEFT JOIN products pr ON pr.code = s.plan "
    "WHERE p.user_id = ? ORDER BY s.created_at DESC, s.id DESC LIMIT 50");
static cd_sql q_my_bookings = CD_SQL(
    "SELECT b.id, e.name AS expert_name, b.duration_minutes, b.price_cents, "
    "DATE_FORMAT(b.start_time, " HUMAN_TIME ") AS start, "
    "REPLACE(b.status, '_', ' ') AS status "
    "FROM bookings b JOIN experts e ON e.id = b.expert_id "
    "WHERE b.user_id = ? ORDER BY b.start_time DESC, b.id DESC LIMIT 50");
static cd_sql q_transactions = CD_SQL(
    "SELECT id, description, credits_delta, balance_after, "
    "DATE_FORMAT(created_at, " HUMAN_TIME ") AS created "
    "FROM credit_transactions WHERE user_id = ? ORDER BY id DESC LIMIT 10");
static cd_sql q_experts = CD_SQL(
    "SELECT id, name, headline, rate_cents_per_minute FROM experts "
    "WHERE active = 1 ORDER BY name, id");
static cd_sql q_expert = CD_SQL(
    "SELECT id, name, headline, bio, rate_cents_per_minute FROM experts "
    "WHERE id = ? AND active = 1");
/* Busy times only: no customer, price or status leaves this query. */
static cd_sql q_busy = CD_SQL(
    "SELECT DATE_FORMAT(start_time, " HUMAN_TIME ") AS start, "
    "DATE_FORMAT(end_time, " HUMAN_TIME ") AS end FROM bookings "
    "WHERE expert_id = ? AND status = 'scheduled' "
    "AND end_time > UTC_TIMESTAMP() ORDER BY start_time LIMIT 100");
static cd_sql q_counts = CD_SQL(
    "SELECT (SELECT COUNT(*) FROM users) AS users, "
    "(SELECT COUNT(*) FROM checkout_sessions WHERE status = 'fulfilled') "
    "AS fulfilled, (SELECT COUNT(*) FROM live_help_purchases) AS live_help");
static cd_sql q_audit_recent = CD_SQL(
    "SELECT id, action, entity_type, entity_id, user_id, details, severity, "
    "DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s') AS created "
    "FROM audit_log ORDER BY id DESC LIMIT 50");
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

/*
 * The dashboard.  Live Help totals come from user_live_help_totals; a user
 * whose purchases predate that row (or whose row was never created) still
 * sees the sum of what was bought, less refunds and redemptions.
 */
static cd_err
h_dashboard(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *lh;
	const char *pay = req_query(r, "payment");
	long long uid = r->user->id;

	ROW(d, "liveHelp", &q_lh_totals, "i", uid);
	if (json_is_null(GET(d, "liveHelp")))
		ROW(d, "liveHelp", &q_lh_fallback, "ii", uid, uid);
	lh = GET(d, "liveHelp");
	json_object_set_new(lh, "remaining", json_integer(
	    jint(lh, "hours_total") - jint(lh, "hours_used")));
	ROW(d, "voice", &q_voice, "i", uid);
	ROW(d, "credits", &q_balance, "i", uid);
	json_object_set_new(d, "balance",
	    jcount(jint(GET(d, "credits"), "balance")));
	ROWS(d, "sessions", &q_my_sessions, "i", uid);
	ROWS(d, "bookings", &q_my_bookings, "i", uid);
	fmt_col(GET(d, "bookings"), "price_cents", "price", jmoney);
	json_object_set_new(d, "paymentPending",
	    json_boolean(pay != NULL && strcmp(pay, "pending") == 0));
	return render(r, "dashboard", "Dashboard", d);
}

static cd_err
h_billing(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *c;
	long long uid = r->user->id;

	ROWS(d, "packs", &q_packs, "");
	fmt_col(GET(d, "packs"), "total_credits", "total", jcount);
	fmt_col(GET(d, "packs"), "bonus_credits", "bonus", jcount_nz);
	fmt_col(GET(d, "packs"), "price_cents", "price", jmoney);
	ROW(d, "credits", &q_balance, "i", uid);
	c = GET(d, "credits");
	json_object_set_new(d, "available", jcount(jint(c, "balance")));
	json_object_set_new(d, "bonusEarned", jcount(jint(c, "bonus_earned")));
	ROW(d, "settings", &q_settings, "");
	json_object_set_new(d, "tokensPerCredit",
	    jcount(jint(GET(d, "settings"), "tokens_per_credit")));
	ROWS(d, "transactions", &q_transactions, "i", uid);
	fmt_col(GET(d, "transactions"), "credits_delta", "delta", jdelta);
	fmt_col(GET(d, "transactions"), "balance_after", "after", jcount);
	return render(r, "billing", "Billing", d);
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
	ROWS(d, "busy", &q_busy, "i", r->ids[0]);
	self = arena_printf(r->arena, "/experts/%lld/schedule", r->ids[0]);
	json_object_set_new(d, "loginHref", json_string(login_href(r, self)));
	return render(r, "expert_schedule", jstr(e, "name"), d);
}

static cd_err
h_thank_you(cd_req *r)
{
	return render(r, "thank_you", "Thank you",
	    req_own(r, json_object()));
}

static cd_err
h_admin(cd_req *r)
{
	json_t *d = req_own(r, json_object());

	ROW(d, "counts", &q_counts, "");
	ROW(d, "books", &q_books_run, "");
	ROWS(d, "bookFindings", &q_books_findings, "");
	ROWS(d, "audit", &q_audit_recent, "");
	return render(r, "admin", "Admin", d);
}

/*
 * GET /api/admin/audit: newest first, keyset-paginated on id.  One row more
 * than asked for is read to learn whether another page exists.
 */
static const cd_field audit_fields[] = {
	{ "limit", F_INT, 0, 1, 100, NULL },
	{ "before", F_INT, 0, 1, 9007199254740991LL, NULL },
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
	before = v[1].present ? v[1].i : 9007199254740991LL + 1;
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

static const cd_route routes[] = {
	{ "GET", "/",			h_explore,	R_PAGE },
	{ "GET", "/login",		h_login,	R_PAGE },
	{ "GET", "/register",		h_register,	R_PAGE },
	{ "GET", "/dashboard",		h_dashboard,	R_USER | R_PAGE },
	{ "GET", "/settings/billing",	h_billing,	R_USER | R_PAGE },
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
