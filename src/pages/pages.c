/*
 * creditdesk-pages: the HTML pages (explore, sign-in forms, dashboard,
 * billing, experts, thank-you, admin) and the admin audit-log API.
 *
 * Each handler reads what its page shows with a few static statements
 * (pages_store.c, rows as C structs, or as JSON rows where the template
 * shows them as they are), formats money and counts in C with format.h (integer arithmetic only: a
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
#include "escape.h"
#include "format.h"
#include "holdings.h"
#include "ledger.h"
#include "page.h"
#include "pages_store.h"
#include "request.h"
#include "voice.h"

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

/*
 * Attaches JSON rows v (a missing row as null) to d under key when the read
 * that made them succeeded; err is that read's result.
 */
static cd_err
attach(json_t *d, const char *key, cd_err err, json_t *v)
{
	if (err != CD_OK) {
		json_decref(v);
		return err;
	}
	json_object_set_new(d, key, v != NULL ? v : json_null());
	return CD_OK;
}

#define GET(d, key) json_object_get((d), (key))

/* The Live Help dropdown: 1–5 hours, each with its total price. */
static void
add_hours(cd_req *r, json_t *lh, long long unit)
{
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

/* Products as the explore page shows them, each also under its code in byc. */
static json_t *
products_json(const page_product *p, size_t n, json_t *byc)
{
	json_t *all = json_array(), *row;
	size_t i;

	for (i = 0; i < n; i++) {
		row = json_pack("{s:s?,s:s?,s:s?,s:I,s:o}", "code", p[i].code,
		    "name", p[i].name, "description", p[i].description,
		    "unit_amount_cents", (json_int_t)p[i].unit_amount_cents,
		    "price", jmoney(p[i].unit_amount_cents));
		json_array_append_new(all, row);
		if (p[i].code != NULL)
			json_object_set(byc, p[i].code, row);
	}
	return all;
}

/* Boost packs with their total and price (and bonus, for billing). */
static json_t *
packs_json(const page_pack *p, size_t n, bool with_bonus)
{
	json_t *list = json_array(), *row;
	size_t i;

	for (i = 0; i < n; i++) {
		row = json_pack("{s:s?,s:s?,s:I,s:I,s:I,s:I,s:s?,s:o,s:o}",
		    "id", p[i].id, "name", p[i].name,
		    "credits", (json_int_t)p[i].credits,
		    "bonus_credits", (json_int_t)p[i].bonus_credits,
		    "total_credits", (json_int_t)p[i].total_credits,
		    "price_cents", (json_int_t)p[i].price_cents, "badge", p[i].badge,
		    "total", jcount(p[i].total_credits), "price",
		    jmoney(p[i].price_cents));
		if (with_bonus)
			json_object_set_new(row, "bonus", jcount_nz(p[i].bonus_credits));
		json_array_append_new(list, row);
	}
	return list;
}

/*
 * The name of the cheapest plan on sale that includes the premium tier, as
 * premiumPlan in d (absent if none does): what the pages name to a user
 * without the tier.
 */
static void
name_premium_plan(json_t *d, const page_plan *plans, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (plans[i].premium && plans[i].name != NULL) {
			json_object_set_new(d, "premiumPlan",
			    json_string(plans[i].name));
			return;
		}
}

/* What the pages name to a user without the premium tier, attached to d. */
static cd_err
premium_plan(cd_req *r, json_t *d)
{
	page_plan *plans;
	size_t n;
	cd_err err;

	if (CD_USER_PREMIUM(r->user))
		return CD_OK;
	if ((err = pstore_plans(r->arena, &plans, &n)) == CD_OK)
		name_premium_plan(d, plans, n);
	return err;
}

/* The boost packs and the settings in words, attached to d. */
static cd_err
packs_and_settings(cd_req *r, json_t *d, bool with_bonus)
{
	page_pack *packs;
	json_t *v;
	size_t n;
	cd_err err;

	if ((err = pstore_packs(r->arena, &packs, &n)) != CD_OK)
		return err;
	json_object_set_new(d, "packs", packs_json(packs, n, with_bonus));
	err = pstore_settings_json(&v);
	return attach(d, "settings", err, v);
}

static cd_err
h_explore(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *byc = json_object(), *row;
	page_product *products;
	const char *v;
	size_t i, n;
	cd_err err;

	json_object_set_new(d, "products", byc);
	if ((err = pstore_products(r->arena, &products, &n)) != CD_OK)
		return err;
	json_object_set_new(d, "all", products_json(products, n, byc));
	for (i = 0; i < n; i++)
		if (products[i].code != NULL &&
		    strcmp(products[i].code, "live_help") == 0) {
			row = GET(byc, "live_help");
			add_hours(r, row, products[i].unit_amount_cents);
			json_object_set(d, "liveHelp", row);
			break;
		}
	if ((row = GET(byc, "voice_therapy")) != NULL)
		json_object_set(d, "voice", row);
	json_object_set_new(d, "consultations", consultation_cards(r, byc));
	if ((err = packs_and_settings(r, d, false)) != CD_OK)
		return err;
	json_object_set_new(d, "isFirewall", json_boolean(CD_USER_PREMIUM(r->user)));
	if ((err = premium_plan(r, d)) != CD_OK)
		return err;
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

/* The sentence naming what a paid checkout bought (p is no longer open). */
static const char *
purchase_what(cd_req *r, const page_purchase *p, const char **where)
{
	long long n = p->quantity;

	if (strcmp(p->product, "boost_pack") == 0) {
		*where = "The credits are in your balance below.";
		return arena_printf(r->arena, "%s (%s credits)", p->pack_name,
		    fmt_count(r, p->pack_credits));
	}
	if (strcmp(p->product, "subscription") == 0) {
		*where = "Your plan and its renewal date are shown below.";
		return arena_printf(r->arena, "the %s plan (%s credits every month)",
		    p->plan_name, fmt_count(r, p->monthly_credits));
	}
	if (strcmp(p->product, "live_help") == 0) {
		*where = "Book a session with them under Live Help below.";
		return arena_printf(r->arena, "%lld Live Help hour%s", n,
		    n == 1 ? "" : "s");
	}
	if (strcmp(p->product, "voice_therapy") == 0) {
		*where = "Start a session from Voice AI Therapy below.";
		return "Voice AI Therapy minutes";
	}
	*where = "It is listed under My consultations below.";
	return p->product_name ? p->product_name : "a consultation";
}

/*
 * ?purchased=<checkout id>: one sentence naming what was bought and where it
 * is, or that the payment is still being confirmed, did not go through or
 * was refunded.  Another user's id, or none, shows nothing.
 */
static cd_err
purchase_notice(cd_req *r, json_t *d)
{
	const char *v = req_query(r, "purchased"), *what, *where;
	page_purchase p;
	long long id;
	bool found;
	cd_err err;

	if (v == NULL || (id = strtoll(v, NULL, 10)) <= 0)
		return CD_OK;
	if ((err = pstore_purchase(r->arena, id, r->user->id, &p, &found)) != CD_OK)
		return err;
	if (!found)
		return CD_OK;
	if (strcmp(p.status, "open") == 0) {
		json_object_set_new(d, "notice", json_string("Thank you: your "
		    "payment is being confirmed. What you bought appears here "
		    "as soon as it is, usually within a minute."));
		return CD_OK;
	}
	what = purchase_what(r, &p, &where);
	if (strcmp(p.status, "failed") == 0 || strcmp(p.status, "refunded") == 0) {
		json_object_set_new(d, "notice", json_string(arena_printf(r->arena,
		    strcmp(p.status, "failed") == 0 ? "Your payment for %s did "
		    "not go through, so nothing was bought. You can try again." :
		    "Your payment for %s has been refunded.", what)));
		return CD_OK;
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

/*
 * Voice minutes the user can spend now (*minutes) and the next expiry
 * (dashboard, /voice), after charging a session left open past its minutes
 * (voice_settle), as the credits API does: the card never shows minutes a
 * forgotten session has used.
 */
static cd_err
voice_card(cd_req *r, json_t *d, long long *minutes)
{
	json_t *v;
	cd_err err;

	if ((err = voice_settle(r->user->id)) != CD_OK ||
	    (err = voice_available(r->user->id, minutes)) != CD_OK)
		return err;
	err = pstore_voice_json(r->user->id, &v);
	if ((err = attach(d, "voice", err, v)) != CD_OK)
		return err;
	v = GET(d, "voice");
	json_object_set_new(v, "minutes", json_integer(*minutes));
	/* the templates say "1 minute", "2 minutes" */
	json_object_set_new(v, "minutesOne", json_boolean(*minutes == 1));
	json_object_set_new(v, "heldOne", json_boolean(
	    json_integer_value(json_object_get(v, "held")) == 1));
	return CD_OK;
}

/*
 * The whole credits the user can spend, and those an open dispute holds
 * (null when none), as the cards show them: together the balance.
 */
static void
credits_shown(json_t *d, const page_balance *b, long long tpc)
{
	long long available = ledger_spendable(b->balance, b->frozen) / tpc;

	json_object_set_new(d, "available", jcount(available));
	json_object_set_new(d, "held", jcount_nz(b->balance / tpc - available));
}

/* The credit balance as a row ({balance, bonus_earned}, or null), attached. */
static cd_err
balance_card(cd_req *r, json_t *d, page_balance *b)
{
	bool found;
	cd_err err;

	if ((err = pstore_balance(r->user->id, b, &found)) != CD_OK)
		return err;
	json_object_set_new(d, "credits", found ? json_pack("{s:I,s:I}",
	    "balance", (json_int_t)b->balance, "bonus_earned",
	    (json_int_t)b->bonus_earned) : json_null());
	return CD_OK;
}

static json_t *
my_sessions_json(const page_session *s, size_t n)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:I,s:s?,s:b,s:s?,s:s?,s:s?,s:s?}",
		    "id", (json_int_t)s[i].id, "type", s[i].type,
		    "is_chat", s[i].is_chat != 0, "plan_name", s[i].plan_name,
		    "status", s[i].status, "created", s[i].created,
		    "created_iso", s[i].created_iso));
	return list;
}

static json_t *
my_bookings_json(const page_booking *b, size_t n)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack(
		    "{s:I,s:s?,s:I,s:I,s:s?,s:s?,s:s?,s:b,s:b,s:b,s:I,s:o,s:o}",
		    "id", (json_int_t)b[i].id, "expert_name", b[i].expert_name,
		    "duration_minutes", (json_int_t)b[i].duration_minutes,
		    "price_cents", (json_int_t)b[i].price_cents,
		    "start", b[i].start, "start_iso", b[i].start_iso,
		    "status", b[i].status,
		    "can_cancel", b[i].can_cancel || b[i].can_pay,
		    "can_pay", b[i].can_pay != 0,
		    "can_move", b[i].can_move != 0,
		    "expert_id", (json_int_t)b[i].expert_id,
		    "price", jmoney(b[i].price_cents), "refunded",
		    b[i].refunded_cents > 0 ? jmoney(b[i].refunded_cents) :
		    json_null()));
	return list;
}

/* The user's consultations, bookings and expert row, attached to d. */
static cd_err
dashboard_lists(cd_req *r, json_t *d)
{
	page_session *sessions;
	page_booking *bookings;
	page_expert_account e;
	long long uid = r->user->id;
	size_t n;
	bool found;
	cd_err err;

	if ((err = pstore_my_sessions(r->arena, uid, &sessions, &n)) != CD_OK)
		return err;
	json_object_set_new(d, "sessions", my_sessions_json(sessions, n));
	if ((err = pstore_my_bookings(r->arena, uid, &bookings, &n)) != CD_OK)
		return err;
	json_object_set_new(d, "bookings", my_bookings_json(bookings, n));
	if ((err = pstore_my_expert(uid, &e, &found)) != CD_OK)
		return err;
	json_object_set_new(d, "expert", found ? json_pack("{s:I,s:b,s:b,s:I,s:I}",
	    "id", (json_int_t)e.id, "has_account", e.has_account != 0,
	    "payouts_active", e.payouts_active != 0, "full_hours",
	    (json_int_t)e.full_hours, "late_bps", (json_int_t)e.late_bps) :
	    json_null());
	return CD_OK;
}

/* ?moved=<booking>: the notice after a move, if it is one of My bookings. */
static void
moved_notice(cd_req *r, json_t *d)
{
	const char *v = req_query(r, "moved");
	long long id = v != NULL ? strtoll(v, NULL, 10) : 0;
	const char *name;
	json_t *b;
	size_t i;

	if (id <= 0)
		return;
	json_array_foreach(json_object_get(d, "bookings"), i, b) {
		if (json_integer_value(json_object_get(b, "id")) != id)
			continue;
		name = json_string_value(json_object_get(b, "expert_name"));
		json_object_set_new(d, "notice", json_string(arena_printf(r->arena,
		    "Moved: your session with %s is at its new time below.",
		    name != NULL ? name : "your expert")));
		return;
	}
}

static cd_err
h_dashboard(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *v;
	const char *pay = req_query(r, "payment");
	page_balance b;
	long long minutes, tpc;
	cd_err err;

	if ((err = live_help_card(r, d)) != CD_OK ||
	    (err = voice_card(r, d, &minutes)) != CD_OK ||
	    (err = balance_card(r, d, &b)) != CD_OK)
		return err;
	err = pstore_settings_json(&v);
	if ((err = attach(d, "settings", err, v)) != CD_OK ||
	    (err = ledger_rate(&tpc)) != CD_OK)	/* tokens to whole credits */
		return err;
	credits_shown(d, &b, tpc);
	json_object_set_new(d, "voiceReady", json_boolean(minutes > 0));
	json_object_set_new(d, "premium", json_boolean(CD_USER_PREMIUM(r->user)));
	if ((err = dashboard_lists(r, d)) != CD_OK)
		return err;
	json_object_set_new(d, "paymentPending",
	    json_boolean(pay != NULL && strcmp(pay, "pending") == 0));
	if ((err = purchase_notice(r, d)) != CD_OK)
		return err;
	moved_notice(r, d);
	return render(r, "dashboard", "Dashboard", d);
}

static json_t *
transactions_json(const page_transaction *t, size_t n, long long tpc)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:I,s:s?,s:I,s:I,s:s?,s:s?,s:o,s:o}",
		    "id", (json_int_t)t[i].id, "description", t[i].description,
		    "credits_delta", (json_int_t)t[i].credits_delta,
		    "balance_after", (json_int_t)t[i].balance_after,
		    "created", t[i].created, "created_iso", t[i].created_iso,
		    "delta", jdelta(t[i].credits_delta / tpc),
		    "after", jcount(t[i].balance_after / tpc)));
	return list;
}

static json_t *
plans_json(const page_plan *p, size_t n)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:s?,s:s?,s:I,s:I,s:o,s:o,s:b}",
		    "id", p[i].id, "name", p[i].name,
		    "monthly_credits", (json_int_t)p[i].monthly_credits,
		    "price_cents", (json_int_t)p[i].price_cents,
		    "credits", jcount(p[i].monthly_credits),
		    "price", jmoney(p[i].price_cents), "premium", p[i].premium != 0));
	return list;
}

/*
 * What a live subscription can change to, attached to its object o: the
 * plan it renews as when that is another ("renews", with Keep), else the
 * other plans on sale ("changes"); nothing while it ends or its renewal is
 * unpaid.
 */
static void
plan_changes(json_t *o, const page_subscription *s, bool past_due,
    const page_plan *plans, size_t n)
{
	json_t *others = json_array();
	size_t i;

	json_object_set_new(o, "changes", others);
	if (s->ending || past_due)
		return;
	if (strcmp(s->renews.id, s->plan_id) != 0) {
		json_object_set_new(o, "renews", json_pack(
		    "{s:s?,s:o,s:o,s:I,s:s,s:s?}", "name", s->renews.name,
		    "credits", jcount(s->renews.monthly_credits),
		    "price", jmoney(s->renews.price_cents),
		    "subscription", (json_int_t)s->id, "keep_plan", s->plan_id,
		    "keep_name", s->name));
		return;
	}
	for (i = 0; i < n; i++)
		if (strcmp(plans[i].id, s->plan_id) != 0)
			json_array_append_new(others, json_pack("{s:I,s:s,s:s?}",
			    "subscription", (json_int_t)s->id, "plan", plans[i].id,
			    "name", plans[i].name));
}

/* The plans on sale and the user's current subscription, attached to d. */
static cd_err
plans_card(cd_req *r, json_t *d)
{
	page_subscription s;
	page_plan *plans;
	json_t *o;
	size_t n;
	bool found, past_due;
	cd_err err;

	if ((err = pstore_plans(r->arena, &plans, &n)) != CD_OK)
		return err;
	json_object_set_new(d, "plans", plans_json(plans, n));
	name_premium_plan(d, plans, n);
	if ((err = pstore_subscription(r->arena, r->user->id, &s, &found)) != CD_OK)
		return err;
	if (!found) {
		json_object_set_new(d, "subscription", json_null());
		return CD_OK;
	}
	past_due = strcmp(s.status ?: "", "past_due") == 0;
	o = json_pack("{s:I,s:s?,s:b,s:b,s:s?,s:s?,s:s?,s:s?,s:I,s:o,s:b}", "id",
	    (json_int_t)s.id, "status", s.status, "ending", s.ending != 0,
	    "pastDue", past_due,
	    "period_end_iso", s.period_end_iso, "period_end", s.period_end,
	    "plan_id", s.plan_id, "name", s.name,
	    "monthly_credits", (json_int_t)s.monthly_credits,
	    "credits", jcount(s.monthly_credits), "premium", s.premium != 0);
	plan_changes(o, &s, past_due, plans, n);
	json_object_set_new(d, "subscription", o);
	return CD_OK;
}

/* What a payment bought, as a person names it ("Live Help, 3 hours"). */
static const char *
payment_name(cd_req *r, const page_payment *p)
{
	long long n = p->units;

	if (strcmp(p->kind, "booking") == 0)
		return arena_printf(r->arena, "Session with %s", p->name);
	if (strcmp(p->kind, "subscription") == 0)
		return arena_printf(r->arena, "%s plan", p->name);
	if (strcmp(p->kind, "live_help") == 0)
		return arena_printf(r->arena, "%s, %lld hour%s", p->name, n,
		    n == 1 ? "" : "s");
	if (strcmp(p->kind, "voice_therapy") == 0)
		return arena_printf(r->arena, "%s, %lld minute%s", p->name, n,
		    n == 1 ? "" : "s");
	return p->name;
}

/* A payment's state in words; a partial refund says how much it gave back. */
static json_t *
payment_status(const page_payment *p)
{
	static const char *const words[][2] = {
		{ "paid", "Paid" }, { "refunded", "Refunded" },
		{ "disputed", "Disputed" }, { "charged_back", "Charged back" },
	};
	size_t i;

	if (strcmp(p->state, "partly_refunded") == 0)
		return jfmt(format_cents, "Partly refunded: ", p->refunded_cents);
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(p->state, words[i][0]) == 0)
			return json_string(words[i][1]);
	return json_string(p->state);
}

/* The user's payments, newest first, attached to d. */
static cd_err
payments_list(cd_req *r, json_t *d)
{
	json_t *list = json_array();
	page_payment *p;
	size_t i, n;
	cd_err err;

	json_object_set_new(d, "payments", list);
	if ((err = pstore_payments(r->arena, r->user->id, &p, &n)) != CD_OK)
		return err;
	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:s?,s:o,s:s?,s:o,s:s?,s:s?}",
		    "name", payment_name(r, &p[i]), "amount",
		    jmoney(p[i].amount_cents), "state", p[i].state,
		    "status", payment_status(&p[i]), "paid", p[i].paid,
		    "paid_iso", p[i].paid_iso));
	return CD_OK;
}

static cd_err
h_billing(cd_req *r)
{
	json_t *d = req_own(r, json_object());
	page_transaction *tx;
	page_balance b;
	long long tpc;
	size_t n;
	cd_err err;

	if ((err = packs_and_settings(r, d, true)) != CD_OK ||
	    (err = balance_card(r, d, &b)) != CD_OK ||
	    (err = ledger_rate(&tpc)) != CD_OK)	/* tokens to whole credits */
		return err;
	credits_shown(d, &b, tpc);
	json_object_set_new(d, "bonusEarned", jcount(b.bonus_earned / tpc));
	if ((err = pstore_transactions(r->arena, r->user->id, &tx, &n)) != CD_OK)
		return err;
	json_object_set_new(d, "transactions", transactions_json(tx, n, tpc));
	if ((err = payments_list(r, d)) != CD_OK ||
	    (err = plans_card(r, d)) != CD_OK ||
	    (err = purchase_notice(r, d)) != CD_OK)
		return err;
	return render(r, "billing", "Billing", d);
}

static json_t *
slots_json(const page_slot *s, size_t n)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:I,s:s?,s:s?,s:I,s:I,s:b,s:b,s:b}",
		    "id", (json_int_t)s[i].id, "starts_iso", s[i].starts_iso,
		    "starts", s[i].starts, "minutes", (json_int_t)s[i].minutes,
		    "seats_left", (json_int_t)s[i].seats_left,
		    "full", s[i].full != 0, "mine", s[i].mine != 0,
		    "final", s[i].final != 0));
	return list;
}

static json_t *
booked_slots_json(const page_booked_slot *s, size_t n)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:I,s:s?,s:s?,s:b}",
		    "id", (json_int_t)s[i].id, "starts_iso", s[i].starts_iso,
		    "starts", s[i].starts, "can_cancel", s[i].can_cancel != 0));
	return list;
}

/* The sentence after a booking or cancel (live_help.js's ?done=), or NULL. */
static const char *
live_help_notice(const char *done)
{
	static const struct {
		const char	*done, *notice;
	} notices[] = {
		{ "booked", "Booked: one Live Help hour was used. The slot is "
		    "listed under My Live Help." },
		{ "cancelled", "Cancelled: the hour is back in your balance." },
		{ "refunded", "Cancelled: the hour went to the refund of the "
		    "purchase it came from, so it is not back in your balance." },
	};
	size_t i;

	for (i = 0; done != NULL && i < sizeof(notices) / sizeof(notices[0]); i++)
		if (strcmp(done, notices[i].done) == 0)
			return notices[i].notice;
	return NULL;
}

/*
 * /live-help: the upcoming slots with their free seats (Book spends one
 * hour), and the user's booked slots (Cancel gives the hour back while the
 * slot is more than live_help_cancel_hours away).
 */
static cd_err
h_live_help(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *v;
	long long uid = r->user->id;
	const char *done = req_query(r, "done"), *notice;
	page_booked_slot *booked;
	page_slot *slots;
	size_t n;
	cd_err err;

	if ((err = live_help_card(r, d)) != CD_OK ||
	    (err = pstore_slots(r->arena, uid, &slots, &n)) != CD_OK)
		return err;
	/* with no hour left a slot offers buying one, not a Book that must fail */
	json_object_set_new(d, "canBook", json_boolean(json_integer_value(
	    json_object_get(json_object_get(d, "liveHelp"), "remaining")) > 0));
	json_object_set_new(d, "slots", slots_json(slots, n));
	if ((err = pstore_booked_slots(r->arena, uid, &booked, &n)) != CD_OK)
		return err;
	json_object_set_new(d, "booked", booked_slots_json(booked, n));
	err = pstore_policy_json(&v);
	if ((err = attach(d, "policy", err, v)) != CD_OK)
		return err;
	if ((notice = live_help_notice(done)) != NULL)
		json_object_set_new(d, "notice", json_string(notice));
	return render(r, "live_help", "Live Help", d);
}

/*
 * /voice: a Voice AI Therapy session for a user with minutes: Start, a timer
 * of the minutes left, End (voice.js); an open session resumes.  Buying
 * takes the premium tier; minutes bought stay usable without it (a plan
 * that ended), as the API lets them be.
 */
static cd_err
h_voice(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *v;
	bool premium = CD_USER_PREMIUM(r->user);
	long long minutes;
	cd_err err;

	if ((err = voice_card(r, d, &minutes)) != CD_OK)
		return err;
	err = pstore_voice_open_json(r->user->id, &v);
	if ((err = attach(d, "open", err, v)) != CD_OK)
		return err;
	json_object_set_new(d, "premium", json_boolean(premium));
	json_object_set_new(d, "hasMinutes", json_boolean(minutes > 0));
	json_object_set_new(d, "usable", json_boolean(premium || minutes > 0 ||
	    !json_is_null(GET(d, "open"))));
	if ((err = premium_plan(r, d)) != CD_OK)
		return err;
	return render(r, "voice", "Voice AI Therapy", d);
}

/* /expert/bookings: an expert's bookings, with Complete once one has started. */
static cd_err
h_expert_bookings(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *list;
	page_expert_booking *b;
	size_t i, n;
	cd_err err;

	if ((err = pstore_expert_bookings(r->arena, r->user->id, &b, &n)) != CD_OK)
		return err;
	list = json_array();
	json_object_set_new(d, "bookings", list);
	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack(
		    "{s:I,s:s?,s:I,s:I,s:s?,s:s?,s:s?,s:b,s:o}",
		    "id", (json_int_t)b[i].id, "customer", b[i].customer,
		    "duration_minutes", (json_int_t)b[i].duration_minutes,
		    "payout_cents", (json_int_t)b[i].payout_cents,
		    "start", b[i].start, "start_iso", b[i].start_iso,
		    "status", b[i].status, "can_complete", b[i].can_complete != 0,
		    "payout", jmoney(b[i].payout_cents)));
	return render(r, "expert_bookings", "My expert bookings", d);
}

/* /mechanic/queue: consultations waiting for a mechanic, each with Take. */
static cd_err
h_mechanic_queue(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *v, *row;
	size_t i;
	cd_err err;

	err = pstore_waiting_json(&v);
	if ((err = attach(d, "waiting", err, v)) != CD_OK)
		return err;
	/* a mechanic's own purchase is listed without Take (409 own_consultation) */
	json_array_foreach(v, i, row)
		json_object_set_new(row, "own", json_boolean(json_integer_value(
		    json_object_get(row, "user_id")) == r->user->id));
	return render(r, "mechanic_queue", "Queue", d);
}

/* An expert as the pages show them, with the rate per minute as money. */
static json_t *
expert_json(const page_expert *e)
{
	json_t *o = json_pack("{s:I,s:s?,s:s?,s:I,s:o}", "id", (json_int_t)e->id,
	    "name", e->name, "headline", e->headline, "rate_cents_per_minute",
	    (json_int_t)e->rate_cents_per_minute, "rate",
	    jmoney(e->rate_cents_per_minute));

	if (e->bio != NULL)
		json_object_set_new(o, "bio", json_string(e->bio));
	return o;
}

static cd_err
h_experts(cd_req *r)
{
	json_t *d = req_own(r, json_object()), *list;
	page_expert *e;
	size_t i, n;
	cd_err err;

	if ((err = pstore_experts(r->arena, &e, &n)) != CD_OK)
		return err;
	list = json_array();
	json_object_set_new(d, "experts", list);
	for (i = 0; i < n; i++)
		json_array_append_new(list, expert_json(&e[i]));
	return render(r, "experts", "Experts", d);
}

/* The bookable hours, attached to d. */
static cd_err
hours_card(cd_req *r, json_t *d)
{
	page_hour *h;
	json_t *list;
	size_t i, n;
	cd_err err;

	if ((err = pstore_hours(r->arena, r->ids[0], &h, &n)) != CD_OK)
		return err;
	list = json_array();
	json_object_set_new(d, "hours", list);
	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:s?,s:s?,s:b}",
		    "start_iso", h[i].start_iso, "start", h[i].start,
		    "busy", h[i].busy != 0));
	return CD_OK;
}

/* The signed-in user's unpaid holds of this expert's time, attached to d. */
static cd_err
holds_card(cd_req *r, json_t *d)
{
	page_hold *h;
	json_t *list;
	size_t i, n;
	cd_err err;

	if (r->user == NULL)
		return CD_OK;
	if ((err = pstore_my_holds(r->arena, r->user->id, r->ids[0], &h, &n)) !=
	    CD_OK)
		return err;
	list = json_array();
	json_object_set_new(d, "holds", list);
	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack(
		    "{s:I,s:I,s:o,s:s?,s:s?,s:s?,s:s?}", "id", (json_int_t)h[i].id,
		    "duration_minutes", (json_int_t)h[i].duration_minutes,
		    "price", jmoney(h[i].price_cents), "start_iso", h[i].start_iso,
		    "start", h[i].start, "until_iso", h[i].until_iso,
		    "until", h[i].until));
	return CD_OK;
}

/* Basis points as a percentage, in the request's arena: "33.33%". */
static const char *
percent_text(cd_req *r, long long bps)
{
	cd_buf *b = buf_in(r->arena);

	format_bps(b, bps);
	return buf_cstr(b);
}

/*
 * ?move=<booking>: the user is moving that booking of this expert, attached
 * to d as "moving" (or "moveGone" when it can no longer move).
 */
static cd_err
moving_card(cd_req *r, json_t *d)
{
	const char *v = req_query(r, "move");
	page_moving m;
	long long id;
	bool found = false;
	cd_err err;

	if (v == NULL || r->user == NULL)
		return CD_OK;
	if ((id = strtoll(v, NULL, 10)) > 0 && (err = pstore_movable(r->arena,
	    id, r->user->id, r->ids[0], &m, &found)) != CD_OK)
		return err;
	if (!found) {
		json_object_set_new(d, "moveGone", json_true());
		return CD_OK;
	}
	/* moving closer than the full refund's window lowers what a cancel gives back */
	json_object_set_new(d, "moving", json_pack("{s:I,s:I,s:s?,s:s?,s:I,s:s}", "id",
	    (json_int_t)m.id, "duration_minutes", (json_int_t)m.duration_minutes,
	    "start_iso", m.start_iso, "start", m.start, "full_hours",
	    (json_int_t)m.full_hours, "late_percent", percent_text(r, m.late_bps)));
	return CD_OK;
}

/*
 * The cancellation policy a booking of this expert is made under now, as
 * the customer reads it before picking a time: the booking keeps it.
 */
static json_t *
policy_json(cd_req *r, const page_expert *e)
{
	return json_pack("{s:I,s:s?}", "full_hours", (json_int_t)e->full_hours,
	    "late", e->late_bps == 0 ? NULL :
	    arena_printf(r->arena, "%s of its price", percent_text(r, e->late_bps)));
}

static cd_err
h_schedule(cd_req *r)
{
	json_t *d = req_own(r, json_object());
	const char *self;
	page_expert e;
	long long rate;
	bool found;
	cd_err err;

	if ((err = pstore_expert(r->arena, r->ids[0], &e, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "expert_not_found",
		    "There is no such expert.");
	json_object_set_new(d, "expert", expert_json(&e));
	json_object_set_new(d, "policy", policy_json(r, &e));
	if ((err = hours_card(r, d)) != CD_OK || (err = holds_card(r, d)) != CD_OK ||
	    (err = moving_card(r, d)) != CD_OK)
		return err;
	rate = e.rate_cents_per_minute;
	json_object_set_new(d, "durations", json_pack("[{s:i,s:o},{s:i,s:o},{s:i,s:o}]",
	    "minutes", 15, "price", jmoney(rate * 15),
	    "minutes", 30, "price", jmoney(rate * 30),
	    "minutes", 60, "price", jmoney(rate * 60)));
	self = arena_printf(r->arena, "/experts/%lld/schedule", r->ids[0]);
	json_object_set_new(d, "loginHref", json_string(login_href(r, self)));
	return render(r, "expert_schedule", e.name, d);
}

/*
 * /thank-you?session=<consultation id>: what was bought and what happens
 * next (a mechanic takes it, then gets in touch).  Only a participant sees
 * the consultation; to anyone else, as to a bad id, it does not exist (it
 * never says "Payment received" for a payment nobody made).
 */
static cd_err
h_thank_you(cd_req *r)
{
	const char *v = req_query(r, "session");
	page_consultation c;
	long long id = v != NULL ? strtoll(v, NULL, 10) : 0;
	bool found = false;
	cd_err err;

	if (id > 0 && (err = pstore_consultation(r->arena, r->user->id, id, &c,
	    &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "session_not_found",
		    "There is no such consultation of yours; your dashboard lists them.");
	/* Closed: refunded before a mechanic took it (the only close). */
	return render(r, "thank_you", "Thank you", req_own(r, json_pack(
	    "{s:{s:I,s:s?,s:s?,s:b,s:I,s:b,s:b,s:s?,s:s?,s:s?,s:o}}", "consultation",
	    "id", (json_int_t)c.id, "type", c.type, "status", c.status,
	    "closed", strcmp(c.status ?: "", "closed") == 0,
	    "amount_cents", (json_int_t)c.amount_cents,
	    "is_video", c.is_video != 0,
	    "is_chat", strcmp(c.type ?: "", "chat") == 0, "plan_name", c.plan_name,
	    "email", c.email, "mechanic", c.mechanic,
	    "price", jmoney(c.amount_cents))));
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

/* tz=<minutes east of UTC>: the viewer's zone, in which the days are theirs. */
static long long
zone_or_utc(cd_req *r)
{
	const char *v = req_query(r, "tz");
	char *end;
	long long m;

	if (v == NULL)
		return 0;
	m = strtoll(v, &end, 10);
	return *v != '\0' && *end == '\0' && m >= -14 * 60 && m <= 14 * 60 ? m : 0;
}

/* "/admin?action=…&user=…&from=…&to=…&tz=…[&before=id]#audit", in the arena. */
static const char *
audit_href(cd_req *r, const page_audit_filter *f, long long before)
{
	const char *const keys[] = { "action", "user", "from", "to" };
	const char *const values[] = { f->action, f->user, f->from, f->to };
	cd_buf b = CD_BUF_INIT;
	const char *s;
	size_t i;

	buf_puts(&b, "/admin?");
	for (i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		buf_printf(&b, "%s%s=", i ? "&" : "", keys[i]);
		esc_url_arg(&b, values[i]);
	}
	buf_printf(&b, "&tz=%lld", f->tz);
	if (before > 0)
		buf_printf(&b, "&before=%lld", before);
	buf_puts(&b, "#audit");
	s = arena_strdup(r->arena, buf_cstr(&b));
	buf_free(&b);
	return s;
}

/* An audit entry's user id as JSON: the integer, or null for none. */
static json_t *
audit_user(const char *user_id)
{
	return user_id != NULL ? json_integer(strtoll(user_id, NULL, 10)) :
	    json_null();
}

/* The audit section's rows, as the template shows them. */
static json_t *
audit_rows_json(const page_audit *a, size_t n)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack(
		    "{s:I,s:s?,s:s?,s:s?,s:o,s:s?,s:s?,s:s?,s:s?,s:s?}",
		    "id", (json_int_t)a[i].id, "action", a[i].action,
		    "entity_type", a[i].entity_type, "entity_id", a[i].entity_id,
		    "user_id", audit_user(a[i].user_id), "user_email", a[i].user_email,
		    "details", a[i].details, "severity", a[i].severity,
		    "created_iso", a[i].created_iso, "created", a[i].created));
	return list;
}

/* The audit section: filters (echoed back), one page of rows, older/newest links. */
static cd_err
admin_audit(cd_req *r, json_t *d)
{
	page_audit_filter f = { query_or_empty(r, "action", 64),
	    query_or_empty(r, "user", 254), day_or_empty(r, "from"),
	    day_or_empty(r, "to"), zone_or_utc(r) };
	const char *v;
	long long before = (v = req_query(r, "before")) ? strtoll(v, NULL, 10) : 0;
	page_audit *rows;
	json_t *actions;
	size_t n;
	cd_err err;

	json_object_set_new(d, "filter", json_pack("{s:s,s:s,s:s,s:s}",
	    "action", f.action, "user", f.user, "from", f.from, "to", f.to));
	if (before <= 0)
		before = CD_MAX_ID;
	if ((err = pstore_audit(r->arena, &f, before, (long long)AUDIT_PAGE + 1,
	    &rows, &n)) != CD_OK)
		return err;
	json_object_set_new(d, "audit", audit_rows_json(rows,
	    n > AUDIT_PAGE ? AUDIT_PAGE : n));
	if (n > AUDIT_PAGE)
		json_object_set_new(d, "olderHref", json_string(audit_href(r, &f,
		    rows[AUDIT_PAGE - 1].id)));
	if (req_query(r, "before") != NULL)
		json_object_set_new(d, "newestHref", json_string(audit_href(r, &f, 0)));
	err = pstore_audit_actions_json(&actions);
	return attach(d, "actions", err, actions);
}

/* Users, each with its role and tier choices, the current one selected. */
static json_t *
users_json(const page_user *u, size_t n)
{
	static const char *const roles[] = { "customer", "expert", "mechanic", "admin" };
	static const char *const tiers[] = { "free", "firewall" };
	json_t *users = json_array(), *row, *list;
	size_t i, k;

	for (i = 0; i < n; i++) {
		row = json_pack("{s:I,s:s?,s:s?,s:s?,s:s?}", "id",
		    (json_int_t)u[i].id, "email", u[i].email, "name", u[i].name,
		    "role", u[i].role, "tier", u[i].tier);
		list = json_array();
		for (k = 0; k < 4; k++)
			json_array_append_new(list, json_pack("{s:s,s:b}", "v", roles[k],
			    "sel", u[i].role != NULL && strcmp(roles[k], u[i].role) == 0));
		json_object_set_new(row, "roles", list);
		list = json_array();
		for (k = 0; k < 2; k++)
			json_array_append_new(list, json_pack("{s:s,s:b}", "v", tiers[k],
			    "sel", u[i].tier != NULL && strcmp(tiers[k], u[i].tier) == 0));
		json_object_set_new(row, "tiers", list);
		json_array_append_new(users, row);
	}
	return users;
}

/* The admin's JSON sections shown as they are, attached to d. */
static cd_err
admin_sections(json_t *d)
{
	json_t *v;
	cd_err err;

	err = pstore_counts_json(&v);
	if ((err = attach(d, "counts", err, v)) != CD_OK)
		return err;
	err = pstore_books_run_json(&v);
	if ((err = attach(d, "books", err, v)) != CD_OK)
		return err;
	err = pstore_books_findings_json(&v);
	if ((err = attach(d, "bookFindings", err, v)) != CD_OK)
		return err;
	err = pstore_waiting_json(&v);
	if ((err = attach(d, "waiting", err, v)) != CD_OK)
		return err;
	err = pstore_mechanics_json(&v);
	return attach(d, "mechanics", err, v);
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
	page_user *users;
	size_t n;
	cd_err err;

	if ((err = admin_sections(d)) != CD_OK)
		return err;
	json_object_set_new(d, "q", json_string(q));
	if ((err = pstore_users(r->arena, q, &users, &n)) != CD_OK)
		return err;
	json_object_set_new(d, "users", users_json(users, n));
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
audit_entry(const page_audit *a)
{
	const char *details = a->details;
	json_t *parsed = details ? json_loads(details, JSON_DECODE_ANY, NULL) : NULL;

	if (parsed == NULL)
		parsed = details ? json_string(details) : json_object();
	return json_pack("{s:I,s:s?,s:s?,s:s?,s:o,s:o,s:s?,s:s?}",
	    "id", (json_int_t)a->id, "action", a->action,
	    "entityType", a->entity_type, "entityId", a->entity_id,
	    "userId", audit_user(a->user_id), "details", parsed,
	    "severity", a->severity, "createdAt", a->created_iso);
}

static cd_err
h_audit(cd_req *r)
{
	cd_value v[2];
	json_t *entries, *next = json_null();
	long long limit, before;
	page_audit *rows;
	size_t i, n;
	cd_err err;

	if ((err = req_query_fields(r, audit_fields, 2, v)) != CD_OK)
		return err;
	limit = v[0].present ? v[0].i : 50;
	before = v[1].present ? v[1].i : CD_MAX_ID + 1;
	if ((err = pstore_audit_page(r->arena, before, limit + 1, &rows, &n)) !=
	    CD_OK)
		return err;
	entries = json_array();
	for (i = 0; i < n; i++) {
		if ((long long)i == limit) {
			json_decref(next);
			next = json_integer(rows[i - 1].id);
			break;
		}
		json_array_append_new(entries, audit_entry(&rows[i]));
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
	{ "GET", "/thank-you",		h_thank_you,	R_USER | R_PAGE },
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
