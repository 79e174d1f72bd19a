import unittest

from lrucache import LRUCache, memoize


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class TtlTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock()
        self.cache = LRUCache(3, ttl=10, clock=self.clock)
        self.cache.put("a", 1)

    def test_value_available_before_expiry(self):
        self.clock.now += 9.5
        self.assertEqual(self.cache.get("a"), 1)

    def test_value_expires(self):
        self.clock.now += 10
        self.assertIsNone(self.cache.get("a"))
        self.assertEqual(self.cache.get("a", "gone"), "gone")

    def test_expired_lookup_is_a_miss_not_an_eviction(self):
        self.clock.now += 11
        self.cache.get("a")
        self.assertEqual(self.cache.stats.misses, 1)
        self.assertEqual(self.cache.stats.hits, 0)
        self.assertEqual(self.cache.stats.evictions, 0)

    def test_put_restarts_the_clock(self):
        self.clock.now += 8
        self.cache.put("a", 2)
        self.clock.now += 8
        self.assertEqual(self.cache.get("a"), 2)

    def test_contains_is_false_after_expiry(self):
        self.assertIn("a", self.cache)
        self.clock.now += 10
        self.assertNotIn("a", self.cache)

    def test_without_ttl_nothing_expires(self):
        cache = LRUCache(2, clock=self.clock)
        cache.put("k", "v")
        self.clock.now += 1e9
        self.assertEqual(cache.get("k"), "v")

    def test_invalid_ttl(self):
        with self.assertRaises(ValueError):
            LRUCache(2, ttl=0)

    def test_memoize_ttl(self):
        @memoize(capacity=4, ttl=60)
        def double(x):
            return 2 * x

        self.assertEqual(double(2), 4)
        self.assertEqual(double.cache.ttl, 60)


if __name__ == "__main__":
    unittest.main()
