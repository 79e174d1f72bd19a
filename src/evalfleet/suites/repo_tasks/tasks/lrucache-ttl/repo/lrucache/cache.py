"""A least-recently-used cache."""

from collections import OrderedDict

from lrucache.stats import CacheStats


class LRUCache:
    """Holds at most `capacity` entries; the least recently used one is evicted first."""

    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.stats = CacheStats()
        self._data = OrderedDict()

    def get(self, key, default=None):
        """The cached value (marking it recently used), or `default`."""
        if key in self._data:
            self._data.move_to_end(key)
            self.stats.hits += 1
            return self._data[key]
        self.stats.misses += 1
        return default

    def put(self, key, value):
        """Store a value, evicting the least recently used entries beyond capacity."""
        if key in self._data:
            self._data.move_to_end(key)
        self._data[key] = value
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

    def __contains__(self, key):
        return key in self._data

    def __len__(self):
        return len(self._data)
