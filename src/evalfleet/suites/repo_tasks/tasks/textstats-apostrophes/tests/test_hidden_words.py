import unittest

from textstats import word_frequencies, words


class WordsTest(unittest.TestCase):
    def test_contraction_is_one_word(self):
        self.assertEqual(words("Don't stop"), ["don't", "stop"])

    def test_possessive(self):
        self.assertEqual(words("John's book"), ["john's", "book"])

    def test_quotes_around_words_are_dropped(self):
        self.assertEqual(words("'hello' she said"), ["hello", "she", "said"])

    def test_several_apostrophes(self):
        self.assertEqual(words("rock'n'roll!"), ["rock'n'roll"])

    def test_numbers_and_case(self):
        self.assertEqual(words("Route 66 ROCKS"), ["route", "66", "rocks"])

    def test_frequencies_use_whole_words(self):
        self.assertEqual(word_frequencies("it's it's its"), {"it's": 2, "its": 1})


if __name__ == "__main__":
    unittest.main()
