import unittest

from lrucache import LRUCache, memoize


class MemoizeTest(unittest.TestCase):
    def test_none_results_are_cached(self):
        calls = []

        @memoize()
        def log(x):
            calls.append(x)

        log(1)
        log(1)
        self.assertEqual(calls, [1])

    def test_keyword_order_does_not_matter(self):
        calls = []

        @memoize()
        def add(a, b):
            calls.append((a, b))
            return a + b

        self.assertEqual(add(a=1, b=2), 3)
        self.assertEqual(add(b=2, a=1), 3)
        self.assertEqual(len(calls), 1)

    def test_capacity_is_respected(self):
        calls = []

        @memoize(capacity=2)
        def square(x):
            calls.append(x)
            return x * x

        for x in (1, 2, 3, 1):
            square(x)
        self.assertEqual(calls, [1, 2, 3, 1])

    def test_wraps(self):
        @memoize()
        def documented(x):
            """Docs."""
            return x

        self.assertEqual(documented.__name__, "documented")
        self.assertEqual(documented.__doc__, "Docs.")
        self.assertIsInstance(documented.cache, LRUCache)


if __name__ == "__main__":
    unittest.main()
