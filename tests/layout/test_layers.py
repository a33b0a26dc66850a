"""
The three layers and the one direction their dependencies point:
families (src/<family>/) -> billing (src/billing/) -> platform (src/core/).
A platform file includes only platform headers; a billing file includes only
billing and platform headers.  The build puts every folder on the include
path, so nothing but these tests stops a header from crossing a layer.

Run: /usr/bin/python3 -m unittest discover -s tests/layout -v
"""

import glob
import os
import re
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def headers(layer):
    return {os.path.basename(h) for h in glob.glob(os.path.join(REPO, "src", layer, "*.h"))}


def includes(layer):
    """[(file, header)] for every quoted #include in the layer's sources."""
    out = []
    for path in sorted(glob.glob(os.path.join(REPO, "src", layer, "*.[ch]"))):
        with open(path, encoding="utf-8") as f:
            for h in INCLUDE.findall(f.read()):
                out.append((os.path.relpath(path, REPO), h))
    return out


def crossings(layer, allowed):
    return [f"{f} includes {h}" for f, h in includes(layer) if h not in allowed]


class LayersPointOneWay(unittest.TestCase):
    def test_layers_exist(self):
        self.assertTrue(headers("core"), "no platform headers in src/core")
        self.assertTrue(headers("billing"), "no billing headers in src/billing")

    def test_platform_includes_only_platform(self):
        self.assertEqual(crossings("core", headers("core")), [])

    def test_billing_includes_only_billing_and_platform(self):
        self.assertEqual(crossings("billing", headers("core") | headers("billing")), [])

    def test_no_header_name_in_two_layers(self):
        # One include path holds every layer, so a name may exist only once.
        self.assertEqual(sorted(headers("core") & headers("billing")), [])

    def test_checker_catches_a_crossing(self):
        # The check itself must be able to fail: a family header is not allowed.
        fam = headers("bookings")
        self.assertTrue(fam)
        self.assertNotEqual(crossings("bookings", headers("core") | headers("billing")), [])

    def test_libraries_hold_their_own_layer(self):
        with open(os.path.join(REPO, "Makefile.am"), encoding="utf-8") as f:
            am = f.read()
        for lib, layer in (("libcreditdesk_a", "core"), ("libbilling_a", "billing")):
            m = re.search(lib + r"_SOURCES\s*=((?:.*\\\n)*.*)", am)
            self.assertIsNotNone(m, f"Makefile.am has no {lib}_SOURCES")
            srcs = m.group(1).replace("\\", " ").split()
            self.assertTrue(srcs)
            for s in srcs:
                self.assertTrue(s.startswith(f"src/{layer}/"), f"{lib} builds {s}")


if __name__ == "__main__":
    unittest.main()
