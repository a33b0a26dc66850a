/*
 * creditdesk-sessions: paid consultations and their chat rooms.
 * sessions.c holds the route table and the read API, chat.c the room page,
 * its messages and their stream (published through core's push.c to
 * nginx's push, nchan), participants.c the admin's "add a mechanic",
 * session_store.c the family's statements.
 *
 * Only participants see a consultation: to anyone else it does not exist
 * (404, never 403), so ids reveal nothing.
 */
#ifndef CD_SESSIONS_H
#define CD_SESSIONS_H

#include <jansson.h>

#include "request.h"
#include "session_store.h"

/*
 * The consultation r->ids[0] if the caller takes part in it (strings
 * request-owned), else CD_NOT_FOUND.
 */
cd_err	 session_for_member(cd_req *, session_row *);
/* A consultation as the API shows it: {id, type, plan, status, createdAt}. */
json_t	*session_json(const session_row *);
/* Participants as the API shows them: [{userId, name, role}]. */
json_t	*participants_json(const participant_row *, size_t n);
/* The consultation with participants:[…] (oldest first), a new object. */
cd_err	 session_with_participants(cd_req *, const session_row *, json_t **out);

cd_err	 sessions_list(cd_req *);
cd_err	 sessions_get(cd_req *);
cd_err	 chat_room(cd_req *);
cd_err	 messages_list(cd_req *);
cd_err	 messages_post(cd_req *);
cd_err	 messages_stream(cd_req *);
cd_err	 participants_add(cd_req *);
cd_err	 participants_take(cd_req *);

#endif
