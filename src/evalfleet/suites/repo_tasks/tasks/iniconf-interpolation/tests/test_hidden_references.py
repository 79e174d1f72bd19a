import unittest

from iniconf import Config

TEXT = """
root = /srv

[paths]
data = ${root}/data
cache = ${data}/cache
price = $5

[server]
port = 8080
url = http://localhost:${port}/
data = ${paths:data}
backup_port = ${paths:port_base}

[loop]
a = ${b}
b = ${a}
missing = ${nowhere}
"""


class ReferenceTest(unittest.TestCase):
    def setUp(self):
        self.config = Config.from_text(TEXT)

    def test_same_section(self):
        self.assertEqual(self.config.get("server", "url"), "http://localhost:8080/")

    def test_default_section(self):
        self.assertEqual(self.config.get("paths", "data"), "/srv/data")

    def test_nested(self):
        self.assertEqual(self.config.get("paths", "cache"), "/srv/data/cache")

    def test_other_section(self):
        self.assertEqual(self.config.get("server", "data"), "/srv/data")

    def test_typed_getter_sees_expanded_value(self):
        config = Config.from_text("[a]\nbase = 8000\nport = ${base}\n")
        self.assertEqual(config.getint("a", "port"), 8000)

    def test_missing_reference_raises_key_error(self):
        with self.assertRaises(KeyError):
            self.config.get("loop", "missing")

    def test_cycle_raises_value_error(self):
        with self.assertRaises(ValueError):
            self.config.get("loop", "a")

    def test_lone_dollar_unchanged(self):
        self.assertEqual(self.config.get("paths", "price"), "$5")


if __name__ == "__main__":
    unittest.main()
