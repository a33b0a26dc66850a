/*
 * The sessions family's statements: consultations (sessions), their
 * participants and their chat messages.  Every statement of the family is
 * declared once in session_store.c; what a handler decides on or reshapes
 * comes back as a C struct (strings in the caller's arena), and only the
 * message lists that go out to the client as they are come back as JSON
 * rows (caller owns the reference).
 */
#ifndef CD_SESSION_STORE_H
#define CD_SESSION_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "arena.h"
#include "error.h"

/* A consultation as the API shows it. */
typedef struct session_row {
	long long	 id;
	const char	*type, *plan, *status;
	const char	*created_at;	/* "YYYY-MM-DDTHH:MM:SSZ" */
} session_row;
/* The consultation if the user takes part in it; *found false if not. */
cd_err	 sstore_member_session(cd_arena *, long long user_id,
	    long long session_id, session_row *, bool *found);
/* The consultation, whoever takes part; *found false if there is none. */
cd_err	 sstore_session(cd_arena *, long long session_id, session_row *,
	    bool *found);
/* The user's consultations, newest first (≤ 100), in arena a. */
cd_err	 sstore_sessions_of(cd_arena *, long long user_id, session_row **rows,
	    size_t *n);
/* Only the status (NULL when there is no such consultation). */
cd_err	 sstore_status(cd_arena *, long long session_id, const char **status);
/*
 * Writes the consultation's guard row (version + 1, see db.h); *found false
 * if there is none.
 */
cd_err	 sstore_guard(long long session_id, bool *found);
/* waiting -> active; *moved: this call moved it. */
cd_err	 sstore_activate(long long session_id, bool *moved);

/* Who takes part, oldest first. */
typedef struct participant_row {
	long long	 user_id;
	const char	*name, *role;
} participant_row;
cd_err	 sstore_participants(cd_arena *, long long session_id,
	    participant_row **rows, size_t *n);
/* A user's role (users.role); *found false if there is no such user. */
cd_err	 sstore_user_role(cd_arena *, long long user_id, const char **role,
	    bool *found);
/* The user's role in the consultation (customer, mechanic), NULL if none. */
cd_err	 sstore_role_in(cd_arena *, long long session_id, long long user_id,
	    const char **role);
/*
 * The user joins as mechanic (PRIMARY KEY session, user): *added false if in
 * already (or its buyer).  Mechanics of it since demoted become 'left' first:
 * the consultation is taken over, for good.
 */
cd_err	 sstore_add_mechanic(long long session_id, long long user_id,
	    bool *added);

/* A chat message. */
typedef struct message_row {
	long long	 id, user_id;
	const char	*name, *body, *created_at;
	long long	 seq;		/* its position, see chat.c */
} message_row;
/* The latest 100 messages, oldest first, in arena a. */
cd_err	 sstore_latest_messages(cd_arena *, long long session_id,
	    message_row **rows, size_t *n);
/* The latest 100 messages, oldest first, as the API lists them. */
cd_err	 sstore_latest_messages_json(long long session_id, json_t **rows);
/*
 * The messages after message `after` (all when 0; ≤ 100) as the API lists
 * them: after its position when it is one of this session's, else after
 * its id.
 */
cd_err	 sstore_messages_after_json(long long session_id, long long after,
	    json_t **rows);
/* One message as the API shows it, or *row = NULL. */
cd_err	 sstore_message_json(long long message_id, json_t **row);
/* What posting decides on, read after the guard row is written. */
typedef struct chat_state {
	const char	*status;
	long long	 version;	/* the guard's: the new message's seq */
	long long	 member;	/* the user takes part */
	long long	 last_id;	/* the message before the new one, 0: none */
} chat_state;
cd_err	 sstore_chat_state(cd_arena *, long long user_id, long long session_id,
	    chat_state *, bool *found);
/* key: the client's Idempotency-Key, or NULL. */
cd_err	 sstore_insert_message(long long session_id, long long user_id,
	    const char *body, long long seq, const char *key, long long *id);
/* The message this participant posted with this Idempotency-Key. */
typedef struct keyed_message {
	long long	 id;
	const char	*body;
} keyed_message;
cd_err	 sstore_keyed_message(cd_arena *, long long session_id,
	    long long user_id, const char *key, keyed_message *, bool *found);
/* A plan's product name (NULL when there is no such product). */
cd_err	 sstore_plan_name(cd_arena *, const char *plan, const char **name);

#endif
