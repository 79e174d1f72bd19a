"""The ``python`` scorer: an importable function grades the answer.

The function runs in a worker process of the driver (not in a sandbox), off the event loop and
with a time bound. What it returns is checked: a bool, a number in [0, 1] or a dict with such a
``value``; anything else (an exception, NaN, a value out of range, another type) is the scorer's
failure (``scorer_error``: excluded from the agent's score and shown), never silently clamped.
A time-out is charged to the agent: the scorer grades the agent's answer, so only the answer
can make a working scorer slow, and a free exclusion would let an agent opt out of grading.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evalfleet._util.imports import import_callable
from evalfleet.errors import ScorerError, SpecError
from evalfleet.scoring._bounded import POOL, ScorerTimeout, call_python_scorer
from evalfleet.scoring.base import Score, ScoreContext


class PythonScorerArgs(BaseModel):
    """Arguments of the python scorer."""

    model_config = ConfigDict(extra="forbid")

    callable: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
                          description="'module:function' taking (answer, task dict).")
    timeout_s: float = Field(30.0, gt=0, le=3600,
                             description="Time bound of one call; a late call scores 0.")


def _unit(value: Any, what: str) -> float:
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise ScorerError(f"python scorer returned {what} {value!r}; expected a number in [0, 1]")
    return v


class PythonScorer:
    """Calls ``fn(answer, task)``; it returns a bool, a float in [0, 1] or a dict with ``value``."""

    def __init__(self, args: PythonScorerArgs) -> None:
        self.args = args
        try:  # at plan load: a callable that cannot be imported is a plan error (exit 2)
            import_callable(args.callable)
        except ValueError as exc:
            raise SpecError(str(exc), field="scorer.args.callable") from None

    async def score(self, ctx: ScoreContext) -> Score:
        task = ctx.task.model_dump(mode="json", exclude={"hidden_files", "files"})
        try:
            kind, value = await POOL.call(call_python_scorer, self.args.callable, ctx.answer,
                                          task, list(sys.path), timeout_s=self.args.timeout_s)
        except ScorerTimeout as exc:
            ctx.trajectory.add("scorer", scorer="python", timed_out=True)
            return Score(0.0, False, {"scorer_timed_out": 1.0}, f"{exc}; charged to the answer")
        if kind != "ok":
            raise ScorerError(f"python scorer {self.args.callable} {value}")
        if isinstance(value, bool):
            return Score(float(value), value)
        if isinstance(value, float):
            v = _unit(value, "the value")
            return Score(v, v >= 1.0)
        v = _unit(value["value"], "value")
        return Score(v, bool(value.get("passed", v >= 1.0)), dict(value["metrics"]))
