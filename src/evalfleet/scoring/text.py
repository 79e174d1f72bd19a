"""Scorers that compare the answer's text with the task's target."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from evalfleet.errors import SpecError
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
    if target is None:
        raise SpecError(f"task {ctx.task.id} has no 'target' for its text scorer", field="target")
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


class RegexScorer:
    """1 when the pattern is found in the answer."""

    def __init__(self, args: RegexArgs) -> None:
        self.args = args
        self._compiled: re.Pattern[str] | None = None
        if args.pattern is not None:
            self._compiled = _compile(args.pattern, args.ignore_case)

    async def score(self, ctx: ScoreContext) -> Score:
        patterns = [self._compiled] if self._compiled else \
            [_compile(t, self.args.ignore_case) for t in _targets(ctx)]
        ok = any(p.search(ctx.answer[:1_000_000]) for p in patterns)
        return Score(float(ok), ok)


def _compile(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise SpecError(f"invalid regular expression {pattern!r}: {exc}",
                        field="scorer.args.pattern") from None
