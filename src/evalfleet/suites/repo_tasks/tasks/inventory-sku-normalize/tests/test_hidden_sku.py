import unittest

from inventory import Inventory


class SkuTest(unittest.TestCase):
    def setUp(self):
        self.inv = Inventory()

    def test_lookup_ignores_case_and_spaces(self):
        self.inv.add(" ab-1 ", "Bolt", 0.2, quantity=5)
        self.assertEqual(self.inv.quantity("AB-1"), 5)
        self.assertEqual(self.inv.quantity("ab-1"), 5)

    def test_item_sku_is_upper_case(self):
        item = self.inv.add(" ab-1 ", "Bolt", 0.2, quantity=5)
        self.assertEqual(item.sku, "AB-1")

    def test_adding_same_sku_in_other_case_merges(self):
        self.inv.add("ab-1", "Bolt", 0.2, quantity=5)
        self.inv.add("AB-1", "Bolt", 0.2, quantity=2)
        self.assertEqual(len(self.inv), 1)
        self.assertEqual(self.inv.quantity("Ab-1"), 7)

    def test_contains_any_spelling(self):
        self.inv.add("x9", "Nut", 0.1, quantity=1)
        self.assertIn("X9", self.inv)
        self.assertIn(" x9", self.inv)

    def test_remove_any_spelling(self):
        self.inv.add("X9", "Nut", 0.1, quantity=4)
        self.assertEqual(self.inv.remove("x9 ", 1), 3)

    def test_exact_spelling_still_works(self):
        self.inv.add("Q7", "Gear", 3.0, quantity=2)
        self.assertEqual(self.inv.get("Q7").name, "Gear")


if __name__ == "__main__":
    unittest.main()
