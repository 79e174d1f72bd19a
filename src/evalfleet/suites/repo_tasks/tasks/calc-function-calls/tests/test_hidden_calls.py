import unittest

from calc import CalcError, evaluate


class FunctionCallTest(unittest.TestCase):
    def test_single_argument(self):
        self.assertEqual(evaluate("sqrt(16)"), 4.0)

    def test_several_arguments(self):
        self.assertEqual(evaluate("max(1, 7, 3)"), 7)
        self.assertEqual(evaluate("round(2.567, 2)"), 2.57)

    def test_nested_calls_in_expression(self):
        self.assertEqual(evaluate("abs(min(-3, 2)) + 1"), 4)

    def test_call_with_expression_arguments(self):
        self.assertEqual(evaluate("max(x * 2, 3 + 4)", x=5), 10)

    def test_unknown_function(self):
        with self.assertRaises(CalcError):
            evaluate("foo(1)")

    def test_bad_arguments(self):
        for text in ("sqrt(1, 2)", "max()", "sqrt(-1)"):
            with self.subTest(text=text), self.assertRaises(CalcError):
                evaluate(text)

    def test_variables_still_work(self):
        self.assertEqual(evaluate("x + pi * 0", x=2), 2)


if __name__ == "__main__":
    unittest.main()
