import unittest

from textstats import readability


class ReadingTimeTest(unittest.TestCase):
    def test_two_hundred_words_take_a_minute(self):
        self.assertEqual(readability.reading_time_seconds("word " * 200), 60)

    def test_rounds_up(self):
        self.assertEqual(readability.reading_time_seconds("one two three"), 1)

    def test_custom_speed(self):
        self.assertEqual(readability.reading_time_seconds("a b c d", wpm=60), 4)

    def test_empty_text(self):
        self.assertEqual(readability.reading_time_seconds("  ...  "), 0)

    def test_bad_speed(self):
        with self.assertRaises(ValueError):
            readability.reading_time_seconds("a b", wpm=0)
        with self.assertRaises(ValueError):
            readability.reading_time_seconds("a b", wpm=-5)


if __name__ == "__main__":
    unittest.main()
