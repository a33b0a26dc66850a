/*
 * Voice AI Therapy minutes: the per-user guard row (see voice.h).
 */
#include "db.h"
#include "voice.h"

static cd_sql q_guard = CD_SQL(
    "INSERT INTO voice_therapy_guards (user_id, version) VALUES (?, 1)"
    " ON DUPLICATE KEY UPDATE version = version + 1");

cd_err
voice_guard(long long user_id)
{
	return db_exec(&q_guard, NULL, "i", user_id);
}
