"""Several evals sharing a pool of slots: priorities, then weighted fair share.

Drivers whose plans name the same ``execution.pool`` share its ``slots`` (attempts running at
once over all of them). Each driver keeps a *demand* in the journal (its eval's priority,
share and how many attempts it could run now), renewed by its heartbeat; a demand not renewed
for ``lease_seconds`` is ignored (its driver is gone). Every driver computes every eval's
entitlement from the same live demands with :func:`entitlements` (deterministic, so they
agree without a coordinator) and starts attempts only below its own:

- **strict priority**: a higher ``priority`` class is served first (a release gate before a
  nightly); a lower class gets what the higher ones do not want;
- **weighted max-min fair share** within a class: no eval gets more than it wants, and what
  one does not want is split among the others in proportion to ``share``; whole slots are
  given by largest remainder, ties to the eval id.

No running attempt is preempted: entitlements move as attempts end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Demand:
    """One eval's claim on a pool."""

    eval_id: str
    priority: int
    share: float
    want: int
    """Attempts it could run now (in flight plus runnable, at most its ``max_in_flight``)."""


class PoolSink(Protocol):
    """Where a driver keeps its demand and reads the others' (the journal, for one eval)."""

    @property
    def eval_id(self) -> str:
        """The eval whose demand this is."""
        ...

    def put(self, priority: int, share: float, want: int) -> None:
        """Record or renew this eval's demand."""
        ...

    def live(self) -> Sequence[Demand]:
        """Every live demand on the pool, this eval's included."""
        ...

    def drop(self) -> None:
        """Withdraw this eval's demand (its dispatch ended)."""
        ...


def _fair(slots: int, demands: Sequence[Demand]) -> dict[str, int]:
    """Weighted max-min fair share of ``slots`` among demands of one class, in whole slots."""
    out = dict.fromkeys((d.eval_id for d in demands), 0)
    left = slots
    active = [d for d in demands if d.want > 0]
    while left > 0 and active:
        total = sum(d.share for d in active)
        quota = {d.eval_id: left * d.share / total for d in active}
        capped = [d for d in active if d.want - out[d.eval_id] <= quota[d.eval_id]]
        if capped:  # those wanting less than their share get what they want; split the rest
            for d in capped:
                left -= d.want - out[d.eval_id]
                out[d.eval_id] = d.want
            active = [d for d in active if d not in capped]
            continue
        floors = {d.eval_id: math.floor(quota[d.eval_id]) for d in active}
        for d in active:
            out[d.eval_id] += floors[d.eval_id]
        rest = left - sum(floors.values())
        by_remainder = sorted(active, key=lambda d: (-(quota[d.eval_id] - floors[d.eval_id]),
                                                     d.eval_id))
        for d in by_remainder[:rest]:
            out[d.eval_id] += 1
        left = 0
    return out


def entitlements(slots: int, demands: Sequence[Demand]) -> dict[str, int]:
    """How many of the pool's ``slots`` each eval may use now (see the module)."""
    out: dict[str, int] = {}
    left = max(slots, 0)
    for priority in sorted({d.priority for d in demands}, reverse=True):
        tier = [d for d in demands if d.priority == priority]
        got = _fair(left, tier)
        out.update(got)
        left -= sum(got.values())
    return out
