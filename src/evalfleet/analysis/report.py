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

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evalfleet import stats
from evalfleet.analysis.cost import (
    add_up,
    agent_cost_section,
    columns,
    cost_section,
    eval_type,
    spend_row,
)
from evalfleet.analysis.estimates import EvalCatalog, add_full_suite
from evalfleet.cost.prices import AgentPrice, PriceTable
from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.plan import Plan
from evalfleet.stats._checks import ndtri
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
    crit = -ndtri(alpha / 2.0)  # scipy.stats.norm.isf, the same bits
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


def _kinds(con: Any, cols: set[str]) -> list[tuple[Any, ...]]:
    """One scan of the eval: runs by agent, status, error kind and whether they are scored, with
    the reused runs and what their sources cost. The eval's coverage, each agent's excluded
    runs, error kinds and reuse are sums over these few rows."""
    reuse = {"reused_from", "reused_cost_usd"} <= cols  # not in results written before reuse
    reused = ("count(reused_from), coalesce(sum(reused_cost_usd) FILTER "
              "(WHERE reused_from IS NOT NULL), 0)" if reuse else "0, 0")
    return list(con.execute(f"""
        SELECT agent_name, agent_version, status, error_kind, coalesce({SCORED}, false),
               count(*), {reused}
        FROM runs GROUP BY ALL""").fetchall())


def _per_task(con: Any, cols: set[str], name: str, version: str) -> dict[str, npt.NDArray[Any]]:
    """One scan of an agent's rows, one row per task in task id order: the scored runs' count
    ``n``, mean score, passes ``c`` and pass rate ``c / n``, whether every verdict is binary,
    mean total cost (model + infra); the failing scored runs; and every run's spend (runs,
    successes, dollars and tokens). Tasks without a scored run have ``n`` 0."""
    def num(col: str) -> str:
        return f"coalesce({col}, 0)" if col in cols else "0"

    tbl = con.execute(f"""
        SELECT task_id, any_value(category) AS category, any_value(difficulty) AS difficulty,
               coalesce(any_value(repository), '') AS repository,
               count_if(s)::BIGINT AS n,
               avg(CASE WHEN s THEN score END) AS mean,
               count_if(s AND passed)::BIGINT AS c,
               coalesce(bool_and(CASE WHEN s THEN passed IS NOT NULL END), true) AS binary,
               avg(CASE WHEN s THEN {num('cost_usd')} + {num('infra_cost_usd')} END) AS cost,
               count_if(s AND NOT coalesce(passed, score >= 1))::BIGINT AS failing,
               count(*) AS runs, count_if(passed)::BIGINT AS successes,
               sum({num('cost_usd')}) AS model_usd, sum({num('infra_cost_usd')}) AS infra_usd,
               sum({num('tokens_in')})::BIGINT AS tokens_in,
               sum({num('tokens_cached')})::BIGINT AS tokens_cached,
               sum({num('tokens_out')})::BIGINT AS tokens_out
        FROM (SELECT *, coalesce({SCORED}, false) AS s FROM runs
              WHERE agent_name = ? AND agent_version = ?)
        GROUP BY task_id ORDER BY task_id""", [name, version]).fetchnumpy()
    out = {k: np.asarray(v) for k, v in tbl.items()}
    # the pass rate of the scored runs: avg(1.0 if passed else 0.0) is c / n, the same bits
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rate"] = out["c"] / out["n"]
    return out


def _scored_tasks(every: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    """The tasks with at least one scored run (the report's per-task arrays)."""
    keep = every["n"] > 0
    return {k: v[keep] for k, v in every.items()}


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

    def limits(x: npt.NDArray[np.float64]) -> list[float | None]:
        # NaN (no binary verdict) is None, as _f makes it, without a numpy call per task
        return [None if v != v else v for v in x[order].tolist()]

    return [{"task_id": tid, "category": cat, "difficulty": int(d), "n_runs": int(n),
             "mean": float(m), "passed": int(c), "ci_low": a, "ci_high": b}
            for tid, cat, d, n, m, c, a, b in zip(
                pick["task_id"], pick["category"], pick["difficulty"], pick["n"],
                pick["mean"], pick["c"], limits(lo), limits(hi), strict=True)]


def _latency(con: Any, name: str, version: str, *, intervals: bool = True) -> dict[str, Any]:
    """p50, p90, p99 and the mean of the agent's scored latencies, with an order-statistic
    interval for each quantile (``intervals=False``: none, ``intervals`` is empty)."""
    lat = con.execute(f"SELECT latency_s FROM runs WHERE agent_name = ? AND agent_version = ? "
                      f"AND {SCORED}", [name, version]).fetchnumpy()["latency_s"]
    lat = np.asarray(lat, dtype=float)
    # sorted once: a quantile is an order statistic (or two), the same whatever the order,
    # and on sorted data numpy's selection and the intervals' sort are quick
    ordered = np.sort(lat)
    out: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for q in (0.5, 0.9, 0.99):
        key = f"p{round(q * 100)}"
        if lat.size == 0:
            out[key] = None
            continue
        out[key] = float(np.quantile(ordered, q))
        if intervals:
            qi = stats.quantile_interval(ordered, q)
            limits[key] = {"ci_low": _f(qi.ci_low), "ci_high": _f(qi.ci_high)}
    out["intervals"] = limits
    out["mean"] = float(lat.mean()) if lat.size else None  # the sum in the rows' order
    return out


def _excluded(kinds: list[tuple[Any, ...]], cancelled: int) -> dict[str, Any]:
    """Runs left out of the score, by kind, and the share of the runs done they are (over one
    agent's rows of :func:`_kinds`)."""
    rows: dict[str, int] = {}
    for _, _, status, error_kind, scored, n, *_ in kinds:
        kind = ("cancelled" if status == "cancelled" else "scored" if scored else
                error_kind if error_kind in ("infra_error", "config_error") else "scorer_error")
        rows[kind] = rows.get(kind, 0) + int(n)
    out: dict[str, Any] = {k: int(rows.get(k, 0)) for k in EXCLUDED_KINDS}
    # budget-cancelled runs live in the journal, not in the results
    out["cancelled"] = max(out["cancelled"], int(cancelled))
    scored = int(rows.get("scored", 0))
    errored = out["infra_error"] + out["scorer_error"] + out["config_error"]
    out["total"] = errored + out["cancelled"]
    out["scored"] = scored
    out["error_rate"] = errored / (scored + errored) if scored + errored else None
    return out


def _errors(kinds: list[tuple[Any, ...]]) -> dict[str, int]:
    """Runs by error kind, most frequent first (ties by kind)."""
    counts: dict[str, int] = {}
    for _, _, _, error_kind, _, n, *_ in kinds:
        if error_kind is not None:
            counts[error_kind] = counts.get(error_kind, 0) + int(n)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _reuse(kinds: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Runs taken from earlier evals (plan ``reuse``): how many, their share of the agent's
    committed runs, and the dollars saved (what the source runs cost, model + infra)."""
    n_all = sum(int(r[5]) for r in kinds)
    n = sum(int(r[6]) for r in kinds)
    saved = sum(float(r[7]) for r in kinds)
    return {"runs": n, "share": n / n_all if n_all else 0.0, "saved_usd": saved}


def _failing_runs(con: Any, name: str, version: str, failing: npt.NDArray[Any]
                  ) -> dict[str, Any]:
    """Scored runs that did not pass, worst first, so ``evalfleet show RUN_ID`` can explain.

    ``failing`` (from :func:`_per_task`) is each task's number of them. The first
    MAX_FAILING_RUNS in the order (score, task id, run id) are read in one query that sorts by
    (score, task id) alone, keeping enough runs to hold every tie: the runs before the last
    one's (score, task id) are fewer than MAX_FAILING_RUNS, and those tied with it are runs of
    one task. Without the run id in that sort DuckDB reads run ids only for the runs it keeps
    (a sort of every failing run by its run id took most of a second at 1M, and a second
    query for the ties read every run id of the agent)."""
    count = int(failing.sum())
    if not count:
        return {"count": 0, "runs": []}
    keep = MAX_FAILING_RUNS - 1 + int(failing.max())
    rows = con.execute(f"""
        SELECT * FROM (
            SELECT run_id, task_id, score, error_kind FROM runs
            WHERE agent_name = ? AND agent_version = ? AND {SCORED}
                  AND NOT coalesce(passed, score >= 1)
            ORDER BY score, task_id LIMIT {keep})
        ORDER BY score, task_id, run_id LIMIT {MAX_FAILING_RUNS}""", [name, version]).fetchall()
    return {"count": count, "runs": [{"run_id": r, "task_id": t, "score": float(s),
                                      "error_kind": k} for r, t, s, k in rows]}


def agent_report(con: Any, name: str, version: str, *, cluster: str | None = None,
                 max_tasks: int | None = None, cancelled: int = 0,
                 every: dict[str, npt.NDArray[Any]] | None = None,
                 kinds: list[tuple[Any, ...]] | None = None,
                 summary: bool = False) -> dict[str, Any]:
    """Everything the report says about one agent of the eval.

    ``every`` (:func:`_per_task` of the agent) and ``kinds`` (the agent's rows of
    :func:`_kinds`) are read here when not given. ``summary``: without the latency
    quantiles' intervals (see :func:`build_report`)."""
    if every is None or kinds is None:
        cols = columns(con)
        every = _per_task(con, cols, name, version) if every is None else every
        if kinds is None:
            kinds = [r for r in _kinds(con, cols) if (r[0], r[1]) == (name, version)]
    t = _scored_tasks(every)
    means = t["mean"].astype(float)
    clusters = None
    if cluster is not None and t["task_id"].size:
        labels = t[cluster]
        clusters = labels if all(labels.tolist()) else None
    overall = rate_dict(means, t["n"], t["binary"], clusters)
    overall["n_runs"] = int(t["n"].sum())
    overall["clustered_by"] = cluster if clusters is not None else "task"
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
        "latency": _latency(con, name, version, intervals=not summary),
        "errors": _errors(kinds),
        "excluded": _excluded(kinds, cancelled),
        "failing_runs": _failing_runs(con, name, version, t["failing"]),
        "reuse": _reuse(kinds),
    }
    if max_tasks != 0:  # per-task rows only on request: 50,000 tasks are megabytes of JSON
        out["tasks"] = _task_rows(t, max_tasks)
    return out


_SPEND = ("runs", "n", "successes", "model_usd", "infra_usd", "tokens_in", "tokens_cached",
          "tokens_out")
"""The :func:`_per_task` columns that add up to a :func:`evalfleet.analysis.cost.spend_row`."""


def _spend(every: dict[str, npt.NDArray[Any]], mask: npt.NDArray[np.bool_] | None = None
           ) -> list[Any]:
    """The spend aggregates (runs, scored, successes, model and infra dollars, tokens in,
    cached and out) of the tasks under ``mask`` (all of them without)."""
    return [(int if k not in ("model_usd", "infra_usd") else float)(
        np.sum(every[k] if mask is None else every[k][mask])) for k in _SPEND]


def _by_category(every: dict[str, npt.NDArray[Any]]) -> dict[Any, list[Any]]:
    """Spend aggregates per task category, in SQL's order (NULL last)."""
    cats = every["category"]
    keys = sorted(set(cats.tolist()), key=lambda c: (c is None, c or ""))
    return {c: _spend(every, cats == c) for c in keys}


def _agent_cost(every: dict[str, npt.NDArray[Any]], spec: AgentSpec, plan: Plan,
                price: AgentPrice | None, *, summary: bool = False) -> dict[str, Any]:
    """An agent's ``cost`` and ``tokens`` sections, as
    :func:`evalfleet.analysis.cost.cost_parts` computes them, from :func:`_per_task`'s sums
    instead of three more scans of the agent's rows. ``summary``: the cost per success
    without its SE and interval (see :func:`build_report`)."""
    total = spend_row(_spend(every), plan.costs)
    cats = [{"category": c, **spend_row(v, plan.costs)} for c, v in _by_category(every).items()]
    cps: dict[str, Any] = {"estimate": None, "se": None, "ci_low": None, "ci_high": None}
    t = _scored_tasks(every)
    if t["cost"].size and total["successes"] and summary:
        # stats.cost_per_success's estimate (mean cost over mean success rate), the same bits
        rate = float(t["rate"].astype(float).mean())
        cps["estimate"] = _finite(float(t["cost"].astype(float).mean()) / rate) if rate \
            else None
    elif t["cost"].size and total["successes"]:
        c = stats.cost_per_success(t["cost"].astype(float), t["rate"].astype(float))
        cps = {"estimate": _finite(c.estimate), "se": _finite(c.se),
               "ci_low": _finite(c.ci_low), "ci_high": _finite(c.ci_high), "method": c.method}
    cost = agent_cost_section(total, plan, spec, price, cps, cats)
    runs = total["runs"]
    return {"cost": cost,
            "tokens": {"in": cost["tokens_in"], "cached": cost["tokens_cached"],
                       "out": cost["tokens_out"],
                       "mean_per_run": (cost["tokens_in"] + cost["tokens_out"]) / runs
                       if runs else None}}


def _eval_cost(plan: Plan, everies: list[dict[str, npt.NDArray[Any]]],
               agent_costs: list[dict[str, Any]]) -> dict[str, Any]:
    """The eval's cost section as :func:`evalfleet.analysis.cost.eval_cost` computes it, from
    the agents' per-task sums."""
    def add(parts: list[list[Any]]) -> list[Any]:
        return [sum(p[i] for p in parts) for i in range(len(_SPEND))] if parts else \
            [0, 0, 0, 0.0, 0.0, 0, 0, 0]

    total = spend_row(add([_spend(e) for e in everies]), plan.costs)
    tiers: dict[str, list[dict[str, Any]]] = {}
    for a in agent_costs:
        tiers.setdefault(a["model_tier"], []).append(a)
    by_tier = [{"model_tier": tier, **add_up(parts)} for tier, parts in sorted(tiers.items())]
    cat_parts: dict[Any, list[list[Any]]] = {}
    for e in everies:
        for c, v in _by_category(e).items():
            cat_parts.setdefault(c, []).append(v)
    by_cat = [{"category": c, **spend_row(add(cat_parts[c]), plan.costs)}
              for c in sorted(cat_parts, key=lambda c: (c is None, c or ""))]
    return cost_section(total, plan, agent_costs, by_tier, by_cat)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def build_report(*, home: Path, paths: list[str], eval_row: dict[str, Any], plan: Plan,
                 cluster: str | None = None, max_tasks: int | None = None,
                 prices: PriceTable | None = None,
                 catalog: EvalCatalog | None = None,
                 paths_of: Callable[[str], list[str]] | None = None,
                 summary: bool = False) -> dict[str, Any]:
    """Assemble the report dictionary.

    ``summary``: what the end-of-run summary prints (:func:`evalfleet.cli.render.render_report`
    shows the same text either way): without the intervals it does not print, the latency
    quantiles' and the cost per success's, whose t and binomial quantiles would import
    scipy.special (0.2-0.35 s of every ``evalfleet run``).

    ``eval_row`` may carry ``cancelled`` (the eval's total) and ``cancelled_by_agent`` (one count
    per plan agent) from the journal, where budget-cancelled runs are recorded.

    Coverage counts scored runs: ``partial`` is true whenever fewer runs were scored than
    planned, whether they are missing, errored or cancelled.

    Each agent's ``cost`` and ``tokens`` and the eval's ``cost`` breakdown are those of
    :mod:`evalfleet.analysis.cost` (same fields, same formulas); ``prices`` says which agents
    are unpriced. A sampled eval's full-suite estimate looks for its baseline among the evals
    of ``catalog`` (the journal, or a reader of it), whose results files ``paths_of`` gives.

    The rows are read in few scans: one over the eval by agent, status and error kind
    (coverage, excluded runs, errors, reuse), then for each agent one aggregate per task
    (scores, failing runs, spend), its scored latencies and its worst failing runs.
    """
    con = connect(home, paths)
    try:
        cols = columns(con)
        kinds = _kinds(con, cols) if paths else []
        counts: dict[str, int] = {}
        scored = 0
        for _, _, status, _, is_scored, n, *_ in kinds:
            counts[status] = counts.get(status, 0) + int(n)
            scored += int(n) if is_scored else 0
        done = int(sum(counts.values()))
        planned = int(eval_row["planned"])
        cancelled = int(eval_row.get("cancelled", counts.get("cancelled", 0)) or 0)
        by_agent = list(eval_row.get("cancelled_by_agent") or [0] * len(plan.agents))
        coverage = {"planned": planned, "done": done, "scored": scored,
                    "completed": counts.get("completed", 0), "failed": counts.get("failed", 0),
                    "errored": counts.get("errored", 0), "cancelled": cancelled,
                    "missing": max(planned - done - cancelled, 0),
                    "partial": scored < planned}
        agents: list[dict[str, Any]] = []
        everies = []
        for i, a in enumerate(plan.agents):
            if not paths:
                agents.append({"agent_name": a.name, "agent_version": a.version,
                               "overall": None})
                continue
            every = _per_task(con, cols, a.name, a.version)
            everies.append(every)
            mine = [r for r in kinds if (r[0], r[1]) == (a.name, a.version)]
            agents.append({
                **agent_report(con, a.name, a.version, cluster=cluster, max_tasks=max_tasks,
                               cancelled=by_agent[i] if i < len(by_agent) else 0,
                               every=every, kinds=mine, summary=summary),
                **_agent_cost(every, a, plan, prices.for_agent(a) if prices else None,
                              summary=summary)})
        cost = _eval_cost(plan, everies, [a["cost"] for a in agents if "cost" in a])
        # a sampled eval: each agent's full-suite estimate (baseline looked up in ``catalog``)
        add_full_suite(agents, con=con, home=home, eval_row=eval_row, plan=plan,
                       catalog=catalog, scored=SCORED, paths_of=paths_of)
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
