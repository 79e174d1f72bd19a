"""The end-of-run summary (``evalfleet run``) computes the report without the intervals it does
not print, so a binary eval at the usual levels never imports scipy.special (0.2-0.35 s of
every run); what it prints is the full report's text, character for character."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from conftest import cli_in_process
from evalfleet import api
from evalfleet.cli.render import render_report
from evalfleet.settings import Settings


def _text(rep: dict[str, Any]) -> str:
    out = io.StringIO()
    render_report(Console(file=out, width=120, color_system=None), rep)
    return out.getvalue()


def _sim_plan(tmp_path: Path, runs_per_task: int) -> Path:
    # a simulated model with skill 0.8: passes and failures, and a cost per run
    plan = {
        "name": f"summary{runs_per_task}", "suite": {"builtin": "humaneval", "limit": 4},
        "runs_per_task": runs_per_task,
        "agents": [{"name": "agent", "kind": "openai", "model": "sim-large",
                    "args": {"base_url": "{simulator}", "api_key_env": None, "tools": False}}],
        "simulator": {"models": {"sim-large": {"skill": 0.8, "latency_s": 0.0}}, "seed": 4},
    }
    path = tmp_path / f"plan{runs_per_task}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


@pytest.mark.parametrize("runs_per_task", [1, 3])
def test_the_summary_prints_what_the_full_report_prints(tmp_path: Path, settings: Settings,
                                                        runs_per_task: int) -> None:
    summary = api.run(_sim_plan(tmp_path, runs_per_task), settings=settings)
    assert summary.status == "completed"
    full = api.report(summary.eval_id, settings=settings, max_tasks=0)
    short = api.report(summary.eval_id, settings=settings, max_tasks=0, summary=True)
    assert full["agents"][0]["cost"]["per_success"] is not None  # a real cost per success
    assert _text(short) == _text(full)
    # what the summary leaves out is only the intervals it does not print
    a, b = full["agents"][0], short["agents"][0]
    assert b["latency"]["intervals"] == {} and a["latency"]["intervals"]
    assert {k: v for k, v in b["latency"].items() if k != "intervals"} == \
        {k: v for k, v in a["latency"].items() if k != "intervals"}
    assert b["overall"] == a["overall"] and b["by_category"] == a["by_category"]
    assert b["cost"]["per_success"] == a["cost"]["per_success"]  # the same bits


def test_a_binary_run_never_imports_scipy(make_plan: Callable[..., Path],
                                          tmp_path: Path) -> None:
    plan = make_plan(n_tasks=30)
    out, loaded, err = cli_in_process(["run", str(plan), "--home", str(tmp_path / "home"),
                                       "--quiet"])
    assert "30/30 runs committed" in err, err[-2000:]
    assert "100.0%" in out  # the summary table was printed
    assert not any(m == "scipy" or m.startswith("scipy.") for m in loaded)
