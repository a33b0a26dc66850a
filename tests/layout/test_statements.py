"""
Each SQL statement has one owner: a text declared with CD_SQL(...) in two
places means two modules write (or read) the same rows their own way, and
the next change to that rule will be made in only one of them.  Declaring a
statement text twice anywhere under src/ fails here; the second user calls
the owner's function instead.  A route family declares its statements only
in its store module (<family>_store.c), so its route files hold no SQL.

Run: /usr/bin/python3 -m unittest discover -s tests/layout -v
"""

import collections
import glob
import os
import re
import unittest

from test_families import source_families

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# A string literal, or a macro named between literals (part of the text).
PIECE = re.compile(r'"((?:[^"\\]|\\.)*)"|\b([A-Z][A-Z0-9_]*)\b')


def declarations(text):
    """The argument text of each CD_SQL( ... ) in a C source, by paren depth."""
    at = 0
    while (start := text.find("CD_SQL(", at)) >= 0:
        i, depth, quoted = start + len("CD_SQL("), 1, False
        while depth and i < len(text):
            c = text[i]
            if quoted:
                if c == "\\":
                    i += 1
                elif c == '"':
                    quoted = False
            elif c == '"':
                quoted = True
            elif c in "()":
                depth += 1 if c == "(" else -1
            i += 1
        yield text[start + len("CD_SQL("):i - 1]
        at = i


def statements():
    """Statement text (its string literals and the macros between them
    joined, spaces folded) -> files."""
    found = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(REPO, "src", "*", "*.c"))):
        with open(path, encoding="utf-8") as f:
            source = f.read()
        for decl in declarations(source):
            sql = " ".join("".join(lit or f" {macro} "
                               for lit, macro in PIECE.findall(decl)).split())
            if sql:
                found[sql].append(os.path.relpath(path, REPO))
    return found


class StatementsHaveOneOwner(unittest.TestCase):
    def test_the_scan_finds_the_statements(self):
        found = statements()
        self.assertGreater(len(found), 200, "CD_SQL declarations no longer recognised")
        self.assertIn("src/billing/slots.c", {f for files in found.values() for f in files})

    def test_no_statement_text_is_declared_twice(self):
        twice = {sql: files for sql, files in statements().items() if len(files) > 1}
        self.assertEqual(twice, {}, "statements declared in more than one place")


# The sign-in throttle owns its table (src/auth/throttle.c); every other
# statement of a family lives in the family's store module.
OWN_TABLE = {"src/auth/throttle.c"}


def family_files_with_sql():
    families = set(source_families())
    return {f for files in statements().values() for f in files
            if f.split("/")[1] in families}


class FamiliesDeclareSqlInTheirStore(unittest.TestCase):
    def test_route_files_hold_no_sql(self):
        loose = {f for f in family_files_with_sql()
                 if not f.endswith("_store.c") and f not in OWN_TABLE}
        self.assertEqual(loose, set(), "a family's statements belong in its store module")

    def test_the_scan_sees_the_stores(self):
        self.assertTrue({"src/credits/credits_store.c", "src/pages/pages_store.c"}
                        <= family_files_with_sql())


if __name__ == "__main__":
    unittest.main()
