"""The built-in repo-tasks suite: its shape, and that every task is solvable and not yet solved,
graded the way an eval grades it (two-stage attempt, hidden tests, per-test report)."""

from __future__ import annotations

import ast
import asyncio
from collections import Counter
from typing import Any

import pytest

from evalfleet.spec.loaders import builtin_suite_dir, load_suite, load_suite_ref
from evalfleet.spec.plan import SuiteRef
from evalfleet.spec.task import Suite, Task, unittest_ids
from evalfleet.testing.agents import grade

SUITE_DIR = builtin_suite_dir("repo-tasks")


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite(SUITE_DIR)


def solution(task: Task) -> dict[str, str]:
    root = SUITE_DIR / "tasks" / task.id / "solution"
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
            for p in root.rglob("*") if p.is_file()}


def test_suite_shape(suite: Suite) -> None:
    assert suite.name == "repo-tasks"
    assert suite.version and suite.description
    assert len(suite.tasks) >= 20
    assert len({t.id for t in suite.tasks}) == len(suite.tasks)
    categories = Counter(t.category for t in suite.tasks)
    assert len(categories) >= 4 and {"bugfix", "feature"} <= set(categories)
    repositories = Counter(t.repository for t in suite.tasks)
    assert len(repositories) >= 6 and all(repositories.values())
    assert {t.difficulty for t in suite.tasks} == {1, 2, 3, 4, 5}
    assert {t.domain for t in suite.tasks} == {"code"}


def test_builtin_reference_loads_the_same_suite(suite: Suite) -> None:
    assert load_suite_ref(SuiteRef(builtin="repo-tasks")).suite_hash == suite.suite_hash


@pytest.mark.parametrize("field", ["files", "hidden_files"])
def test_every_task_has_files(suite: Suite, field: str) -> None:
    for task in suite.tasks:
        assert getattr(task, field), f"{task.id} has no {field}"


def test_task_layout(suite: Suite) -> None:
    for task in suite.tasks:
        assert task.scorer.kind == "tests"
        # The expected tests are every test method of the hidden files, derived at load.
        hidden = sorted(task.hidden_files)
        assert task.scorer.args == {
            "timeout_s": 30, "tests": hidden,
            "expected_tests": [i for f in hidden
                               for i in unittest_ids(f[:-3], task.hidden_files[f])]}
        assert (SUITE_DIR / "tasks" / task.id / "task.yaml").is_file()
        assert "README.md" in task.files
        packages = {p.split("/")[0] for p in task.files if "/" in p}
        assert packages == {task.repository}, task.id
        assert 2 <= sum(1 for p in task.files if p.endswith(".py")) - 1 <= 5, task.id
        assert all(p.startswith("test_hidden_") and "/" not in p for p in task.hidden_files)
        assert not set(task.hidden_files) & set(task.files)
        # The issue text names behaviour, not the hidden test file.
        assert "test_hidden" not in task.input
        tests = sum(len([n for n in ast.walk(ast.parse(text))
                         if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")])
                    for text in task.hidden_files.values())
        assert 3 <= tests <= 8, f"{task.id} has {tests} test methods"


def test_solutions_change_only_repository_files(suite: Suite) -> None:
    for task in suite.tasks:
        changed = solution(task)
        assert changed, task.id
        for rel, text in changed.items():
            assert rel in task.files, f"{task.id}: {rel} is not in the repository"
            assert text != task.files[rel], f"{task.id}: {rel} is unchanged"
            ast.parse(text)



async def _grade_all(suite: Suite, provider: Any) -> dict[str, tuple[float, float, str]]:
    gate = asyncio.Semaphore(4)

    async def one(task: Task) -> tuple[str, tuple[float, float, str]]:
        async with gate:
            before = await grade(task, provider)
            after = await grade(task, provider, files=solution(task))
        assert before.error is None and after.error is None, (before.error, after.error)
        assert before.score is not None and after.score is not None
        return task.id, (before.score.value, after.score.value, after.score.explanation)

    return dict(await asyncio.gather(*(one(t) for t in suite.tasks)))


def test_every_task_fails_before_and_passes_with_its_solution(suite: Suite,
                                                               provider: Any) -> None:
    results = asyncio.run(_grade_all(suite, provider))
    not_failing = [tid for tid, (before, _, _) in results.items() if before >= 1.0]
    not_passing = {tid: why for tid, (_, after, why) in results.items() if after < 1.0}
    assert not not_failing, f"hidden tests already pass on the original repo: {not_failing}"
    assert not not_passing, f"hidden tests fail with the reference solution: {not_passing}"
