"""What one run produces, as it travels from a worker back to the driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RunStatus = Literal["completed", "failed", "errored", "cancelled"]
"""``completed``: scored; ``failed``: agent error or task timeout (counts as a failure);
``errored``: infrastructure error after the last attempt (missing data); ``cancelled``: not run."""


@dataclass(slots=True)
class RunResult:
    """The outcome of a run's final attempt. Rebuilt into a results row by the store."""

    run_id: str
    """Deterministic id from (eval, task, agent fingerprint, repeat)."""
    task_id: str
    """The task's id within its suite."""
    agent_index: int
    """Index of the agent in the plan."""
    repeat: int
    """Repeat index k, from 0."""
    status: RunStatus
    """How the run ended."""
    error_kind: str | None = None
    """agent_error, task_timeout, infra_error, cancelled, or None."""
    error: str | None = None
    """Short error message, truncated."""
    score: float | None = None
    """Primary score in [0, 1]; None when the run produced no score."""
    passed: bool | None = None
    """Whether the run passed (binary tasks)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Extra named metrics from the scorer."""
    tokens_in: int = 0
    """Prompt tokens over all model calls."""
    tokens_cached: int = 0
    """Prompt tokens served from the provider's cache, over all model calls (part of
    ``tokens_in``)."""
    tokens_out: int = 0
    """Completion tokens over all model calls."""
    cost_usd: float = 0.0
    """Model cost in dollars, all attempts included."""
    infra_cost_usd: float = 0.0
    """Sandbox cost in dollars: seconds of all attempts (agent and scoring stages) x the plan's
    infra rate / 3600."""
    latency_s: float = 0.0
    """Wall time of the final attempt."""
    attempts: int = 1
    """Attempts made (retries of infrastructure errors add to it)."""
    worker: str = ""
    """Which worker ran the final attempt."""
    sandbox: str = ""
    """Which sandbox provider ran it (local, bwrap) or empty when none was needed."""
    isolation: str = ""
    """What was enforced for the run and what was not, e.g.
    ``memory:cgroup,disk:tmpfs,network:none`` or ``agent:in-driver`` for a python agent."""
    started_at: float = 0.0
    """Unix time the final attempt started."""
    finished_at: float = 0.0
    """Unix time the run finished."""
    trajectory: dict[str, Any] | None = None
    """Events of the final attempt: model calls, tool calls, outputs, scorer output."""
    reused_from: str | None = None
    """Run whose result this one reuses (plan ``reuse``); its own costs are then 0."""
    reused_cost_usd: float | None = None
    """What the reused source run cost, model + infra (None when not reused)."""

    @property
    def total_cost_usd(self) -> float:
        """Model plus infrastructure dollars of this run (what budgets count)."""
        return self.cost_usd + self.infra_cost_usd
