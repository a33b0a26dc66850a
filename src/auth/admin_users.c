/*
 * POST /api/admin/users/{id} {role?, tier?}: an admin changes a user's role
 * or tier.  The change and its audit row (before and after) are one
 * transaction; the user row is written under its lock, so two admins
 * changing the same user each see what the other left.  An admin cannot
 * change their own role (nobody locks themselves out by accident), and the
 * change writes the acting admin's own row on the condition that they are
 * still an admin, so two admins demoting each other at once cannot both
 * commit and leave nobody to run the console.  A role change ends every
 * session of the user in the same transaction, and an expert demoted is
 * taken off the marketplace (their bookings already made stay theirs).
 */
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "db.h"
#include "session.h"
#include "user_store.h"

static const cd_field fields[] = {
	{ "role", F_ID, 0, 1, 16, NULL },
	{ "tier", F_ID, 0, 1, 16, NULL },
};

static const char *const roles[] = { "customer", "expert", "mechanic", "admin", NULL };
static const char *const tiers[] = { "free", "firewall", NULL };

struct change {
	cd_req		*r;
	const char	*role;	/* NULL: unchanged */
	const char	*tier;
	json_t		*after;	/* request-owned */
};

static bool
one_of(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

static cd_err
change_tx(void *arg)
{
	struct change *c = arg;
	cd_req *r = c->r;
	const char *role, *tier;
	user_rights u;
	json_t *details;
	bool found, still_admin;
	cd_err err;

	if ((err = ustore_guard_admin(r->user->id, &still_admin)) != CD_OK)
		return err;
	if (!still_admin)
		return req_fail(r, CD_FORBIDDEN, "not_admin",
		    "You are no longer an admin.");
	if ((err = ustore_lock_rights(r->arena, r->ids[0], &u, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "user_not_found", "No user with this id.");
	role = c->role ? c->role : u.role;
	tier = c->tier ? c->tier : u.tier;
	if (r->ids[0] == r->user->id && strcmp(role, u.role) != 0)
		return req_fail(r, CD_CONFLICT, "own_role",
		    "You cannot change your own role; ask another admin.");
	if ((err = ustore_set_rights(r->ids[0], role, tier)) != CD_OK)
		return err;
	/* An expert no longer: off the marketplace, in the same transaction. */
	if (strcmp(u.role, "expert") == 0 && strcmp(role, "expert") != 0 &&
	    (err = ustore_expert_off(r->ids[0])) != CD_OK)
		return err;
	/* New rights start with a new sign-in: a role change ends the user's sessions. */
	if (strcmp(role, u.role) != 0 &&
	    (err = session_end_all(r, r->ids[0])) != CD_OK)
		return err;
	details = req_own(r, json_pack("{s:{s:s,s:s},s:{s:s,s:s}}",
	    "before", "role", u.role, "tier", u.tier,
	    "after", "role", role, "tier", tier));
	err = audit_write("ADMIN_USER_UPDATED", "user",
	    arena_printf(r->arena, "%lld", r->ids[0]), r->user->id, details, "warning");
	json_object_set_new(c->after, "id", json_integer(r->ids[0]));
	json_object_set_new(c->after, "email", json_string(u.email));
	json_object_set_new(c->after, "role", json_string(role));
	json_object_set_new(c->after, "tier", json_string(tier));
	return err;
}

cd_err
admin_user_update(cd_req *r)
{
	struct change c = { r, NULL, NULL, NULL };
	cd_value v[2];
	cd_err err;

	if ((err = req_fields(r, fields, 2, v)) != CD_OK)
		return err;
	if (!v[0].present && !v[1].present)
		return req_fail(r, CD_BAD_REQUEST, "nothing_to_change",
		    "Give a role or a tier.");
	if (v[0].present && !one_of(v[0].s, roles))
		return req_fail(r, CD_BAD_REQUEST, "invalid_role",
		    "role must be customer, expert, mechanic or admin.");
	if (v[1].present && !one_of(v[1].s, tiers))
		return req_fail(r, CD_BAD_REQUEST, "invalid_tier",
		    "tier must be free or firewall.");
	c.role = v[0].present ? v[0].s : NULL;
	c.tier = v[1].present ? v[1].s : NULL;
	c.after = req_own(r, json_object());
	if ((err = db_tx(change_tx, &c)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:O}", "user", c.after));
	return CD_OK;
}
