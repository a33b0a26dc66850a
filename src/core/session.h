/*
 * Sign-in sessions.  The cookie holds a random token; the database holds only
 * its SHA-256, the user and a per-session CSRF token that cookie-authenticated
 * writes must echo in the X-CSRF-Token header.
 *
 * A session ends at its absolute expiry (12 hours after sign-in, or 30 days
 * with "keep me signed in"; both in platform_settings) or after CD_SESSION_IDLE
 * seconds without a request.  last_seen_at is written at most once a minute,
 * so the check on every signed-in request is one indexed read.
 *
 * Tokens are never reused across a change of privilege: signing in replaces
 * the browser's old session, a password change replaces the current session
 * and ends every other one, a role change ends them all.
 */
#ifndef CD_SESSION_H
#define CD_SESSION_H

#include "crypto.h"
#include "db.h"
#include "request.h"

#define CD_SESSION_COOKIE "cd_session"

/*
 * User alias u's tier: premium (firewall) when an admin granted it (tier) or
 * a plan they subscribe to includes it (plan_tier, written with every change
 * of their subscriptions: plan_tier_sync in product_subscription.c).
 */
#define CD_USER_TIER(u) \
    "IF(" u ".plan_tier = 'firewall', 'firewall', " u ".tier)"

/*
 * The session lookup's parts, for a route's own lookup (cd_route's
 * session_sql): SELECT CD_SESSION_COLUMNS, <its columns> CD_SESSION_FROM
 * <its LEFT JOINs on u.id> CD_SESSION_WHERE.  Parameters: the token hash,
 * the idle timeout.  Live = before its absolute expiry and seen within the
 * idle timeout.
 */
#define CD_SESSION_COLUMNS \
    "u.id, u.email, u.name, u.role, " CD_USER_TIER("u") " AS tier," \
    " s.csrf_token, s.remember," \
    " s.last_seen_at < UTC_TIMESTAMP(6) - INTERVAL 60 SECOND AS stale," \
    " TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(6), s.expires_at) AS ttl"
#define CD_SESSION_FROM \
    " FROM auth_sessions s JOIN users u ON u.id = s.user_id"
#define CD_SESSION_WHERE \
    " WHERE s.token_hash = ? AND s.expires_at > UTC_TIMESTAMP(6)" \
    " AND s.last_seen_at > UTC_TIMESTAMP(6) - INTERVAL ? SECOND"

/* The usual lookup's columns (CD_SESSION_COLUMNS), as read. */
typedef struct cd_session_row {
	long long	 user_id;
	const char	*email, *name, *role, *tier, *csrf;
	long long	 remember, stale, ttl;
} cd_session_row;

/* CD_SESSION_COLUMNS as typed columns of member m (a cd_session_row) of st. */
#define CD_SESSION_COLS(st, m) \
	DB_INT(st, m.user_id), DB_TEXT(st, m.email), DB_TEXT(st, m.name), \
	DB_TEXT(st, m.role), DB_TEXT(st, m.tier), DB_TEXT(st, m.csrf), \
	DB_INT(st, m.remember), DB_INT(st, m.stale), DB_INT(st, m.ttl)

/*
 * A route's own session lookup (app_session_sql): its statement and the row
 * it reads, a struct of size bytes whose first member is its cd_session_row
 * and whose columns are CD_SESSION_COLS(…) and then the route's own.
 */
typedef struct cd_session_sql {
	cd_sql		 sql;
	const cd_col	*cols;
	size_t		 ncols, size;
} cd_session_sql;

/*
 * Sets r->user when the cookie names a live session, with a route's own
 * lookup (NULL: the usual), whose row becomes r->session_row; no cookie is
 * not an error.
 */
cd_err	 session_load_with(cd_req *, cd_session_sql *);
/*
 * Starts a session for user_id (ending the one the browser had, if any),
 * sets the cookie and r->user.  remember: the 30-day lifetime.
 */
cd_err	 session_start(cd_req *, long long user_id, bool remember);
/*
 * Ends the current session (if any) and clears the cookie.  Ending
 * sessions (here, session_start over a live one, session_replace,
 * session_end_all) also ends the user's chat streams once r's answer has
 * gone (push_revoke), once per request that ended any.
 */
cd_err	 session_end(cd_req *);

/*
 * Rotation of the signed-in user's sessions, in two halves so the first can
 * run inside the caller's transaction: session_replace() writes a new token
 * for the current session (same expiry and lifetime choice) and deletes
 * every other session of the user; after the commit, session_adopt() sets
 * the cookie and r->user to it.  cd_new_session carries the new token
 * between the two.
 */
typedef struct cd_new_session {
	char	 token[CD_TOKEN_LEN + 1];
	char	 csrf[CD_TOKEN_LEN + 1];
} cd_new_session;

cd_err	 session_new_token(cd_new_session *);
cd_err	 session_replace(cd_req *, const cd_new_session *);
cd_err	 session_adopt(cd_req *, const cd_new_session *);
/* Deletes every session of the user (sign out everywhere, role change). */
cd_err	 session_end_all(cd_req *, long long user_id);

/* The signed-in user as {id, email, name, role, tier} (new reference). */
json_t	*session_user_json(const cd_user *);

#endif
