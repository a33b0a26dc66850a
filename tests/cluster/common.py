"""
Helpers for the cluster tests: the machines' own nginx (unix sockets from
the cluster's env file), and a race that fires one call per machine at the
same instant.
"""

import concurrent.futures
import os
import threading
import time

from tests.integration import lib

ROUNDS = int(os.environ.get("CD_CLUSTER_RACES", "200"))


def machines():
    n = int(lib.env("CD_CLUSTER_MACHINES", "3"))
    return [lib.env(f"CD_MACHINE{i}_SOCK") for i in range(1, n + 1)]


def on(browser, machine):
    """browser talking straight to machine (1-based) instead of the front."""
    return browser.via(machines()[machine - 1])


class Racer:
    """Runs a list of calls at once (a barrier releases them together)."""

    def __init__(self, width=3):
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=width)

    def race(self, *calls):
        gate = threading.Barrier(len(calls))

        def run(fn):
            gate.wait()
            return fn()

        futures = [self.pool.submit(run, fn) for fn in calls]
        return [f.result() for f in futures]

    def close(self):
        self.pool.shutdown(wait=True)


def retried_once_busy(call, pause=1.0):
    """call(), and once more after a 503 (database_unavailable says "Please
    retry"), as a client does: for an idempotent call only.  A commit the
    cluster stalls past the responder's read timeout (seen on this 2-core
    machine under the races' load) answers 503 rather than wait."""
    r = call()
    if r.status != 503:
        return r
    time.sleep(pause)
    return call()


def webhook_on(machine, event):
    """A Stripe event delivered, signed, to one machine's nginx."""
    body = lib.json.dumps(event).encode()
    return lib.post_webhook(body, unix_socket=machines()[machine - 1])
