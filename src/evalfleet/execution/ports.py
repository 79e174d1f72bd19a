"""What the dispatcher needs from the journal, so execution never imports the store."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from evalfleet.spec.result import RunResult


class LeasedRunLike(Protocol):
    """A leased run as the journal returns it."""

    @property
    def run_id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def agent_index(self) -> int: ...
    @property
    def repeat(self) -> int: ...
    @property
    def attempts(self) -> int: ...


class RunJournal(Protocol):
    """Leasing and exactly-once commit for one eval."""

    def lease(self, owner: str, n: int, lease_s: float,
              skip_agents: Collection[int] = ()) -> Sequence[LeasedRunLike]:
        """Lease up to ``n`` runnable runs (pending or expired), none of the agents in
        ``skip_agents`` (their budget is spent)."""
        ...

    def renew(self, owner: str, run_ids: Sequence[str], lease_s: float) -> int:
        """Extend leases; returns how many are still held."""
        ...

    def release(self, owner: str, run_ids: Sequence[str] | None = None) -> None:
        """Return this owner's unfinished leases to pending (only ``run_ids``, if given)."""
        ...

    def commit(self, results: Sequence[RunResult]) -> tuple[int, int]:
        """Commit results; returns (committed, duplicates dropped)."""
        ...

    def lease_state(self) -> tuple[int, int, float | None]:
        """(pending, leased, earliest expiry)."""
        ...

    def cancel_pending(self, agent_index: int | None = None) -> int:
        """Cancel runs not started (budget stop), or only those of one agent; returns how
        many."""
        ...

    def heartbeat(self) -> None:
        """Say the driver is alive."""
        ...
