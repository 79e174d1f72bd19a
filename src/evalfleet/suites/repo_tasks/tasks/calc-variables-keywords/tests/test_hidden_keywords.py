import math
import unittest

from calc import CalcError, evaluate


class KeywordVariablesTest(unittest.TestCase):
    def test_keywords(self):
        self.assertEqual(evaluate("x * y", x=2, y=3), 6)

    def test_dict_still_works(self):
        self.assertEqual(evaluate("x + 1", {"x": 1}), 2)
        self.assertEqual(evaluate("x + 1", variables={"x": 4}), 5)

    def test_keyword_wins_over_dict(self):
        self.assertEqual(evaluate("x", {"x": 1}, x=2), 2)

    def test_keyword_shadows_constant(self):
        self.assertEqual(evaluate("pi", pi=3), 3)
        self.assertAlmostEqual(evaluate("pi"), math.pi)

    def test_unknown_name(self):
        with self.assertRaises(CalcError):
            evaluate("zz + 1", x=1)


if __name__ == "__main__":
    unittest.main()
