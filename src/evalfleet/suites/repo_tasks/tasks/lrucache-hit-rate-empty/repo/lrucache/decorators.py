"""Memoisation backed by LRUCache."""

import functools

from lrucache.cache import LRUCache

_MISSING = object()


def memoize(capacity=128, ttl=None):
    """Cache a function's results by its (hashable) arguments.

    `ttl` is passed to the LRUCache; the wrapper exposes the cache as `wrapper.cache`.
    """

    def decorator(fn):
        cache = LRUCache(capacity, ttl=ttl)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            key = (args, tuple(sorted(kwargs.items())))
            result = cache.get(key, _MISSING)
            if result is _MISSING:
                result = fn(*args, **kwargs)
                cache.put(key, result)
            return result

        wrapper.cache = cache
        return wrapper

    return decorator
