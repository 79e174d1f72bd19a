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
    """What a scorer may look at.

    ``sandbox`` is the scoring sandbox, created on first use: a fresh sandbox (not the agent's)
    holding the task's files plus the files the agent left, minus anything at or around the
    paths the scorer writes after the agent (the hidden files and, for the tests scorer, the
    answer file). No process of the agent stage is alive by then.
    """

    task: Task
    answer: str
    sandbox: LazySandbox
    trajectory: Trajectory


class Scorer(Protocol):
    """Grades an attempt.

    Raises InfraError if grading could not run for reasons of the machine, ScorerError if the
    task's scorer itself is broken; whatever the agent left behind that makes the tests fail
    is a low score, never an error.
    """

    async def score(self, ctx: ScoreContext) -> Score:
        """Grade the answer (and the sandbox's state)."""
        ...
