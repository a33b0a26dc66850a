/*
 * creditdesk-admin: operator commands that need no browser.
 *
 *   creditdesk-admin create-user --email E --password P --name N
 *                                [--role customer|expert|mechanic|admin]
 *                                [--tier free|firewall]
 *   creditdesk-admin set-tier --email E --tier free|firewall
 *   creditdesk-admin set-role --email E --role ROLE
 *
 * The password may come from CD_ADMIN_PASSWORD instead of the command line.
 * Exit status: 0 done, 1 error, 2 usage, 3 the user already exists,
 * 4 no such user.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "crypto.h"
#include "db.h"
#include "log.h"

static cd_sql q_create = CD_SQL(
    "INSERT INTO users (email, name, password_hash, role, tier) VALUES (?, ?, ?, ?, ?)");
static cd_sql q_tier = CD_SQL("UPDATE users SET tier = ? WHERE email = ?");
static cd_sql q_role = CD_SQL("UPDATE users SET role = ? WHERE email = ?");

struct opts {
	const char *email, *password, *name, *role, *tier;
};

static bool
one_of(const char *v, const char *const *allowed)
{
	for (; v && *allowed; allowed++)
		if (strcmp(v, *allowed) == 0)
			return true;
	return false;
}

static const char *const roles[] = { "customer", "expert", "mechanic", "admin", NULL };
static const char *const tiers[] = { "free", "firewall", NULL };

static int
usage(void)
{
	fprintf(stderr, "usage: creditdesk-admin create-user --email E --password P"
	    " --name N [--role R] [--tier T]\n"
	    "       creditdesk-admin set-tier --email E --tier T\n"
	    "       creditdesk-admin set-role --email E --role R\n");
	return 2;
}

static int
parse(int argc, char **argv, struct opts *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->password = getenv("CD_ADMIN_PASSWORD");
	for (i = 2; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (!strcmp(k, "--email")) o->email = v;
		else if (!strcmp(k, "--password")) o->password = v;
		else if (!strcmp(k, "--name")) o->name = v;
		else if (!strcmp(k, "--role")) o->role = v;
		else if (!strcmp(k, "--tier")) o->tier = v;
		else return -1;
	}
	if (i != argc || o->email == NULL)
		return -1;
	for (char *p = (char *)o->email; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

static int
create_user(struct opts *o)
{
	cd_buf hash = CD_BUF_INIT;
	bool created;
	cd_err err;

	if (o->password == NULL || strlen(o->password) < 8 || o->name == NULL ||
	    !one_of(o->role ? o->role : "customer", roles) ||
	    !one_of(o->tier ? o->tier : "free", tiers))
		return usage();
	if (password_hash(o->password, &hash) != 0)
		return 1;
	err = db_insert_once(&q_create, &created, NULL, "sssss", o->email, o->name,
	    buf_cstr(&hash), o->role ? o->role : "customer",
	    o->tier ? o->tier : "free");
	buf_free(&hash);
	if (err != CD_OK)
		return 1;
	if (!created) {
		fprintf(stderr, "creditdesk-admin: %s already exists\n", o->email);
		return 3;
	}
	printf("created %s\n", o->email);
	return 0;
}

static int
update(cd_sql *q, const char *value, const char *const *allowed, const char *email)
{
	unsigned long long n;

	if (!one_of(value, allowed))
		return usage();
	if (db_exec(q, &n, "ss", value, email) != CD_OK)
		return 1;
	if (n == 0) {
		fprintf(stderr, "creditdesk-admin: no user %s\n", email);
		return 4;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o;
	int rc;

	log_init("creditdesk-admin");
	if (argc < 2 || parse(argc, argv, &o) != 0)
		return usage();
	if (cfg_load() != 0 || db_open() != CD_OK)
		return 1;
	if (!strcmp(argv[1], "create-user"))
		rc = create_user(&o);
	else if (!strcmp(argv[1], "set-tier"))
		rc = update(&q_tier, o.tier, tiers, o.email);
	else if (!strcmp(argv[1], "set-role"))
		rc = update(&q_role, o.role, roles, o.email);
	else
		rc = usage();
	db_close();
	return rc;
}
