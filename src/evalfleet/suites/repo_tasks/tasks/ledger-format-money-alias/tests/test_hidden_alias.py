import unittest

import ledger
from ledger import money


class FormatMoneyAliasTest(unittest.TestCase):
    def test_alias_returns_same_text(self):
        with self.assertWarns(DeprecationWarning):
            self.assertEqual(money.format_money(123450), "$1,234.50")

    def test_negative(self):
        with self.assertWarns(DeprecationWarning):
            self.assertEqual(money.format_money(-500), money.format_cents(-500))

    def test_warning_names_new_function(self):
        with self.assertWarns(DeprecationWarning) as caught:
            money.format_money(1)
        self.assertIn("format_cents", str(caught.warning))

    def test_warning_points_at_the_caller(self):
        with self.assertWarns(DeprecationWarning) as caught:
            money.format_money(1)
        self.assertEqual(caught.filename, __file__)

    def test_exported_from_package(self):
        self.assertIs(ledger.format_money, money.format_money)

    def test_format_cents_unchanged(self):
        self.assertEqual(money.format_cents(5), "$0.05")
        self.assertEqual(money.format_cents(-123456, symbol="€"), "-€1,234.56")


if __name__ == "__main__":
    unittest.main()
