import unittest

from iniconf import Config, to_bool


class BoolTest(unittest.TestCase):
    def test_true_words_any_case(self):
        for word in ("1", "yes", "Yes", "TRUE", " on "):
            with self.subTest(word=word):
                self.assertIs(to_bool(word), True)

    def test_false_words_any_case(self):
        for word in ("0", "no", "False", "OFF"):
            with self.subTest(word=word):
                self.assertIs(to_bool(word), False)

    def test_unknown_word_raises(self):
        with self.assertRaises(ValueError):
            to_bool("maybe")

    def test_getbool(self):
        config = Config.from_text("[app]\ndebug = Yes\nverbose = off\n")
        self.assertIs(config.getbool("app", "debug"), True)
        self.assertIs(config.getbool("app", "verbose"), False)

    def test_getbool_default(self):
        config = Config.from_text("[app]\n")
        self.assertIs(config.getbool("app", "missing", default=None), None)


if __name__ == "__main__":
    unittest.main()
