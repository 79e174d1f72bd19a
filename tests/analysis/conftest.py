"""One small real eval shared by the analysis tests: three python agents, eight tasks, K = 2."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from evalfleet import api
from evalfleet.settings import Settings

HOSTILE_CATEGORY = '<script>alert("x")</script>'
"""A category is free text, so it reaches the HTML: it must arrive escaped."""
TASK_IDS = [f"t{i}" for i in range(8)]
MIXED_PASSES = {"t0", "t2", "t5"}
"""Tasks the ``mixed`` agent answers correctly (every run)."""


@dataclass(frozen=True)
class SmallEval:
    settings: Settings
    eval_id: str
    plan: Path


def write_suite(path: Path) -> Path:
    with path.open("w") as fh:
        for i, tid in enumerate(TASK_IDS):
            task = {"id": tid, "input": "say ok", "target": "ok", "scorer": {"kind": "exact"},
                    "category": HOSTILE_CATEGORY if i % 2 else "plain",
                    "difficulty": 1 + i % 3}
            fh.write(json.dumps(task) + "\n")
    return path


def write_plan(tmp: Path, *, runs_per_task: int = 2) -> Path:
    suite = write_suite(tmp / "suite.jsonl")
    answers = {t: "ok" for t in MIXED_PASSES}
    plan = {
        "name": "small", "suite": {"path": str(suite)}, "runs_per_task": runs_per_task,
        "agents": [
            {"name": "good", "version": "1", "kind": "python",
             "args": {"callable": "evalfleet.testing.agents:noop"}},
            {"name": "mixed", "version": "2", "kind": "python",
             "args": {"callable": "evalfleet.testing.agents:echo_target",
                      "kwargs": {"answers": answers}}},
            {"name": "bad", "version": "1", "kind": "python",
             "args": {"callable": "evalfleet.testing.agents:boom"}},
        ],
    }
    path = tmp / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def small_eval(tmp_path_factory: pytest.TempPathFactory) -> SmallEval:
    tmp = tmp_path_factory.mktemp("small-eval")
    settings = Settings(home=tmp / "home")
    plan = write_plan(tmp)
    summary = api.run(plan, settings=settings)
    assert summary.status == "completed", summary
    return SmallEval(settings, summary.eval_id, plan)
