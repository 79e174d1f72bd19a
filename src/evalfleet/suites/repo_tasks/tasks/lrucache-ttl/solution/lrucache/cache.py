"""A least-recently-used cache with optional expiry."""

import time
from collections import OrderedDict

from lrucache.stats import CacheStats


class LRUCache:
    """Holds at most `capacity` entries; the least recently used one is evicted first.

    With `ttl` (seconds), an entry expires that long after it was last stored; `clock` is
    the time source (seconds, monotonic).
    """

    def __init__(self, capacity, ttl=None, clock=time.monotonic):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be positive")
        self.capacity = capacity
        self.ttl = ttl
        self.clock = clock
        self.stats = CacheStats()
        self._data = OrderedDict()

    def get(self, key, default=None):
        """The cached value (marking it recently used), or `default`."""
        if key in self._data and not self._expired(key):
            self._data.move_to_end(key)
            self.stats.hits += 1
            return self._data[key][0]
        self._data.pop(key, None)
        self.stats.misses += 1
        return default

    def put(self, key, value):
        """Store a value, evicting the least recently used entries beyond capacity."""
        if key in self._data:
            self._data.move_to_end(key)
        self._data[key] = (value, self.clock())
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)
            self.stats.evictions += 1

    def delete(self, key):
        """Remove a key; True if it was present."""
        if key in self._data:
            del self._data[key]
            return True
        return False

    def keys(self):
        """Keys from least to most recently used."""
        return list(self._data)

    def _expired(self, key):
        return self.ttl is not None and self.clock() - self._data[key][1] >= self.ttl

    def __contains__(self, key):
        return key in self._data and not self._expired(key)

    def __len__(self):
        return len(self._data)
