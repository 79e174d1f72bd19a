"""Per-provider rate limits: requests and tokens per minute, honouring Retry-After."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from evalfleet.spec.plan import RateLimit


@dataclass(slots=True)
class _Bucket:
    rate_per_s: float
    capacity: float
    level: float
    stamp: float = field(default_factory=time.monotonic)

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate_per_s)
        self.stamp = now

    def wait_for(self, amount: float, now: float) -> float:
        self.refill(now)
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 0 else need / self.rate_per_s


@dataclass(slots=True)
class _Provider:
    requests: _Bucket | None
    tokens: _Bucket | None
    paused_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RateLimiter:
    """A token-bucket gate per provider key; implements :class:`evalfleet.agents.ModelGate`.

    Requests are paced with no burst (bucket capacity one request), so over any window the
    count stays within the limit plus one; tokens may burst up to one second's worth. A request
    larger than that waits for a full bucket and is charged in full (the level goes negative),
    so over any window the tokens sent stay within the limit plus one request.
    """

    def __init__(self, limits: dict[str, RateLimit]) -> None:
        self._providers: dict[str, _Provider] = {}
        for key, lim in limits.items():
            req = tok = None
            if lim.requests_per_minute:
                r = lim.requests_per_minute / 60.0
                req = _Bucket(r, 1.0, 1.0)
            if lim.tokens_per_minute:
                t = lim.tokens_per_minute / 60.0
                tok = _Bucket(t, max(t, 1.0), max(t, 1.0))
            self._providers[key] = _Provider(req, tok)

    def _get(self, key: str) -> _Provider | None:
        return self._providers.get(key)

    async def acquire(self, key: str, tokens: int) -> None:
        """Wait until a request of about ``tokens`` tokens may go to ``key``."""
        prov = self._get(key)
        if prov is None:
            return
        async with prov.lock:  # FIFO: one waiter at a time takes from the buckets
            while True:
                now = time.monotonic()
                wait = max(prov.paused_until - now, 0.0)
                if prov.requests is not None:
                    wait = max(wait, prov.requests.wait_for(1.0, now))
                if prov.tokens is not None:
                    wait = max(wait, prov.tokens.wait_for(float(tokens), now))
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if prov.requests is not None:
                prov.requests.level -= 1.0
            if prov.tokens is not None:
                # charge all of it: capping the charge at the bucket size would let large
                # requests through at a multiple of the limit
                prov.tokens.level -= float(tokens)

    def settle(self, key: str, estimated: int, actual: int) -> None:
        """Charge the difference between the estimate and the real token usage."""
        prov = self._get(key)
        if prov is not None and prov.tokens is not None:
            prov.tokens.level -= actual - estimated

    def pause(self, key: str, seconds: float) -> None:
        """Hold every request to ``key`` for ``seconds`` (Retry-After)."""
        prov = self._providers.setdefault(key, _Provider(None, None))
        prov.paused_until = max(prov.paused_until, time.monotonic() + max(seconds, 0.0))
