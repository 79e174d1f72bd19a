"""The report reads an eval in a few scans (one by agent, status and error kind; one aggregate
per task and agent; latencies; the worst failing runs) instead of one query per section. Each
section must equal what the per-section queries give: the cost sections what
:mod:`evalfleet.analysis.cost` computes from the rows, and coverage, excluded runs, errors,
reuse, failing runs and per-task rows what their own SQL gives."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from evalfleet import api
from evalfleet.analysis import cost as cost_mod
from evalfleet.analysis.report import MAX_FAILING_RUNS, SCORED, build_report
from evalfleet.spec import RunResult, load_plan
from evalfleet.spec.plan import Plan
from evalfleet.store import RowContext, Store, driver_name
from evalfleet.store.warehouse import connect

N_TASKS = 40
RUNS = 3


@pytest.fixture(scope="module")
def varied(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two agents, 40 tasks x 3 runs: passes, failures, partial credit, verdict-less scores,
    timeouts, infra/scorer/config errors, a cancelled run, costs, infra costs and tokens,
    three categories and a task without one, repositories; written through
    Store.commit as a driver writes."""
    base = tmp_path_factory.mktemp("varied")
    suite = base / "suite.jsonl"
    with suite.open("w") as fh:
        for i in range(N_TASKS):
            task: dict[str, Any] = {"id": f"t{i:03d}", "input": "x", "target": "ok",
                                    "scorer": {"kind": "exact"}, "difficulty": 1 + i % 4,
                                    "metadata": {"repository": f"r{i % 5}"}}
            if i != 7:
                task["category"] = ("coding", "math", "writing")[i % 3]
            fh.write(json.dumps(task) + "\n")
    plan_path = base / "plan.yaml"
    plan_path.write_text(yaml.safe_dump({
        "name": "varied", "suite": {"path": str(suite)}, "runs_per_task": RUNS,
        "agents": [{"name": "a", "version": v, "kind": "python", "model": "gpt-4o",
                    "tier": tier, "args": {"callable": "evalfleet.testing.agents:noop"}}
                   for v, tier in (("1", "standard"), ("2", "batch"))]}))
    plan = load_plan(plan_path)
    suite_obj = api.validate_plan(plan)
    home = base / "home"
    store = Store(home)
    rng = np.random.default_rng(7)
    driver = driver_name()
    try:
        eval_id = api.create_eval(store, plan, suite_obj)
        store.journal.claim_driver(eval_id, driver, 3600)
        ctx = RowContext(eval_id, plan.name, suite_obj, plan.agents)
        now = time.time()
        while leased := store.journal.lease(eval_id, driver, 50, 3600):
            results = []
            for lr in leased:
                u = float(rng.random())
                common = {"run_id": lr.run_id, "task_id": lr.task_id,
                          "agent_index": lr.agent_index, "repeat": lr.repeat,
                          "started_at": now, "finished_at": now + 1,
                          "tokens_in": int(rng.integers(0, 5000)),
                          "tokens_cached": int(rng.integers(0, 500)),
                          "tokens_out": int(rng.integers(0, 900)),
                          "cost_usd": float(rng.random() / 7), "latency_s": float(rng.random()),
                          "infra_cost_usd": float(rng.random() / 100)}
                if u < 0.05:
                    kind = ("infra_error", "scorer_error", "config_error")[int(u * 60) % 3]
                    results.append(RunResult(status="errored", error_kind=kind, error="x",
                                             **common))
                elif u < 0.07:
                    results.append(RunResult(status="cancelled", error_kind="cancelled",
                                             **common))
                elif u < 0.15:
                    results.append(RunResult(status="failed", error_kind="task_timeout",
                                             score=0.0, passed=False, **common))
                elif u < 0.25:  # partial credit, no binary verdict
                    results.append(RunResult(status="completed", score=round(u * 2, 2),
                                             passed=None, **common))
                else:
                    ok = bool(rng.random() < 0.3 + 0.01 * int(lr.task_id[1:]))
                    results.append(RunResult(status="completed", score=float(ok), passed=ok,
                                             **common))
            store.commit(ctx, results)
        store.journal.set_status(eval_id, "completed", finished=True)
        store.journal.release_driver(eval_id, driver)
    finally:
        store.close()
    return home, eval_id


def _report(home: Path, eval_id: str) -> tuple[dict[str, Any], Plan, list[str]]:
    store = Store.open_readonly(home)
    try:
        row = store.journal.get_eval(eval_id)
        plan = Plan.model_validate(row["plan"])
        paths = store.results_paths(eval_id)
        rep = build_report(home=home, paths=paths, eval_row={**row, "status": "completed"},
                           plan=plan, max_tasks=None)
    finally:
        store.close()
    return rep, plan, paths


def _close(got: Any, want: Any, path: str = "") -> None:
    """Equal, floats to 1e-12 relative (sums of floats in another order), recursively."""
    if isinstance(want, dict):
        assert list(got) == list(want), path
        for k in want:
            _close(got[k], want[k], f"{path}/{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _close(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-12), path
    else:
        assert got == want and type(got) is type(want), path


def test_cost_sections_equal_the_cost_module(varied: tuple[Path, str]) -> None:
    home, eval_id = varied
    rep, plan, paths = _report(home, eval_id)
    con = connect(home, paths)
    try:
        for a, spec in zip(rep["agents"], plan.agents, strict=True):
            want = cost_mod.cost_parts(con, spec, plan, None)
            _close(a["cost"], want["cost"])
            _close(a["tokens"], want["tokens"])
        want_eval = cost_mod.eval_cost(con, plan, [cost_mod.agent_cost(con, s, plan, None)
                                                   for s in plan.agents])
    finally:
        con.close()
    _close(rep["cost"], want_eval)
    assert [c["category"] for c in rep["cost"]["by_category"]] == [
        "coding", "general", "math", "writing"]  # a task without one is "general"
    assert rep["agents"][0]["cost"]["per_success_ci"]["method"]


def test_sections_equal_their_own_queries(varied: tuple[Path, str]) -> None:
    home, eval_id = varied
    rep, plan, paths = _report(home, eval_id)
    con = connect(home, paths)
    try:
        status = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall())
        scored = con.execute(f"SELECT count(*) FROM runs WHERE {SCORED}").fetchone()[0]
        assert rep["coverage"]["scored"] == scored
        assert rep["coverage"]["done"] == sum(status.values())
        assert rep["coverage"]["errored"] == status.get("errored", 0) > 0
        for a, spec in zip(rep["agents"], plan.agents, strict=True):
            p = [spec.name, spec.version]
            mine = "agent_name = ? AND agent_version = ?"
            errors = dict(con.execute(f"""SELECT error_kind, count(*) FROM runs WHERE {mine}
                AND error_kind IS NOT NULL GROUP BY 1""", p).fetchall())
            assert a["errors"] == errors and len(errors) >= 4
            assert list(a["errors"].values()) == sorted(errors.values(), reverse=True)
            kinds = dict(con.execute(f"""SELECT CASE WHEN status = 'cancelled' THEN 'cancelled'
                WHEN {SCORED} THEN 'scored' WHEN error_kind IN ('infra_error', 'config_error')
                THEN error_kind ELSE 'scorer_error' END, count(*) FROM runs WHERE {mine}
                GROUP BY 1""", p).fetchall())
            for k in ("infra_error", "scorer_error", "config_error", "cancelled", "scored"):
                assert a["excluded"][k] == kinds.get(k, 0)
            failing = f"{mine} AND {SCORED} AND NOT coalesce(passed, score >= 1)"
            n_fail = con.execute(f"SELECT count(*) FROM runs WHERE {failing}", p).fetchone()[0]
            worst = con.execute(f"""SELECT run_id, task_id, score, error_kind FROM runs
                WHERE {failing} ORDER BY score, task_id, run_id LIMIT {MAX_FAILING_RUNS}""",
                p).fetchall()
            assert a["failing_runs"]["count"] == n_fail > MAX_FAILING_RUNS
            assert [(r["run_id"], r["task_id"], r["score"], r["error_kind"])
                    for r in a["failing_runs"]["runs"]] == worst
            tasks = con.execute(f"""SELECT task_id, count(*), avg(score),
                sum(CASE WHEN passed THEN 1 ELSE 0 END) FROM runs WHERE {mine} AND {SCORED}
                GROUP BY 1 ORDER BY 1""", p).fetchall()
            got = sorted((t["task_id"], t["n_runs"], t["mean"], t["passed"]) for t in a["tasks"])
            # pytest 9.2's approx takes no nested sequences: the means compared one by one
            assert [(t, n, k) for t, n, _, k in got] == [(r[0], r[1], r[3]) for r in tasks]
            assert [m for _, _, m, _ in got] == pytest.approx([r[2] for r in tasks])
            assert a["reuse"] == {"runs": 0, "share": 0.0, "saved_usd": 0.0}
    finally:
        con.close()


def test_failing_runs_tie_on_score_and_task(varied: tuple[Path, str]) -> None:
    """The worst runs are the first MAX_FAILING_RUNS in (score, task id, run id) order even
    when many share the 20th run's score and task (the two-step read must not cut there)."""
    home, eval_id = varied
    rep, _, _ = _report(home, eval_id)
    runs = rep["agents"][1]["failing_runs"]["runs"]
    keys = [(r["score"], r["task_id"], r["run_id"]) for r in runs]
    assert keys == sorted(keys) and len(keys) == MAX_FAILING_RUNS
    assert len({(s, t) for s, t, _ in keys}) < len(keys)  # ties on (score, task) are there
