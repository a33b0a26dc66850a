/*
 * Chat push through nginx's nchan publishers (push.c): the rooms' messages,
 * and the end of a user's streams when their sessions end.  Both go to
 * every configured nginx (CD_CHAT_PUBLISH) once the caller's answer has
 * gone; failures are only logged.
 */
#ifndef CD_PUSH_H
#define CD_PUSH_H

#include <jansson.h>

#include "request.h"

/* Reads CD_CHAT_PUBLISH, once per child (the first push does it too); 0 = ok. */
int	 push_init(void);
/*
 * Publishes a committed message to room's subscribers, as {"after": <the
 * id of the message before it, 0 if none>, "message": <the messages API's
 * JSON for it>}; a page that has not seen "after" missed a push and
 * catches up.
 */
void	 push_message(cd_req *r, long long room, long long after,
	    const json_t *message);
/*
 * Ends every room stream of the user (each subscribes to the user's channel
 * too): a stream outlives no sign-out.  Sessions still valid reconnect at
 * once and are let in again; an ended one is refused.  Only after the
 * sessions' end has committed, which r's answer follows.
 */
void	 push_revoke(cd_req *r, long long user_id);

#endif
