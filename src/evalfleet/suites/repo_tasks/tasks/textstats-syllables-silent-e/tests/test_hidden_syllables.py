import unittest

from textstats import flesch_reading_ease, syllables


class SyllablesTest(unittest.TestCase):
    def test_silent_e(self):
        self.assertEqual(syllables("make"), 1)
        self.assertEqual(syllables("stone"), 1)

    def test_le_ending_keeps_its_syllable(self):
        self.assertEqual(syllables("table"), 2)

    def test_only_vowel_is_e(self):
        self.assertEqual(syllables("the"), 1)
        self.assertEqual(syllables("be"), 1)

    def test_plain_words(self):
        self.assertEqual(syllables("cat"), 1)
        self.assertEqual(syllables("banana"), 3)

    def test_at_least_one(self):
        self.assertEqual(syllables("hmm"), 1)

    def test_flesch_uses_fixed_counts(self):
        self.assertAlmostEqual(flesch_reading_ease("I like cake."), 119.19, places=2)


if __name__ == "__main__":
    unittest.main()
