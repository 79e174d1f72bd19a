"""The text and python scorers grade as docs/plan-format.md says, value by value.

Every expected score below is worked out by hand from the documented rules, not by calling
the scorer's helpers: ``includes`` and ``exact`` compare case-insensitively and collapse
whitespace by default (``ignore_case``, ``strip``); ``regex`` searches (not full-matches) the
answer, case-sensitively by default, with ``pattern`` or else each target; a list target
passes when any item does; ``python`` calls ``module:function(answer, task)`` which returns a
bool, a float in [0, 1] or a dict with ``value``.

Each case is checked twice: through the scorer registry, and through a whole eval (a python
agent answering from a table), so the grade that reaches the results is the one checked.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import committed_rows
from evalfleet import api
from evalfleet.sandbox.lazy import LazySandbox
from evalfleet.scoring import Score, ScoreContext
from evalfleet.scoring.registry import create_scorer
from evalfleet.settings import Settings
from evalfleet.spec import ScorerSpec, Task
from evalfleet.spec.trajectory import Trajectory

SCORER_MODULE = "evalfleet_guard_scorers"
SCORER_SOURCE = textwrap.dedent('''
    """Scorers for test_guards_scorers: their values are worked out by hand in the test."""

    def length_fraction(answer, task):
        """len(answer) / task.metadata.n as a float."""
        return len(answer) / task["metadata"]["n"]

    def equals_target(answer, task):
        """A bool: the answer is the task's target, character for character."""
        return answer == task["target"]

    def as_dict(answer, task):
        """A dict: value 0.25 and one metric, the number of words."""
        return {"value": 0.25, "metrics": {"words": len(answer.split())}}

    async def async_half(answer, task):
        """An async scorer: 0.5 when the answer mentions the task id, else 0."""
        return 0.5 if task["id"] in answer else 0.0
''')


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    answer: str
    target: str | list[str] | None
    value: float
    passed: bool
    args: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


CASES = [
    # includes: substring, case-insensitive and whitespace-collapsed by default.
    Case("inc-substring", "includes", "The answer is 42.", "42", 1.0, True),
    Case("inc-absent", "includes", "The answer is 4 2.", "42", 0.0, False),
    Case("inc-case-default", "includes", "HELLO world", "hello", 1.0, True),
    Case("inc-case-sensitive", "includes", "HELLO world", "hello", 0.0, False,
         {"ignore_case": False}),
    Case("inc-case-sensitive-hit", "includes", "say hello", "hello", 1.0, True,
         {"ignore_case": False}),
    Case("inc-whitespace", "includes", "foo \n\t  bar baz", "foo bar", 1.0, True),
    Case("inc-no-strip", "includes", "foo \n\t  bar baz", "foo bar", 0.0, False,
         {"strip": False}),
    Case("inc-list-second", "includes", "I saw a dog", ["cat", "dog"], 1.0, True),
    Case("inc-list-none", "includes", "I saw a bird", ["cat", "dog"], 0.0, False),
    Case("inc-target-longer", "includes", "dog", "a dog", 0.0, False),
    # exact: the whole (normalised) answer equals a target.
    Case("exact-normalised", "exact", "  Paris \n", "paris", 1.0, True),
    Case("exact-extra-text", "exact", "Paris.", "paris", 0.0, False),
    Case("exact-list", "exact", "lyon", ["Paris", "Lyon"], 1.0, True),
    Case("exact-case-sensitive", "exact", "paris", "Paris", 0.0, False,
         {"ignore_case": False}),
    # regex: re.search with the target (or ``pattern``), case-sensitive by default.
    Case("re-search", "regex", "call 555-1234 now", r"\d{3}-\d{4}", 1.0, True),
    Case("re-no-match", "regex", "call 5551234 now", r"\d{3}-\d{4}", 0.0, False),
    Case("re-case-default", "regex", "yes", "Yes", 0.0, False),
    Case("re-ignore-case", "regex", "yes", "Yes", 1.0, True, {"ignore_case": True}),
    Case("re-anchored", "regex", "it is ok", "^ok$", 0.0, False),
    Case("re-anchored-hit", "regex", "ok", "^ok$", 1.0, True),
    Case("re-pattern-arg", "regex", "result: 7 apples", "apples are 7",
         1.0, True, {"pattern": r"\b7 apples\b"}),
    Case("re-pattern-arg-wins", "regex", "apples are 7", "apples are 7",
         0.0, False, {"pattern": r"\b7 apples\b"}),
    Case("re-list-any", "regex", "xxb", ["^a", "b$"], 1.0, True),
    Case("re-list-none", "regex", "bxx", ["^a", "b$"], 0.0, False),
    Case("re-not-normalised", "regex", "foo  bar", "foo bar", 0.0, False),
    # python: module:function(answer, task).
    Case("py-float-partial", "python", "abcd", None, 0.4, False,
         {"callable": f"{SCORER_MODULE}:length_fraction"}, {"n": 10}),
    Case("py-float-full", "python", "abcdefghij", None, 1.0, True,
         {"callable": f"{SCORER_MODULE}:length_fraction"}, {"n": 10}),
    Case("py-float-zero", "python", "", None, 0.0, False,
         {"callable": f"{SCORER_MODULE}:length_fraction"}, {"n": 10}),
    Case("py-bool-true", "python", "Exact", "Exact", 1.0, True,
         {"callable": f"{SCORER_MODULE}:equals_target"}),
    Case("py-bool-false", "python", "exact", "Exact", 0.0, False,
         {"callable": f"{SCORER_MODULE}:equals_target"}),
    Case("py-dict", "python", "three small words", None, 0.25, False,
         {"callable": f"{SCORER_MODULE}:as_dict"}),
    Case("py-async", "python", "this is py-async", None, 0.5, False,
         {"callable": f"{SCORER_MODULE}:async_half"}),
    Case("py-async-miss", "python", "something else", None, 0.0, False,
         {"callable": f"{SCORER_MODULE}:async_half"}),
]


@pytest.fixture
def scorer_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make :data:`SCORER_MODULE` importable here and in any child interpreter."""
    d = tmp_path / "scorer_pkg"
    d.mkdir()
    (d / f"{SCORER_MODULE}.py").write_text(SCORER_SOURCE)
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("PYTHONPATH", str(d))


def _task(case: Case) -> Task:
    return Task(id=case.id, input=f"answer for {case.id}", target=case.target,
                metadata=case.metadata, scorer=ScorerSpec(kind=case.kind, args=case.args))


async def _no_sandbox() -> Any:
    raise AssertionError("a text or python scorer asked for a sandbox")


def _score(case: Case) -> Score:
    task = _task(case)
    scorer = create_scorer(task.scorer)
    ctx = ScoreContext(task=task, answer=case.answer, sandbox=LazySandbox(_no_sandbox),
                       trajectory=Trajectory())
    return asyncio.run(scorer.score(ctx))


@pytest.mark.usefixtures("scorer_module")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_scorer_gives_the_hand_computed_grade(case: Case) -> None:
    score = _score(case)
    assert score.value == pytest.approx(case.value, abs=1e-12)
    assert bool(score.passed) is case.passed


@pytest.mark.usefixtures("scorer_module")
def test_python_scorer_metrics_are_kept() -> None:
    (case,) = [c for c in CASES if c.id == "py-dict"]
    assert _score(case).metrics == {"words": 3.0}


@pytest.mark.usefixtures("scorer_module")
def test_grades_reach_the_results_of_an_eval(tmp_path: Path, settings: Settings) -> None:
    suite = tmp_path / "scored.jsonl"
    with suite.open("w") as fh:
        for c in CASES:
            fh.write(json.dumps({"id": c.id, "input": f"answer for {c.id}", "target": c.target,
                                 "metadata": c.metadata,
                                 "scorer": {"kind": c.kind, "args": c.args}}) + "\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "guard-scorers", "suite": {"path": str(suite)},
        "agents": [{"name": "table", "version": "1", "kind": "python",
                    "args": {"callable": "evalfleet.testing.agents:echo_target",
                             "kwargs": {"answers": {c.id: c.answer for c in CASES}}}}],
        "execution": {"sandbox": "local"},
    }))
    summary = api.run(plan, settings=settings)
    assert summary.done == summary.planned == len(CASES)

    rows = committed_rows(settings.home)
    got = {r["task_id"]: r for r in rows}
    assert set(got) == {c.id for c in CASES}
    for c in CASES:
        r = got[c.id]
        assert r["error_kind"] is None, (c.id, r["status"], r["error_kind"])
        assert r["score"] == pytest.approx(c.value, abs=1e-12), c.id
        assert bool(r["passed"]) is c.passed, c.id
    assert dict(got["py-dict"]["metrics"]) == {"words": 3.0}
