import unittest

from inventory import Inventory, low_stock


class LowStockTest(unittest.TestCase):
    def setUp(self):
        self.inv = Inventory()
        self.inv.add("c", "Cog", 1.0, quantity=5, reorder_level=5)
        self.inv.add("a", "Axle", 1.0, quantity=2, reorder_level=5)
        self.inv.add("b", "Belt", 1.0, quantity=2, reorder_level=3)
        self.inv.add("d", "Disc", 1.0, quantity=9, reorder_level=5)

    def skus(self):
        return [item.sku for item in low_stock(self.inv)]

    def test_includes_items_at_reorder_level(self):
        self.assertIn("C", self.skus())

    def test_excludes_items_above_reorder_level(self):
        self.assertNotIn("D", self.skus())

    def test_lowest_quantity_first_ties_by_sku(self):
        self.assertEqual(self.skus(), ["A", "B", "C"])

    def test_out_of_stock_item_comes_first(self):
        self.inv.add("z", "Zip", 1.0, quantity=0, reorder_level=1)
        self.assertEqual(self.skus()[0], "Z")

    def test_empty_inventory(self):
        self.assertEqual(low_stock(Inventory()), [])


if __name__ == "__main__":
    unittest.main()
