/*
 * creditdesk-sessions: the route table, the membership check every route
 * starts with, and the read API (my consultations, one consultation).
 */
#include "app.h"
#include "holdings.h"
#include "page.h"
#include "push.h"
#include "session_store.h"
#include "sessions.h"

cd_err
session_for_member(cd_req *r, session_row *s)
{
	bool found;
	cd_err err;

	if ((err = sstore_member_session(r->arena, r->user->id, r->ids[0], s,
	    &found)) != CD_OK)
		return err;
	if (!found)
		return req_fail(r, CD_NOT_FOUND, "session_not_found",
		    "No consultation with this id.");
	return CD_OK;
}

json_t *
participants_json(const participant_row *p, size_t n)
{
	json_t *out = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(out, json_pack("{s:I,s:s?,s:s?}", "userId",
		    (json_int_t)p[i].user_id, "name", p[i].name, "role", p[i].role));
	return out;
}

json_t *
session_json(const session_row *s)
{
	return json_pack("{s:I,s:s?,s:s?,s:s?,s:s?}", "id", (json_int_t)s->id,
	    "type", s->type, "plan", s->plan, "status", s->status,
	    "createdAt", s->created_at);
}

cd_err
session_with_participants(cd_req *r, const session_row *s, json_t **out)
{
	participant_row *people;
	size_t n;
	cd_err err;

	*out = NULL;
	if ((err = sstore_participants(r->arena, s->id, &people, &n)) != CD_OK)
		return err;
	*out = session_json(s);
	json_object_set_new(*out, "participants", participants_json(people, n));
	return CD_OK;
}

cd_err
sessions_list(cd_req *r)
{
	char route[64];
	session_row *rows;
	json_t *out, *row;
	size_t i, n;
	cd_err err;

	if ((err = sstore_sessions_of(r->arena, r->user->id, &rows, &n)) != CD_OK)
		return err;
	out = json_array();
	for (i = 0; i < n; i++) {
		consultation_route(rows[i].type, rows[i].id, route, sizeof route);
		row = session_json(&rows[i]);
		json_object_set_new(row, "route", json_string(route));
		json_array_append_new(out, row);
	}
	resp_json(r, 200, json_pack("{s:o}", "sessions", out));
	return CD_OK;
}

cd_err
sessions_get(cd_req *r)
{
	session_row session;
	json_t *out;
	cd_err err;

	if ((err = session_for_member(r, &session)) != CD_OK ||
	    (err = session_with_participants(r, &session, &out)) != CD_OK)
		return err;
	resp_json(r, 200, out);
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
	return page_init() != 0 ? -1 : push_init();
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
