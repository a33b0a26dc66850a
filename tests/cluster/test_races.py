"""
Cross-node races on the three-machine Galera cluster: every write of one
race goes to a different machine's nginx (so to a different database node)
at the same instant, ROUNDS times per invariant, and the rows are checked
exactly after each round:

  - one payment fulfilled once: its webhook on machine 1, confirm-payment
    on 2, the success page on 3;
  - one expert, one time: three bookings of it on three machines, one wins;
    two bookings moved to one time and a third held at it, one wins;
  - Live Help: a slot's capacity and a user's hours never exceeded;
  - Voice AI Therapy: one session ended on three machines deducts once and
    no credit goes below zero;
  - the credit ledger: allocations on different machines chain exactly;
  - chat: messages posted on three machines at once are read by a poller on
    every machine in one order, none skipped;
  - admins: three demoting each other on three machines leave one admin;
  - a consultation whose mechanic was demoted: three mechanics taking it on
    three machines, one joins.
"""

import threading
import time

from tests.integration import lib
from tests.integration.lib import Case

from .common import ROUNDS, Racer, on, retried_once_busy, webhook_on


class Races(Case):

    def setUp(self):
        super().setUp()
        self.racer = Racer(3)

    def tearDown(self):
        self.racer.close()
        super().tearDown()

    # ------------------------------------------------------------ fulfilment

    def test_each_payment_fulfilled_once_across_machines(self):
        u = lib.register()
        lib.emu_hold()      # the emulator's own deliveries wait: ours race instead
        expected_hours = 0
        for i in range(ROUNDS):
            qty = 1 + i % 3
            sid = lib.start_live_help(u, qty)
            lib.emu_pay(sid)
            event = lib.completed_event(sid)
            hook, confirm, page = self.racer.race(
                lambda: webhook_on(1, event),
                lambda: on(u, 2).confirm(sid),
                lambda: on(u, 3).get("/checkout/success?session_id=" + sid))
            expected_hours += qty
            self.assertStatus(hook, 200, f"round {i}: webhook on machine 1")
            self.assertStatus(confirm, 200, f"round {i}: confirm on machine 2")
            self.assertIs(confirm.json.get("paid"), True, f"round {i}: {confirm!r}")
            self.assertStatus(page, (200, 303), f"round {i}: success page on machine 3")
            rows = lib.purchases_for_session(sid)
            self.assertEqual(len(rows), 1, f"round {i}: purchases of {sid}")
            self.assertEqual(rows[0]["hours"], qty)
            self.assertEqual(lib.audit_count("PAYMENT_FULFILLED", sid), 1, f"round {i}")
        self.assertEqual(lib.hours_total(u.id), expected_hours)
        self.assertEqual(len(lib.purchases_for_user(u.id)), ROUNDS)

    # ------------------------------------------------------------ bookings

    def test_no_expert_double_booking_across_machines(self):
        eid = lib.db_exec(
            "INSERT INTO experts (name, headline, bio, rate_cents_per_minute, active)"
            " VALUES ('Cluster expert', 'Races', 'Booked from three machines.', 0, 1)")[1]
        users = [lib.register() for _ in range(3)]
        held = 0
        for i in range(ROUNDS):
            # Round i holds hour i (from 2 days ahead); the third request
            # overlaps the first two by half an hour.
            start = lib.db_scalar(
                "SELECT DATE_FORMAT(UTC_DATE() + INTERVAL 2 DAY + INTERVAL %s HOUR,"
                " '%%Y-%%m-%%dT%%H:%%i:%%sZ')", i)
            later = lib.db_scalar(
                "SELECT DATE_FORMAT(UTC_DATE() + INTERVAL 2 DAY + INTERVAL %s MINUTE,"
                " '%%Y-%%m-%%dT%%H:%%i:%%sZ')", i * 60 + 30)
            bodies = [(start, 30), (start, 60), (later, 30)]
            rs = self.racer.race(*[
                (lambda k=k: on(users[k], k + 1).post("/api/bookings", {
                    "expertId": eid, "startTime": bodies[k][0],
                    "durationMinutes": bodies[k][1]}))
                for k in range(3)])
            won = [k for k, r in enumerate(rs) if r.status == 201]
            for r in rs:
                if r.status != 201:
                    self.assertError(r, 409, "booking_conflict", f"round {i}")
            # 0 and 1 overlap, 2 overlaps 1 only: either 1 wins alone, or 0 and 2 do.
            self.assertIn(won, ([1], [0, 2]), f"round {i}: {rs!r}")
            held += len(won)
            self.assertEqual(lib.db_scalar(
                "SELECT COUNT(*) FROM bookings WHERE expert_id = %s AND status = 'scheduled'",
                eid), held, f"round {i}")
        overlaps = lib.db_scalar(
            "SELECT COUNT(*) FROM bookings a JOIN bookings b ON a.expert_id = b.expert_id"
            " AND a.id < b.id AND a.start_time < b.end_time AND b.start_time < a.end_time"
            " WHERE a.expert_id = %s", eid)
        self.assertEqual(overlaps, 0)
        self.assertEqual(lib.db_scalar("SELECT COUNT(*) FROM bookings WHERE expert_id = %s",
                                       eid), held)

    def test_moves_and_a_hold_for_one_time_across_machines(self):
        """Two scheduled bookings moved to one time on machines 1 and 2 while
        a third customer holds it on machine 3: one of the three gets it."""
        eid = lib.db_exec(
            "INSERT INTO experts (name, headline, bio, rate_cents_per_minute, active)"
            " VALUES ('Cluster expert', 'Moves', 'Moved from three machines.', 0, 1)")[1]
        users = [lib.register() for _ in range(3)]
        at = lambda hours: lib.db_scalar(
            "SELECT DATE_FORMAT(UTC_DATE() + INTERVAL 3 DAY + INTERVAL %s HOUR,"
            " '%%Y-%%m-%%dT%%H:%%i:%%sZ')", hours)
        for i in range(ROUNDS):
            # round i: the two bookings at hours 3i and 3i+1, all three want 3i+2
            ids = []
            for k in range(2):
                r = on(users[k], 1).post("/api/bookings", {
                    "expertId": eid, "startTime": at(3 * i + k), "durationMinutes": 30})
                self.assertStatus(r, 201, f"round {i}: booking {k}")
                ids.append(r.json["booking"]["id"])
            target = at(3 * i + 2)
            rs = self.racer.race(
                lambda: on(users[0], 1).post(f"/api/bookings/{ids[0]}/reschedule",
                                             {"startTime": target}),
                lambda: on(users[1], 2).post(f"/api/bookings/{ids[1]}/reschedule",
                                             {"startTime": target}),
                lambda: on(users[2], 3).post("/api/bookings", {
                    "expertId": eid, "startTime": target, "durationMinutes": 30}))
            won = [k for k, r in enumerate(rs) if r.status in (200, 201)]
            self.assertEqual(len(won), 1, f"round {i}: {rs!r}")
            for r in rs:
                if r.status not in (200, 201):
                    self.assertError(r, 409, "booking_conflict", f"round {i}")
            self.assertEqual(lib.db_scalar(
                "SELECT COUNT(*) FROM bookings WHERE expert_id = %s AND status = 'scheduled'"
                " AND start_time = STR_TO_DATE(%s, '%%Y-%%m-%%dT%%H:%%i:%%sZ')", eid, target),
                1, f"round {i}")
        overlaps = lib.db_scalar(
            "SELECT COUNT(*) FROM bookings a JOIN bookings b ON a.expert_id = b.expert_id"
            " AND a.id < b.id AND a.start_time < b.end_time AND b.start_time < a.end_time"
            " WHERE a.expert_id = %s AND a.status = 'scheduled' AND b.status = 'scheduled'", eid)
        self.assertEqual(overlaps, 0)

    # ------------------------------------------------------------ Live Help

    def test_slot_capacity_and_hours_never_exceeded(self):
        u1, u2 = lib.register(), lib.register()
        wins = {u1.id: 0, u2.id: 0}
        for i in range(ROUNDS):
            lib.grant_hours(u1, 1)
            lib.grant_hours(u2, 1)
            x, y = lib.new_slot(1), lib.new_slot(1)
            a, b, c = self.racer.race(
                lambda: on(u1, 1).book(x),
                lambda: on(u1, 2).book(y),
                lambda: on(u2, 3).book(x))
            ok = [r.status == 200 or r.status == 201 for r in (a, b, c)]
            for r, good in zip((a, b, c), ok):
                if not good:
                    self.assertStatus(r, (402, 409), f"round {i}: {r!r}")
            # u1 has one hour for this round: x or y, not both.
            self.assertLessEqual(ok[0] + ok[1], 1, f"round {i}: {a!r} {b!r}")
            # x has one seat: u1 or u2, and always one of them.
            self.assertEqual(ok[0] + ok[2], 1, f"round {i}: {a!r} {c!r}")
            self.assertEqual(lib.db_scalar("SELECT booked FROM live_help_slots WHERE id = %s", x), 1)
            self.assertEqual(lib.db_scalar("SELECT booked FROM live_help_slots WHERE id = %s", y),
                             int(ok[1]))
            wins[u1.id] += ok[0] + ok[1]
            wins[u2.id] += ok[2]
        for u in (u1, u2):
            t = lib.totals(u.id)
            self.assertEqual(t["hours_total"], ROUNDS)
            self.assertEqual(t["hours_used"], wins[u.id])
            self.assertEqual(lib.db_scalar(
                "SELECT COUNT(*) FROM live_help_redemptions WHERE user_id = %s", u.id), wins[u.id])

    # ------------------------------------------------------------ Voice AI Therapy

    def test_voice_minutes_deducted_once_never_below_zero(self):
        u = lib.register()
        for i in range(ROUNDS):
            have = 5 + i % 6            # 5..10 minutes; 8 are asked for
            # A paid purchase as checkout records it, so the books balance.
            cs = f"cs_cluster_{lib.secrets.token_hex(8)}"
            lib.db_exec(
                "INSERT INTO checkout_sessions (stripe_session_id, user_id, product, item_code,"
                " quantity, amount_cents, status, fulfilled_at) VALUES"
                " (%s, %s, 'voice_therapy', 'voice_therapy', 1, 0, 'fulfilled', UTC_TIMESTAMP(6))",
                cs, u.id)
            lib.db_exec(
                "INSERT INTO voice_therapy_credits (user_id, stripe_session_id,"
                " minutes_purchased, minutes_remaining, amount_cents, expires_at)"
                " VALUES (%s, %s, %s, %s, 0, UTC_TIMESTAMP() + INTERVAL 30 DAY)",
                u.id, cs, have, have)
            lib.db_exec("INSERT INTO audit_log (action, entity_type, entity_id, user_id, details)"
                        " VALUES ('PAYMENT_FULFILLED', 'checkout_session', %s, %s, '{}')",
                        cs, u.id)
            start = u.post("/api/voice-therapy/start", {"persona": "calm"})
            self.assertStatus(start, 200, f"round {i}: start")
            sess = start.json["sessionId"]
            # The server's clock decides the charge: 8 minutes by it, and the
            # client's 7.5 are within the grace.  The session may have been
            # opened on another node: a read first (wsrep_sync_wait applies
            # to reads, not to an UPDATE) so the UPDATE finds it.
            self.assertEqual(lib.db_scalar(
                "SELECT status FROM voice_therapy_sessions WHERE id = %s", sess), "active")
            moved, _ = lib.db_exec("UPDATE voice_therapy_sessions SET started_at = started_at"
                                   " - INTERVAL 480 SECOND WHERE id = %s", sess)
            self.assertEqual(moved, 1, f"round {i}: the session's clock moved")
            body = {"sessionId": sess, "secondsUsed": 8 * 60 - 30, "summary": "race"}
            # ending is idempotent: every end answers what the first one took
            rs = self.racer.race(*[(lambda m=m: retried_once_busy(
                lambda: on(u, m).post("/api/voice-therapy/end", body))) for m in (1, 2, 3)])
            take = min(have, 8)
            for r in rs:
                self.assertStatus(r, 200, f"round {i}: end")
                self.assertEqual(r.json["minutesDeducted"], take, f"round {i}: {r!r}")
            self.assertEqual(lib.db_scalar(
                "SELECT COALESCE(SUM(minutes), 0) FROM voice_therapy_usage WHERE session_id = %s",
                sess), take, f"round {i}")
            self.assertEqual(lib.db_scalar(
                "SELECT minutes_remaining FROM voice_therapy_credits"
                " WHERE stripe_session_id = %s", cs), have - take, f"round {i}")
            # What is left expires (kept on the credit, so the books balance).
            lib.db_exec("UPDATE voice_therapy_credits SET is_active = 0,"
                        " expires_at = UTC_TIMESTAMP() - INTERVAL 1 SECOND WHERE user_id = %s",
                        u.id)

    # ------------------------------------------------------------ ledger

    def test_ledger_chain_unbroken_across_machines(self):
        u = lib.register()
        lib.emu_hold()
        for i in range(ROUNDS):
            sids = []
            for _ in range(3):
                r = u.post("/api/stripe/create-checkout",
                           {"purchaseType": "boost_pack", "boostPackId": "boost-small"})
                self.assertStatus(r, 200, f"round {i}: create-checkout")
                sids.append(r.json["sessionId"])
                lib.emu_pay(sids[-1])
            rs = self.racer.race(*[
                (lambda m=m: on(u, m + 1).confirm(sids[m])) for m in range(3)])
            for r in rs:
                self.assertStatus(r, 200, f"round {i}: confirm")
        rows = lib.db_rows("SELECT credits_delta, balance_before, balance_after"
                           " FROM credit_transactions WHERE user_id = %s ORDER BY id", u.id)
        self.assertEqual(len(rows), 3 * ROUNDS)
        before = 0
        for k, row in enumerate(rows):
            self.assertEqual(row["balance_before"], before, f"entry {k}")
            self.assertEqual(row["balance_after"], before + row["credits_delta"], f"entry {k}")
            before = row["balance_after"]
        self.assertEqual(lib.db_scalar("SELECT balance FROM user_credits WHERE user_id = %s",
                                       u.id), before)
        self.assertEqual(before, 3 * ROUNDS * rows[0]["credits_delta"])

    # ------------------------------------------------------------ chat

    def test_chat_messages_one_order_none_skipped(self):
        from tests.integration.test_consultations import bought_chat, mechanic, admin
        owner, mech, boss = lib.register(), mechanic(), admin()
        sess = bought_chat(owner)
        lib.check_status(boss.post(f"/api/admin/sessions/{sess}/participants",
                                   {"userId": mech.id, "role": "mechanic"}), 201)
        path = f"/api/sessions/{sess}/messages"
        stop = threading.Event()
        seen = {1: [], 2: [], 3: []}
        errors = []

        def poll(m):
            last = 0
            reader = on(owner if m != 2 else mech, m)
            while True:
                done = stop.is_set()
                r = reader.get(f"{path}?after={last}")
                if r.status != 200:
                    errors.append(r)
                    return
                for msg in r.json["messages"]:
                    seen[m].append(msg["id"])
                    last = msg["id"]
                if done and not r.json["messages"]:
                    return

        pollers = [threading.Thread(target=poll, args=(m,)) for m in (1, 2, 3)]
        for t in pollers:
            t.start()
        posted = []
        try:
            for i in range(ROUNDS):
                rs = self.racer.race(
                    lambda: on(owner, 1).post(path, {"body": f"{i} from the owner on 1"}),
                    lambda: on(mech, 2).post(path, {"body": f"{i} from the mechanic on 2"}),
                    lambda: on(owner, 3).post(path, {"body": f"{i} from the owner on 3"}))
                for r in rs:
                    self.assertStatus(r, 201, f"round {i}: post")
                    posted.append(r.json["message"]["id"])
        finally:
            time.sleep(0.5)
            stop.set()
            for t in pollers:
                t.join(60)
        self.assertEqual(errors, [])
        listed = lib.db_rows("SELECT id, seq FROM session_messages WHERE session_id = %s"
                             " ORDER BY seq, id", sess)
        rows = [r["id"] for r in listed]
        self.assertEqual(sorted(posted), sorted(rows))
        self.assertEqual(len(rows), 3 * ROUNDS)
        seqs = [r["seq"] for r in listed]
        self.assertEqual(len(set(seqs)), len(seqs), "two messages at one position")
        self.assertEqual(seqs, sorted(seqs))
        for m in (1, 2, 3):
            self.assertEqual(seen[m], rows, f"the poller on machine {m} skipped or repeated")

    # ------------------------------------------------------------ admins

    def test_admins_demoting_each_other_keep_one_across_machines(self):
        """Three admins each demote the next at once, on three machines:
        every change writes its actor's row, so at least one stays admin."""
        admins = [lib.register() for _ in range(3)]
        guarded = 0
        ids = [u.id for u in admins]
        for i in range(ROUNDS):
            lib.db_exec("UPDATE users SET role = 'admin' WHERE id IN (%s, %s, %s)", *ids)
            rs = self.racer.race(*[
                (lambda k=k: on(admins[k], k + 1).post(
                    f"/api/admin/users/{admins[(k + 1) % 3].id}", {"role": "customer"}))
                for k in range(3)])
            roles = [lib.db_scalar("SELECT role FROM users WHERE id = %s", u.id)
                     for u in admins]
            self.assertIn("admin", roles, f"round {i}: {rs!r}")
            done = [r.status == 200 for r in rs]
            for k, r in enumerate(rs):
                if not done[k]:
                    self.assertStatus(r, (401, 403), f"round {i}: {r!r}")
                    guarded += r.status == 403
            # a demotion that answered 200 is the one that took its target's role
            self.assertEqual([roles[(k + 1) % 3] == "customer" for k in range(3)], done,
                             f"round {i}: {rs!r}")
            for k, u in enumerate(admins):
                if roles[k] == "customer":
                    u.login(u.email, u.password)
        print(f"    {guarded} of {ROUNDS * 3} demotions refused by the guard", flush=True)

    def test_one_mechanic_takes_over_an_abandoned_consultation_across_machines(self):
        """The consultation's mechanic demoted: three mechanics take it at
        once on three machines; the take writes the session row on the
        condition that no mechanic stands, so exactly one joins."""
        from tests.integration.test_consultations import bought_chat, mechanic, participants
        for i in range(ROUNDS):
            owner, first = lib.register(), mechanic()
            sess = bought_chat(owner)
            self.assertStatus(first.post(f"/api/sessions/{sess}/take", {}), 201)
            lib.promote(first, role="customer")
            takers = [mechanic() for _ in range(3)]
            rs = self.racer.race(*[
                (lambda k=k: on(takers[k], k + 1).post(f"/api/sessions/{sess}/take", {}))
                for k in range(3)])
            self.assertEqual(sorted(r.status for r in rs), [201, 409, 409], f"round {i}: {rs!r}")
            for r in rs:
                if r.status == 409:
                    self.assertEqual(r.error_code, "already_taken", f"round {i}: {r!r}")
            winner = takers[[r.status for r in rs].index(201)]
            self.assertEqual(participants(sess), [{"user_id": owner.id, "role": "customer"},
                                                  {"user_id": first.id, "role": "left"},
                                                  {"user_id": winner.id, "role": "mechanic"}],
                             f"round {i}")
