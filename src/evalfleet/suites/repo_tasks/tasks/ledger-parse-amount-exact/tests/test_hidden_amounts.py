import unittest

from ledger import parse_amount


class ParseAmountTest(unittest.TestCase):
    def test_exact_cents(self):
        self.assertEqual(parse_amount("0.29"), 29)
        self.assertEqual(parse_amount("1.15"), 115)
        self.assertEqual(parse_amount("4.35"), 435)

    def test_symbol_and_thousands(self):
        self.assertEqual(parse_amount("$1,234.50"), 123450)

    def test_negative_whole(self):
        self.assertEqual(parse_amount("-5"), -500)

    def test_too_many_decimals(self):
        with self.assertRaises(ValueError):
            parse_amount("12.345")

    def test_not_a_number(self):
        with self.assertRaises(ValueError):
            parse_amount("abc")


if __name__ == "__main__":
    unittest.main()
