/*
 * The per-account sign-in throttle.  An attempt is counted as a failure
 * before its password is checked, inside a transaction that first writes the
 * account's row (so concurrent attempts queue on that row and each sees the
 * count the previous one left); a correct password then clears the count.
 * Twenty simultaneous guesses at the tenth failure therefore give one check
 * and nineteen refusals, not twenty checks.
 *
 * The row is keyed on the SHA-256 of the normalised email, whether or not
 * an account has it, so an unknown address is throttled exactly like a
 * known one.  The count starts again once the account has been quiet for
 * signin_window_minutes after its last failure or lock.
 */
#include <string.h>

#include "account_rules.h"
#include "auth.h"
#include "crypto.h"
#include "db.h"

static cd_sql q_claim = CD_SQL(
    "INSERT INTO signin_throttle (email_hash) VALUES (?)"
    " ON DUPLICATE KEY UPDATE version = version + 1");
static cd_sql q_state = CD_SQL(
    "SELECT t.failures,"
    " CAST(COALESCE(CEIL(TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), t.locked_until)"
    "  / 1000000), 0) AS SIGNED) AS wait,"
    " (t.last_failure_at IS NULL OR GREATEST(t.last_failure_at,"
    "  COALESCE(t.locked_until, t.last_failure_at)) <= UTC_TIMESTAMP(6)"
    "  - INTERVAL w.int_value MINUTE) AS quiet,"
    " m.int_value AS max_failures, b.int_value AS lock_base, c.int_value AS lock_cap"
    " FROM signin_throttle t"
    " JOIN platform_settings w ON w.name = 'signin_window_minutes'"
    " JOIN platform_settings m ON m.name = 'signin_max_failures'"
    " JOIN platform_settings b ON b.name = 'signin_lock_seconds'"
    " JOIN platform_settings c ON c.name = 'signin_lock_max_seconds'"
    " WHERE t.email_hash = ?");
/* An account's throttle with the settings that rule it. */
struct throttle {
	long long	 failures, wait, quiet, max_failures, lock_base, lock_cap;
};
static const cd_col throttle_cols[] = {
	DB_INT(struct throttle, failures), DB_INT(struct throttle, wait),
	DB_INT(struct throttle, quiet), DB_INT(struct throttle, max_failures),
	DB_INT(struct throttle, lock_base), DB_INT(struct throttle, lock_cap),
};
static cd_sql q_count = CD_SQL(
    "UPDATE signin_throttle SET failures = ?, last_failure_at = UTC_TIMESTAMP(6),"
    " locked_until = IF(? > 0, UTC_TIMESTAMP(6) + INTERVAL ? SECOND, NULL)"
    " WHERE email_hash = ?");
static cd_sql q_clear = CD_SQL(
    "UPDATE signin_throttle SET failures = 0, locked_until = NULL"
    " WHERE email_hash = ? AND (failures <> 0 OR locked_until IS NOT NULL)");

struct attempt {
	char	 key[CD_SHA256_HEX];
	long	 wait;			/* out: seconds still refused */
};

static cd_err
attempt_tx(void *arg)
{
	struct attempt *a = arg;
	struct throttle t;
	long failures, lock;
	size_t n = 0;
	cd_err err;

	if ((err = db_exec(&q_claim, NULL, "s", a->key)) != CD_OK ||
	    (err = db_fetch(&q_state, NULL, throttle_cols, DB_NCOLS(throttle_cols),
	    &t, sizeof(t), 1, &n, "s", a->key)) != CD_OK)
		return err;
	if (n == 0)
		return CD_INTERNAL;	/* the settings rows are missing */
	if ((a->wait = (long)t.wait) > 0)
		return CD_OK;
	failures = t.quiet ? 1 : (long)t.failures + 1;
	lock = signin_lock_seconds(failures, (long)t.max_failures,
	    (long)t.lock_base, (long)t.lock_cap);
	return db_exec(&q_count, NULL, "iiis", (long long)failures,
	    (long long)lock, (long long)lock, a->key);
}

cd_err
throttle_attempt(const char *email, long *retry_after)
{
	struct attempt a;
	cd_err err;

	sha256_hex(email, strlen(email), a.key);
	a.wait = 0;
	if ((err = db_tx(attempt_tx, &a)) != CD_OK)
		return err;
	*retry_after = a.wait;
	return a.wait > 0 ? CD_TOO_MANY : CD_OK;
}

cd_err
throttle_clear(const char *email)
{
	char key[CD_SHA256_HEX];

	sha256_hex(email, strlen(email), key);
	return db_exec(&q_clear, NULL, "s", key);
}

cd_err
throttle_refuse(cd_req *r, long retry_after)
{
	resp_header(r, "Retry-After", arena_printf(r->arena, "%ld", retry_after));
	return req_fail(r, CD_TOO_MANY, "too_many_attempts", arena_printf(r->arena,
	    "Too many failed sign-ins for this account. Try again in %ld seconds.",
	    retry_after));
}
