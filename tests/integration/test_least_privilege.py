"""Least privilege: the application's database user (CD_DB_USER) cannot change
or delete audit rows, nor delete a Stripe event or change its id, type or
body, while the product still records and processes events; tables a later
migration adds get the app's grants on the next start; and each route
family's processes hold only the Stripe secrets that family uses."""

import os
import re
import secrets

import pymysql

from . import lib
from .lib import Case, env

# Which Stripe settings each family's environment holds (scripts/stack.sh family_env).
STRIPE_VARS = ("STRIPE_API_BASE", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")
FAMILY_SECRETS = {
    "auth": set(), "credits": set(), "sessions": set(), "pages": set(),
    "checkout": {"STRIPE_API_BASE", "STRIPE_SECRET_KEY"},
    "bookings": {"STRIPE_API_BASE", "STRIPE_SECRET_KEY"},
    "webhook": set(STRIPE_VARS),
}
DENIED = (1142, 1143)   # table / column command denied


def app_db():
    """A connection with the responders' own credentials."""
    kw = dict(user=env("CD_DB_USER"), password=env("CD_DB_PASSWORD"),
              database=env("CD_DB_NAME", "creditdesk"), autocommit=True, charset="utf8mb4",
              connect_timeout=5)
    sock = os.environ.get("CD_DB_SOCKET")
    if sock and os.path.exists(sock):
        kw["unix_socket"] = sock
    else:
        kw["host"], kw["port"] = env("CD_DB_HOST", "127.0.0.1"), int(env("CD_DB_PORT"))
    return pymysql.connect(**kw)


def proc_environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(kv.split("=", 1) for kv in f.read().decode().split("\0") if "=" in kv)


class DatabaseGrantTests(Case):

    def setUp(self):
        super().setUp()
        self.conn = app_db()

    def tearDown(self):
        self.conn.close()
        super().tearDown()

    def assertDenied(self, sql, *args):
        with self.conn.cursor() as c:
            with self.assertRaises(pymysql.err.OperationalError, msg=sql) as cm:
                c.execute(sql, args)
        self.assertIn(cm.exception.args[0], DENIED, f"{sql}: {cm.exception}")

    def test_audit_log_and_stripe_events_are_append_only(self):
        # A real event through the webhook: the app inserts and marks it processed.
        eid, body = lib.make_event("creditdesk.test_ping")
        self.assertStatus(lib.post_webhook(body), 200)
        before = lib.stripe_event_row(eid)
        self.assertIsNotNone(before["processed_at"], "the app could not mark it processed")
        b = lib.register()
        self.assertStatus(b.post("/api/checkout", {"plan": "chat10"}), 200)
        audit_id = lib.db_scalar("SELECT MAX(id) FROM audit_log WHERE user_id = %s", b.id)
        self.assertIsNotNone(audit_id, "the app could not write its audit row")
        audit = lib.db_row("SELECT * FROM audit_log WHERE id = %s", audit_id)

        self.assertDenied("UPDATE audit_log SET action = 'TAMPERED' WHERE id = %s", audit_id)
        self.assertDenied("UPDATE audit_log SET details = '{}' WHERE id = %s", audit_id)
        self.assertDenied("DELETE FROM audit_log WHERE id = %s", audit_id)
        self.assertDenied("TRUNCATE TABLE audit_log")
        self.assertDenied("DELETE FROM stripe_events WHERE event_id = %s", eid)
        self.assertDenied("UPDATE stripe_events SET event_id = 'evt_other' WHERE event_id = %s", eid)
        self.assertDenied("UPDATE stripe_events SET type = 'x.y' WHERE event_id = %s", eid)
        self.assertDenied("UPDATE stripe_events SET payload = '{}' WHERE event_id = %s", eid)
        self.assertDenied("UPDATE stripe_events SET processed_at = NULL, type = 'x'"
                          " WHERE event_id = %s", eid)
        self.assertDenied("TRUNCATE TABLE stripe_events")
        self.assertDenied("DROP TABLE stripe_events")
        self.assertEqual(lib.db_row("SELECT * FROM audit_log WHERE id = %s", audit_id), audit)
        self.assertEqual(lib.stripe_event_row(eid), before)

        # What the app does need still works with the same credentials.
        with self.conn.cursor() as c:
            self.assertEqual(c.execute("UPDATE stripe_events SET processed_at = processed_at"
                                       " WHERE event_id = %s", (eid,)), 0)
            c.execute("SELECT COUNT(*) FROM audit_log WHERE id = %s", (audit_id,))
            self.assertEqual(c.fetchone()[0], 1)
            c.execute("SELECT COUNT(*) FROM users WHERE id = %s", (b.id,))
            self.assertEqual(c.fetchone()[0], 1)

    def test_no_database_wide_grant(self):
        with self.conn.cursor() as c:
            c.execute("SHOW GRANTS")
            grants = [row[0] for row in c.fetchall()]
        self.assertFalse([g for g in grants if ".* TO" in g and "USAGE" not in g], grants)
        events = [g for g in grants if "`stripe_events`" in g]
        self.assertEqual(len(events), 1, grants)
        updatable = re.search(r"UPDATE \(([^)]*)\)", events[0])
        self.assertEqual(sorted(updatable.group(1).split(", ")) if updatable else None,
                         ["`effect_at`", "`processed_at`", "`processed_by`"], events[0])

    def test_a_table_added_by_a_later_migration_gets_the_grants_on_start(self):
        # A new name each run: grants outlive a dropped table of the same name.
        table = "it_later_" + secrets.token_hex(6)
        lib.db_exec(f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT)")
        try:
            self.assertDenied(f"INSERT INTO {table} VALUES (1, 1)")
            lib.stack("start")
            conn = app_db()     # privileges are read at connect time
            with conn.cursor() as c:
                c.execute(f"INSERT INTO {table} VALUES (1, 1)")
                c.execute(f"UPDATE {table} SET v = 2 WHERE id = 1")
                c.execute(f"DELETE FROM {table} WHERE id = 1")
            conn.close()
        finally:
            lib.db_exec(f"DROP TABLE IF EXISTS {table}")


class FamilySecretTests(Case):

    def test_each_family_holds_only_the_stripe_secrets_it_uses(self):
        run = env("CD_RUN_DIR")
        for fam, want in FAMILY_SECRETS.items():
            with self.subTest(fam):
                with open(os.path.join(run, fam + ".pid")) as f:
                    pid = int(f.read().strip())
                children = open(f"/proc/{pid}/task/{pid}/children").read().split()
                self.assertTrue(children, f"{fam}: no children")
                for p in [pid] + [int(c) for c in children]:
                    e = proc_environ(p)
                    self.assertEqual({k for k in STRIPE_VARS if k in e}, want, f"{fam} pid {p}")
                    self.assertEqual(e.get("CD_DB_USER"), env("CD_DB_USER"))
                    if "STRIPE_WEBHOOK_SECRET" in want:
                        self.assertEqual(e["STRIPE_WEBHOOK_SECRET"], env("STRIPE_WEBHOOK_SECRET"))
