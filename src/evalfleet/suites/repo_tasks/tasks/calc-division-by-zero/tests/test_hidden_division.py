import unittest

from calc import CalcError, evaluate


class DivisionTest(unittest.TestCase):
    def assertCalcError(self, caught):
        # Not the bare ZeroDivisionError under another name (CalcError = Exception would pass).
        self.assertNotIsInstance(caught.exception, ZeroDivisionError)

    def test_divide_by_zero(self):
        with self.assertRaises(CalcError) as caught:
            evaluate("1 / 0")
        self.assertCalcError(caught)
        self.assertIn("division by zero", str(caught.exception))

    def test_modulo_by_zero(self):
        with self.assertRaises(CalcError) as caught:
            evaluate("5 % 0")
        self.assertCalcError(caught)

    def test_zero_variable(self):
        with self.assertRaises(CalcError) as caught:
            evaluate("x / y", {"x": 1, "y": 0})
        self.assertCalcError(caught)

    def test_ordinary_division(self):
        self.assertEqual(evaluate("7 / 2"), 3.5)
        self.assertEqual(evaluate("0 / 5"), 0.0)


if __name__ == "__main__":
    unittest.main()
