"""
Unit tests follow the layout: each tests/unit/test_<module>.c is named after
the module it tests (a src/<folder>/<module>.c), and Makefile.am runs every
one of them under make check.  A test file renamed, or added without being
run, fails here.

Run: /usr/bin/python3 -m unittest discover -s tests/layout -v
"""

import glob
import os
import re
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def unit_tests():
    return sorted(os.path.basename(p)[len("test_"):-len(".c")]
                  for p in glob.glob(os.path.join(REPO, "tests", "unit", "test_*.c")))


def modules():
    return {os.path.basename(p)[:-len(".c")]
            for p in glob.glob(os.path.join(REPO, "src", "*", "*.c"))}


class UnitTestsFollowLayout(unittest.TestCase):
    def test_each_unit_test_names_a_module(self):
        tests = unit_tests()
        self.assertTrue(tests, "no tests/unit/test_*.c")
        mods = modules()
        for t in tests:
            with self.subTest(test=f"test_{t}.c"):
                self.assertIn(t, mods, f"tests/unit/test_{t}.c names no src/*/{t}.c")

    def test_make_check_runs_each_unit_test(self):
        with open(os.path.join(REPO, "Makefile.am"), encoding="utf-8") as f:
            am = f.read()
        m = re.search(r"^TESTS\s*=((?:.*\\\n)*.*)", am, re.M)
        self.assertIsNotNone(m, "Makefile.am has no TESTS")
        run = sorted(re.findall(r"tests/unit/test_(\w+)", m.group(1)))
        self.assertEqual(run, unit_tests())


if __name__ == "__main__":
    unittest.main()
