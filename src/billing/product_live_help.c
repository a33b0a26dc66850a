/*
 * Live Help hours.  A paid session adds its hours to the buyer's running
 * total; a refund takes back the refunded share of those hours, but never
 * hours the buyer has already redeemed into slots: those are owed to the
 * refund (hours_owed) and taken when their slot is cancelled.
 */
#include <stdio.h>

#include "db.h"
#include "holdings.h"
#include "products.h"

static cd_sql q_purchase = CD_SQL(
    "INSERT INTO live_help_purchases (user_id, stripe_session_id, hours, amount_cents)"
    " VALUES (?, ?, ?, ?)");
static cd_sql q_add_total = CD_SQL(
    "INSERT INTO user_live_help_totals (user_id, hours_total) VALUES (?, ?)"
    " ON DUPLICATE KEY UPDATE hours_total = hours_total + VALUES(hours_total)");
static cd_sql q_lock = CD_SQL(
    "SELECT p.hours, p.hours_refunded, p.hours_owed, t.hours_total, t.hours_used,"
    " t.hours_frozen"
    " FROM live_help_purchases p"
    " JOIN user_live_help_totals t ON t.user_id = p.user_id"
    " WHERE p.stripe_session_id = ? FOR UPDATE");
static cd_sql q_refunded = CD_SQL(
    "UPDATE live_help_purchases SET hours_refunded = hours_refunded + ?,"
    " hours_owed = hours_owed + ? WHERE stripe_session_id = ?");
/* One owed hour of the user's (oldest purchase first) taken by its refund. */
static cd_sql q_owed_taken = CD_SQL(
    "UPDATE live_help_purchases SET hours_owed = hours_owed - 1,"
    " hours_refunded = hours_refunded + 1"
    " WHERE user_id = ? AND hours_owed > 0 ORDER BY id LIMIT 1");
static cd_sql q_hour_back = CD_SQL(
    "UPDATE user_live_help_totals SET hours_used = hours_used - 1,"
    " hours_total = hours_total - ? WHERE user_id = ? AND hours_used > 0");
static cd_sql q_take = CD_SQL(
    "UPDATE user_live_help_totals SET hours_total = hours_total - ? WHERE user_id = ?");

/* Frozen hours stay in hours_total but cannot be booked. */
static cd_sql q_freeze = CD_SQL(
    "UPDATE user_live_help_totals SET hours_frozen = hours_frozen + ? WHERE user_id = ?");

static cd_err
grant(const cd_checkout *ck, bool *granted)
{
	cd_err err;

	if ((err = db_insert_once(&q_purchase, granted, NULL, "isii", ck->user_id,
	    ck->stripe_session_id, ck->quantity, ck->amount_cents)) != CD_OK ||
	    !*granted)
		return err;
	return db_exec(&q_add_total, NULL, "ii", ck->user_id, ck->quantity);
}

/* A purchase with its buyer's totals, locked (q_lock). */
struct held {
	long long	 hours, refunded, owed, total, used, frozen;
};
static const cd_col held_cols[] = {
	DB_INT(struct held, hours), DB_INT(struct held, refunded),
	DB_INT(struct held, owed), DB_INT(struct held, total),
	DB_INT(struct held, used), DB_INT(struct held, frozen),
};

static cd_err
lock_purchase(const cd_checkout *ck, struct held *h, bool *found)
{
	return db_fetch_row(&q_lock, NULL, held_cols, DB_NCOLS(held_cols), h,
	    sizeof(*h), found, "s", ck->stripe_session_id);
}

static cd_err
reverse(const cd_checkout *ck, long long refunded_cents, long long *units)
{
	long long target, delta, unused;
	struct held h;
	bool found;
	cd_err err;

	*units = 0;
	if ((err = lock_purchase(ck, &h, &found)) != CD_OK || !found)
		return err;
	target = refunded_cents >= ck->amount_cents ? h.hours :
	    h.hours * refunded_cents / ck->amount_cents;
	delta = target - h.refunded - h.owed;
	unused = h.total - h.used - h.frozen;
	if (delta <= 0)
		return CD_OK;
	/*
	 * Only what was taken back counts as refunded; booked hours stay
	 * booked, owed to the refund until their slot is cancelled.
	 */
	*units = delta < unused ? delta : unused;
	if ((err = db_exec(&q_refunded, NULL, "iis", *units, delta - *units,
	    ck->stripe_session_id)) != CD_OK || *units == 0)
		return err;
	return db_exec(&q_take, NULL, "ii", *units, ck->user_id);
}

static cd_err
freeze(const cd_checkout *ck, bool release, long long units, long long *frozen,
    long long *granted)
{
	long long left, unused;
	struct held h;
	bool found;
	cd_err err;

	*frozen = 0;
	if ((err = lock_purchase(ck, &h, &found)) != CD_OK || !found)
		return err;
	*granted = h.hours - h.refunded - h.owed;
	left = h.hours - h.refunded - h.owed;
	unused = h.total - h.used - h.frozen;
	if (!release)
		units = left < unused ? left : unused;
	if (units <= 0)
		return CD_OK;
	*frozen = units;
	return db_exec(&q_freeze, NULL, "ii", release ? -units : units, ck->user_id);
}

static cd_sql q_totals = CD_SQL(
    "SELECT hours_total, hours_used, hours_frozen FROM user_live_help_totals"
    " WHERE user_id = ?");
/* Used only when the totals row is missing (e.g. data loaded by hand). */
static cd_sql q_summed = CD_SQL(
    "SELECT (SELECT COALESCE(SUM(CAST(hours AS SIGNED) - hours_refunded), 0)"
    " FROM live_help_purchases WHERE user_id = ?) AS hours_total,"
    " (SELECT COALESCE(SUM(hours), 0) FROM live_help_redemptions"
    " WHERE user_id = ?) AS hours_used");

static const cd_col hours_cols[] = {
	DB_INT(cd_hours, total), DB_INT(cd_hours, used), DB_INT(cd_hours, frozen),
};

cd_err
live_help_hours(long long user_id, cd_hours *out)
{
	size_t n;
	cd_err err;

	*out = (cd_hours){ 0, 0, 0 };
	if ((err = db_fetch(&q_totals, NULL, hours_cols, 3, out, sizeof(*out), 1,
	    &n, "i", user_id)) != CD_OK || n == 1)
		return err;
	return live_help_hours_summed(user_id, out);
}

cd_err
live_help_hours_summed(long long user_id, cd_hours *out)
{
	size_t n;

	*out = (cd_hours){ 0, 0, 0 };
	/* q_summed has no frozen column: the first two only. */
	return db_fetch(&q_summed, NULL, hours_cols, 2, out, sizeof(*out), 1, &n,
	    "ii", user_id, user_id);
}

long long
live_help_left(const cd_hours *h)
{
	return h->total - h->used - h->frozen;
}

cd_err
live_help_hour_back(long long user_id, bool *to_refund)
{
	unsigned long long owed = 0;
	cd_err err;

	*to_refund = false;
	if ((err = db_exec(&q_owed_taken, &owed, "i", user_id)) != CD_OK)
		return err;
	*to_refund = owed > 0;
	return db_exec(&q_hour_back, NULL, "ii", (long long)owed, user_id);
}

const cd_product product_live_help = { "live_help", grant, reverse, NULL, NULL,
    freeze };
