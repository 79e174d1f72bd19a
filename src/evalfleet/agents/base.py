"""The agent interface and the context an attempt gives it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from evalfleet.cost.prices import PriceTable
from evalfleet.sandbox.lazy import LazySandbox
from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.task import Task
from evalfleet.spec.trajectory import Trajectory


class ModelGate(Protocol):
    """Rate limiting of model calls, provided by the execution layer."""

    async def acquire(self, key: str, tokens: int) -> None:
        """Wait until a request with about ``tokens`` tokens may be sent to provider ``key``."""
        ...

    def settle(self, key: str, estimated: int, actual: int) -> None:
        """Correct the token count once the real usage is known."""
        ...

    def pause(self, key: str, seconds: float) -> None:
        """Stop all requests to ``key`` for ``seconds`` (the provider said Retry-After)."""
        ...


class NoGate:
    """A gate that never waits (no limits configured)."""

    async def acquire(self, key: str, tokens: int) -> None:
        return None

    def settle(self, key: str, estimated: int, actual: int) -> None:
        return None

    def pause(self, key: str, seconds: float) -> None:
        return None


@dataclass(slots=True)
class Usage:
    """Tokens and dollars spent by one attempt."""

    tokens_in: int = 0
    """Prompt tokens, the cached ones included."""
    tokens_cached: int = 0
    """Prompt tokens the provider served from its prompt cache (part of ``tokens_in``)."""
    tokens_out: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0


@dataclass(slots=True)
class AgentContext:
    """Everything an agent may use during one attempt."""

    task: Task
    spec: AgentSpec
    run_id: str
    attempt: int
    sandbox: LazySandbox
    trajectory: Trajectory
    prices: PriceTable
    gate: ModelGate = field(default_factory=NoGate)
    usage: Usage = field(default_factory=Usage)
    variables: dict[str, str] = field(default_factory=dict)
    """Substitutions for ``{name}`` placeholders in agent args (e.g. ``simulator``)."""

    def task_payload(self) -> dict[str, Any]:
        """What the agent is told about the task (never the scorer or hidden files)."""
        return {
            "id": self.task.id,
            "input": self.task.input,
            "category": self.task.category,
            "metadata": {k: v for k, v in self.task.metadata.items() if k != "reference"},
            "files": sorted(self.task.files),
        }


@dataclass(slots=True)
class AgentOutput:
    """The agent's final answer."""

    answer: str
    extra: dict[str, Any] = field(default_factory=dict)


class Agent(Protocol):
    """An agent adapter. Raises AgentError on its own failures and InfraError on infrastructure."""

    async def run(self, ctx: AgentContext) -> AgentOutput:
        """Attempt the task; return the answer."""
        ...
