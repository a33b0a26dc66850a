"""FastCGI keep-alive between nginx and the children: idle kept connections
never hold every child of a family.  The stack's nginx is reloaded with the
configuration scripts/stack.sh renders for a given number of workers (more
workers than children, or one); after a burst that leaves every worker with
its idle kept connections, fresh requests from new client connections are
still answered at once.  The stack's own configuration is put back after."""

import concurrent.futures as cf
import os
import re
import signal
import subprocess
import time

from . import lib
from .lib import Case


def workers_of(master):
    """The master's worker processes (old ones too, until they exit)."""
    out = subprocess.run(["ps", "-o", "args=", "--ppid", str(master)],
                         capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if "worker process" in l]


class FastCGIKeepAliveTests(Case):

    def render(self, workers):
        """The stack's nginx.conf as rendered for `workers` workers."""
        env = dict(os.environ, CD_STATE_DIR=lib.env("CD_STATE_DIR"),
                   CD_HTTP_PORT=lib.env("CD_HTTP_PORT"), CD_CHILDREN=lib.env("CD_CHILDREN"),
                   CD_NGINX_WORKERS=str(workers))
        out = subprocess.run(["bash", lib.env("CD_STACK"), "nginx-conf"], env=env,
                             check=True, capture_output=True, text=True, timeout=60)
        return out.stdout

    def reload(self, conf, workers):
        """The stack's nginx runs conf once only its `workers` new workers serve."""
        state = lib.env("CD_STATE_DIR")
        with open(os.path.join(state, "nginx", "nginx.pid")) as f:
            master = int(f.read().strip())
        with open(os.path.join(state, "nginx.conf"), "w") as f:
            f.write(conf)
        os.kill(master, signal.SIGHUP)
        # Only the new workers left: the old ones closed their kept
        # connections as they exited.
        lib.wait_until(lambda: len(workers_of(master)) == workers,
                       timeout=30, what=f"{workers} nginx workers after the reload")

    def run_with_workers(self, workers):
        state = lib.env("CD_STATE_DIR")
        with open(os.path.join(state, "nginx.conf")) as f:
            original = f.read()
        own = int(re.search(r"(?m)^worker_processes (\d+);", original).group(1))
        self.addCleanup(self.reload, original, own)
        conf = self.render(workers)
        self.reload(conf, workers)
        return conf

    def assertServedAfterBurst(self, base, workers, children):
        # A burst from many connections: every worker ends with its idle
        # kept connections to the family.
        n = 4 * workers * children
        with cf.ThreadPoolExecutor(max_workers=n) as pool:
            statuses = list(pool.map(
                lambda _: lib.http_request("GET", base + "/api/me", timeout=10).status, range(n)))
        self.assertEqual(statuses, [401] * n, "burst through the second nginx")
        # Then new client connections, which land on any worker: each one
        # must be answered promptly, never wait for a kept connection to end.
        for i in range(3 * workers):
            t0 = time.monotonic()
            r = lib.http_request("GET", base + "/api/me", timeout=5)
            took = time.monotonic() - t0
            self.assertStatus(r, 401, f"request {i} after the burst")
            self.assertLess(took, 2.0, f"request {i} after the burst waited {took:.1f}s")

    def keepalive_of(self, conf):
        found = set(re.findall(r"upstream cd_auth .*?(?:keepalive (\d+);)? \}", conf))
        self.assertEqual(len(found), 1, conf)
        return int(found.pop() or 0)

    def test_more_workers_than_children_still_served(self):
        children = int(lib.env("CD_CHILDREN"))
        workers = children + 2
        conf = self.run_with_workers(workers)
        self.assertIn(f"worker_processes {workers};", conf)
        self.assertIn("fastcgi_keep_conn on;", conf)
        keep = self.keepalive_of(conf)
        self.assertLess(workers * keep, children, "idle kept connections could hold every child")
        self.assertServedAfterBurst(lib.base_url(), workers, children)

    def test_one_worker_keeps_all_but_one_child(self):
        children = int(lib.env("CD_CHILDREN"))
        conf = self.run_with_workers(1)
        keep = self.keepalive_of(conf)
        self.assertEqual(keep, children - 1)
        self.assertServedAfterBurst(lib.base_url(), 1, children)
