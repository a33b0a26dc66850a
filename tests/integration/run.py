"""
The integration test runner:

  /usr/bin/python3 -m tests.integration.run [--env FILE] [-k SUBSTRING] [-v] [--list]

from the repository root, against a running stack (scripts/stack.sh start).
The stack's variables come from the environment or from --env FILE
(default: $CD_STATE_DIR/env when CD_BASE_URL is not set).

Discovers tests/integration/test_*.py, runs every unittest TestCase in them
one after another (the tests share the emulator's global webhook controls),
and prints one line per test, "ok   test_x" or "FAIL test_x: reason", then
the details of every failure (tracebacks, new log lines) on stderr, and as
its last line "N passed, N failed".  A skipped test counts as failed.
After each module, creditdesk-check runs against the stack's database (the
module's teardown) and any finding fails it as "tearDownModule".
Exit status: 0 when everything passed, 1 otherwise.
"""

import argparse
import glob
import importlib
import io
import os
import sys
import time
import traceback
import unittest

from . import lib

HERE = os.path.dirname(os.path.abspath(__file__))


def one_line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def reason_of(err):
    """A short reason from an exc_info triple."""
    etype, value, _ = err
    msg = str(value).strip()
    if isinstance(value, AssertionError):
        # unittest's long messages: keep the part after the standard prefix.
        return one_line(msg or "assertion failed")
    return one_line(f"{etype.__name__}: {msg}")


class LineResult(unittest.TestResult):
    def __init__(self, out, details, verbose=False):
        super().__init__()
        self.out = out
        self.details = details
        self.verbose = verbose
        self.passed = 0
        self.failed = 0
        self.sizes = {}
        self.t0 = 0.0

    @staticmethod
    def name(test):
        m = getattr(test, "_testMethodName", None)
        if m:
            return m
        # setUpClass / module fixtures failures arrive as _ErrorHolder
        return str(test).split(" ")[0] if hasattr(test, "description") else str(test)

    def startTest(self, test):
        super().startTest(test)
        self.sizes = lib.log_sizes()
        self.t0 = time.monotonic()
        self._outcome = None

    def _line(self, text):
        self.out.write(text + "\n")
        self.out.flush()

    def _fail(self, test, reason, detail):
        self.failed += 1
        name = self.name(test)
        took = f" ({time.monotonic() - self.t0:.1f}s)" if self.verbose else ""
        self._line(f"FAIL {name}: {reason}{took}")
        logs = lib.log_since(self.sizes) if self.sizes else {}
        buf = io.StringIO()
        buf.write(f"\n===== FAIL {test.id() if hasattr(test, 'id') else name}\n{detail}")
        for logname, lines in sorted(logs.items()):
            if "-access" in logname.rpartition("/")[2]:    # one line per request
                continue
            buf.write(f"--- new lines in {logname}:\n")
            for ln in lines:
                buf.write("    " + ln + "\n")
        self.details.append(buf.getvalue())

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        took = f" ({time.monotonic() - self.t0:.1f}s)" if self.verbose else ""
        self._line(f"ok   {self.name(test)}{took}")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, reason_of(err), "".join(traceback.format_exception(*err)))

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, reason_of(err), "".join(traceback.format_exception(*err)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._fail(test, f"skipped ({one_line(reason)}); a skip counts as a failure",
                   f"skipped: {reason}\n")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._fail(test, "expected failure; counts as a failure",
                   "".join(traceback.format_exception(*err)))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._fail(test, "unexpected success of an expectedFailure test", "")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail(subtest, reason_of(err), "".join(traceback.format_exception(*err)))


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def filter_suite(suite, pattern):
    out = unittest.TestSuite()
    for t in iter_tests(suite):
        if pattern in t.id():
            out.addTest(t)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m tests.integration.run",
                                 description="creditdesk integration tests")
    ap.add_argument("--env", help="shell env file written by scripts/stack.sh "
                    "($CD_STATE_DIR/env)")
    ap.add_argument("-k", dest="pattern", action="append",
                    help="run only tests whose id contains this (repeatable)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show durations")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("--suite", default="integration", choices=("integration", "cluster"),
                    help="tests/<suite>/test_*.py (cluster: against scripts/cluster.sh)")
    a = ap.parse_args(argv)

    env_file = a.env
    if not env_file and not os.environ.get("CD_BASE_URL") and os.environ.get("CD_STATE_DIR"):
        cand = os.path.join(os.environ["CD_STATE_DIR"], "env")
        if os.path.exists(cand):
            env_file = cand
    if env_file:
        lib.load_env_file(env_file)

    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    pkg = "tests." + a.suite
    here = os.path.join(os.path.dirname(HERE), a.suite)
    for path in sorted(glob.glob(os.path.join(here, "test_*.py"))):
        modname = os.path.splitext(os.path.basename(path))[0]
        try:
            mod = importlib.import_module(f"{pkg}.{modname}")
        except Exception:
            print(f"FAIL {modname}: cannot import: {one_line(traceback.format_exc(limit=1))}")
            print("0 passed, 1 failed")
            return 1
        lib.check_books_after(mod)
        suite.addTests(loader.loadTestsFromModule(mod))
    if a.pattern:
        sub = unittest.TestSuite()
        for t in iter_tests(suite):
            if any(p in t.id() for p in a.pattern):
                sub.addTest(t)
        suite = sub
    if a.list:
        for t in iter_tests(suite):
            print(t.id())
        return 0

    try:
        lib.base_url()
    except RuntimeError as e:
        print(f"FAIL environment: {e}")
        print("0 passed, 1 failed")
        return 1

    details = []
    result = LineResult(sys.stdout, details, verbose=a.verbose)
    t0 = time.monotonic()
    suite.run(result)
    took = time.monotonic() - t0
    if result.testsRun == 0 and result.failed == 0:
        result.failed += 1
        print("FAIL discovery: no tests found")
    sys.stdout.flush()
    if details:
        sys.stderr.write("".join(details))
    sys.stderr.write(f"\nintegration: {result.testsRun} tests in {took:.1f}s\n")
    sys.stderr.flush()
    print(f"{result.passed} passed, {result.failed} failed")
    sys.stdout.flush()
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
