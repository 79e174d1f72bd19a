import unittest

from calc import evaluate


class PrecedenceTest(unittest.TestCase):
    def test_multiplication_before_addition(self):
        self.assertEqual(evaluate("2 + 3 * 4"), 14)

    def test_division_before_addition(self):
        self.assertEqual(evaluate("1 + 6 / 2"), 4.0)

    def test_modulo_before_subtraction(self):
        self.assertEqual(evaluate("7 - 5 % 3"), 5)

    def test_left_associative(self):
        self.assertEqual(evaluate("10 - 4 - 3"), 3)
        self.assertEqual(evaluate("64 / 4 / 2"), 8.0)

    def test_parentheses(self):
        self.assertEqual(evaluate("(2 + 3) * 4"), 20)

    def test_unary_minus_operand(self):
        self.assertEqual(evaluate("1 + 2 * -3"), -5)


if __name__ == "__main__":
    unittest.main()
