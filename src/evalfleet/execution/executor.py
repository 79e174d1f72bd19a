"""Where an attempt runs: the seam between the dispatcher and the machines.

The dispatcher leases runs, decides retries from the error policy, holds the budgets and
commits exactly once; for each attempt it asks an :class:`AttemptExecutor` to run it and
gets back the attempt's outcome and the worker that ran it. :class:`LocalExecutor` runs the
attempt in the driver's own event loop (the default backend); the Ray backend
(``execution/ray_backend.py``) runs it on a worker actor of a Ray cluster. An executor never
writes anything: the driver alone commits results.

An executor must not raise for a failure of the attempt: a lost worker or node is an
attempt that ended with an :class:`~evalfleet.errors.InfraError` (retried by the dispatcher's
policy and counted as an infrastructure attempt, never as the agent's failure).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol

from evalfleet.agents.base import Agent, ModelGate
from evalfleet.cost.prices import PriceTable
from evalfleet.execution.attempt import AttemptOutcome, run_attempt
from evalfleet.execution.resources import ResourcePool
from evalfleet.sandbox.base import SandboxProvider
from evalfleet.scoring.base import Scorer
from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.task import Task


class Executed(NamedTuple):
    """One attempt as an executor returns it."""

    outcome: AttemptOutcome
    worker: str
    """Who ran it, for the row's ``worker`` column: ``local:<pid>``, ``ray:<node id>``."""


class AttemptExecutor(Protocol):
    """Runs one attempt of a leased run somewhere and returns its outcome."""

    prefetch: int
    """Attempts the dispatcher may hand over beyond the plan's ``max_in_flight``. An executor
    with a positive value keeps those waiting and starts them only in slots its running
    attempts free, so that no more than ``max_in_flight`` run at once (0: every attempt
    handed over starts at once)."""

    async def run(self, task: Task, agent_index: int, run_id: str, attempt: int) -> Executed:
        """Run attempt number ``attempt`` of run ``run_id`` (``task`` by the plan's agent
        ``agent_index``). Never raises for the attempt's own failures, a lost worker included:
        those are the outcome's ``error``."""
        ...


class LocalExecutor:
    """Runs attempts in this process's event loop: the plan's agents, a scorer per scorer
    spec, the sandbox provider, the plan's rate limiter and resource pool (a run holds what
    its task needs while its attempt runs)."""

    def __init__(self, *, specs: Sequence[AgentSpec], agents: Sequence[Agent],
                 scorer: Callable[[Task], Scorer], provider: SandboxProvider,
                 prices: PriceTable, gate: ModelGate, resources: ResourcePool,
                 variables: Mapping[str, str], worker: str) -> None:
        self.specs = specs
        self.agents = agents
        self.scorer = scorer
        self.provider = provider
        self.prices = prices
        self.gate = gate
        self.resources = resources
        self.variables = dict(variables)
        self.worker = worker
        self.prefetch = 0

    async def run(self, task: Task, agent_index: int, run_id: str, attempt: int) -> Executed:
        await self.resources.acquire(task.resources)
        try:
            out = await run_attempt(task=task, spec=self.specs[agent_index],
                                    agent=self.agents[agent_index], scorer=self.scorer(task),
                                    provider=self.provider, prices=self.prices, gate=self.gate,
                                    run_id=run_id, attempt=attempt, variables=self.variables)
        finally:
            await self.resources.release(task.resources)
        return Executed(out, self.worker)
