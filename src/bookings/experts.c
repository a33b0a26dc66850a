/*
 * The public expert directory: active experts only; an inactive or unknown
 * expert is 404.  One expert comes with the cancellation policy a booking
 * made now is made under.
 *
 * POST /api/experts/me/policy {fullRefundHours, lateRefundBps}: the expert
 * sets their own cancellation policy, for the bookings made from then on
 * (each booking keeps the one it was made under).  One transaction with its
 * audit row EXPERT_POLICY_CHANGED, which keeps what it was.
 */
#include "audit.h"
#include "booking_store.h"
#include "bookings.h"
#include "db.h"

cd_err
experts_list(cd_req *r)
{
	json_t *rows;
	cd_err err;

	if ((err = bstore_experts_json(&rows)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:o}", "experts", rows));
	return CD_OK;
}

cd_err
expert_get(cd_req *r)
{
	json_t *row;
	cd_err err;

	if ((err = bstore_expert_json(r->ids[0], &row)) != CD_OK)
		return err;
	if (row == NULL)
		return req_fail(r, CD_NOT_FOUND, "expert_not_found",
		    "No expert with this id.");
	resp_json(r, 200, json_pack("{s:o}", "expert", row));
	return CD_OK;
}

static const cd_field policy_fields[] = {
	{ "fullRefundHours", F_INT, F_REQUIRED, 0, 168,
	    "fullRefundHours is required (0 to 168 hours before the session)." },
	{ "lateRefundBps", F_INT, F_REQUIRED, 0, 10000,
	    "lateRefundBps is required (0 to 10000: basis points of the price)." },
};

struct policy_change {
	cd_req		*r;
	expert_policy	 to;
};

static cd_err
policy_tx(void *arg)
{
	struct policy_change *c = arg;
	expert_policy was;
	bool found;
	cd_err err;

	if ((err = bstore_expert_policy(c->r->user->id, &was, &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(c->r, CD_FORBIDDEN, "not_an_expert",
		    "Only experts have a cancellation policy.");
	c->to.expert_id = was.expert_id;
	if ((err = bstore_set_expert_policy(&c->to)) != CD_OK)
		return err;
	return audit_write("EXPERT_POLICY_CHANGED", "expert", arena_printf(
	    c->r->arena, "%lld", was.expert_id), c->r->user->id, req_own(c->r,
	    json_pack("{s:{s:I,s:I},s:{s:I,s:I}}", "from", "fullRefundHours",
	    (json_int_t)was.full_hours, "lateRefundBps", (json_int_t)was.late_bps,
	    "to", "fullRefundHours", (json_int_t)c->to.full_hours, "lateRefundBps",
	    (json_int_t)c->to.late_bps)), "info");
}

cd_err
expert_set_policy(cd_req *r)
{
	cd_value v[sizeof(policy_fields) / sizeof(policy_fields[0])];
	struct policy_change c = { r, { 0, 0, 0 } };
	cd_err err;

	if ((err = req_fields(r, policy_fields, sizeof(policy_fields) /
	    sizeof(policy_fields[0]), v)) != CD_OK)
		return err;
	c.to.full_hours = v[0].i;
	c.to.late_bps = v[1].i;
	if ((err = db_tx(policy_tx, &c)) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:{s:I,s:I}}", "policy", "fullRefundHours",
	    (json_int_t)c.to.full_hours, "lateRefundBps", (json_int_t)c.to.late_bps));
	return CD_OK;
}
