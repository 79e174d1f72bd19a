import unittest

from lrucache import LRUCache


class RecencyTest(unittest.TestCase):
    def setUp(self):
        self.cache = LRUCache(2)
        self.cache.put("a", 1)
        self.cache.put("b", 2)

    def test_get_protects_from_eviction(self):
        self.cache.get("a")
        self.cache.put("c", 3)
        self.assertEqual(self.cache.keys(), ["a", "c"])
        self.assertEqual(self.cache.stats.evictions, 1)

    def test_get_moves_key_to_the_end(self):
        self.cache.get("a")
        self.assertEqual(self.cache.keys(), ["b", "a"])

    def test_put_existing_key_refreshes(self):
        self.cache.put("a", 10)
        self.cache.put("c", 3)
        self.assertEqual(self.cache.get("a"), 10)
        self.assertNotIn("b", self.cache)

    def test_contains_does_not_refresh(self):
        self.assertIn("a", self.cache)
        self.cache.put("c", 3)
        self.assertNotIn("a", self.cache)

    def test_miss_inserts_nothing(self):
        self.assertIsNone(self.cache.get("zz"))
        self.assertEqual(len(self.cache), 2)
        self.assertEqual(self.cache.stats.misses, 1)


if __name__ == "__main__":
    unittest.main()
