/*
 * creditdesk-admin: operator commands that need no browser.
 *
 *   creditdesk-admin create-user --email E --password P --name N
 *                                [--role customer|expert|mechanic|admin]
 *                                [--tier free|firewall]
 *   creditdesk-admin set-tier --email E --tier free|firewall
 *   creditdesk-admin set-role --email E --role ROLE
 *
 * The password may come from CD_ADMIN_PASSWORD instead of the command line;
 * it must pass the same rules as a sign-up (account_rules.h).  Emails are
 * normalised exactly as the auth responder does.  A role change ends every
 * session of the user, so new rights start with a new sign-in.
 * Every change is written to the audit log in the same transaction.
 * Exit status: 0 done, 1 error, 2 usage (or a refused password), 3 the user
 * already exists, 4 no such user.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account_rules.h"
#include "audit.h"
#include "cfg.h"
#include "crypto.h"
#include "db.h"
#include "log.h"

static cd_sql q_create = CD_SQL(
    "INSERT INTO users (email, name, password_hash, role, tier) VALUES (?, ?, ?, ?, ?)");
static cd_sql q_tier = CD_SQL("UPDATE users SET tier = ? WHERE email = ?");
static cd_sql q_role = CD_SQL("UPDATE users SET role = ? WHERE email = ?");
static cd_sql q_end_sessions = CD_SQL(
    "DELETE s FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = ?");

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

/* The address as the auth responder stores it; the copy lives for the process. */
static int
normalize(const char **email)
{
	cd_buf b = CD_BUF_INIT;

	if (email_normalize(*email, strlen(*email), &b) != 0 || b.len == 0 ||
	    strchr(buf_cstr(&b), '@') == NULL) {
		buf_free(&b);
		return -1;
	}
	*email = buf_steal(&b);
	return 0;
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
	return normalize(&o->email);
}

/* One change and its audit row, committed together. */
struct change {
	cd_sql		*q;
	const char	*action, *email, *name, *hash, *role, *tier, *value;
	bool		 end_sessions;	/* the change alters what the user may do */
	bool		 done;
};

static cd_err
create_tx(void *arg)
{
	struct change *c = arg;
	json_t *details;
	long long id;
	cd_err err;

	if ((err = db_insert_once(&q_create, &c->done, &id, "sssss", c->email,
	    c->name, c->hash, c->role, c->tier)) != CD_OK || !c->done)
		return err;
	details = json_pack("{s:s,s:s,s:s}", "email", c->email, "role", c->role,
	    "tier", c->tier);
	err = audit_write("ADMIN_CREATE_USER", "user", c->email, id, details, "info");
	json_decref(details);
	return err;
}

static cd_err
update_tx(void *arg)
{
	struct change *c = arg;
	unsigned long long n;
	json_t *details;
	cd_err err;

	if ((err = db_exec(c->q, &n, "ss", c->value, c->email)) != CD_OK ||
	    !(c->done = n == 1))
		return err;
	if (c->end_sessions &&
	    (err = db_exec(&q_end_sessions, NULL, "s", c->email)) != CD_OK)
		return err;
	details = json_pack("{s:s,s:s}", "email", c->email, "value", c->value);
	err = audit_write(c->action, "user", c->email, 0, details, "warning");
	json_decref(details);
	return err;
}

static bool
password_ok(const char *password)
{
	const char *why;

	switch (password_check(password, &why)) {
	case PW_OK:
		return true;
	case PW_TOO_SHORT:
		fprintf(stderr, "creditdesk-admin: the password needs at least %d characters\n",
		    CD_PASSWORD_MIN_CHARS);
		return false;
	case PW_ONE_CHARACTER:
		fprintf(stderr, "creditdesk-admin: the password is one character repeated\n");
		return false;
	default:
		fprintf(stderr, "creditdesk-admin: the password is refused: %s\n",
		    why ? why : "the dictionary is unreadable");
		return false;
	}
}

static int
create_user(struct opts *o)
{
	struct change c = { 0 };
	cd_buf hash = CD_BUF_INIT;
	cd_err err;

	c.role = o->role ? o->role : "customer";
	c.tier = o->tier ? o->tier : "free";
	if (o->password == NULL || o->name == NULL ||
	    !one_of(c.role, roles) || !one_of(c.tier, tiers))
		return usage();
	if (!password_ok(o->password))
		return 2;
	if (password_hash(o->password, &hash) != 0)
		return 1;
	c.email = o->email;
	c.name = o->name;
	c.hash = buf_cstr(&hash);
	err = db_tx(create_tx, &c);
	buf_free(&hash);
	if (err != CD_OK)
		return 1;
	if (!c.done) {
		fprintf(stderr, "creditdesk-admin: %s already exists\n", o->email);
		return 3;
	}
	printf("created %s\n", o->email);
	return 0;
}

static int
update(cd_sql *q, const char *action, const char *value,
    const char *const *allowed, const char *email)
{
	struct change c = { .end_sessions = q == &q_role };

	if (!one_of(value, allowed))
		return usage();
	c.q = q;
	c.action = action;
	c.value = value;
	c.email = email;
	if (db_tx(update_tx, &c) != CD_OK)
		return 1;
	if (!c.done) {
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
		rc = update(&q_tier, "ADMIN_SET_TIER", o.tier, tiers, o.email);
	else if (!strcmp(argv[1], "set-role"))
		rc = update(&q_role, "ADMIN_SET_ROLE", o.role, roles, o.email);
	else
		rc = usage();
	db_close();
	return rc;
}
