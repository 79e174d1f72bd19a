import unittest

from inventory import Inventory, OutOfStockError


class RemoveTest(unittest.TestCase):
    def setUp(self):
        self.inv = Inventory()
        self.inv.add("A1", "Widget", 2.5, quantity=3)

    def test_remove_some(self):
        self.assertEqual(self.inv.remove("A1", 2), 1)

    def test_remove_exactly_all(self):
        self.assertEqual(self.inv.remove("A1", 3), 0)
        self.assertEqual(self.inv.quantity("A1"), 0)

    def test_remove_too_many_raises_and_keeps_stock(self):
        with self.assertRaises(OutOfStockError):
            self.inv.remove("A1", 4)
        self.assertEqual(self.inv.quantity("A1"), 3)

    def test_remove_all_then_one_more_raises(self):
        self.inv.remove("A1", 3)
        with self.assertRaises(OutOfStockError):
            self.inv.remove("A1", 1)

    def test_unknown_sku_raises_key_error(self):
        with self.assertRaises(KeyError):
            self.inv.remove("ZZ", 1)


if __name__ == "__main__":
    unittest.main()
