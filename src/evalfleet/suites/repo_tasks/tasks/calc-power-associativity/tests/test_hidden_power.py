import unittest

from calc import evaluate


class PowerTest(unittest.TestCase):
    def test_right_associative(self):
        self.assertEqual(evaluate("2 ** 3 ** 2"), 512)

    def test_caret_alias(self):
        self.assertEqual(evaluate("2 ^ 3"), 8)
        self.assertEqual(evaluate("2 ^ 3 ^ 2"), 512)

    def test_negative_exponent(self):
        self.assertEqual(evaluate("2 ** -1"), 0.5)

    def test_unary_minus_binds_looser(self):
        self.assertEqual(evaluate("-2 ** 2"), -4)

    def test_parenthesised_base(self):
        self.assertEqual(evaluate("(2 ** 3) ** 2"), 64)


if __name__ == "__main__":
    unittest.main()
