"""The eval report: coverage, mean with clustered SE, categories, cost, latency, errors.

Infra errors and cancelled runs are missing data, never failures. Each task weighs the same,
whatever its number of scored runs (STATISTICS.md section 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evalfleet import stats
from evalfleet.spec.plan import Plan
from evalfleet.store.warehouse import connect

_SCORED = "status IN ('completed', 'failed')"


def _interval(values: np.ndarray) -> dict[str, Any]:
    res = stats.mean_with_se(values)
    return {"mean": res.estimate, "se": res.se, "ci_low": res.ci_low, "ci_high": res.ci_high,
            "n_tasks": int(res.n), "method": res.method}


def _agent_report(con: Any, name: str, version: str, runs_per_task: int) -> dict[str, Any]:
    per_task = con.execute(f"""
        SELECT task_id, any_value(category), any_value(difficulty), avg(score),
               count(*), sum(CASE WHEN passed THEN 1 ELSE 0 END)
        FROM runs WHERE agent_name = ? AND agent_version = ? AND {_SCORED}
        GROUP BY task_id ORDER BY task_id""", [name, version]).fetchall()
    means = np.array([r[3] for r in per_task], dtype=float)
    overall = _interval(means)
    overall["n_runs"] = int(sum(r[4] for r in per_task))
    by_category = []
    cats = sorted({r[1] for r in per_task})
    for cat in cats:
        vals = np.array([r[3] for r in per_task if r[1] == cat], dtype=float)
        by_category.append({"category": cat, **_interval(vals)})
    by_difficulty = []
    for d in sorted({r[2] for r in per_task}):
        vals = np.array([r[3] for r in per_task if r[2] == d], dtype=float)
        by_difficulty.append({"difficulty": int(d), **_interval(vals)})
    row = con.execute("""
        SELECT count(*), coalesce(sum(cost_usd), 0), coalesce(sum(tokens_in), 0),
               coalesce(sum(tokens_out), 0),
               sum(CASE WHEN passed THEN 1 ELSE 0 END)
        FROM runs WHERE agent_name = ? AND agent_version = ?""", [name, version]).fetchone()
    n_rows, total_cost, tin, tout, n_pass = row
    per_task_cost = con.execute(f"""
        SELECT avg(cost_usd), avg(CASE WHEN passed THEN 1.0 ELSE 0.0 END)
        FROM runs WHERE agent_name = ? AND agent_version = ? AND {_SCORED}
        GROUP BY task_id""", [name, version]).fetchall()
    cps: dict[str, Any] = {"estimate": None, "se": None}
    if per_task_cost and n_pass:
        c = stats.cost_per_success(np.array([r[0] for r in per_task_cost], dtype=float),
                                   np.array([r[1] for r in per_task_cost], dtype=float))
        cps = {"estimate": c.estimate, "se": c.se, "ci_low": c.ci_low, "ci_high": c.ci_high}
    lat = np.array([r[0] for r in con.execute(
        "SELECT latency_s FROM runs WHERE agent_name = ? AND agent_version = ? AND "
        + _SCORED, [name, version]).fetchall()], dtype=float)
    latency = {f"p{int(q * 100)}": (float(np.quantile(lat, q)) if lat.size else None)
               for q in (0.5, 0.9, 0.99)}
    errors = dict(con.execute("""
        SELECT error_kind, count(*) FROM runs
        WHERE agent_name = ? AND agent_version = ? AND error_kind IS NOT NULL
        GROUP BY error_kind ORDER BY 2 DESC""", [name, version]).fetchall())
    pass_rate = None
    if per_task:
        successes = int(sum(r[5] for r in per_task))
        total = int(sum(r[4] for r in per_task))
        w = stats.wilson_interval(successes, total)
        pass_rate = {"runs_passed": successes, "runs_scored": total,
                     "pooled": w.estimate, "ci_low": w.ci_low, "ci_high": w.ci_high}
    return {
        "agent_name": name, "agent_version": version, "overall": overall,
        "by_category": by_category, "by_difficulty": by_difficulty,
        "runs_per_task": runs_per_task, "pass_rate_runs": pass_rate,
        "cost": {"total_usd": float(total_cost),
                 "mean_per_run": float(total_cost) / n_rows if n_rows else None,
                 "per_success": cps["estimate"], "per_success_ci": cps},
        "tokens": {"in": int(tin), "out": int(tout)},
        "latency": latency, "errors": errors,
    }


def build_report(*, home: Path, paths: list[str], eval_row: dict[str, Any],
                 plan: Plan) -> dict[str, Any]:
    """Assemble the report dictionary (DESIGN.md section 7 fields and more)."""
    con = connect(home, paths)
    try:
        counts = dict(con.execute(
            "SELECT status, count(*) FROM runs GROUP BY status").fetchall()) if paths else {}
        done = int(sum(counts.values()))
        planned = int(eval_row["planned"])
        coverage = {"planned": planned, "done": done,
                    "completed": counts.get("completed", 0), "failed": counts.get("failed", 0),
                    "errored": counts.get("errored", 0),
                    "cancelled": planned - done if eval_row["status"] == "budget_stopped"
                    else counts.get("cancelled", 0),
                    "missing": planned - done, "partial": done < planned}
        agents = [_agent_report(con, a.name, a.version, plan.runs_per_task) if paths else
                  {"agent_name": a.name, "agent_version": a.version, "overall": None}
                  for a in plan.agents]
    finally:
        con.close()
    return {
        "eval_id": eval_row["eval_id"], "plan_name": eval_row["plan_name"],
        "suite": eval_row["suite_name"], "status": eval_row["status"],
        "coverage": coverage, "agents": agents,
        "simulated": plan.simulator is not None,
        "duplicates_dropped": eval_row.get("duplicates_dropped", 0),
    }
