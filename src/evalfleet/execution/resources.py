"""Counts of scarce resources (GPU slots, API keys): a run holds what its task needs."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from evalfleet.errors import SpecError


class ResourcePool:
    """Capacity per resource name; :meth:`acquire` waits until all of a request fits."""

    def __init__(self, capacity: Mapping[str, int]) -> None:
        self.capacity = dict(capacity)
        self.in_use = dict.fromkeys(self.capacity, 0)
        self._cond = asyncio.Condition()

    def check(self, needs: Mapping[str, int], task_id: str = "") -> None:
        """Refuse a request that could never be met."""
        for name, n in needs.items():
            if n > self.capacity.get(name, 0):
                raise SpecError(f"task {task_id} needs {n} {name} but the plan provides "
                                f"{self.capacity.get(name, 0)}", field="resources")

    def _fits(self, needs: Mapping[str, int]) -> bool:
        return all(self.in_use[k] + n <= self.capacity[k] for k, n in needs.items() if n)

    async def acquire(self, needs: Mapping[str, int]) -> None:
        """Wait for the resources, then hold them."""
        if not needs:
            return
        async with self._cond:
            await self._cond.wait_for(lambda: self._fits(needs))
            for k, n in needs.items():
                self.in_use[k] += n

    async def release(self, needs: Mapping[str, int]) -> None:
        """Give resources back and wake waiters."""
        if not needs:
            return
        async with self._cond:
            for k, n in needs.items():
                self.in_use[k] -= n
            self._cond.notify_all()
