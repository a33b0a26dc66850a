/*
 * The audit log.  Callers write the row inside the transaction that makes
 * the change, so the log and the change commit or vanish together.
 */
#ifndef CD_AUDIT_H
#define CD_AUDIT_H

#include <jansson.h>

#include "error.h"

/* user_id 0 = no user; details is borrowed (NULL = {}); severity info/warning/critical. */
cd_err	 audit_write(const char *action, const char *entity_type,
	    const char *entity_id, long long user_id, const json_t *details,
	    const char *severity);

#endif
