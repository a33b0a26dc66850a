/*
 * The auth family's users statements and the rows they read; see
 * user_store.h.
 */
#include "db.h"
#include "user_store.h"

static cd_sql q_create = CD_SQL(
    "INSERT INTO users (email, name, password_hash) VALUES (?, ?, ?)");
static cd_sql q_by_email = CD_SQL(
    "SELECT id, password_hash FROM users WHERE email = ?");
static const cd_col login_cols[] = {
	DB_INT(user_login, id), DB_TEXT(user_login, password_hash),
};
static cd_sql q_hash = CD_SQL("SELECT password_hash FROM users WHERE id = ?");
static cd_sql q_set_hash = CD_SQL("UPDATE users SET password_hash = ? WHERE id = ?");
static cd_sql q_lock = CD_SQL(
    "SELECT id, email, role, tier FROM users WHERE id = ? FOR UPDATE");
static const cd_col rights_cols[] = {
	DB_INT(user_rights, id), DB_TEXT(user_rights, email),
	DB_TEXT(user_rights, role), DB_TEXT(user_rights, tier),
};
static cd_sql q_update = CD_SQL(
    "UPDATE users SET role = ?, tier = ? WHERE id = ?");
/* The one experts statement of the auth family: a demotion's effect on the marketplace. */
static cd_sql q_expert_off = CD_SQL(
    "UPDATE experts SET active = 0 WHERE user_id = ?");
static cd_sql q_guard_admin = CD_SQL(
    "UPDATE users SET version = version + 1 WHERE id = ? AND role = 'admin'");

cd_err
ustore_create(const char *email, const char *name, const char *hash,
    bool *created, long long *id)
{
	return db_insert_once(&q_create, created, id, "sss", email, name, hash);
}

cd_err
ustore_login_of(cd_arena *a, const char *email, user_login *u, bool *found)
{
	return db_fetch_row(&q_by_email, a, login_cols, DB_NCOLS(login_cols), u,
	    sizeof(*u), found, "s", email);
}

cd_err
ustore_hash(cd_arena *a, long long user_id, const char **hash)
{
	return db_fetch_text(&q_hash, a, hash, NULL, "i", user_id);
}

cd_err
ustore_set_hash(long long user_id, const char *hash, bool *found)
{
	unsigned long long n = 0;
	cd_err err;

	err = db_exec(&q_set_hash, &n, "si", hash, user_id);
	if (found != NULL)
		*found = n > 0;
	return err;
}

cd_err
ustore_lock_rights(cd_arena *a, long long user_id, user_rights *u, bool *found)
{
	return db_fetch_row(&q_lock, a, rights_cols, DB_NCOLS(rights_cols), u,
	    sizeof(*u), found, "i", user_id);
}

cd_err
ustore_set_rights(long long user_id, const char *role, const char *tier)
{
	return db_exec(&q_update, NULL, "ssi", role, tier, user_id);
}

cd_err
ustore_guard_admin(long long admin_id, bool *still_admin)
{
	unsigned long long n = 0;
	cd_err err;

	err = db_exec(&q_guard_admin, &n, "i", admin_id);
	*still_admin = n > 0;
	return err;
}

cd_err
ustore_expert_off(long long user_id)
{
	return db_exec(&q_expert_off, NULL, "i", user_id);
}
