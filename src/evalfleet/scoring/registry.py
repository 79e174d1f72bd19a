"""Build scorers from specs: built-ins plus the ``evalfleet.scorers`` entry points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from evalfleet._util.plugins import find_kind, plugin_kinds
from evalfleet.errors import SpecError
from evalfleet.scoring.base import Scorer
from evalfleet.scoring.python_scorer import PythonScorer, PythonScorerArgs
from evalfleet.scoring.tests_scorer import TestsArgs, TestsScorer
from evalfleet.scoring.text import ExactScorer, IncludesScorer, RegexArgs, RegexScorer, TextArgs
from evalfleet.spec._validate import validate
from evalfleet.spec.task import ScorerSpec

ScorerFactory = Callable[[ScorerSpec], Scorer]


def _make(cls: Callable[[Any], Scorer], args_model: type[BaseModel]) -> ScorerFactory:
    def factory(spec: ScorerSpec) -> Scorer:
        args = validate(args_model, spec.args, source=f"scorer {spec.kind}",
                        prefix=("scorer", "args"))
        return cls(args)
    return factory


BUILTIN: dict[str, ScorerFactory] = {
    "tests": _make(TestsScorer, TestsArgs),
    "exact": _make(ExactScorer, TextArgs),
    "includes": _make(IncludesScorer, TextArgs),
    "regex": _make(RegexScorer, RegexArgs),
    "python": _make(PythonScorer, PythonScorerArgs),
}


def scorer_kinds() -> dict[str, ScorerFactory]:
    """Built-in scorers plus plugins (entry-point group ``evalfleet.scorers``)."""
    return plugin_kinds(BUILTIN, "evalfleet.scorers")


def create_scorer(spec: ScorerSpec) -> Scorer:
    """Build the scorer a spec describes; unknown kinds and bad arguments are SpecErrors."""
    factory, known = find_kind(BUILTIN, "evalfleet.scorers", spec.kind)
    if factory is None:
        raise SpecError(f"unknown scorer kind '{spec.kind}' (known: {', '.join(known)})",
                        field="scorer.kind")
    return factory(spec)
