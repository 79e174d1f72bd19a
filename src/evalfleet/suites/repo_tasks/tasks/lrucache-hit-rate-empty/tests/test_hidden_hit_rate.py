import unittest

from lrucache import CacheStats, LRUCache


class HitRateTest(unittest.TestCase):
    def test_fresh_cache(self):
        self.assertEqual(LRUCache(4).stats.hit_rate(), 0.0)

    def test_after_reset(self):
        cache = LRUCache(4)
        cache.get("x")
        cache.stats.reset()
        self.assertEqual(cache.stats.hit_rate(), 0.0)
        self.assertEqual(cache.stats.requests, 0)

    def test_half(self):
        cache = LRUCache(4)
        cache.put("a", 1)
        cache.get("a")
        cache.get("b")
        self.assertEqual(cache.stats.hit_rate(), 0.5)

    def test_all_hits(self):
        self.assertEqual(CacheStats(hits=3).hit_rate(), 1.0)


if __name__ == "__main__":
    unittest.main()
