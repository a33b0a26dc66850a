/*
 * The public expert directory: active experts only; an inactive or unknown
 * expert is 404.
 */
#include "bookings.h"
#include "db.h"

static cd_sql q_list = CD_SQL(
    "SELECT id, name, headline, rate_cents_per_minute AS ratePerMinuteCents"
    " FROM experts WHERE active = 1 ORDER BY id");
static cd_sql q_one = CD_SQL(
    "SELECT id, name, headline, bio, rate_cents_per_minute AS ratePerMinuteCents"
    " FROM experts WHERE id = ? AND active = 1");

cd_err
experts_list(cd_req *r)
{
	json_t *rows;
	cd_err err;

	if ((err = db_rows(&q_list, &rows, "")) != CD_OK)
		return err;
	resp_json(r, 200, json_pack("{s:o}", "experts", rows));
	return CD_OK;
}

cd_err
expert_get(cd_req *r)
{
	json_t *row;
	cd_err err;

	if ((err = db_row(&q_one, &row, "i", r->ids[0])) != CD_OK)
		return err;
	if (row == NULL)
		return req_fail(r, CD_NOT_FOUND, "expert_not_found",
		    "No expert with this id.");
	resp_json(r, 200, json_pack("{s:o}", "expert", row));
	return CD_OK;
}
