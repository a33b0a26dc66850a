"""FastCGI keep-alive between nginx and the children: idle kept connections
never hold every child of a family.  A second nginx master is started from
the configuration scripts/stack.sh renders for a given number of workers
(on a free port, the stack's children behind it); after a burst that leaves
every worker with its idle kept connections, fresh requests from new client
connections are still answered at once."""

import concurrent.futures as cf
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

from . import lib
from .lib import Case


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FastCGIKeepAliveTests(Case):

    def render(self, workers):
        """The stack's nginx.conf as rendered for `workers` workers."""
        env = dict(os.environ, CD_STATE_DIR=lib.env("CD_STATE_DIR"),
                   CD_HTTP_PORT=lib.env("CD_HTTP_PORT"), CD_CHILDREN=lib.env("CD_CHILDREN"),
                   CD_NGINX_WORKERS=str(workers))
        out = subprocess.run(["bash", lib.env("CD_STACK"), "nginx-conf"], env=env,
                             check=True, capture_output=True, text=True, timeout=60)
        return out.stdout

    def start_nginx(self, conf):
        """Runs conf on a free port with its own pid file; returns the base URL."""
        tmp = tempfile.mkdtemp(prefix="cd-keepalive-")
        os.chmod(tmp, 0o755)
        port = free_port()
        pid_file = os.path.join(tmp, "nginx.pid")
        conf = re.sub(r"(?m)^pid .*;$", f"pid {pid_file};", conf)
        conf = re.sub(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{port};", conf)
        path = os.path.join(tmp, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        prefix = os.path.join(lib.env("CD_STATE_DIR"), "nginx") + "/"
        subprocess.run(["nginx", "-p", prefix, "-c", path], check=True, timeout=30)
        lib.wait_until(lambda: os.path.exists(pid_file) and os.path.getsize(pid_file) > 0,
                       timeout=10, what="nginx pid file")
        with open(pid_file) as f:
            pid = int(f.read().strip())
        self.addCleanup(self.stop_nginx, pid)
        return f"http://127.0.0.1:{port}"

    @staticmethod
    def stop_nginx(pid):
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

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
        conf = self.render(workers)
        self.assertIn(f"worker_processes {workers};", conf)
        self.assertIn("fastcgi_keep_conn on;", conf)
        keep = self.keepalive_of(conf)
        self.assertLess(workers * keep, children, "idle kept connections could hold every child")
        self.assertServedAfterBurst(self.start_nginx(conf), workers, children)

    def test_one_worker_keeps_all_but_one_child(self):
        children = int(lib.env("CD_CHILDREN"))
        conf = self.render(1)
        keep = self.keepalive_of(conf)
        self.assertEqual(keep, children - 1)
        self.assertServedAfterBurst(self.start_nginx(conf), 1, children)
