"""
The route families are named in several places that must agree: the source
tree (src/<family>/), Makefile.am (creditdesk-<family>), scripts/stack.sh
(FAMILIES), the nginx template (upstream cd_<family>), and the production
notes (dist/README.md).  And every route a responder declares in its routes[]
table must reach that responder through nginx's location rules.  These tests
fail when one place changes without the others.

Run: /usr/bin/python3 -m unittest discover -s tests/layout -v
"""

import glob
import os
import re
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NOT_FAMILIES = {"core", "tools", "billing"}  # libraries and command-line tools
# Catch-all locations that deliberately reach a family with no route of
# their own: any other /api/ path gets the pages family's JSON 404.
CATCH_ALL = {("/api/", "pages")}


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


def source_families():
    return sorted(d for d in os.listdir(os.path.join(REPO, "src"))
                  if os.path.isdir(os.path.join(REPO, "src", d)) and d not in NOT_FAMILIES)


def nginx_locations(conf):
    """[(modifier, path, body)] for every location block in the template."""
    out = []
    for m in re.finditer(r"location\s+(=|\^~)?\s*(\S+)\s*\{", conf):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(conf[i], 0)
            i += 1
        out.append((m.group(1) or "", m.group(2), conf[m.end():i - 1]))
    return out


def nginx_resolve(locations, uri):
    """The location nginx picks for uri: an exact match, else the longest
    prefix (the template has no regex locations that could override it)."""
    for mod, path, body in locations:
        if mod == "=" and path == uri:
            return path, body
    best = None
    for mod, path, body in locations:
        if mod != "=" and uri.startswith(path) and (best is None or len(path) > len(best[0])):
            best = (path, body)
    return best


def declared_routes(family):
    """(method, pattern) of every entry in the family's routes[] tables."""
    routes = []
    for c in glob.glob(os.path.join(REPO, "src", family, "*.c")):
        with open(c, encoding="utf-8") as f:
            text = f.read()
        for table in re.findall(r"cd_route\s+\w+\[\]\s*=\s*\{(.*?)\n\};", text, re.S):
            routes += re.findall(r'\{\s*"([A-Z]+)",\s*"([^"]+)"', table)
    return routes


class FamiliesAgree(unittest.TestCase):
    def setUp(self):
        self.families = source_families()
        self.assertTrue(self.families, "no route families under src/")

    def test_makefile_builds_each_family(self):
        am = read("Makefile.am")
        built = re.findall(r"\bcreditdesk-(\w+)", " ".join(
            re.findall(r"bin_PROGRAMS\s*=((?:.*\\\n)*.*)", am)))
        for fam in self.families:
            self.assertIn(fam, built, f"Makefile.am does not build creditdesk-{fam}")

    def test_stack_starts_each_family(self):
        m = re.search(r"^FAMILIES=\(([^)]*)\)", read("scripts/stack.sh"), re.M)
        self.assertIsNotNone(m, "scripts/stack.sh has no FAMILIES=(...) line")
        self.assertEqual(sorted(m.group(1).split()), self.families)

    def test_nginx_has_an_upstream_per_family(self):
        upstreams = re.findall(r"upstream\s+cd_(\w+)", read("nginx/creditdesk.conf.in"))
        self.assertEqual(sorted(upstreams), self.families)

    def test_production_notes_list_each_family(self):
        notes = read("dist/README.md")
        lists = re.findall(r"route family: `([^`]*)`", notes) + \
            re.findall(r"for f in ([a-z ]+); do\n\s*systemctl enable", notes)
        self.assertTrue(lists, "dist/README.md names no family list")
        for names in lists:
            self.assertEqual(sorted(names.split()), self.families, f"dist/README.md: {names}")


class RoutesReachTheirFamily(unittest.TestCase):
    def test_every_declared_route_goes_to_its_family(self):
        locations = nginx_locations(read("nginx/creditdesk.conf.in"))
        checked = 0
        for fam in source_families():
            routes = declared_routes(fam)
            self.assertTrue(routes, f"src/{fam}/ declares no routes")
            for method, pattern in routes:
                uri = pattern.replace("{id}", "1")
                with self.subTest(family=fam, route=f"{method} {pattern}"):
                    hit = nginx_resolve(locations, uri)
                    self.assertIsNotNone(hit, f"no nginx location matches {uri}")
                    self.assertRegex(hit[1], rf"fastcgi_pass\s+cd_{fam}\s*;",
                                     f"{method} {pattern} is routed by location {hit[0]}, not to cd_{fam}")
                checked += 1
        self.assertGreater(checked, 20)

    def test_every_family_location_serves_a_declared_route(self):
        """The other direction: a location that passes to a family is one
        some route of that family's tables arrives through (no stale or
        misspelt location sends URLs to a responder that has no route)."""
        locations = nginx_locations(read("nginx/creditdesk.conf.in"))
        reached = set(CATCH_ALL)
        for fam in source_families():
            for method, pattern in declared_routes(fam):
                hit = nginx_resolve(locations, pattern.replace("{id}", "1"))
                if hit is not None:
                    reached.add((hit[0], fam))
        checked = 0
        for mod, path, body in locations:
            m = re.search(r"fastcgi_pass\s+cd_(\w+)\s*;", body)
            if m is None:
                continue
            with self.subTest(location=f"{mod} {path}".strip()):
                self.assertIn((path, m.group(1)), reached,
                              f"location {mod} {path} passes to cd_{m.group(1)}, "
                              f"but no route of src/{m.group(1)}/ arrives through it")
            checked += 1
        self.assertGreater(checked, 20)


if __name__ == "__main__":
    unittest.main()
