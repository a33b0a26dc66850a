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
#include "session_store.h"
#include "sessions.h"


static const cd_field add_fields[] = {
	{ "userId", F_INT, F_REQUIRED, 1, CD_MAX_ID, NULL },
	{ "role", F_ID, F_REQUIRED, 1, 32, "role is required (mechanic)." },
};

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

	if ((err = sstore_user_role(r->arena, user_id, &role, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_BAD_REQUEST, "user_not_found",
		    "No user with this id.");
	return role != NULL && strcmp(role, "mechanic") == 0 ? CD_OK : req_fail(r, CD_BAD_REQUEST, "user_not_mechanic",
	    "This user is not a mechanic.");
}

/* 409 own_consultation if user_id bought the consultation, else CD_OK. */
static cd_err
bought_it(cd_req *r, long long user_id)
{
	const char *role;
	cd_err err;

	if ((err = sstore_role_in(r->arena, r->ids[0], user_id, &role)) != CD_OK)
		return err;
	return role != NULL && strcmp(role, "customer") == 0 ?
	    req_fail(r, CD_CONFLICT, "own_consultation", user_id == r->user->id ?
	    "This is your own consultation: another mechanic must take it." :
	    "This mechanic bought this consultation: assign another one.") :
	    CD_OK;
}

static cd_err
add_tx(void *arg)
{
	struct add *a = arg;
	cd_req *r = a->r;
	json_t *details;
	const char *status = NULL;
	bool found, moved;
	cd_err err;

	if ((err = sstore_guard(r->ids[0], &found)) != CD_OK ||
	    (found && (err = sstore_status(r->arena, r->ids[0], &status)) != CD_OK))
		return err;
	if (status == NULL)
		return req_fail(r, CD_NOT_FOUND, "session_not_found",
		    "No consultation with this id.");
	if (strcmp(status, "closed") == 0)
		return req_fail(r, CD_CONFLICT, "session_closed",
		    "This consultation is closed.");
	if ((err = check_mechanic(r, a->user_id)) != CD_OK ||
	    (err = sstore_add_mechanic(r->ids[0], a->user_id, &a->added)) != CD_OK)
		return err;
	if (!a->added)		/* its mechanic already, or its buyer */
		return bought_it(r, a->user_id);
	if ((err = sstore_activate(r->ids[0], &moved)) != CD_OK)
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
	session_row session;
	json_t *out;
	bool found;
	cd_value v[2];
	cd_err err;

	if ((err = req_fields(r, add_fields, 2, v)) != CD_OK)
		return err;
	if (strcmp(v[1].s, "mechanic") != 0)
		return req_fail(r, CD_BAD_REQUEST, "invalid_role",
		    "role must be mechanic.");
	a.user_id = v[0].i;
	if ((err = db_tx(add_tx, &a)) != CD_OK ||
	    (err = sstore_session(r->arena, r->ids[0], &session, &found)) != CD_OK)
		return err;
	if (!found)
		return CD_INTERNAL;
	if ((err = session_with_participants(r, &session, &out)) != CD_OK)
		return err;
	resp_json(r, a.added ? 201 : 200, out);
	return CD_OK;
}

/*
 * POST /api/sessions/{id}/take: a mechanic takes a consultation from the
 * queue.  Moving the session from 'waiting' to 'active' is the guarded
 * write: of two mechanics taking the same one, exactly one changes the row
 * and joins it; the other is told it was taken.  A session an admin already
 * gave a mechanic is active too, so it cannot be taken again.
 */

static cd_err
take_tx(void *arg)
{
	cd_req *r = arg;
	const char *status;
	bool added, moved;
	cd_err err;

	if ((err = sstore_activate(r->ids[0], &moved)) != CD_OK)
		return err;
	if (!moved) {
		if ((err = sstore_status(r->arena, r->ids[0], &status)) != CD_OK)
			return err;
		if (status == NULL)
			return req_fail(r, CD_NOT_FOUND, "session_not_found",
			    "No consultation with this id.");
		return strcmp(status, "closed") == 0 ?
		    req_fail(r, CD_CONFLICT, "session_closed",
		    "This consultation is closed.") :
		    req_fail(r, CD_CONFLICT, "already_taken",
		    "Another mechanic has already taken this consultation.");
	}
	if ((err = sstore_add_mechanic(r->ids[0], r->user->id, &added)) != CD_OK)
		return err;
	/*
	 * Already in it: their own purchase (a waiting one has no mechanic
	 * yet).  The refusal rolls the take back.
	 */
	if (!added) {
		err = bought_it(r, r->user->id);
		return err != CD_OK ? err : CD_INTERNAL;
	}
	return audit_write("MECHANIC_TOOK_SESSION", "session",
	    arena_printf(r->arena, "%lld", r->ids[0]), r->user->id,
	    req_own(r, json_pack("{s:I}", "userId", (json_int_t)r->user->id)),
	    "info");
}

cd_err
participants_take(cd_req *r)
{
	char room[64];
	session_row s;
	json_t *session;
	bool found;
	cd_err err;

	if ((err = db_tx(take_tx, r)) != CD_OK ||
	    (err = sstore_session(r->arena, r->ids[0], &s, &found)) != CD_OK)
		return err;
	if (!found)
		return CD_INTERNAL;
	session = session_json(&s);
	/* Every consultation has its room, where the mechanic meets the customer. */
	consultation_room(r->ids[0], room, sizeof room);
	json_object_set_new(session, "route", json_string(room));
	resp_json(r, 201, session);
	return CD_OK;
}
