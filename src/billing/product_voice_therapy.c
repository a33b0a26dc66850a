/*
 * Voice AI Therapy minutes.  A paid session grants one credit of the pack's
 * minutes that expires after the configured number of days.  A partial
 * refund takes back the refunded share of the pack's minutes (never minutes
 * already used; minutes_refunded counts what it took), a full refund
 * deactivates whatever is left.  A refund or dispute first ends the user's
 * open session, charged by the server's clock, so the minutes it used are
 * spent before anything is taken or frozen.
 */
#include <stdio.h>

#include "db.h"
#include "products.h"
#include "voice.h"

static cd_sql q_credit = CD_SQL(
    "INSERT INTO voice_therapy_credits (user_id, stripe_session_id,"
    " minutes_purchased, minutes_remaining, amount_cents, expires_at)"
    " SELECT ?, ?, m.int_value * ?, m.int_value * ?, ?,"
    "  UTC_TIMESTAMP(6) + INTERVAL d.int_value DAY"
    " FROM platform_settings m, platform_settings d"
    " WHERE m.name = 'voice_minutes_per_pack' AND d.name = 'voice_validity_days'");
/* Read after the user's guard row is written: no other change interleaves. */
static cd_sql q_granted = CD_SQL(
    "SELECT minutes_purchased, minutes_remaining, minutes_frozen, is_active,"
    " minutes_refunded FROM voice_therapy_credits WHERE stripe_session_id = ?");
struct granted {
	long long	 purchased, remaining, frozen, active, refunded;
};
static const cd_col granted_cols[] = {
	DB_INT(struct granted, purchased), DB_INT(struct granted, remaining),
	DB_INT(struct granted, frozen), DB_INT(struct granted, active),
	DB_INT(struct granted, refunded),
};
static cd_sql q_refunded = CD_SQL(
    "UPDATE voice_therapy_credits SET minutes_remaining = minutes_remaining - ?,"
    " minutes_refunded = minutes_refunded + ?,"
    " is_active = (minutes_remaining > 0) WHERE stripe_session_id = ?");
/* Frozen minutes stay in minutes_remaining but cannot be used. */
static cd_sql q_freeze = CD_SQL(
    "UPDATE voice_therapy_credits SET minutes_frozen = minutes_frozen + ?"
    " WHERE stripe_session_id = ?");
static cd_sql q_deactivate = CD_SQL(
    "UPDATE voice_therapy_credits SET is_active = 0 WHERE stripe_session_id = ?");

static cd_err
grant(const cd_checkout *ck, bool *granted)
{
	return db_insert_once(&q_credit, granted, NULL, "isiii", ck->user_id,
	    ck->stripe_session_id, ck->quantity, ck->quantity, ck->amount_cents);
}

/*
 * The credit ck paid for; with settle, after the user's open session has
 * been charged (before minutes are taken or frozen, not when released).
 */
static cd_err
settled_credit(const cd_checkout *ck, bool settle, struct granted *g,
    bool *found)
{
	size_t n = 0;
	cd_err err;

	*found = false;
	if ((err = voice_guard(ck->user_id)) != CD_OK ||
	    (settle && (err = voice_end_open(ck->user_id)) != CD_OK) ||
	    (err = db_fetch(&q_granted, NULL, granted_cols, DB_NCOLS(granted_cols),
	    g, sizeof(*g), 1, &n, "s", ck->stripe_session_id)) != CD_OK)
		return err;
	*found = n == 1;
	return CD_OK;
}

static cd_err
reverse(const cd_checkout *ck, long long refunded_cents, long long *units)
{
	long long delta, usable;
	struct granted g;
	bool found;
	cd_err err;

	*units = 0;
	if ((err = settled_credit(ck, true, &g, &found)) != CD_OK || !found ||
	    !g.active)
		return err;
	if (refunded_cents >= ck->amount_cents) {
		*units = g.remaining;
		return db_exec(&q_deactivate, NULL, "s", ck->stripe_session_id);
	}
	delta = g.purchased * refunded_cents / ck->amount_cents - g.refunded;
	usable = g.remaining - g.frozen;
	*units = delta < usable ? delta : usable;
	if (*units <= 0) {
		*units = 0;
		return CD_OK;
	}
	return db_exec(&q_refunded, NULL, "iis", *units, *units,
	    ck->stripe_session_id);
}

static cd_err
freeze(const cd_checkout *ck, bool release, long long units, long long *frozen,
    long long *granted)
{
	struct granted g;
	bool found;
	cd_err err;

	*frozen = 0;
	if ((err = settled_credit(ck, !release, &g, &found)) != CD_OK || !found)
		return err;
	/* a full refund deactivated what was left: that stands no more either */
	*granted = g.purchased - g.refunded - (g.active ? 0 : g.remaining);
	if (!release)
		units = g.active ? g.remaining - g.frozen : 0;
	if (units <= 0)
		return CD_OK;
	*frozen = units;
	return db_exec(&q_freeze, NULL, "is", release ? -units : units,
	    ck->stripe_session_id);
}

const cd_product product_voice_therapy = { "voice_therapy", grant, reverse, NULL, NULL,
    freeze };
