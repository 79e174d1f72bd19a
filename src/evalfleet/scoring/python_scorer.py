"""The ``python`` scorer: an importable function grades the answer."""

from __future__ import annotations

import inspect

from pydantic import BaseModel, ConfigDict, Field

from evalfleet._util.imports import import_callable
from evalfleet.errors import RunError, SpecError
from evalfleet.scoring.base import Score, ScoreContext


class PythonScorerArgs(BaseModel):
    """Arguments of the python scorer."""

    model_config = ConfigDict(extra="forbid")

    callable: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
                          description="'module:function' taking (answer, task dict).")


class PythonScorer:
    """Calls ``fn(answer, task)``; it returns a bool, a float in [0, 1] or a dict with ``value``."""

    def __init__(self, args: PythonScorerArgs) -> None:
        try:
            self.fn = import_callable(args.callable)
        except ValueError as exc:
            raise SpecError(str(exc), field="scorer.args.callable") from None

    async def score(self, ctx: ScoreContext) -> Score:
        task = ctx.task.model_dump(mode="json", exclude={"hidden_files", "files"})
        try:
            value = self.fn(ctx.answer, task)
            if inspect.isawaitable(value):
                value = await value
        except RunError:
            raise
        except Exception as exc:
            from evalfleet.errors import AgentError

            raise AgentError(f"scorer raised {type(exc).__name__}: {exc}"[:1000]) from exc
        if isinstance(value, bool):
            return Score(float(value), value)
        if isinstance(value, int | float):
            v = min(max(float(value), 0.0), 1.0)
            return Score(v, v >= 1.0)
        if isinstance(value, dict) and "value" in value:
            v = min(max(float(value["value"]), 0.0), 1.0)
            metrics = {str(k): float(x) for k, x in value.get("metrics", {}).items()}
            return Score(v, bool(value.get("passed", v >= 1.0)), metrics)
        raise SpecError(f"scorer returned {type(value).__name__}; expected bool, float or dict")
