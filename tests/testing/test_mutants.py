"""The SIMULATED model's wrong answers: AST mutants that really fail the tests."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from evalfleet.spec.humaneval import read_problems
from evalfleet.spec.loaders import builtin_suite_dir, load_suite
from evalfleet.spec.task import Task
from evalfleet.testing import _mutate
from evalfleet.testing._sim_tasks import builtin_catalog, humaneval_code, repo_answer_files

PROBLEMS = read_problems()


@pytest.mark.parametrize(("operator", "before", "after"), [
    ("flip_compare", "x = a < b", "x = a <= b"),
    ("off_by_one", "x = y[0]", "x = y[1]"),
    ("swap_boolop", "x = a and b", "x = a or b"),
    ("negate_condition", "if a:\n    pass", "if not a:\n    pass"),
    ("swap_binop", "x = a + b", "x = a - b"),
    ("drop_return_element", "def f():\n    return (a, b)", "def f():\n    return (a,)"),
    ("drop_return_element", "def f():\n    return True", "def f():\n    return False"),
    ("swap_builtin", "x = min(a)", "x = max(a)"),
    ("swap_method", "x = s.lower()", "x = s.upper()"),
    ("drop_not", "x = not a", "x = a"),
])
def test_each_operator(operator: str, before: str, after: str) -> None:
    [site] = _mutate.find_sites(before, operators=[operator])
    assert _mutate.apply_site(before, site) == after + "\n"


def test_region_limits_the_sites() -> None:
    source = "def f(a):\n    '''Doc 1.'''\n    return a + 1\n"
    assert {s.operator for s in _mutate.find_sites(source, [(3, 3)])} == {"swap_binop",
                                                                         "off_by_one"}
    assert _mutate.find_sites(source, [(1, 2)]) == []


def test_loops_are_not_mutated() -> None:
    source = "def f(n):\n    while n > 1:\n        n -= 1\n    return n + 1\n"
    mutants = {_mutate.apply_site(source, site) for site in _mutate.find_sites(source)}
    assert mutants == {source.replace("n + 1", "n - 1"), source.replace("n + 1", "n + 2")}


def test_humaneval_sites_apply_and_change_the_code() -> None:
    without_sites = 0
    for problem in PROBLEMS:
        source = problem["prompt"] + problem["canonical_solution"]
        region = [(len(problem["prompt"].splitlines()) + 1, len(source.splitlines()))]
        sites = _mutate.find_sites(source, region)
        without_sites += not sites
        original = ast.dump(ast.parse(source))
        for site in sites[:: max(1, len(sites) // 3)]:
            assert ast.dump(ast.parse(_mutate.apply_site(source, site))) != original
    assert without_sites <= 10


def test_a_problem_without_sites_gets_an_empty_body() -> None:
    problem = next(p for p in PROBLEMS if p["task_id"] == "HumanEval/23")
    task = builtin_catalog().by_id["HumanEval/23"]
    code = humaneval_code(task, False, random.Random(1))
    assert code == problem["prompt"] + "    pass\n"
    assert _fails(problem, code)


def test_changed_lines_and_partial_reverts() -> None:
    original = "def f(x):\n    return x\n\n\ndef g(x):\n    return x\n"
    solution = "def f(x):\n    return x + 1\n\n\ndef g(x):\n    return x * 2\n"
    assert _mutate.changed_lines(original, solution) == [(2, 2), (6, 6)]
    assert _mutate.changed_functions(original, solution) == [(1, 2), (5, 6)]
    reverts = _mutate.partial_reverts(original, solution)
    assert reverts == ["def f(x):\n    return x\n\n\ndef g(x):\n    return x * 2\n",
                       "def f(x):\n    return x + 1\n\n\ndef g(x):\n    return x\n"]
    documented = solution.replace("def g(x):\n", "def g(x):\n    '''Doc.'''\n")
    # Reverting only a docstring is not a broken fix, so it is not offered.
    assert _mutate.partial_reverts(solution, documented) == []


def _fails(problem: dict[str, Any], code: str) -> bool:
    program = code + "\n\n" + problem["test"] + f"\n\ncheck({problem['entry_point']})\n"
    try:
        return subprocess.run([sys.executable, "-c", program], capture_output=True,
                              timeout=10).returncode != 0
    except subprocess.TimeoutExpired:
        return True


def test_humaneval_mutants_fail_their_tests() -> None:
    # A sample of the measurement reported in _mutate (all 164 problems: 96% of mutants fail).
    catalog = builtin_catalog()
    sample = PROBLEMS[::4]
    codes = [humaneval_code(catalog.by_id[p["task_id"]], False, random.Random(p["task_id"]))
             for p in sample]
    canonical = [p["prompt"] + p["canonical_solution"] for p in sample]
    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = list(pool.map(_fails, sample, codes))
        # The control: the same check passes the canonical solutions.
        canonical_failed = list(pool.map(_fails, sample, canonical))
    assert not any(canonical_failed)
    assert sum(failed) / len(failed) >= 0.85


def _repo_fails(task: Task, files: dict[str, str], workdir: Path) -> bool:
    for rel, text in {**task.files, **files, **task.hidden_files}.items():
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (workdir / rel).write_text(text)
    # The hidden unittest files, run as modules from the work dir (where the package is).
    modules = sorted(Path(rel).with_suffix("").as_posix().replace("/", ".")
                     for rel in task.hidden_files
                     if Path(rel).name.startswith("test") and rel.endswith(".py"))
    assert modules, task.id
    command = [sys.executable, "-m", "unittest", *modules]
    try:
        return subprocess.run(command, cwd=workdir, capture_output=True,
                              timeout=30).returncode != 0
    except subprocess.TimeoutExpired:
        return True


def test_repo_task_failures_fail_the_hidden_tests(tmp_path: Path) -> None:
    catalog = builtin_catalog()
    tasks = load_suite(builtin_suite_dir("repo-tasks")).tasks
    answers = [repo_answer_files(catalog.by_id[t.id], False, random.Random(t.id)) for t in tasks]
    assert all(a != catalog.by_id[t.id].solution for t, a in zip(tasks, answers, strict=True))
    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = list(pool.map(lambda ta: _repo_fails(ta[0], ta[1], tmp_path / ta[0].id),
                               zip(tasks, answers, strict=True)))
        # The control: the same check passes the reference solutions, so a failure above is
        # the mutant's and not the harness's.
        solved = list(pool.map(
            lambda t: not _repo_fails(t, catalog.by_id[t.id].solution, tmp_path / "ref" / t.id),
            tasks))
    assert all(solved), [t.id for t, ok in zip(tasks, solved, strict=True) if not ok]
    assert sum(failed) / len(failed) >= 0.85
