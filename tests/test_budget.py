"""The budget stops scheduling, keeps what ran (exit code 3), and resume --budget continues."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from evalfleet import api
from evalfleet.cli import main
from evalfleet.settings import Settings


def _plan(tmp_path: Path, budget: float) -> Path:
    plan = {
        "name": "budget", "suite": {"builtin": "humaneval", "limit": 30}, "runs_per_task": 1,
        "budget_usd": budget,
        "agents": [{"name": "agent", "kind": "openai", "model": "sim-large",
                    "args": {"base_url": "{simulator}", "api_key_env": None, "tools": False}}],
        "execution": {"max_in_flight": 4},
        "simulator": {"models": {"sim-large": {"skill": 0.8, "latency_s": 0.02}}, "seed": 1},
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["evalfleet", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_budget_stop_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 settings: Settings) -> None:
    # one sim-large HumanEval call costs about $0.002: $0.01 buys a handful of runs
    home = str(settings.home)
    assert _cli(monkeypatch, "run", str(_plan(tmp_path, 0.01)), "--home", home, "--quiet") == 3
    (ev,) = api.status(settings=settings)["evals"]
    assert ev["status"] == "budget_stopped"
    assert 0 < ev["done"] < 30 and ev["cancelled"] == 30 - ev["done"]
    assert ev["cost_usd"] < 0.01 + 4 * 0.004  # at most the runs already in flight overshoot
    rep = api.report(ev["eval_id"], settings=settings)
    assert rep["coverage"]["partial"] and rep["coverage"]["cancelled"] == 30 - ev["done"]
    assert rep["agents"][0]["overall"]["n_tasks"] == ev["done"]

    assert _cli(monkeypatch, "resume", ev["eval_id"], "--budget", "5", "--home", home,
                "--quiet") == 0
    after = api.status(ev["eval_id"], settings=settings)
    assert after["status"] == "completed" and after["done"] == 30 and after["cancelled"] == 0


def test_bad_query_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _cli(monkeypatch, "query", "SELEC nothing", "--home", str(tmp_path)) == 2
