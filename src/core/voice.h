/*
 * Voice AI Therapy minutes shared by the credits responder, the refund path
 * and the periodic job.
 */
#ifndef CD_VOICE_H
#define CD_VOICE_H

#include "error.h"

/*
 * Writes the user's guard row (creating it the first time).  Call it first
 * in every transaction that opens, ends or changes a user's voice minutes:
 * concurrent ones then queue on the row and each reads what the one before
 * it committed.
 */
cd_err	 voice_guard(long long user_id);

#endif
