/*
 * The public expert directory: active experts only; an inactive or unknown
 * expert is 404.
 */
#include "bookings.h"

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
