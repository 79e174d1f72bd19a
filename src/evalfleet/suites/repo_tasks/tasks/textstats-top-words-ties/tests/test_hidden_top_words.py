import unittest

from textstats import top_words


class TopWordsTest(unittest.TestCase):
    def test_ties_are_alphabetical(self):
        self.assertEqual(top_words("zeta alpha zeta alpha beta", n=2),
                         [("alpha", 2), ("zeta", 2)])

    def test_most_frequent_first(self):
        self.assertEqual(top_words("b a b c b a", n=3), [("b", 3), ("a", 2), ("c", 1)])

    def test_n_larger_than_vocabulary(self):
        self.assertEqual(top_words("x y", n=10), [("x", 1), ("y", 1)])

    def test_all_tied(self):
        self.assertEqual(top_words("d c b a", n=4),
                         [("a", 1), ("b", 1), ("c", 1), ("d", 1)])

    def test_stopwords_ignored(self):
        self.assertEqual(top_words("the cat and the hat the", n=2, ignore_stopwords=True),
                         [("cat", 1), ("hat", 1)])


if __name__ == "__main__":
    unittest.main()
