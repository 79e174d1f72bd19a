"""Scoring: the scorer interface and the tests, exact, includes, regex and python scorers."""

from evalfleet.scoring.base import Score, ScoreContext, Scorer
from evalfleet.scoring.registry import create_scorer, scorer_kinds
from evalfleet.scoring.tests_scorer import count_tests, extract_code

__all__ = ["Score", "ScoreContext", "Scorer", "count_tests", "create_scorer", "extract_code",
           "scorer_kinds"]
