/*
 * creditdesk-auth: the handlers that live outside auth.c.
 */
#ifndef CD_AUTH_H
#define CD_AUTH_H

#include "request.h"

cd_err	 admin_user_update(cd_req *);

#endif
