/*
 * creditdesk-sessions: the route table, the membership check every route
 * starts with, and the read API (my consultations, one consultation).
 */
#include "app.h"
#include "db.h"
#include "holdings.h"
#include "page.h"
#include "sessions.h"

static cd_sql q_member = CD_SQL(
    "SELECT s.id, s.type, s.plan, s.status, s.created_at AS createdAt"
    " FROM sessions s JOIN session_participants p"
    " ON p.session_id = s.id AND p.user_id = ? WHERE s.id = ?");
static cd_sql q_participants = CD_SQL(
    "SELECT p.user_id AS userId, u.name, p.role FROM session_participants p"
    " JOIN users u ON u.id = p.user_id WHERE p.session_id = ?"
    " ORDER BY p.joined_at, p.user_id");
/*
 * One person has a handful of consultations; 100 is a backstop, not paging.
 * Each one's route comes from consultation_route, the rule used after payment.
 */
static cd_sql q_mine = CD_SQL(
    "SELECT s.id, s.type, s.plan, s.status, s.created_at AS createdAt"
    " FROM sessions s JOIN session_participants p ON p.session_id = s.id"
    " WHERE p.user_id = ? ORDER BY s.created_at DESC, s.id DESC LIMIT 100");

cd_err
session_for_member(cd_req *r, json_t **session)
{
	cd_err err;

	if ((err = db_row(&q_member, session, "ii", r->user->id, r->ids[0])) !=
	    CD_OK)
		return err;
	if (*session == NULL)
		return req_fail(r, CD_NOT_FOUND, "session_not_found",
		    "No consultation with this id.");
	req_own(r, *session);
	return CD_OK;
}

cd_err
session_add_participants(cd_req *r, json_t *session)
{
	json_t *rows;
	cd_err err;

	if ((err = db_rows(&q_participants, &rows, "i", jint(session, "id"))) !=
	    CD_OK)
		return err;
	json_object_set_new(session, "participants", rows);
	return CD_OK;
}

cd_err
sessions_list(cd_req *r)
{
	char route[64];
	json_t *rows, *row;
	size_t i;
	cd_err err;

	if ((err = db_rows(&q_mine, &rows, "i", r->user->id)) != CD_OK)
		return err;
	json_array_foreach(rows, i, row) {
		consultation_route(jstr(row, "type"), jint(row, "id"), route,
		    sizeof route);
		json_object_set_new(row, "route", json_string(route));
	}
	resp_json(r, 200, json_pack("{s:o}", "sessions", rows));
	return CD_OK;
}

cd_err
sessions_get(cd_req *r)
{
	json_t *session;
	cd_err err;

	if ((err = session_for_member(r, &session)) != CD_OK ||
	    (err = session_add_participants(r, session)) != CD_OK)
		return err;
	resp_json(r, 200, json_incref(session));
	return CD_OK;
}

static const cd_route routes[] = {
	{ "GET", "/chat/{id}", chat_room, R_USER | R_PAGE },
	{ "GET", "/api/sessions", sessions_list, R_USER },
	{ "GET", "/api/sessions/{id}", sessions_get, R_USER },
	{ "GET", "/api/sessions/{id}/messages", messages_list, R_USER },
	{ "POST", "/api/sessions/{id}/messages", messages_post, R_USER },
	{ "GET", "/api/sessions/{id}/stream", messages_stream, R_USER },
	{ "POST", "/api/admin/sessions/{id}/participants", participants_add, R_ADMIN },
	{ "POST", "/api/sessions/{id}/take", participants_take, R_USER | R_MECHANIC },
};

/* The page templates and the chat publishers, once per child. */
static int
sessions_init(void)
{
	return page_init() != 0 ? -1 : chat_push_init();
}

static const cd_app app = {
	"creditdesk-sessions", routes, sizeof(routes) / sizeof(routes[0]),
	sessions_init, 0
};

int
main(void)
{
	return app_run(&app);
}
