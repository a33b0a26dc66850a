/*
 * The audit log; see audit.h.
 */
#include <stdlib.h>

#include "audit.h"
#include "db.h"

static cd_sql q_audit = CD_SQL(
    "INSERT INTO audit_log (action, entity_type, entity_id, user_id, details, severity)"
    " VALUES (?, ?, ?, NULLIF(?, 0), ?, ?)");

cd_err
audit_write(const char *action, const char *entity_type, const char *entity_id,
    long long user_id, const json_t *details, const char *severity)
{
	char *json = details ? json_dumps(details, JSON_COMPACT) : NULL;
	cd_err err;

	err = db_exec(&q_audit, NULL, "sssiss", action, entity_type, entity_id,
	    user_id, json ? json : "{}", severity);
	free(json);
	return err;
}
