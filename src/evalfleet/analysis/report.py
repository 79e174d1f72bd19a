"""The eval report: coverage, mean with clustered SE, categories, difficulty, per-task rates,
pass@k / pass^k, cost, latency, tokens, errors.

Infra errors and cancelled runs are missing data, never failures. Each task weighs the same,
whatever its number of scored runs (STATISTICS.md section 0). Works on partial evals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from statsmodels.stats.proportion import proportion_confint

from evalfleet import stats
from evalfleet.spec.plan import Plan
from evalfleet.store.warehouse import connect

SCORED = "status IN ('completed', 'failed')"
"""Rows that count in scores: completed runs and agent failures (timeouts, agent errors)."""
_MAX_K = 10


def _f(x: float) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def mean_dict(res: stats.MeanEstimate) -> dict[str, Any]:
    """The JSON form of a mean estimate."""
    return {"mean": _f(res.estimate), "se": _f(res.se), "ci_low": _f(res.ci_low),
            "ci_high": _f(res.ci_high), "n_tasks": int(res.n),
            "n_clusters": res.n_clusters, "method": res.method}


def _groups(labels: npt.NDArray[Any], values: npt.NDArray[np.float64], n_runs: npt.NDArray[Any],
            key: str) -> list[dict[str, Any]]:
    out = []
    for label in sorted(set(labels.tolist())):
        mask = labels == label
        d = mean_dict(stats.mean_with_se(values[mask]))
        d["n_runs"] = int(n_runs[mask].sum())
        out.append({key: label, **d})
    return out


def _per_task(con: Any, name: str, version: str) -> dict[str, npt.NDArray[Any]]:
    tbl = con.execute(f"""
        SELECT task_id, any_value(category) AS category, any_value(difficulty) AS difficulty,
               coalesce(any_value(repository), '') AS repository,
               count(*) AS n, avg(score) AS mean,
               sum(CASE WHEN passed THEN 1 ELSE 0 END) AS c,
               bool_and(passed IS NOT NULL) AS binary,
               avg(cost_usd) AS cost, avg(CASE WHEN passed THEN 1.0 ELSE 0.0 END) AS rate
        FROM runs WHERE agent_name = ? AND agent_version = ? AND {SCORED}
        GROUP BY task_id ORDER BY task_id""", [name, version]).fetchnumpy()
    return {k: np.asarray(v) for k, v in tbl.items()}


def _pass_k(t: dict[str, npt.NDArray[Any]]) -> list[dict[str, Any]]:
    if t["n"].size == 0 or not bool(np.all(t["binary"])):
        return []
    k_max = int(t["n"].min())
    if k_max < 2:
        return []
    ks = sorted({*range(1, min(k_max, _MAX_K) + 1), k_max})
    out = []
    for k in ks:
        at = stats.aggregate_pass_k(t["n"], t["c"], k, kind="pass@k")
        hat = stats.aggregate_pass_k(t["n"], t["c"], k, kind="pass^k")
        out.append({"k": k, "pass_at_k": mean_dict(at), "pass_hat_k": mean_dict(hat)})
    return out


def _task_rows(t: dict[str, npt.NDArray[Any]]) -> list[dict[str, Any]]:
    if t["task_id"].size == 0:
        return []
    # Wilson intervals for every task at once (statsmodels is vectorised; one scipy call per
    # task would take seconds on 50,000 tasks). Equal to stats.wilson_interval per task.
    lo, hi = proportion_confint(t["c"], t["n"], alpha=0.05, method="wilson")
    binary = t["binary"].astype(bool)
    lo = np.where(binary, lo, np.nan)
    hi = np.where(binary, hi, np.nan)
    rows = [{"task_id": tid, "category": cat, "difficulty": int(d), "n_runs": int(n),
             "mean": float(m), "passed": int(c), "ci_low": _f(a), "ci_high": _f(b)}
            for tid, cat, d, n, m, c, a, b in zip(
                t["task_id"].tolist(), t["category"].tolist(), t["difficulty"].tolist(),
                t["n"].tolist(), t["mean"].tolist(), t["c"].tolist(), lo.tolist(), hi.tolist(),
                strict=True)]
    # worst first, then the most uncertain (widest interval)
    rows.sort(key=lambda r: (r["mean"], -((r["ci_high"] or 0) - (r["ci_low"] or 0)),
                             r["task_id"]))
    return rows


def _latency(con: Any, name: str, version: str) -> dict[str, Any]:
    lat = con.execute(f"SELECT latency_s FROM runs WHERE agent_name = ? AND agent_version = ? "
                      f"AND {SCORED}", [name, version]).fetchnumpy()["latency_s"]
    lat = np.asarray(lat, dtype=float)
    out: dict[str, Any] = {}
    intervals: dict[str, Any] = {}
    for q in (0.5, 0.9, 0.99):
        key = f"p{round(q * 100)}"
        if lat.size == 0:
            out[key] = None
            continue
        out[key] = float(np.quantile(lat, q))
        qi = stats.quantile_interval(lat, q)
        intervals[key] = {"ci_low": _f(qi.ci_low), "ci_high": _f(qi.ci_high)}
    out["intervals"] = intervals
    out["mean"] = float(lat.mean()) if lat.size else None
    return out


def agent_report(con: Any, name: str, version: str, *, cluster: str | None = None,
                 max_tasks: int | None = None) -> dict[str, Any]:
    """Everything the report says about one agent of the eval."""
    t = _per_task(con, name, version)
    means = t["mean"].astype(float)
    clusters = None
    if cluster is not None and t["task_id"].size:
        labels = t[cluster]
        clusters = labels if all(labels.tolist()) else None
    overall = mean_dict(stats.mean_with_se(means, clusters))
    overall["n_runs"] = int(t["n"].sum())
    overall["clustered_by"] = cluster if clusters is not None else "task"
    totals = con.execute("""
        SELECT count(*), coalesce(sum(cost_usd), 0), coalesce(sum(tokens_in), 0),
               coalesce(sum(tokens_out), 0), sum(CASE WHEN passed THEN 1 ELSE 0 END)
        FROM runs WHERE agent_name = ? AND agent_version = ?""", [name, version]).fetchone()
    n_rows, total_cost, tin, tout, n_pass = totals
    cps: dict[str, Any] = {"estimate": None, "se": None, "ci_low": None, "ci_high": None}
    if t["task_id"].size and n_pass:
        c = stats.cost_per_success(t["cost"].astype(float), t["rate"].astype(float))
        cps = {"estimate": _f(c.estimate), "se": _f(c.se), "ci_low": _f(c.ci_low),
               "ci_high": _f(c.ci_high), "method": c.method}
    errors = dict(con.execute("""
        SELECT error_kind, count(*) FROM runs
        WHERE agent_name = ? AND agent_version = ? AND error_kind IS NOT NULL
        GROUP BY error_kind ORDER BY 2 DESC""", [name, version]).fetchall())
    tasks = _task_rows(t)
    k_per_task = t["n"] if t["n"].size else np.array([0])
    return {
        "agent_name": name, "agent_version": version, "overall": overall,
        "by_category": _groups(t["category"], means, t["n"], "category"),
        "by_difficulty": _groups(t["difficulty"].astype(int), means, t["n"], "difficulty"),
        "runs_per_task": {"min": int(k_per_task.min()), "mean": float(k_per_task.mean()),
                          "max": int(k_per_task.max())},
        "pass_k": _pass_k(t),
        "flaky_tasks": int(np.sum((t["c"] > 0) & (t["c"] < t["n"]))) if t["n"].size else 0,
        "tasks": tasks if max_tasks is None else tasks[:max_tasks],
        "cost": {"total_usd": float(total_cost),
                 "mean_per_run": float(total_cost) / n_rows if n_rows else None,
                 "per_success": cps["estimate"], "per_success_ci": cps},
        "tokens": {"in": int(tin), "out": int(tout),
                   "mean_per_run": (int(tin) + int(tout)) / n_rows if n_rows else None},
        "latency": _latency(con, name, version),
        "errors": errors,
    }


def build_report(*, home: Path, paths: list[str], eval_row: dict[str, Any], plan: Plan,
                 cluster: str | None = None, max_tasks: int | None = None) -> dict[str, Any]:
    """Assemble the report dictionary (DESIGN.md section 7 fields and more)."""
    con = connect(home, paths)
    try:
        counts = dict(con.execute(
            "SELECT status, count(*) FROM runs GROUP BY status").fetchall()) if paths else {}
        done = int(sum(counts.values()))
        planned = int(eval_row["planned"])
        cancelled = eval_row.get("cancelled", counts.get("cancelled", 0))
        coverage = {"planned": planned, "done": done,
                    "completed": counts.get("completed", 0), "failed": counts.get("failed", 0),
                    "errored": counts.get("errored", 0), "cancelled": cancelled,
                    "missing": planned - done, "partial": done < planned}
        agents = [agent_report(con, a.name, a.version, cluster=cluster, max_tasks=max_tasks)
                  if paths else {"agent_name": a.name, "agent_version": a.version,
                                 "overall": None}
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
