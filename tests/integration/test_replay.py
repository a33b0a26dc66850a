"""Replaying the books: creditdesk-replay (scripts/replay.sh) rebuilds, in a
scratch database, what a scripted mix of payments and consumption produced
(a Live Help purchase with a booked hour, a voice pack with a session, a boost
pack, a refund) from the stored Stripe events and the local records, and
finds it equal to live; a fulfilment row removed from live is reported, and
it alone."""

import json
import os
import subprocess

from .lib import (Case, bought_live_help, completed_event, db_exec, db_row, env,
                  event_processed, new_slot, register, wait_until)
from .test_books import refunded
from .test_credits import buy_pack
from .test_voice_therapy import buy_voice, firewall_user, run_for


def replay(*args):
    """scripts/replay.sh --json [args] -> (exit status, report)."""
    script = os.path.join(env("CD_REPO"), "scripts", "replay.sh")
    p = subprocess.run(["bash", script, "--json", *args], env=dict(os.environ),
                       capture_output=True, text=True, timeout=300)
    if p.returncode not in (0, 1):
        raise AssertionError(f"replay exited {p.returncode}: {(p.stdout + p.stderr)[-1500:]}")
    return p.returncode, json.loads(p.stdout)


def settled(sid):
    """sid once its checkout.session.completed event is processed: the replay
    fulfils from stored events, and a late delivery must not fulfil again."""
    ev = wait_until(lambda: completed_event(sid), 10, message="completed event")
    wait_until(lambda: event_processed(ev["id"]), 20, message="completed event processed")
    return sid


def used_voice(u, seconds):
    """Starts and ends one voice session that ran `seconds`."""
    r = u.post("/api/voice-therapy/start", {})
    if r.status != 200:
        raise AssertionError(f"voice start: {r!r}")
    run_for(r.json["sessionId"], seconds)
    r = u.post("/api/voice-therapy/end", {"sessionId": r.json["sessionId"],
                                          "secondsUsed": seconds})
    if r.status != 200:
        raise AssertionError(f"voice end: {r!r}")


class ReplayTests(Case):

    def test_scripted_mix_replays_to_the_live_state(self):
        u = firewall_user()
        hours = settled(bought_live_help(u, 3))
        self.assertStatus(u.book(new_slot(2)), 201, "book")
        settled(buy_voice(u))
        used_voice(u, 61)
        settled(buy_pack(u, "boost-small"))
        refunded(hours)         # two unused hours go back, the booked one stays
        self.assertEqual(db_row("SELECT hours_total, hours_used FROM user_live_help_totals"
                                " WHERE user_id = %s", u.id),
                         {"hours_total": 1, "hours_used": 1})
        rc, report = replay("--user", str(u.id))
        self.assertEqual((rc, report["differences"]), (0, []))
        # purchase, booking, voice purchase, session, pack, refund: six or
        # more steps (a completed event may be stored more than once)
        self.assertGreaterEqual(report["steps"], 6)

    def test_a_removed_fulfilment_row_is_reported_alone(self):
        u = register()
        sid = settled(buy_pack(u, "boost-small"))
        row = db_row("SELECT * FROM boost_pack_purchases WHERE stripe_session_id = %s", sid)
        db_exec("DELETE FROM boost_pack_purchases WHERE id = %s", row["id"])
        try:
            rc, report = replay("--user", str(u.id))
        finally:
            cols = list(row)
            db_exec(f"INSERT INTO boost_pack_purchases ({', '.join(cols)}) VALUES"
                    f" ({', '.join(['%s'] * len(cols))})", *row.values())
        self.assertEqual(rc, 1)
        self.assertEqual(report["differences"], [{
            "table": "boost_pack_purchases", "side": "replay only",
            "stripe_session_id": sid, "user_id": u.id,
            "boost_pack_id": row["boost_pack_id"],
            "payment_intent_id": row["payment_intent_id"],
            "amount_cents": row["amount_cents"], "credits_applied": row["credits_applied"],
            "credits_refunded": row["credits_refunded"]}])

