/*
 * An admin puts a mechanic into a consultation.  The participant's PRIMARY
 * KEY (session, user) makes a repeated request a no-op (200, nothing
 * written); the first add also wakes the session up ('waiting' → 'active')
 * and writes its audit row, all in one transaction.  The session's guard
 * row is written first (db_guard, see db.h) so a concurrent refund, which
 * writes the same row, cannot close it halfway through.
 */
#include <stdbool.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "holdings.h"
#include "sessions.h"


static const cd_field add_fields[] = {
	{ "userId", F_INT, F_REQUIRED, 1, CD_MAX_ID, NULL },
	{ "role", F_ID, F_REQUIRED, 1, 32, "role is required (mechanic)." },
};

static cd_sql q_guard = CD_SQL(
    "UPDATE sessions SET version = version + 1 WHERE id = ?");
static cd_sql q_status = CD_SQL("SELECT status FROM sessions WHERE id = ?");
static cd_sql q_user = CD_SQL("SELECT role FROM users WHERE id = ?");
static cd_sql q_add = CD_SQL(
    "INSERT INTO session_participants (session_id, user_id, role)"
    " VALUES (?, ?, 'mechanic')");
static cd_sql q_activate = CD_SQL(
    "UPDATE sessions SET status = 'active' WHERE id = ? AND status = 'waiting'");
static cd_sql q_session = CD_SQL(
    "SELECT id, type, plan, status, created_at AS createdAt FROM sessions"
    " WHERE id = ?");

struct add {
	cd_req		*r;
	long long	 user_id;
	bool		 added;
};

/* The user must exist and be a mechanic. */
static cd_err
check_mechanic(cd_req *r, long long user_id)
{
	const char *role;
	bool found;
	cd_err err;

	if ((err = db_fetch_text(&q_user, r->arena, &role, &found, "i",
	    user_id)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_BAD_REQUEST, "user_not_found",
		    "No user with this id.");
	return role != NULL && strcmp(role, "mechanic") == 0 ? CD_OK : req_fail(r, CD_BAD_REQUEST, "user_not_mechanic",
	    "This user is not a mechanic.");
}

static cd_err
add_tx(void *arg)
{
	struct add *a = arg;
	cd_req *r = a->r;
	json_t *details;
	const char *status = NULL;
	bool found;
	cd_err err;

	if ((err = db_guard(&q_guard, &found, "i", r->ids[0])) != CD_OK ||
	    (found && (err = db_fetch_text(&q_status, r->arena, &status, NULL, "i",
	    r->ids[0])) != CD_OK))
		return err;
	if (status == NULL)
		return req_fail(r, CD_NOT_FOUND, "session_not_found",
		    "No consultation with this id.");
	if (strcmp(status, "closed") == 0)
		return req_fail(r, CD_CONFLICT, "session_closed",
		    "This consultation is closed.");
	if ((err = check_mechanic(r, a->user_id)) != CD_OK ||
	    (err = db_insert_once(&q_add, &a->added, NULL, "ii", r->ids[0],
	    a->user_id)) != CD_OK || !a->added)
		return err;
	if ((err = db_exec(&q_activate, NULL, "i", r->ids[0])) != CD_OK)
		return err;
	details = req_own(r, json_pack("{s:I,s:s}", "userId",
	    (json_int_t)a->user_id, "role", "mechanic"));
	return audit_write("ADMIN_ADD_PARTICIPANT", "session",
	    arena_printf(r->arena, "%lld", r->ids[0]), r->user->id, details, "info");
}

cd_err
participants_add(cd_req *r)
{
	struct add a = { r, 0, false };
	json_t *session;
	cd_value v[2];
	cd_err err;

	if ((err = req_fields(r, add_fields, 2, v)) != CD_OK)
		return err;
	if (strcmp(v[1].s, "mechanic") != 0)
		return req_fail(r, CD_BAD_REQUEST, "invalid_role",
		    "role must be mechanic.");
	a.user_id = v[0].i;
	if ((err = db_tx(add_tx, &a)) != CD_OK ||
	    (err = db_row(&q_session, &session, "i", r->ids[0])) != CD_OK)
		return err;
	if (session == NULL)
		return CD_INTERNAL;
	req_own(r, session);
	if ((err = session_add_participants(r, session)) != CD_OK)
		return err;
	resp_json(r, a.added ? 201 : 200, json_incref(session));
	return CD_OK;
}

/*
 * POST /api/sessions/{id}/take: a mechanic takes a consultation from the
 * queue.  Moving the session from 'waiting' to 'active' is the guarded
 * write: of two mechanics taking the same one, exactly one changes the row
 * and joins it; the other is told it was taken.  A session an admin already
 * gave a mechanic is active too, so it cannot be taken again.
 */
static cd_sql q_claim = CD_SQL(
    "UPDATE sessions SET status = 'active' WHERE id = ? AND status = 'waiting'");
static cd_sql q_exists = CD_SQL("SELECT status FROM sessions WHERE id = ?");

static cd_err
take_tx(void *arg)
{
	cd_req *r = arg;
	unsigned long long n;
	const char *status;
	bool added, exists;
	cd_err err;

	if ((err = db_exec(&q_claim, &n, "i", r->ids[0])) != CD_OK)
		return err;
	if (n == 0) {
		if ((err = db_fetch_text(&q_exists, r->arena, &status, &exists, "i",
		    r->ids[0])) != CD_OK)
			return err;
		return exists ? req_fail(r, CD_CONFLICT, "already_taken",
		    "Another mechanic has already taken this consultation.") :
		    req_fail(r, CD_NOT_FOUND, "session_not_found",
		    "No consultation with this id.");
	}
	if ((err = db_insert_once(&q_add, &added, NULL, "ii", r->ids[0],
	    r->user->id)) != CD_OK)
		return err;
	return audit_write("MECHANIC_TOOK_SESSION", "session",
	    arena_printf(r->arena, "%lld", r->ids[0]), r->user->id,
	    req_own(r, json_pack("{s:I}", "userId", (json_int_t)r->user->id)),
	    "info");
}

cd_err
participants_take(cd_req *r)
{
	char room[64];
	json_t *session;
	cd_err err;

	if ((err = db_tx(take_tx, r)) != CD_OK ||
	    (err = db_row(&q_session, &session, "i", r->ids[0])) != CD_OK)
		return err;
	if (session == NULL)
		return CD_INTERNAL;
	req_own(r, session);
	/* Every consultation has its room, where the mechanic meets the customer. */
	consultation_room(r->ids[0], room, sizeof room);
	json_object_set_new(session, "route", json_string(room));
	resp_json(r, 201, json_incref(session));
	return CD_OK;
}
