"""The scorer interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from evalfleet.sandbox.lazy import LazySandbox
from evalfleet.spec.task import Task
from evalfleet.spec.trajectory import Trajectory


@dataclass(slots=True)
class Score:
    """A graded run: primary value in [0, 1], binary verdict, extra metrics."""

    value: float
    passed: bool | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    explanation: str = ""


@dataclass(slots=True)
class ScoreContext:
    """What a scorer may look at."""

    task: Task
    answer: str
    sandbox: LazySandbox
    trajectory: Trajectory


class Scorer(Protocol):
    """Grades an attempt. Raises InfraError if grading itself could not run."""

    async def score(self, ctx: ScoreContext) -> Score:
        """Grade the answer (and the sandbox's state)."""
        ...
