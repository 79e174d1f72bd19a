"""The whole pipeline in-process: plan -> runs -> Parquet -> report -> status JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from evalfleet import api
from evalfleet.cli import app
from evalfleet.settings import Settings
from evalfleet.store.results import RESULTS_SCHEMA

CONTRACT_COLUMNS = (
    "run_id eval_id plan_name suite suite_hash task_id task_hash category difficulty domain "
    "repository agent_name agent_version agent_fingerprint model model_tier repeat status "
    "error_kind score passed metrics tokens_in tokens_cached tokens_out cost_usd infra_cost_usd "
    "latency_s attempts worker started_at finished_at trajectory_uri reused_from "
    "reused_cost_usd").split()


def test_run_report_status(make_plan: Callable[..., Path], settings: Settings) -> None:
    agents = [
        {"name": "good", "version": "1", "kind": "python",
         "args": {"callable": "evalfleet.testing.agents:noop"}},
        {"name": "bad", "version": "1", "kind": "python",
         "args": {"callable": "evalfleet.testing.agents:boom"}},
    ]
    plan = make_plan(n_tasks=12, agents=agents, runs_per_task=3)
    summary = api.run(plan, settings=settings)
    assert summary.status == "completed"
    assert summary.planned == summary.done == 12 * 2 * 3

    rep = api.report(summary.eval_id, settings=settings)
    assert rep["coverage"]["planned"] == 72 and not rep["coverage"]["partial"]
    good, bad = rep["agents"]
    assert good["overall"]["mean"] == 1.0 and good["overall"]["n_tasks"] == 12
    assert good["overall"]["n_runs"] == 36
    assert bad["overall"]["mean"] == 0.0
    assert bad["errors"] == {"agent_error": 36}
    assert {c["category"] for c in good["by_category"]} == {"c0", "c1", "c2"}

    st = api.status(settings=settings)
    assert st["evals"][0]["eval_id"] == summary.eval_id
    assert st["evals"][0]["done"] == 72
    one = api.status(summary.eval_id, settings=settings)
    assert [a["done"] for a in one["agents"]] == [36, 36]

    files = list((settings.home / "results").rglob("*.parquet"))
    table = pq.read_table(files[0])
    for col in CONTRACT_COLUMNS:
        assert col in table.column_names, col
    assert table.schema.equals(RESULTS_SCHEMA, check_metadata=False)


def test_run_ids_are_deterministic(make_plan: Callable[..., Path], settings: Settings) -> None:
    from evalfleet.spec import load_plan

    plan = load_plan(make_plan(n_tasks=3, runs_per_task=2))
    suite = api.validate_plan(plan)
    a = list(api.run_ids("e1", plan, suite))
    b = list(api.run_ids("e1", plan, suite))
    assert a == b and len({r[0] for r in a}) == 6
    assert {r[0] for r in api.run_ids("e2", plan, suite)}.isdisjoint({r[0] for r in a})


def test_cli_json_outputs(make_plan: Callable[..., Path], home: Path) -> None:
    runner = CliRunner()
    plan = make_plan(n_tasks=4)
    res = runner.invoke(app, ["run", str(plan), "--home", str(home), "--quiet"])
    assert res.exit_code == 0, res.output
    st = json.loads(runner.invoke(app, ["status", "--home", str(home), "--json"]).stdout)
    (ev,) = st["evals"]
    assert set(ev) >= {"eval_id", "plan_name", "status", "planned", "done", "errored",
                       "running", "cost_usd", "started_at"}
    rep = json.loads(runner.invoke(app, ["report", ev["eval_id"], "--home", str(home),
                                         "--json"]).stdout)
    assert rep["eval_id"] == ev["eval_id"]
    agent = rep["agents"][0]
    assert set(agent["overall"]) >= {"mean", "se", "ci_low", "ci_high", "n_tasks", "n_runs"}
    assert set(agent["cost"]) >= {"total_usd", "mean_per_run", "per_success"}
    assert set(agent["latency"]) >= {"p50", "p90", "p99"}
    q = runner.invoke(app, ["query", "SELECT count(*) AS n FROM runs", "--home", str(home),
                            "--json"])
    assert json.loads(q.stdout) == [{"n": 4}]


def test_unpriced_model_is_reported_as_unpriced(make_plan: Callable[..., Path],
                                                settings: Settings) -> None:
    agents = [{"name": "local-llm", "version": "1", "kind": "python", "model": "my-vllm-model",
               "args": {"callable": "evalfleet.testing.agents:noop"}},
              {"name": "sim", "version": "1", "kind": "python", "model": "sim-small",
               "args": {"callable": "evalfleet.testing.agents:noop"}}]
    summary = api.run(make_plan(n_tasks=2, agents=agents), settings=settings)
    rep = api.report(summary.eval_id, settings=settings)
    assert [a["cost"]["unpriced"] for a in rep["agents"]] == [True, False]
    res = CliRunner().invoke(app, ["report", summary.eval_id, "--home", str(settings.home)])
    assert "unpriced" in res.stdout and "has no price" in " ".join(res.stdout.split())
