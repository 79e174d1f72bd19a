"""Scorers that compare the answer's text with the task's target."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from evalfleet.errors import ScorerError, SpecError
from evalfleet.scoring._bounded import POOL, ScorerTimeout, regex_search
from evalfleet.scoring.base import Score, ScoreContext


class TextArgs(BaseModel):
    """Arguments shared by the text scorers."""

    model_config = ConfigDict(extra="forbid")

    ignore_case: bool = Field(True, description="Compare case-insensitively.")
    strip: bool = Field(True, description="Trim whitespace and collapse runs of it.")


def _norm(text: str, args: TextArgs) -> str:
    if args.strip:
        text = " ".join(text.split())
    return text.lower() if args.ignore_case else text


def _targets(ctx: ScoreContext) -> list[str]:
    target = ctx.task.target
    if target is None:  # refused at suite load; a task built in code can still get here
        raise ScorerError(f"task {ctx.task.id} has no 'target' for its text scorer")
    return [target] if isinstance(target, str) else list(target)


class ExactScorer:
    """1 when the answer equals one of the targets."""

    def __init__(self, args: TextArgs) -> None:
        self.args = args

    async def score(self, ctx: ScoreContext) -> Score:
        answer = _norm(ctx.answer, self.args)
        ok = any(answer == _norm(t, self.args) for t in _targets(ctx))
        return Score(float(ok), ok)


class IncludesScorer:
    """1 when the answer contains one of the targets."""

    def __init__(self, args: TextArgs) -> None:
        self.args = args

    async def score(self, ctx: ScoreContext) -> Score:
        answer = _norm(ctx.answer, self.args)
        ok = any(_norm(t, self.args) in answer for t in _targets(ctx))
        return Score(float(ok), ok)


class RegexArgs(BaseModel):
    """Arguments of the regex scorer."""

    model_config = ConfigDict(extra="forbid")

    pattern: str | None = Field(None, description="Pattern; defaults to the task's target.")
    ignore_case: bool = Field(False, description="Case-insensitive match.")
    timeout_s: float = Field(5.0, gt=0, le=600,
                             description="Time bound of the search; a late search scores 0.")


class RegexScorer:
    """1 when the pattern is found in the answer.

    The search runs in a worker process with a time bound: a pattern that backtracks badly on a
    crafted answer cannot freeze the driver. A time-out scores 0 (charged to the answer: the
    pattern is fixed, the answer is what made it slow) with the metric ``scorer_timed_out``.
    """

    def __init__(self, args: RegexArgs) -> None:
        self.args = args
        self._flags = re.IGNORECASE if args.ignore_case else 0
        if args.pattern is not None:
            check_pattern(args.pattern, field="scorer.args.pattern")

    async def score(self, ctx: ScoreContext) -> Score:
        sources = [self.args.pattern] if self.args.pattern is not None else _targets(ctx)
        for s in sources:  # refused at suite load; a task built in code can still get here
            try:
                re.compile(s, self._flags)
            except re.error as exc:
                raise ScorerError(f"invalid regular expression {s!r}: {exc}") from None
        try:
            ok = bool(await POOL.call(regex_search, [(s, self._flags) for s in sources],
                                      ctx.answer[:1_000_000], timeout_s=self.args.timeout_s))
        except ScorerTimeout as exc:
            ctx.trajectory.add("scorer", scorer="regex", timed_out=True)
            return Score(0.0, False, {"scorer_timed_out": 1.0}, f"{exc}; charged to the answer")
        return Score(float(ok), ok)


def check_pattern(pattern: str, *, field: str) -> None:
    """Raise SpecError when ``pattern`` does not compile."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise SpecError(f"invalid regular expression {pattern!r}: {exc}", field=field) from None
