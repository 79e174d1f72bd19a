"""Scoring: the scorer interface and the tests, exact, includes, regex and python scorers."""

from evalfleet.scoring.answers import extract_code
from evalfleet.scoring.base import Score, ScoreContext, Scorer
from evalfleet.scoring.registry import create_scorer, scorer_kinds

__all__ = ["Score", "ScoreContext", "Scorer", "create_scorer", "extract_code", "scorer_kinds"]
