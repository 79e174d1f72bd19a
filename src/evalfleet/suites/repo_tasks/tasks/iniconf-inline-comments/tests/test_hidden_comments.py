import unittest

from iniconf import Config, parse_ini

TEXT = """
; a full-line comment
[server]
port = 8080 ; http port
name = web-1 # primary
motto = "keep ; calm"
flag = "y" ; one character
greeting = 'hi' ; a comment after quotes
url = http://host/#top
plain = value
"""


class InlineCommentTest(unittest.TestCase):
    def setUp(self):
        self.values = parse_ini(TEXT)["server"]

    def test_semicolon_comment(self):
        self.assertEqual(self.values["port"], "8080")

    def test_hash_comment(self):
        self.assertEqual(self.values["name"], "web-1")

    def test_quoted_value_kept(self):
        self.assertEqual(self.values["motto"], "keep ; calm")
        self.assertEqual(self.values["flag"], "y")

    def test_comment_after_quotes(self):
        self.assertEqual(self.values["greeting"], "hi")

    def test_hash_without_space_is_value(self):
        self.assertEqual(self.values["url"], "http://host/#top")

    def test_plain_values_and_full_line_comments(self):
        self.assertEqual(self.values["plain"], "value")
        self.assertEqual(set(self.values),
                         {"port", "name", "motto", "flag", "greeting", "url", "plain"})

    def test_getint_with_comment(self):
        self.assertEqual(Config.from_text(TEXT).getint("server", "port"), 8080)


if __name__ == "__main__":
    unittest.main()
