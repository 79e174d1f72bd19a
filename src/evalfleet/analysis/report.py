"""The eval report: coverage, mean with its interval, categories, difficulty, per-task rates,
pass@k / pass^k, cost, latency, tokens, errors, excluded and failing runs.

Infra errors, scorer errors, configuration errors and cancelled runs are missing data, never
failures: they are left out of every score, counted per agent beside it, and make the result
PARTIAL. Each task weighs the same, whatever its number of scored runs. Works on partial evals.

Intervals (the formulas are in docs/analysis.md): with one binary run per task the pass rate is a
binomial proportion and gets a Wilson score interval; otherwise the mean over tasks gets a
t interval on SE_CLT (CR1 by cluster with ``cluster``). An interval never collapses to a point:
when every task has the same mean (SE 0), Wilson on the task count is used instead.
Every interval carries the ``method`` that produced it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evalfleet import stats
from evalfleet.analysis.cost import cost_parts, eval_cost, eval_type
from evalfleet.analysis.estimates import add_full_suite
from evalfleet.cost.prices import PriceTable
from evalfleet.spec.plan import Plan
from evalfleet.stats._checks import scipy_stats
from evalfleet.store.journal import Journal
from evalfleet.store.warehouse import SCORED_SQL, connect

SCORED = SCORED_SQL
"""Rows that count in scores: completed runs and agent failures (timeouts, agent errors) with a
valid score. A row with a NaN or out-of-range score (written before scores were validated) is
left out rather than allowed to poison every mean. The same predicate defines the ``scores``
view of :func:`evalfleet.store.warehouse.connect`."""
EXCLUDED_KINDS = ("infra_error", "scorer_error", "config_error", "cancelled")
"""Error kinds whose runs are missing data, counted beside every headline."""
MAX_FAILING_RUNS = 20
"""Failing run ids listed per agent (the count is always complete)."""
_MAX_K = 10


def proportion_confint(count: Any, nobs: Any, alpha: float = 0.05,
                       method: str = "wilson") -> tuple[Any, Any]:
    """Two-sided Wilson score interval, vectorised: statsmodels' ``proportion_confint(...,
    method="wilson")`` operation for operation (so bit for bit), without importing statsmodels
    and pandas (about a second of a report's start)."""
    if method != "wilson":
        raise ValueError(f"only the Wilson interval is implemented here, not {method!r}")
    count_a = np.asarray(count)
    nobs_a = np.asarray(nobs)
    q_ = count_a / nobs_a
    crit = scipy_stats().norm.isf(alpha / 2.0)
    crit2 = crit**2
    denom = 1 + crit2 / nobs_a
    center = (q_ + crit2 / (2 * nobs_a)) / denom
    dist = crit * np.sqrt(q_ * (1.0 - q_) / nobs_a + crit2 / (4.0 * nobs_a**2))
    dist /= denom
    return np.clip(center - dist, 0, 1), np.clip(center + dist, 0, 1)


def _f(x: float) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def mean_dict(res: stats.MeanEstimate) -> dict[str, Any]:
    """The JSON form of a mean estimate."""
    return {"mean": _f(res.estimate), "se": _f(res.se), "ci_low": _f(res.ci_low),
            "ci_high": _f(res.ci_high), "n_tasks": int(res.n),
            "n_clusters": res.n_clusters, "method": res.method}


def rate_dict(values: npt.NDArray[np.float64], n_runs: npt.NDArray[Any],
              binary: npt.NDArray[Any], clusters: npt.NDArray[Any] | None = None
              ) -> dict[str, Any]:
    """The mean over tasks with an interval that never overclaims (see the module docstring)."""
    n = int(values.size)
    # binary = every run has a verdict AND its score is 0 or 1 (partial credit is not binary)
    zero_one = bool(np.all((values == 0.0) | (values == 1.0)))
    all_binary = n > 0 and bool(np.all(binary.astype(bool))) and zero_one
    one_run = n > 0 and int(n_runs.max()) == 1
    if all_binary and one_run and clusters is None:
        # one Bernoulli trial per task: the pass rate is x/n and Wilson is the right interval
        x = round(float(values.sum()))
        w = stats.wilson_interval(x, n)
        return {"mean": _f(w.estimate), "se": _f(w.se), "ci_low": _f(w.ci_low),
                "ci_high": _f(w.ci_high), "n_tasks": n, "n_clusters": None,
                "method": f"Wilson score interval, {x}/{n} tasks passed (one binary run per "
                          "task)"}
    est = stats.mean_with_se(values, clusters)
    # SE 0 at 0% or 100% would claim certainty no finite sample has: every task is a success
    # (or a failure), so count tasks and take Wilson on that
    return _no_collapse(mean_dict(est))


def _groups(labels: npt.NDArray[Any], values: npt.NDArray[np.float64], n_runs: npt.NDArray[Any],
            binary: npt.NDArray[Any], key: str) -> list[dict[str, Any]]:
    out = []
    for label in sorted(set(labels.tolist())):
        mask = labels == label
        d = rate_dict(values[mask], n_runs[mask], binary[mask])
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
        out.append({"k": k, "pass_at_k": _no_collapse(mean_dict(at)),
                    "pass_hat_k": _no_collapse(mean_dict(hat))})
    return out


def _no_collapse(d: dict[str, Any]) -> dict[str, Any]:
    """Replace a zero-width interval by Wilson on the task count.

    SE 0 means every task has the same mean (all 0%, all 100%, or e.g. every task passing one
    run of two), which a finite sample cannot make certain. For scores in [0, 1] the variance of
    a task's mean is at most mu(1 - mu), the Bernoulli case, so a Wilson interval with n = the
    number of tasks and x = mean * n is a conservative interval for the mean over tasks.
    """
    n, mean = int(d["n_tasks"]), d["mean"]
    if n and mean is not None and d["se"] in (0.0, None):
        x = mean * n
        lo, hi = proportion_confint(x, n, alpha=0.05, method="wilson")
        shown = f"{x:g}/{n}" if float(x).is_integer() else f"{mean:.3g} x {n}"
        why = ("SE 0 (every task has the same mean)" if d["se"] == 0.0 else
               "no SE (too few tasks or clusters to estimate one)")
        d.update(ci_low=_f(lo), ci_high=_f(hi),
                 method=f"{d['method']}; {why}, so the interval is Wilson on {shown} tasks")
    return d


def _task_rows(t: dict[str, npt.NDArray[Any]], limit: int | None) -> list[dict[str, Any]]:
    """The per-task rows, worst first (lowest mean, then the widest interval, then task id),
    all of them or the first ``limit``: the order is computed on the arrays, and only the rows
    returned are made into dictionaries (50,000 tasks would otherwise cost a second)."""
    n_tasks = int(t["task_id"].size)
    if n_tasks == 0 or limit == 0:
        return []
    # Wilson intervals for every task at once (statsmodels is vectorised; one scipy call per
    # task would take seconds on 50,000 tasks). Equal to stats.wilson_interval per task.
    lo, hi = proportion_confint(t["c"], t["n"], alpha=0.05, method="wilson")
    binary = t["binary"].astype(bool)
    lo = np.where(binary, lo, np.nan)
    hi = np.where(binary, hi, np.nan)
    width = np.nan_to_num(hi, nan=0.0) - np.nan_to_num(lo, nan=0.0)
    # the arrays are in task id order (_per_task sorts them), so the position breaks ties
    order = np.lexsort((np.arange(n_tasks), -width, t["mean"].astype(float)))
    if limit is not None:
        order = order[:limit]
    pick = {k: t[k][order].tolist() for k in ("task_id", "category", "difficulty", "n",
                                               "mean", "c")}
    return [{"task_id": tid, "category": cat, "difficulty": int(d), "n_runs": int(n),
             "mean": float(m), "passed": int(c), "ci_low": _f(a), "ci_high": _f(b)}
            for tid, cat, d, n, m, c, a, b in zip(
                pick["task_id"], pick["category"], pick["difficulty"], pick["n"],
                pick["mean"], pick["c"], lo[order].tolist(), hi[order].tolist(), strict=True)]


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


def _excluded(con: Any, name: str, version: str, cancelled: int) -> dict[str, Any]:
    """Runs left out of the score, by kind, and the share of the runs done they are."""
    rows = dict(con.execute(f"""
        SELECT CASE WHEN status = 'cancelled' THEN 'cancelled'
                    WHEN {SCORED} THEN 'scored'
                    WHEN error_kind IN ('infra_error', 'config_error') THEN error_kind
                    ELSE 'scorer_error' END AS kind, count(*)
        FROM runs WHERE agent_name = ? AND agent_version = ? GROUP BY kind""",
        [name, version]).fetchall())
    out: dict[str, Any] = {k: int(rows.get(k, 0)) for k in EXCLUDED_KINDS}
    # budget-cancelled runs live in the journal, not in the results
    out["cancelled"] = max(out["cancelled"], int(cancelled))
    scored = int(rows.get("scored", 0))
    errored = out["infra_error"] + out["scorer_error"] + out["config_error"]
    out["total"] = errored + out["cancelled"]
    out["scored"] = scored
    out["error_rate"] = errored / (scored + errored) if scored + errored else None
    return out


def _reuse(con: Any, name: str, version: str) -> dict[str, Any]:
    """Runs taken from earlier evals (plan ``reuse``): how many, their share of the agent's
    committed runs, and the dollars saved (what the source runs cost, model + infra)."""
    cols = {r[0] for r in con.execute("SELECT name FROM pragma_table_info('runs')").fetchall()}
    if not {"reused_from", "reused_cost_usd"} <= cols:  # results written before reuse existed
        return {"runs": 0, "share": 0.0, "saved_usd": 0.0}
    n_all, n, saved = con.execute("""
        SELECT count(*), count(reused_from),
               coalesce(sum(reused_cost_usd) FILTER (WHERE reused_from IS NOT NULL), 0)
        FROM runs WHERE agent_name = ? AND agent_version = ?""", [name, version]).fetchone()
    return {"runs": int(n), "share": int(n) / int(n_all) if n_all else 0.0,
            "saved_usd": float(saved)}


def _failing_runs(con: Any, name: str, version: str) -> dict[str, Any]:
    """Scored runs that did not pass, worst first, so ``evalfleet show RUN_ID`` can explain."""
    n = con.execute(f"""SELECT count(*) FROM runs WHERE agent_name = ? AND agent_version = ?
        AND {SCORED} AND NOT coalesce(passed, score >= 1)""", [name, version]).fetchone()[0]
    rows = con.execute(f"""
        SELECT run_id, task_id, score, error_kind FROM runs
        WHERE agent_name = ? AND agent_version = ? AND {SCORED} AND NOT coalesce(passed, score >= 1)
        ORDER BY score, task_id, run_id LIMIT {MAX_FAILING_RUNS}""", [name, version]).fetchall()
    return {"count": int(n), "runs": [{"run_id": r, "task_id": t, "score": float(s),
                                       "error_kind": k} for r, t, s, k in rows]}


def agent_report(con: Any, name: str, version: str, *, cluster: str | None = None,
                 max_tasks: int | None = None, cancelled: int = 0) -> dict[str, Any]:
    """Everything the report says about one agent of the eval."""
    t = _per_task(con, name, version)
    means = t["mean"].astype(float)
    clusters = None
    if cluster is not None and t["task_id"].size:
        labels = t[cluster]
        clusters = labels if all(labels.tolist()) else None
    overall = rate_dict(means, t["n"], t["binary"], clusters)
    overall["n_runs"] = int(t["n"].sum())
    overall["clustered_by"] = cluster if clusters is not None else "task"
    errors = dict(con.execute("""
        SELECT error_kind, count(*) FROM runs
        WHERE agent_name = ? AND agent_version = ? AND error_kind IS NOT NULL
        GROUP BY error_kind ORDER BY 2 DESC""", [name, version]).fetchall())
    k_per_task = t["n"] if t["n"].size else np.array([0])
    out: dict[str, Any] = {
        "agent_name": name, "agent_version": version, "overall": overall,
        "by_category": _groups(t["category"], means, t["n"], t["binary"], "category"),
        "by_difficulty": _groups(t["difficulty"].astype(int), means, t["n"], t["binary"],
                                 "difficulty"),
        "runs_per_task": {"min": int(k_per_task.min()), "mean": float(k_per_task.mean()),
                          "max": int(k_per_task.max())},
        "pass_k": _pass_k(t),
        "flaky_tasks": int(np.sum((t["c"] > 0) & (t["c"] < t["n"]))) if t["n"].size else 0,
        "latency": _latency(con, name, version),
        "errors": errors,
        "excluded": _excluded(con, name, version, cancelled),
        "failing_runs": _failing_runs(con, name, version),
        "reuse": _reuse(con, name, version),
    }
    if max_tasks != 0:  # per-task rows only on request: 50,000 tasks are megabytes of JSON
        out["tasks"] = _task_rows(t, max_tasks)
    return out


def build_report(*, home: Path, paths: list[str], eval_row: dict[str, Any], plan: Plan,
                 cluster: str | None = None, max_tasks: int | None = None,
                 prices: PriceTable | None = None,
                 journal: Journal | None = None) -> dict[str, Any]:
    """Assemble the report dictionary.

    ``eval_row`` may carry ``cancelled`` (the eval's total) and ``cancelled_by_agent`` (one count
    per plan agent) from the journal, where budget-cancelled runs are recorded.

    Coverage counts scored runs: ``partial`` is true whenever fewer runs were scored than
    planned, whether they are missing, errored or cancelled.

    Each agent's ``cost`` and ``tokens`` and the eval's ``cost`` breakdown come from
    :mod:`evalfleet.analysis.cost`; ``prices`` says which agents are unpriced.
    """
    con = connect(home, paths)
    try:
        # one scan: runs by status, and the scored ones among them
        by_status = con.execute(f"SELECT status, count(*), count(*) FILTER (WHERE {SCORED}) "
                                "FROM runs GROUP BY status").fetchall() if paths else []
        counts = {status: int(n) for status, n, _ in by_status}
        scored = sum(int(s) for _, _, s in by_status)
        done = int(sum(counts.values()))
        planned = int(eval_row["planned"])
        cancelled = int(eval_row.get("cancelled", counts.get("cancelled", 0)) or 0)
        by_agent = list(eval_row.get("cancelled_by_agent") or [0] * len(plan.agents))
        coverage = {"planned": planned, "done": done, "scored": scored,
                    "completed": counts.get("completed", 0), "failed": counts.get("failed", 0),
                    "errored": counts.get("errored", 0), "cancelled": cancelled,
                    "missing": max(planned - done - cancelled, 0),
                    "partial": scored < planned}
        agents: list[dict[str, Any]] = [
            {**agent_report(con, a.name, a.version, cluster=cluster, max_tasks=max_tasks,
                            cancelled=by_agent[i] if i < len(by_agent) else 0),
             **cost_parts(con, a, plan, prices.for_agent(a) if prices else None)}
            if paths else {"agent_name": a.name, "agent_version": a.version, "overall": None}
            for i, a in enumerate(plan.agents)]
        cost = eval_cost(con, plan, [a["cost"] for a in agents if "cost" in a])
        # a sampled eval: each agent's full-suite estimate (baseline looked up in ``journal``)
        add_full_suite(agents, con=con, home=home, eval_row=eval_row, plan=plan,
                       journal=journal, scored=SCORED)
    finally:
        con.close()
    return {
        "eval_id": eval_row["eval_id"], "plan_name": eval_row["plan_name"],
        "suite": eval_row["suite_name"], "status": eval_row["status"],
        "coverage": coverage, "agents": agents,
        "eval_type": eval_type(plan), "cost": cost,
        "simulated": plan.simulator is not None,
        "duplicates_dropped": eval_row.get("duplicates_dropped", 0),
    }
