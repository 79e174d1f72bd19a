"""A least-recently-used cache."""

from lrucache.cache import LRUCache
from lrucache.decorators import memoize
from lrucache.stats import CacheStats

__all__ = ["CacheStats", "LRUCache", "memoize"]
