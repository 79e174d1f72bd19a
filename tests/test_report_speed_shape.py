"""The report's shape (per-task rows only on request), the ``scores`` view and ``query --csv``.

``report`` without ``--tasks`` carries no per-task list but the same numbers as with it;
``--tasks N`` gives the worst N in the report's order (lowest mean, widest interval, task id);
the view ``scores`` is a GROUP BY over ``runs``; ``query --csv`` round-trips the rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evalfleet import api
from evalfleet.cli import app
from evalfleet.cli.main import main
from evalfleet.settings import Settings

N_TASKS = 30


@pytest.fixture
def eval_id(make_plan: Callable[..., Path], settings: Settings, tmp_path: Path) -> str:
    """Two agents whose tasks pass always, never or half the time (3 runs each), so tasks
    tie on their mean and differ in interval width."""
    agents = []
    for name in ("a", "b"):
        marks = tmp_path / f"marks-{name}"
        marks.mkdir()
        agents.append({"name": name, "version": "1", "kind": "python",
                       "args": {"callable": "evalfleet.testing.agents:task_rate",
                                "kwargs": {"marker_dir": str(marks)}}})
    plan = make_plan(n_tasks=N_TASKS, runs_per_task=3, agents=agents)
    return api.run(plan, settings=settings).eval_id


def _cli(settings: Settings, *args: str) -> Any:
    res = CliRunner().invoke(app, [*args, "--home", str(settings.home)])
    assert res.exit_code == 0, res.output
    return res.stdout


def _old_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order the report always had: worst mean, then widest interval, then task id."""
    return sorted(rows, key=lambda r: (r["mean"], -((r["ci_high"] or 0) - (r["ci_low"] or 0)),
                                       r["task_id"]))


def _without_tasks(rep: dict[str, Any]) -> dict[str, Any]:
    return {**rep, "agents": [{k: v for k, v in a.items() if k != "tasks"}
                              for a in rep["agents"]]}


def test_report_json_has_no_task_rows_by_default(eval_id: str, settings: Settings) -> None:
    plain = json.loads(_cli(settings, "report", eval_id, "--json"))
    full = json.loads(_cli(settings, "report", eval_id, "--json", "--tasks", "all"))
    assert all("tasks" not in a for a in plain["agents"])
    assert all(len(a["tasks"]) == N_TASKS for a in full["agents"])
    # every headline number (means, intervals, categories, pass@k, cost ...) is the same
    assert plain == _without_tasks(full)
    assert plain["agents"][0]["overall"]["n_tasks"] == N_TASKS
    assert plain["agents"][0]["pass_k"]  # 3 binary runs per task: pass@k over every task


def test_tasks_n_is_the_worst_n_in_the_report_order(eval_id: str, settings: Settings) -> None:
    every = api.report(eval_id, settings=settings)  # the API default: every per-task row
    worst = json.loads(_cli(settings, "report", eval_id, "--json", "--tasks", "7"))
    for a_all, a_worst in zip(every["agents"], worst["agents"], strict=True):
        assert a_all["tasks"] == _old_order(a_all["tasks"])
        assert a_worst["tasks"] == a_all["tasks"][:7]
        # the fixture makes ties on the mean that the interval width and task id break
        means = [t["mean"] for t in a_worst["tasks"]]
        assert len(set(means)) < len(means)
    assert api.report(eval_id, settings=settings, max_tasks=0)["agents"][0].keys() \
        == _without_tasks(every)["agents"][0].keys()


def test_task_order_breaks_ties_by_width_then_id() -> None:
    """Equal means with different run counts (1/2, 2/4, 3/6) order by interval width, widest
    first; non-binary tasks (no interval) come after at the same mean; then task id."""
    import numpy as np

    from evalfleet.analysis.report import _task_rows

    ids = ["t6", "t5", "t4", "t3", "t2", "t1", "t0"]
    t = {"task_id": np.array(sorted(ids), dtype=object),
         "category": np.array(["c"] * 7, dtype=object),
         "difficulty": np.array([1] * 7),
         "n": np.array([6, 2, 4, 2, 3, 2, 1]),
         "c": np.array([3, 1, 2, 1, 0, 1, 1]),
         "mean": np.array([0.5, 0.5, 0.5, 0.5, 0.0, 0.5, 1.0]),
         "binary": np.array([True, True, True, False, True, True, True])}
    every = _task_rows(t, None)
    assert every == _old_order(every)
    assert [r["task_id"] for r in every] == ["t4", "t1", "t5", "t2", "t0", "t3", "t6"]
    assert _task_rows(t, 3) == every[:3] and _task_rows(t, 0) == []


def test_text_report_lists_tasks_only_on_request(eval_id: str, settings: Settings) -> None:
    worst = api.report(eval_id, settings=settings, max_tasks=3)["agents"][0]["tasks"]
    text = _cli(settings, "report", eval_id, "--tasks", "3")
    assert "worst 3 of 30 tasks" in text
    assert all(t["task_id"] in text for t in worst)
    assert "worst" not in _cli(settings, "report", eval_id)


def test_markdown_keeps_its_worst_tasks_table(eval_id: str, settings: Settings) -> None:
    md = _cli(settings, "report", eval_id, "--markdown", "-")
    assert "Worst 20 tasks" in md


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The real entry point (one-line errors, exit codes), not typer's test runner."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize("bad", ["-1", "many", "2.5"])
def test_bad_tasks_value_is_one_line(eval_id: str, settings: Settings, bad: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(["report", eval_id, "--tasks", bad, "--home", str(settings.home)], capsys)
    assert code == 2
    assert "--tasks" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_scores_view_is_a_group_by_over_runs(eval_id: str, settings: Settings) -> None:
    cols = ("eval_id, agent_name, agent_version, task_id, category, difficulty, repository, "
            "n_runs, n_scored, mean_score, n_passed")
    _, view = api.query(f"SELECT {cols} FROM scores ORDER BY ALL", settings=settings)
    _, direct = api.query("""
        SELECT eval_id, agent_name, agent_version, task_id, min(category), min(difficulty),
               min(repository), count(*),
               sum(CASE WHEN status IN ('completed', 'failed') AND score BETWEEN 0 AND 1
                        THEN 1 ELSE 0 END),
               avg(score) FILTER (WHERE status IN ('completed', 'failed')),
               sum(CASE WHEN status IN ('completed', 'failed') AND passed THEN 1 ELSE 0 END)
        FROM runs GROUP BY eval_id, agent_name, agent_version, task_id ORDER BY ALL""",
        settings=settings)
    assert len(view) == 2 * N_TASKS
    assert [tuple(r) for r in view] == [tuple(r) for r in direct]
    # and it agrees with the report's per-task rows
    rep = api.report(eval_id, settings=settings)
    by_task = {(a["agent_name"], t["task_id"]): (t["n_runs"], t["mean"], t["passed"])
               for a in rep["agents"] for t in a["tasks"]}
    assert {(r[1], r[3]): (r[8], r[9], r[10]) for r in view} == by_task


def test_scores_view_leaves_errored_runs_out(make_plan: Callable[..., Path],
                                            settings: Settings, tmp_path: Path) -> None:
    """Agent failures are scored (0); infra errors are missing data: counted, not scored."""
    marks = tmp_path / "infra-marks"
    marks.mkdir()
    plan = make_plan(n_tasks=4, runs_per_task=2, agents=[
        {"name": "bug", "version": "1", "kind": "python",
         "args": {"callable": "evalfleet.testing.agents:boom"}},
        {"name": "down", "version": "1", "kind": "python",
         "args": {"callable": "evalfleet.testing.agents:flaky_infra",
                  "kwargs": {"marker_dir": str(marks), "failures": 1000}}}],
        execution={"max_attempts": 1, "backoff_base_s": 0})
    api.run(plan, settings=settings)
    _, rows = api.query("SELECT agent_name, n_runs, n_scored, mean_score, n_passed "
                        "FROM scores ORDER BY agent_name, task_id", settings=settings)
    _, statuses = api.query("SELECT DISTINCT agent_name, status, error_kind FROM runs "
                            "ORDER BY agent_name", settings=settings)
    assert statuses == [("bug", "failed", "agent_error"), ("down", "errored", "infra_error")]
    assert rows == [("bug", 2, 2, 0.0, 0)] * 4 + [("down", 2, 0, None, 0)] * 4


def test_query_csv_round_trips(eval_id: str, settings: Settings) -> None:
    sql = ("SELECT run_id, task_id, score, passed, difficulty, started_at, error_kind, metrics "
           "FROM runs ORDER BY run_id")
    as_json = json.loads(_cli(settings, "query", sql, "--json"))
    text = _cli(settings, "query", sql, "--csv")
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert header == ["run_id", "task_id", "score", "passed", "difficulty", "started_at",
                      "error_kind", "metrics"]
    assert len(rows) == len(as_json) == 2 * N_TASKS * 3
    for row, obj in zip(rows, as_json, strict=True):
        rec = dict(zip(header, row, strict=True))
        assert rec["run_id"] == obj["run_id"] and rec["task_id"] == obj["task_id"]
        assert float(rec["score"]) == obj["score"]
        assert rec["passed"] == ("true" if obj["passed"] else "false")
        assert int(rec["difficulty"]) == obj["difficulty"]
        assert rec["error_kind"] == "" and obj["error_kind"] is None
        assert rec["started_at"].startswith(obj["started_at"][:19].replace(" ", "T"))
        assert json.loads(rec["metrics"]) == obj["metrics"]


def test_query_csv_and_json_together_is_an_error(settings: Settings, eval_id: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(["query", "SELECT 1", "--csv", "--json", "--home", str(settings.home)],
                      capsys)
    assert code == 2 and "--csv" in err
