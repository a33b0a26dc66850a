/*
 * Sign-in sessions.  The cookie holds a random token; the database holds only
 * its SHA-256, the user and a per-session CSRF token that cookie-authenticated
 * writes must echo in the X-CSRF-Token header.
 */
#ifndef CD_SESSION_H
#define CD_SESSION_H

#include "request.h"

#define CD_SESSION_COOKIE "cd_session"

/* Sets r->user when the cookie names a live session; no cookie is not an error. */
cd_err	 session_load(cd_req *);
/* Starts a session for user_id, sets the cookie and r->user. */
cd_err	 session_start(cd_req *, long long user_id);
/* Ends the current session (if any) and clears the cookie. */
cd_err	 session_end(cd_req *);
/* The signed-in user as {id, email, name, role, tier} (new reference). */
json_t	*session_user_json(const cd_user *);

#endif
