"""A plan's suite filter (``categories``, ``ids``, ``limit``) selects exactly the tasks it names.

The expected task ids are written out by hand from the suites' task files, so a filter that is
ignored, inverted or applied to the wrong field fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import committed_rows
from evalfleet import api
from evalfleet.errors import SpecError
from evalfleet.settings import Settings
from evalfleet.spec import load_plan, load_suite_ref

NOOP = {"name": "noop", "version": "1", "kind": "python",
        "args": {"callable": "evalfleet.testing.agents:noop"}}

# repo-tasks by category, read off src/evalfleet/suites/repo_tasks/tasks/*/task.yaml.
REPO_API_COMPAT = {"calc-variables-keywords", "durations-days-between-api",
                   "ledger-format-money-alias"}
REPO_FEATURE = {"textstats-reading-time", "inventory-csv-export", "durations-fractional",
                "ledger-statement", "lrucache-ttl", "calc-function-calls",
                "iniconf-interpolation"}
REPO_EDGE_CASES = {"lrucache-hit-rate-empty", "durations-whitespace-units",
                   "inventory-sku-normalize", "ledger-overdraft-boundary",
                   "iniconf-inline-comments", "textstats-apostrophes", "calc-power-associativity"}
REPO_ALL = 30


def _plan(tmp_path: Path, suite: dict[str, Any], name: str = "filtered") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "suite": suite, "agents": [NOOP],
                                    "execution": {"sandbox": "local"}}))
    return path


def _ids(tmp_path: Path, suite: dict[str, Any]) -> list[str]:
    plan = load_plan(_plan(tmp_path, suite))
    return [t.id for t in load_suite_ref(plan.suite, plan).tasks]


@pytest.mark.parametrize(("categories", "expected"), [
    (["api-compat"], REPO_API_COMPAT),
    (["feature"], REPO_FEATURE),
    (["api-compat", "edge-cases"], REPO_API_COMPAT | REPO_EDGE_CASES),
])
def test_builtin_suite_category_filter(tmp_path: Path, categories: list[str],
                                       expected: set[str]) -> None:
    ids = _ids(tmp_path, {"builtin": "repo-tasks", "categories": categories})
    assert len(ids) == len(set(ids))
    assert set(ids) == expected


def test_builtin_suite_unfiltered_has_every_task(tmp_path: Path) -> None:
    ids = _ids(tmp_path, {"builtin": "repo-tasks"})
    assert len(set(ids)) == REPO_ALL
    assert set(ids) > REPO_API_COMPAT | REPO_FEATURE | REPO_EDGE_CASES


def test_builtin_suite_ids_and_categories_intersect(tmp_path: Path) -> None:
    assert set(_ids(tmp_path, {"builtin": "repo-tasks",
                               "ids": ["ledger-statement", "calc-precedence"]})) == \
        {"ledger-statement", "calc-precedence"}
    assert _ids(tmp_path, {"builtin": "repo-tasks", "categories": ["feature"],
                           "ids": ["ledger-statement", "calc-precedence"]}) == \
        ["ledger-statement"]


def test_builtin_suite_limit_applies_after_the_category_filter(tmp_path: Path) -> None:
    everything = _ids(tmp_path, {"builtin": "repo-tasks"})
    first_two_features = [i for i in everything if i in REPO_FEATURE][:2]
    assert _ids(tmp_path, {"builtin": "repo-tasks", "categories": ["feature"], "limit": 2}) == \
        first_two_features


@pytest.mark.parametrize("suite", [
    {"builtin": "repo-tasks", "categories": ["no-such-category"]},
    {"builtin": "repo-tasks", "ids": ["no-such-task"]},
])
def test_a_filter_naming_nothing_is_a_plan_error(tmp_path: Path, suite: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as info:
        _ids(tmp_path, suite)
    assert "no-such" in str(info.value)


def _folder_suite(root: Path) -> Path:
    """Six tasks in three categories, as a suite folder with ``tasks/*.yaml``."""
    (root / "tasks").mkdir(parents=True)
    (root / "suite.yaml").write_text("name: guard-folder\nversion: '1'\n")
    for tid, cat, diff in [("alpha", "maths", 1), ("beta", "words", 2), ("gamma", "maths", 3),
                           ("delta", "logic", 4), ("epsilon", "words", 5), ("zeta", "maths", 2)]:
        (root / "tasks" / f"{tid}.yaml").write_text(yaml.safe_dump({
            "id": tid, "input": "say ok", "category": cat, "difficulty": diff, "target": "ok",
            "scorer": {"kind": "exact"}}))
    return root


@pytest.mark.parametrize(("flt", "expected"), [
    ({}, {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}),
    ({"categories": ["maths"]}, {"alpha", "gamma", "zeta"}),
    ({"categories": ["words", "logic"]}, {"beta", "delta", "epsilon"}),
    ({"ids": ["zeta", "beta"]}, {"zeta", "beta"}),
    ({"ids": ["zeta", "beta"], "categories": ["maths"]}, {"zeta"}),
])
def test_folder_suite_filter(tmp_path: Path, flt: dict[str, Any], expected: set[str]) -> None:
    suite = _folder_suite(tmp_path / "suite")
    ids = _ids(tmp_path, {"path": str(suite), **flt})
    assert len(ids) == len(set(ids))
    assert set(ids) == expected


def test_a_filtered_eval_runs_only_the_selected_tasks(tmp_path: Path,
                                                      settings: Settings) -> None:
    suite = _folder_suite(tmp_path / "suite")
    plan = _plan(tmp_path, {"path": str(suite), "categories": ["maths", "logic"]})
    summary = api.run(plan, settings=settings)
    assert summary.planned == summary.done == 4
    rows = committed_rows(settings.home)
    assert sorted(r["task_id"] for r in rows) == ["alpha", "delta", "gamma", "zeta"]
    assert {r["category"] for r in rows} == {"maths", "logic"}
