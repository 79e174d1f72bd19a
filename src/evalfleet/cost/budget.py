"""Budget arithmetic: how much is spent, committed in flight, and left."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Budget:
    """A dollar budget; ``None`` limit means unlimited."""

    limit_usd: float | None
    spent_usd: float = 0.0

    def add(self, usd: float) -> None:
        """Record money spent."""
        self.spent_usd += usd

    @property
    def exhausted(self) -> bool:
        """True once spending reached the limit."""
        return self.limit_usd is not None and self.spent_usd >= self.limit_usd

    def would_exceed(self, in_flight: int, mean_cost: float) -> bool:
        """Whether starting another run likely overspends, given runs already in flight."""
        if self.limit_usd is None:
            return False
        return self.spent_usd + (in_flight + 1) * mean_cost > self.limit_usd
