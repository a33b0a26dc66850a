/*
 * The checkout family's statements and the rows they read; see
 * checkout_store.h.
 */
#include "checkout_store.h"
#include "db.h"
#include "products.h"

static cd_sql q_product = CD_SQL(
    "SELECT unit_amount_cents, currency, name, description FROM products"
    " WHERE code = ? AND active = 1");
static const cd_col product_cols[] = {
	DB_INT(product_row, unit_amount), DB_TEXT(product_row, currency),
	DB_TEXT(product_row, name), DB_TEXT(product_row, description),
};
static cd_sql q_pack = CD_SQL(
    "SELECT id, name, credits, bonus_credits, price_cents, currency FROM boost_packs"
    " WHERE id = ? AND active = 1");
static const cd_col pack_cols[] = {
	DB_TEXT(pack_row, id), DB_TEXT(pack_row, name), DB_INT(pack_row, credits),
	DB_INT(pack_row, bonus_credits), DB_INT(pack_row, price_cents),
	DB_TEXT(pack_row, currency),
};
static cd_sql q_plan = CD_SQL(
    "SELECT id, name, monthly_credits, price_cents, currency,"
    " EXISTS (SELECT 1 FROM subscriptions WHERE user_id = ?"
    "  AND status IN " SUBSCRIPTION_LIVE "),"
    " (SELECT COUNT(*) FROM checkout_sessions WHERE user_id = ?"
    "  AND product = 'subscription')"
    " FROM subscription_plans WHERE id = ? AND active = 1");
static const cd_col plan_cols[] = {
	DB_TEXT(plan_row, id), DB_TEXT(plan_row, name),
	DB_INT(plan_row, monthly_credits), DB_INT(plan_row, price_cents),
	DB_TEXT(plan_row, currency), DB_INT(plan_row, subscribed),
	DB_INT(plan_row, checkouts),
};
/* Stripe keeps a Checkout Session open for a day at most. */
static cd_sql q_open_plans = CD_SQL(
    "SELECT stripe_session_id, item_code FROM checkout_sessions"
    " WHERE user_id = ? AND product = 'subscription' AND status = 'open'"
    " AND created_at > UTC_TIMESTAMP(6) - INTERVAL 1 DAY ORDER BY id");
static const cd_col open_plan_cols[] = {
	DB_TEXT(open_plan, stripe_session_id), DB_TEXT(open_plan, item_code),
};

static cd_sql q_by_ref = CD_SQL(
    "SELECT stripe_session_id, product, url, client_secret, item_code, quantity,"
    " status = 'expired' FROM checkout_sessions WHERE user_id = ? AND client_ref = ?");
static const cd_col ref_cols[] = {
	DB_TEXT(session_ref, stripe_session_id), DB_TEXT(session_ref, product),
	DB_TEXT(session_ref, url), DB_TEXT(session_ref, client_secret),
	DB_TEXT(session_ref, item_code), DB_INT(session_ref, quantity),
	DB_INT(session_ref, expired),
};
static cd_sql q_record = CD_SQL(
    "INSERT INTO checkout_sessions (stripe_session_id, user_id, product, item_code,"
    " quantity, amount_cents, currency, mode, client_ref, url, client_secret)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");

static cd_sql q_nonce = CD_SQL(
    "SELECT stripe_nonce FROM users WHERE id = ?");
static cd_sql q_set_nonce = CD_SQL(
    "UPDATE users SET stripe_nonce = ? WHERE id = ? AND stripe_nonce = ''");
static cd_sql q_customer = CD_SQL(
    "SELECT stripe_customer_id FROM users WHERE id = ?");
static cd_sql q_set_customer = CD_SQL(
    "UPDATE users SET stripe_customer_id = ? WHERE id = ? AND stripe_customer_id IS NULL");
static cd_sql q_replace_customer = CD_SQL(
    "UPDATE users SET stripe_customer_id = ? WHERE id = ? AND stripe_customer_id = ?");

static cd_sql q_subscription = CD_SQL(
    "SELECT id, stripe_subscription_id, stripe_nonce, status IN " SUBSCRIPTION_LIVE ","
    " cancel_at_period_end, status = 'past_due', COALESCE(renews_as, plan_id)"
    " FROM subscriptions WHERE id = ? AND user_id = ?");
static const cd_col subscription_cols[] = {
	DB_INT(subscription_row, id),
	DB_TEXT(subscription_row, stripe_subscription_id),
	DB_TEXT(subscription_row, nonce), DB_INT(subscription_row, live),
	DB_INT(subscription_row, cancel_at_period_end),
	DB_INT(subscription_row, past_due), DB_TEXT(subscription_row, renews_as),
};
static cd_sql q_subscription_view = CD_SQL(
    "SELECT id, plan_id, COALESCE(renews_as, plan_id), status, cancel_at_period_end,"
    " DATE_FORMAT(current_period_end, '%Y-%m-%dT%H:%i:%sZ') AS currentPeriodEnd"
    " FROM subscriptions WHERE id = ?");
static const cd_col view_cols[] = {
	DB_INT(subscription_view, id), DB_TEXT(subscription_view, plan_id),
	DB_TEXT(subscription_view, renews_as), DB_TEXT(subscription_view, status),
	DB_INT(subscription_view, cancel_at_period_end),
	DB_TEXT(subscription_view, current_period_end),
};

static cd_sql q_consultation = CD_SQL(
    "SELECT id, type FROM sessions WHERE stripe_session_id = ? AND user_id = ?");
static const cd_col consultation_cols[] = {
	DB_INT(consultation_row, id), DB_TEXT(consultation_row, type),
};

cd_err
cstore_product(cd_arena *a, const char *code, product_row *p, bool *found)
{
	return db_fetch_row(&q_product, a, product_cols, DB_NCOLS(product_cols),
	    p, sizeof(*p), found, "s", code);
}

cd_err
cstore_pack(cd_arena *a, const char *id, pack_row *p, bool *found)
{
	return db_fetch_row(&q_pack, a, pack_cols, DB_NCOLS(pack_cols), p,
	    sizeof(*p), found, "s", id);
}

cd_err
cstore_plan(cd_arena *a, const char *id, long long user_id, plan_row *p,
    bool *found)
{
	return db_fetch_row(&q_plan, a, plan_cols, DB_NCOLS(plan_cols), p,
	    sizeof(*p), found, "iis", user_id, user_id, id);
}

cd_err
cstore_open_plans(cd_arena *a, long long user_id, open_plan **rows, size_t *n)
{
	return db_fetch_all(&q_open_plans, a, open_plan_cols,
	    DB_NCOLS(open_plan_cols), sizeof(**rows), rows, n, "i", user_id);
}

cd_err
cstore_session_by_ref(cd_arena *a, long long user_id, const char *client_ref,
    session_ref *s, bool *found)
{
	return db_fetch_row(&q_by_ref, a, ref_cols, DB_NCOLS(ref_cols), s,
	    sizeof(*s), found, "is", user_id, client_ref);
}

cd_err
cstore_record_session(const session_record *s, bool *created)
{
	return db_insert_once(&q_record, created, NULL, "sissiisssss",
	    s->stripe_session_id, s->user_id, s->product, s->item_code,
	    s->quantity, s->amount_cents, s->currency, s->mode, s->client_ref,
	    s->url, s->client_secret);
}

cd_err
cstore_user_nonce(cd_arena *a, long long user_id, const char **nonce,
    bool *found)
{
	return db_fetch_text(&q_nonce, a, nonce, found, "i", user_id);
}

cd_err
cstore_set_user_nonce(long long user_id, const char *nonce)
{
	return db_exec(&q_set_nonce, NULL, "si", nonce, user_id);
}

cd_err
cstore_customer(cd_arena *a, long long user_id, const char **customer)
{
	return db_fetch_text(&q_customer, a, customer, NULL, "i", user_id);
}

cd_err
cstore_set_customer(long long user_id, const char *customer)
{
	return db_exec(&q_set_customer, NULL, "si", customer, user_id);
}

cd_err
cstore_replace_customer(long long user_id, const char *gone,
    const char *customer)
{
	return db_exec(&q_replace_customer, NULL, "sis", customer, user_id, gone);
}

cd_err
cstore_subscription_of(cd_arena *a, long long id, long long user_id,
    subscription_row *s, bool *found)
{
	return db_fetch_row(&q_subscription, a, subscription_cols,
	    DB_NCOLS(subscription_cols), s, sizeof(*s), found, "ii", id, user_id);
}

cd_err
cstore_subscription_view(cd_arena *a, long long id, subscription_view *v,
    bool *found)
{
	return db_fetch_row(&q_subscription_view, a, view_cols,
	    DB_NCOLS(view_cols), v, sizeof(*v), found, "i", id);
}

cd_err
cstore_consultation_of(cd_arena *a, const char *stripe_session_id,
    long long user_id, consultation_row *c, bool *found)
{
	return db_fetch_row(&q_consultation, a, consultation_cols,
	    DB_NCOLS(consultation_cols), c, sizeof(*c), found, "si",
	    stripe_session_id, user_id);
}
