import csv
import io
import unittest

from inventory import Inventory, report

HEADER = "sku,name,unit_price,quantity,value"


class CsvExportTest(unittest.TestCase):
    def setUp(self):
        self.inv = Inventory()
        self.inv.add("b2", "Gadget", 10, quantity=3)
        self.inv.add("a1", "Widget", 2.5, quantity=4)

    def test_header_row(self):
        self.assertEqual(report.to_csv(self.inv).splitlines()[0], HEADER)

    def test_rows_sorted_by_sku_with_two_decimals(self):
        lines = report.to_csv(self.inv).splitlines()
        self.assertEqual(lines[1:], ["A1,Widget,2.50,4,10.00", "B2,Gadget,10.00,3,30.00"])

    def test_names_with_commas_and_quotes_are_quoted(self):
        self.inv.add("c3", 'Nuts, bolts "M4"', 0.1, quantity=10)
        rows = list(csv.reader(io.StringIO(report.to_csv(self.inv))))
        self.assertEqual(rows[3], ["C3", 'Nuts, bolts "M4"', "0.10", "10", "1.00"])

    def test_empty_inventory_is_header_only(self):
        self.assertEqual(report.to_csv(Inventory()), HEADER + "\n")

    def test_plain_newlines(self):
        text = report.to_csv(self.inv)
        self.assertNotIn("\r", text)
        self.assertTrue(text.endswith("\n"))

    def test_table_report_still_works(self):
        self.assertIn("TOTAL", report.format_table(self.inv))


if __name__ == "__main__":
    unittest.main()
