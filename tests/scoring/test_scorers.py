"""Scorers: what is refused at load, what is the scorer's fault (excluded), what is the answer's
(scored 0), and that slow scorer code never holds the driver's event loop."""

from __future__ import annotations

import asyncio
import json
import math
import textwrap
from pathlib import Path
from typing import Any

import pytest

from evalfleet.agents.base import NoGate
from evalfleet.cost.prices import PriceTable
from evalfleet.errors import SpecError
from evalfleet.execution.attempt import AttemptOutcome, run_attempt
from evalfleet.scoring.answers import humaneval_program
from evalfleet.scoring.base import Score, ScoreContext
from evalfleet.scoring.registry import create_scorer
from evalfleet.scoring.tests_scorer import parse_junit
from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.loaders import load_suite
from evalfleet.spec.task import ScorerSpec, Task, unittest_ids
from evalfleet.testing.agents import ScriptedAgent, grade

MODULE = "evalfleet_test_bad_scorers"
SOURCE = textwrap.dedent('''
    import time

    def raises(answer, task):
        raise KeyError("no such field")

    def nan(answer, task):
        return float("nan")

    def too_big(answer, task):
        return 1.5

    def text(answer, task):
        return "yes"

    def bad_dict(answer, task):
        return {"value": -0.5}

    def slow(answer, task):
        time.sleep(120)
        return 1.0

    def fine(answer, task):
        return 0.75
''')


@pytest.fixture
def scorer_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "mods"
    d.mkdir()
    (d / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(d))  # worker processes start with the driver's sys.path


def _attempt(task: Task, scorer: Any = None, answer: str = "an answer") -> AttemptOutcome:
    spec = AgentSpec(name="a", kind="command", args={"command": ["true"]})
    return asyncio.run(run_attempt(
        task=task, spec=spec, agent=ScriptedAgent(answer=answer),
        scorer=scorer or create_scorer(task.scorer), provider=_NoProvider(),
        prices=PriceTable({}, {}, ""), gate=NoGate(), run_id="r", attempt=1, variables={}))


class _NoProvider:
    name = "none"

    def available(self) -> bool:
        return True

    @property
    def warnings(self) -> list[str]:
        return []

    @property
    def isolates_network(self) -> bool:
        return True

    async def create(self, limits: Any) -> Any:
        raise AssertionError("this scorer asked for a sandbox")


def _py_task(fn: str, **args: Any) -> Task:
    return Task(id="t", input="x", scorer=ScorerSpec(kind="python",
                                                     args={"callable": f"{MODULE}:{fn}", **args}))


@pytest.mark.usefixtures("scorer_module")
@pytest.mark.parametrize("fn", ["raises", "nan", "too_big", "text", "bad_dict"])
def test_a_broken_python_scorer_is_a_scorer_error(fn: str) -> None:
    out = _attempt(_py_task(fn))
    assert out.score is None
    assert out.error is not None and out.error.error_kind == "scorer_error", out.error
    assert "scorer:in-driver" in out.isolation


@pytest.mark.usefixtures("scorer_module")
def test_a_working_python_scorer_grades() -> None:
    out = _attempt(_py_task("fine"))
    assert out.error is None and out.score is not None and out.score.value == 0.75


class _Plugin:
    def __init__(self, result: Any) -> None:
        self.result = result

    async def score(self, ctx: ScoreContext) -> Any:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.mark.parametrize("result", [Score(math.nan), Score(2.0),
                                    Score(0.5, metrics={"x": math.inf}), "1.0",
                                    Score(1.0, "yes"),  # type: ignore[arg-type]
                                    RuntimeError("plugin bug"), SpecError("bad arg")],
                         ids=["nan", "above-1", "inf-metric", "not-a-score", "passed-not-bool",
                              "raises", "spec-error"])
def test_any_scorer_returning_no_valid_grade_is_a_scorer_error(result: Any) -> None:
    task = Task(id="t", input="x", target="x", scorer=ScorerSpec(kind="exact"))
    out = _attempt(task, scorer=_Plugin(result))
    assert out.error is not None and out.error.error_kind == "scorer_error", out.error


async def _score_while_loop_runs(scorer: Any, task: Task, answer: str) -> tuple[Score, bool]:
    from evalfleet.sandbox.lazy import LazySandbox
    from evalfleet.spec.trajectory import Trajectory

    async def no_sandbox() -> Any:
        raise AssertionError("no sandbox")

    ctx = ScoreContext(task=task, answer=answer, sandbox=LazySandbox(no_sandbox),
                       trajectory=Trajectory())
    job = asyncio.create_task(scorer.score(ctx))
    await asyncio.sleep(0.3)
    # Had the scorer run on the event loop, this line would run only after it had finished.
    loop_was_free = not job.done()
    return await job, loop_was_free


def test_a_backtracking_regex_cannot_freeze_the_driver_and_scores_zero() -> None:
    task = Task(id="t", input="x", target=r"^(a+)+$",
                scorer=ScorerSpec(kind="regex", args={"timeout_s": 1}))
    score, loop_was_free = asyncio.run(_score_while_loop_runs(create_scorer(task.scorer), task,
                                                              "a" * 64 + "b"))
    assert loop_was_free
    assert score.value == 0.0 and score.metrics["scorer_timed_out"] == 1.0
    # The pool recovers (new workers): the next search works.
    roomy = task.model_copy(update={"scorer": ScorerSpec(kind="regex", args={"timeout_s": 60})})
    ok = asyncio.run(_score_while_loop_runs(create_scorer(roomy.scorer), roomy, "aaa"))[0]
    assert ok.value == 1.0


@pytest.mark.usefixtures("scorer_module")
def test_a_slow_python_scorer_is_bounded_and_charged_to_the_answer() -> None:
    task = _py_task("slow", timeout_s=1)
    score, loop_was_free = asyncio.run(_score_while_loop_runs(create_scorer(task.scorer), task,
                                                              "x"))
    assert loop_was_free
    assert score.value == 0.0 and score.metrics["scorer_timed_out"] == 1.0


@pytest.mark.parametrize("task", [
    {"id": "a", "input": "x", "target": "(unclosed", "scorer": {"kind": "regex"}},
    {"id": "a", "input": "x", "target": "ok", "scorer": {"kind": "regex",
                                                          "args": {"pattern": "[z-a]"}}},
    {"id": "a", "input": "x", "scorer": {"kind": "exact"}},
    {"id": "a", "input": "x", "hidden_files": {"test_x.py": "x = 1\n"},
     "scorer": {"kind": "tests"}},
    {"id": "a", "input": "x", "hidden_files": {"test_x.py": "def broken(:\n"},
     "scorer": {"kind": "tests"}},
], ids=["regex-target", "regex-pattern", "exact-no-target", "tests-none-found",
        "tests-syntax-error"])
def test_scorer_problems_are_refused_when_the_suite_loads(task: dict[str, Any],
                                                          tmp_path: Path) -> None:
    suite = tmp_path / "s.jsonl"
    suite.write_text(json.dumps(task) + "\n")
    with pytest.raises(SpecError) as err:
        loaded = load_suite(suite)
        for t in loaded.tasks:
            create_scorer(t.scorer)
    assert str(suite) in str(err.value) or "scorer" in str(err.value)


@pytest.mark.parametrize("args", [
    {"answer_file": "../out.py", "expected_tests": ["a.B.test_c"], "tests": ["test_a.py"]},
    {"command": ["python3", "-m", "unittest"], "expected_tests": ["a.B.c"], "tests": ["t.py"]},
    {"runner": "junit", "expected_tests": ["a.B.c"]},
    {"runner": "junit", "command": ["pytest"]},
    {"tests": ["test.py"], "expected_tests": ["test.A.test_b"]},
])
def test_bad_tests_scorer_arguments_are_plan_errors(args: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        create_scorer(ScorerSpec(kind="tests", args=args))


def test_expected_ids_follow_unittest_naming_and_inheritance() -> None:
    src = textwrap.dedent("""\
        import unittest
        class Mixin:
            def test_shared(self): pass
        class Base(unittest.TestCase):
            def test_base(self): pass
            def helper(self): pass
        class Child(Base, Mixin):
            def testCamel(self): pass
            async def test_async(self): pass
        class NotATest:
            def test_no(self): pass
        """)
    assert unittest_ids("mod", src) == [
        "mod.Base.test_base", "mod.Child.testCamel", "mod.Child.test_async",
        "mod.Child.test_base", "mod.Child.test_shared"]


def test_expected_tests_are_part_of_the_task_hash() -> None:
    hidden = {"test_a.py": "import unittest\nclass A(unittest.TestCase):\n"
                           "    def test_one(self): pass\n    def test_two(self): pass\n"}
    derived = Task(id="t", input="x", hidden_files=hidden, scorer=ScorerSpec(kind="tests"))
    assert derived.scorer.args["expected_tests"] == ["test_a.A.test_one", "test_a.A.test_two"]
    explicit = Task(id="t", input="x", hidden_files=hidden, scorer=ScorerSpec(
        kind="tests", args={"expected_tests": ["test_a.A.test_one"]}))
    assert explicit.task_hash != derived.task_hash


def test_junit_repeated_ids_keep_the_worst_status() -> None:
    xml = (b"<testsuite><testcase classname='m.C' name='t'><failure message='no'/></testcase>"
           b"<testcase classname='m.C' name='t'/></testsuite>")
    statuses, _ = parse_junit(xml)
    assert statuses is not None and statuses["m.C.t"]["status"] == "failed"
    bomb = b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]><testsuite>&a;</testsuite>"
    assert parse_junit(bomb)[0] is None


PROMPT = ('from typing import List\n\n\ndef helper(x):\n    return x\n\n\n'
          'def f(xs: List[int]) -> int:\n    """Sum."""\n')


@pytest.mark.parametrize("answer, body_has", [
    ("    return sum(xs)\n", "return sum(xs)"),
    ("```python\ndef f(xs):\n    return helper(sum(xs))\n```", "helper(sum(xs))"),
    ("Sure!\n```\ndef f(xs):\n    return sum(xs)\n```\nDone.", "return sum(xs)"),
    ("def f(xs):\n    return sum(xs)\n", "return sum(xs)"),
], ids=["completion", "fenced-function", "fenced-with-prose", "bare-function"])
def test_humaneval_program_runs_the_answer_with_the_prompts_names(answer: str,
                                                                   body_has: str) -> None:
    program = humaneval_program(PROMPT, answer, "f")
    assert body_has in program
    namespace: dict[str, Any] = {}
    exec(compile(program, "solution", "exec"), namespace)
    assert namespace["f"]([1, 2, 3]) == 6 and namespace["helper"](1) == 1


def test_tests_scorer_refuses_a_runner_that_never_starts(provider: Any) -> None:
    task = Task(id="t", input="x", hidden_files={"test_a.py": "x = 1\n"},
                scorer=ScorerSpec(kind="tests", args={
                    "runner": "junit", "command": ["/nonexistent/python"],
                    "expected_tests": ["a.B.c"], "timeout_s": 5}))
    out = asyncio.run(grade(task, provider))
    assert out.error is not None and out.error.error_kind == "infra_error"


def test_honest_tests_that_set_class_state_are_not_taken_for_tampering(provider: Any) -> None:
    hidden = {"test_state.py": textwrap.dedent("""\
        import unittest
        import pkg

        unittest.TestCase.maxDiff = None

        class StateTest(unittest.TestCase):
            items = []
            helper = None

            @classmethod
            def setUpClass(cls):
                cls.items = [pkg.f()]
                cls.helper = staticmethod(lambda: 2)

            def test_items(self):
                self.assertEqual(self.items, [2])

            def test_helper(self):
                self.assertEqual(self.helper(), 2)

            @unittest.skip("skips never count")
            def test_skipped(self):
                pass
        """)}
    task = Task(id="t", input="x", files={"pkg/__init__.py": "def f():\n    return 2\n"},
                hidden_files=hidden, scorer=ScorerSpec(kind="tests", args={"timeout_s": 20}))
    out = asyncio.run(grade(task, provider))
    assert out.error is None and out.score is not None
    assert out.score.metrics["tests_passed"] == 2.0 and out.score.metrics["tests_total"] == 3.0
