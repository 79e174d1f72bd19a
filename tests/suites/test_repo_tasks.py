"""The built-in repo-tasks suite: its shape, and that every task is solvable and not yet solved."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from evalfleet.spec.loaders import builtin_suite_dir, load_suite, load_suite_ref
from evalfleet.spec.plan import SuiteRef
from evalfleet.spec.task import Suite, Task

SUITE_DIR = builtin_suite_dir("repo-tasks")
COMMAND = ["python3", "-m", "unittest", "discover", "-s", ".", "-p", "test_hidden_*.py", "-v"]


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite(SUITE_DIR)


def solution(task: Task) -> dict[str, str]:
    root = SUITE_DIR / "tasks" / task.id / "solution"
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
            for p in root.rglob("*") if p.is_file()}


def run_hidden_tests(task: Task, workdir: Path, files: dict[str, str]) -> tuple[int, str]:
    """Write the repository plus the hidden tests and run the task's own scorer command."""
    for rel, text in {**files, **task.hidden_files}.items():
        path = workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    command = list(task.scorer.args["command"])
    # The same interpreter as the tests (the command names python3, whichever that is here).
    command[0] = sys.executable
    proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True,
                          timeout=task.scorer.args["timeout_s"],
                          env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    return proc.returncode, proc.stderr


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
        assert task.scorer.args == {"command": COMMAND, "timeout_s": 30}
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


def _check(task: Task, tmp: Path) -> tuple[str, int, int, str]:
    before, _ = run_hidden_tests(task, tmp / "before", dict(task.files))
    after, log = run_hidden_tests(task, tmp / "after", {**task.files, **solution(task)})
    return task.id, before, after, log


def test_every_task_fails_before_and_passes_with_its_solution(suite: Suite,
                                                               tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda t: _check(t, tmp_path / t.id), suite.tasks))
    not_failing = [tid for tid, before, _, _ in results if before == 0]
    not_passing = {tid: log[-1500:] for tid, _, after, log in results if after != 0}
    assert not not_failing, f"hidden tests already pass on the original repo: {not_failing}"
    assert not not_passing, f"hidden tests fail with the reference solution: {not_passing}"
