/*
 * Live Help slots: booking an hour into a slot and cancelling it, and the
 * upcoming list each child keeps; see slots.h.  A refusal rolls its transaction back (so a seat taken before
 * the hour ran out is given back) and is then answered as a result, not an
 * error.
 */
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "holdings.h"
#include "slots.h"

static cd_sql q_take_seat = CD_SQL(
    "UPDATE live_help_slots SET booked = booked + 1"
    " WHERE id = ? AND booked < capacity AND starts_at > UTC_TIMESTAMP()");
static cd_sql q_upcoming = CD_SQL(
    "SELECT starts_at > UTC_TIMESTAMP() FROM live_help_slots WHERE id = ?");
static cd_sql q_take_hour = CD_SQL(
    "UPDATE user_live_help_totals SET hours_used = hours_used + 1"
    " WHERE user_id = ? AND hours_used + hours_frozen < hours_total");
static cd_sql q_redeem = CD_SQL(
    "INSERT INTO live_help_redemptions (user_id, slot_id) VALUES (?, ?)");
static cd_sql q_unredeem = CD_SQL(
    "DELETE r FROM live_help_redemptions r"
    " JOIN live_help_slots s ON s.id = r.slot_id"
    " JOIN platform_settings p ON p.name = 'live_help_cancel_hours'"
    " WHERE r.user_id = ? AND r.slot_id = ?"
    " AND s.starts_at > UTC_TIMESTAMP() + INTERVAL p.int_value HOUR");
static cd_sql q_redeemed = CD_SQL(
    "SELECT COUNT(*) FROM live_help_redemptions WHERE user_id = ? AND slot_id = ?");
static cd_sql q_give_seat = CD_SQL(
    "UPDATE live_help_slots SET booked = booked - 1 WHERE id = ? AND booked > 0");

struct seat {
	long long	 user_id, slot_id;
	cd_arena	*arena;
	slot_result	 res;
};

/* Refuses with res; the error (never retried) rolls the transaction back. */
static cd_err
refuse(struct seat *s, slot_result res, cd_err err)
{
	s->res = res;
	return err;
}

/* No seat was taken: the slot is gone (or past), or full. */
static cd_err
no_seat(struct seat *s)
{
	long long upcoming;
	cd_err err;

	if ((err = db_fetch_int(&q_upcoming, &upcoming, "i", s->slot_id)) != CD_OK)
		return err;
	return upcoming ? refuse(s, SLOT_FULL, CD_CONFLICT) :
	    refuse(s, SLOT_NOT_FOUND, CD_NOT_FOUND);
}

static cd_err
book_tx(void *arg)
{
	struct seat *s = arg;
	unsigned long long n;
	cd_err err;

	s->res = SLOT_DONE;
	if ((err = db_exec(&q_take_seat, &n, "i", s->slot_id)) != CD_OK)
		return err;
	if (n == 0)
		return no_seat(s);
	if ((err = db_exec(&q_take_hour, &n, "i", s->user_id)) != CD_OK)
		return err;
	if (n == 0)
		return refuse(s, SLOT_NO_HOURS, CD_PAYMENT_REQUIRED);
	switch (db_write(&q_redeem, NULL, &err, "ii", s->user_id, s->slot_id)) {
	case DB_DONE:
		break;
	case DB_ALREADY:	/* the UNIQUE (user, slot) key: one seat each */
		return refuse(s, SLOT_ALREADY_BOOKED, CD_CONFLICT);
	default:		/* DB_RETRY: db_tx runs the booking again */
		return err;
	}
	return audit_write("LIVE_HELP_BOOKED", "live_help_slot",
	    arena_printf(s->arena, "%lld", s->slot_id), s->user_id,
	    arena_json(s->arena, json_pack("{s:I}", "slotId",
	    (json_int_t)s->slot_id)), "info");
}

static cd_err
cancel_tx(void *arg)
{
	struct seat *s = arg;
	unsigned long long n;
	long long booked;
	bool to_refund;
	cd_err err;

	s->res = SLOT_DONE;
	if ((err = db_exec(&q_unredeem, &n, "ii", s->user_id, s->slot_id)) != CD_OK)
		return err;
	if (n == 0) {
		if ((err = db_fetch_int(&q_redeemed, &booked, "ii", s->user_id,
		    s->slot_id)) != CD_OK)
			return err;
		return booked == 0 ? refuse(s, SLOT_NOT_BOOKED, CD_NOT_FOUND) :
		    refuse(s, SLOT_TOO_LATE, CD_CONFLICT);
	}
	if ((err = db_exec(&q_give_seat, &n, "i", s->slot_id)) != CD_OK ||
	    (err = live_help_hour_back(s->user_id, &to_refund)) != CD_OK)
		return err;
	/* An hour a refund was owed goes to it, not back to the user. */
	if (to_refund)
		s->res = SLOT_HOUR_REFUNDED;
	return audit_write("LIVE_HELP_CANCELLED", "live_help_slot",
	    arena_printf(s->arena, "%lld", s->slot_id), s->user_id,
	    arena_json(s->arena, json_pack("{s:I,s:i,s:i}", "slotId",
	    (json_int_t)s->slot_id, "hoursReturned", to_refund ? 0 : 1,
	    "hoursRefunded", to_refund ? 1 : 0)), "info");
}

/* Runs fn; a refusal is CD_OK with its result, anything else goes up. */
static cd_err
run(cd_err (*fn)(void *), long long user_id, long long slot_id, cd_arena *a,
    slot_result *res)
{
	struct seat s = { user_id, slot_id, a, SLOT_DONE };
	cd_err err;

	err = db_tx(fn, &s);
	*res = s.res;
	return slot_done(s.res) ? err : CD_OK;
}

bool
slot_done(slot_result res)
{
	return res == SLOT_DONE || res == SLOT_HOUR_REFUNDED;
}

cd_err
slot_book(long long user_id, long long slot_id, cd_arena *a, slot_result *res)
{
	return run(book_tx, user_id, slot_id, a, res);
}

cd_err
slot_cancel(long long user_id, long long slot_id, cd_arena *a, slot_result *res)
{
	return run(cancel_tx, user_id, slot_id, a, res);
}

/*
 * The upcoming list with the version and clock it was read at, in one
 * statement (one snapshot), the JSON built by the server; the first slot's
 * start says when the list next changes by itself.
 */
#define SLOT_TIME(c) "DATE_FORMAT(" c ", '%Y-%m-%dT%H:%i:%sZ')"
static cd_sql q_upcoming_list = CD_SQL(
    "SELECT " SLOTS_STAMP_COLUMNS ","
    " (SELECT UNIX_TIMESTAMP(MIN(starts_at)) FROM live_help_slots"
    "  WHERE starts_at > UTC_TIMESTAMP()),"
    " (SELECT JSON_COMPACT(JSON_ARRAYAGG(JSON_OBJECT('id', id, 'starts_at', " SLOT_TIME("starts_at") ","
    "  'ends_at', " SLOT_TIME("ends_at") ", 'capacity', capacity, 'booked', booked)"
    "  ORDER BY starts_at, id LIMIT 100))"
    "  FROM live_help_slots WHERE starts_at > UTC_TIMESTAMP())"
    " FROM (SELECT 1) one" SLOTS_STAMP_JOIN);

/* The child's kept list: json read at version, good from read_at until first_start. */
static struct {
	long long	 version, read_at, first_start;	/* first_start 0: no slot */
	char		*json;
} kept;

struct upcoming_row {
	long long	 version, now, first_start;
	const char	*json;
};
static const cd_col upcoming_cols[] = {
	DB_INT(struct upcoming_row, version), DB_INT(struct upcoming_row, now),
	DB_INT(struct upcoming_row, first_start), DB_TEXT(struct upcoming_row, json),
};

static bool
kept_holds(long long version, long long now)
{
	return kept.json != NULL && version != 0 && kept.version == version &&
	    now >= kept.read_at && (kept.first_start == 0 || now < kept.first_start);
}

cd_err
slots_upcoming(long long version, long long now, const char **json)
{
	struct upcoming_row row;
	cd_arena *a;
	char *copy;
	cd_err err;

	if (kept_holds(version, now)) {
		*json = kept.json;
		return CD_OK;
	}
	a = arena_new();
	err = db_fetch_row(&q_upcoming_list, a, upcoming_cols,
	    DB_NCOLS(upcoming_cols), &row, sizeof(row), NULL, "");
	if (err == CD_OK) {
		if ((copy = strdup(row.json != NULL ? row.json : "[]")) == NULL)
			abort();
		free(kept.json);
		kept.json = copy;
		kept.version = row.version;
		kept.read_at = row.now;
		kept.first_start = row.first_start;
		*json = kept.json;
	}
	arena_free(a);
	return err;
}
