"""Counters kept by a cache."""

from dataclasses import dataclass


@dataclass
class CacheStats:
    """Hits, misses and evictions since creation or the last reset()."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0

    @property
    def requests(self):
        """Lookups made: hits plus misses."""
        return self.hits + self.misses

    def hit_rate(self):
        """Share of lookups that hit; 0.0 before the first lookup."""
        return self.hits / self.requests

    def reset(self):
        """Set every counter back to zero."""
        self.hits = 0
        self.misses = 0
        self.evictions = 0
