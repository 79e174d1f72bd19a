import unittest

from iniconf import Config

TEXT = """
timeout = 5
retries = 2

[server]
retries = 7

[client]
"""


class DefaultsTest(unittest.TestCase):
    def setUp(self):
        self.config = Config.from_text(TEXT)

    def test_falls_back_to_default_section(self):
        self.assertEqual(self.config.get("server", "timeout"), "5")

    def test_section_value_wins(self):
        self.assertEqual(self.config.getint("server", "retries"), 7)

    def test_empty_section_uses_defaults(self):
        self.assertEqual(self.config.getint("client", "retries"), 2)

    def test_default_argument_only_when_missing_everywhere(self):
        self.assertEqual(self.config.get("client", "nope", default="x"), "x")
        self.assertEqual(self.config.get("client", "timeout", default="x"), "5")

    def test_missing_everywhere_raises(self):
        with self.assertRaises(KeyError):
            self.config.get("server", "nope")

    def test_default_not_listed(self):
        self.assertEqual(self.config.sections(), ["client", "server"])


if __name__ == "__main__":
    unittest.main()
