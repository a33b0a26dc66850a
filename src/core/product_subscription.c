/*
 * Subscriptions.  The Checkout Session only starts the subscription; credits
 * come from invoices: every paid invoice allocates the plan's monthly credits
 * once, guarded by the UNIQUE invoice id.  invoice.paid may arrive before
 * checkout.session.completed, so both paths create the subscription row with
 * an upsert on its UNIQUE Stripe id and neither depends on the other.
 */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "format.h"
#include "ledger.h"
#include "log.h"
#include "products.h"
#include "stripe.h"

static cd_sql q_upsert = CD_SQL(
    "INSERT INTO subscriptions (user_id, plan_id, stripe_subscription_id,"
    " stripe_session_id, status) VALUES (?, ?, ?, ?, ?)"
    " ON DUPLICATE KEY UPDATE"
    " status = IF(status = 'canceled', status, VALUES(status)),"
    " stripe_session_id = COALESCE(stripe_session_id, VALUES(stripe_session_id))");
/* Stripe's view of a subscription onto our row; canceled is final. */
static cd_sql q_sync = CD_SQL(
    "UPDATE subscriptions SET status = ?, current_period_end = FROM_UNIXTIME(?),"
    " cancel_at_period_end = ? WHERE stripe_subscription_id = ?"
    " AND status <> 'canceled'");
static cd_sql q_claim = CD_SQL(
    "UPDATE checkout_sessions SET status = 'fulfilled' WHERE id = ? AND status <> 'fulfilled'");
static cd_sql q_sub = CD_SQL(
    "SELECT id, user_id, plan_id FROM subscriptions WHERE stripe_subscription_id = ?");
static cd_sql q_plan = CD_SQL(
    "SELECT name, monthly_credits FROM subscription_plans WHERE id = ?");
/* Evidence that we created a checkout for this user and plan. */
static cd_sql q_ours = CD_SQL(
    "SELECT id FROM checkout_sessions WHERE user_id = ? AND product = 'subscription'"
    " AND item_code = ? LIMIT 1");
static cd_sql q_allocate = CD_SQL(
    "INSERT INTO subscription_allocations (subscription_id, stripe_invoice_id, credits)"
    " VALUES (?, ?, ?)");

static cd_err
grant(const cd_checkout *ck, bool *granted)
{
	const char *sub = json_string_value(json_object_get(ck->stripe, "subscription"));
	unsigned long long n;
	cd_err err;

	*granted = false;
	if (sub == NULL)
		return CD_OK;	/* not complete yet */
	if ((err = db_exec(&q_upsert, NULL, "issss", ck->user_id, ck->item_code,
	    sub, ck->stripe_session_id, "active")) != CD_OK ||
	    (err = db_exec(&q_claim, &n, "i", ck->id)) != CD_OK)
		return err;
	*granted = n == 1;
	return CD_OK;
}




struct allocation {
	const json_t	*invoice;
	const char	*sub_id;
	long long	 user_id;
	const char	*plan_id;
};

static cd_err
allocate_tx(void *arg)
{
	struct allocation *a = arg;
	const char *invoice_id = json_string_value(json_object_get(a->invoice, "id"));
	long long rate, credits, sub;
	cd_buf desc = CD_BUF_INIT;
	json_t *plan, *row, *meta;
	bool fresh;
	cd_entry e;
	cd_err err;

	if ((err = ledger_rate(&rate)) != CD_OK ||
	    (err = db_row(&q_plan, &plan, "s", a->plan_id)) != CD_OK)
		return err;
	if (plan == NULL)
		return CD_NOT_FOUND;
	credits = jint(plan, "monthly_credits");
	buf_printf(&desc, "%s plan: ", jstr(plan, "name"));
	format_count(&desc, credits);
	buf_puts(&desc, " Pilot Credits");
	json_decref(plan);
	if ((err = db_exec(&q_upsert, NULL, "issss", a->user_id, a->plan_id,
	    a->sub_id, NULL, "active")) != CD_OK ||
	    (err = db_row(&q_sub, &row, "s", a->sub_id)) != CD_OK)
		goto out;
	sub = jint(row, "id");
	json_decref(row);
	if ((err = db_insert_once(&q_allocate, &fresh, NULL, "isi", sub, invoice_id,
	    credits * rate)) != CD_OK || !fresh)
		goto out;
	meta = json_pack("{s:s,s:s,s:s,s:I}", "stripeInvoiceId", invoice_id,
	    "stripeSubscriptionId", a->sub_id, "planId", a->plan_id,
	    "amountPaidCents", (json_int_t)jint(a->invoice, "amount_paid"));
	e = (cd_entry){ a->user_id, credits * rate, 0, "allocation",
	    "subscription_renewal", buf_cstr(&desc), meta };
	err = ledger_apply(&e, NULL);
	json_decref(meta);
out:
	buf_free(&desc);
	return err;
}

static cd_err
invoice_paid(const json_t *invoice, const json_t *subscription)
{
	const json_t *meta = json_object_get(subscription, "metadata");
	struct allocation a;
	json_t *ours;
	cd_err err;

	if (!json_is_true(json_object_get(invoice, "paid")) ||
	    strcmp(jstr(invoice, "status") ?: "", "paid") != 0)
		return CD_OK;
	a.invoice = invoice;
	a.sub_id = jstr(subscription, "id");
	a.user_id = jint(meta, "user_id");
	a.plan_id = jstr(meta, "item");
	if (a.sub_id == NULL || a.user_id <= 0 || a.plan_id == NULL ||
	    jstr(invoice, "id") == NULL)
		return CD_OK;	/* not a subscription we sold */
	if ((err = db_row(&q_ours, &ours, "is", a.user_id, a.plan_id)) != CD_OK)
		return err;
	json_decref(ours);
	if (ours == NULL) {
		log_warn("invoice %s: no checkout of ours for this subscription",
		    jstr(invoice, "id"));
		return CD_OK;
	}
	err = db_tx(allocate_tx, &a);
	if (err == CD_OK)
		err = subscription_sync(subscription);
	return err == CD_NOT_FOUND ? CD_OK : err;
}

cd_err
subscription_sync(const json_t *sub)
{
	const char *id = jstr(sub, "id"), *status = jstr(sub, "status");

	if (id == NULL || status == NULL)
		return CD_OK;
	return db_exec(&q_sync, NULL, "siis", status,
	    jint(sub, "current_period_end"),
	    json_is_true(json_object_get(sub, "cancel_at_period_end")) ? 1LL : 0LL,
	    id);
}

cd_err
subscription_allocate_invoice(const char *invoice_id)
{
	json_t *invoice = NULL, *sub = NULL;
	cd_err err;

	/* An invoice or subscription Stripe does not have: nothing to allocate. */
	if ((err = stripe_retrieve("invoices", "in_", invoice_id, &invoice)) == CD_OK)
		err = stripe_retrieve("subscriptions", "sub_",
		    jstr(invoice, "subscription"), &sub);
	if (err == CD_OK)
		err = invoice_paid(invoice, sub);
	json_decref(sub);
	json_decref(invoice);
	return err == CD_NOT_FOUND ? CD_OK : err;
}

/* The first invoice is settled at once, whether or not invoice.paid came. */
static cd_err
after(const cd_checkout *ck)
{
	const char *invoice = jstr(ck->stripe, "invoice");

	return invoice != NULL ? subscription_allocate_invoice(invoice) : CD_OK;
}

const cd_product product_subscription = { "subscription", grant, NULL, route_billing, after };
