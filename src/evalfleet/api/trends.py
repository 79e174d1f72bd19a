"""Trends: a metric per day per agent version from the rollups, with interval bands and drift
alerts (docs/analysis.md, "Trends and drift alerts").

Read-only by default, like every reader: :func:`trends` opens the store with ``open_reader``,
reads the journal's rollups (never the raw rows for the series) and, for the paired check, the
Parquet rows of the days' evals and of the reference eval through the confined DuckDB
connection. Only ``record=True`` (``evalfleet trends --record``) opens the store as a writer to
store the alerts it found; :func:`set_reference` (``--set-reference``) is a writer too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from evalfleet.errors import SpecError
from evalfleet.settings import Settings, load_settings

METRICS = ("pass_rate", "score", "cost_per_run", "latency_p50")
"""What ``trends`` can chart."""
PAIRED_METRICS = ("pass_rate", "score")
"""Metrics the daily paired check against a reference eval runs for (per-task means)."""
LOWER_IS_WORSE = {"pass_rate": True, "score": True, "cost_per_run": False, "latency_p50": False}
"""Which way is drift: a falling pass rate or score, a rising cost or latency."""

CUSUM_K = 0.5
"""CUSUM allowance in units of the reference period's day-to-day SD: tuned to a 1-SD shift."""
CUSUM_H = 5.0
"""CUSUM decision interval in the same units: in-control ARL about 938 days (Siegmund)."""
REFERENCE_DAYS = 7
"""Days with data at the start of a series that fix its in-control level and SD."""
ALPHA = 0.05
"""Family-wise level of the paired check over the days of a series (Holm)."""
MARGIN = 0.01
"""Practical margin of the paired check: a drop under 1 point is not an alert."""
MAX_DAYS = 3650
CONFIDENCE = 0.95


@dataclass
class Point:
    """One day of a series."""

    day: str
    n: int
    value: float
    low: float
    high: float
    se: float
    evals: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day, "n": self.n, "value": _num(self.value),
                "low": _num(self.low), "high": _num(self.high), "se": _num(self.se),
                "evals": self.evals}


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 10)


def _check(metric: str, days: int) -> None:
    if metric not in METRICS:
        raise SpecError(f"unknown metric '{metric}' (choose {', '.join(METRICS)})",
                        field="--metric")
    if not 1 <= days <= MAX_DAYS:
        raise SpecError(f"--days must be 1 to {MAX_DAYS}, not {days}", field="--days")


def trends(*, metric: str = "pass_rate", agent: str | None = None,
           category: str | None = None, days: int = 30, reference: str | None = None,
           record: bool = False, settings: Settings | None = None,
           today: date | None = None) -> dict[str, Any]:
    """The metric per UTC day per agent version over the last ``days`` days, with a 95% band
    per point and drift alerts (lower CUSUM; paired check against the reference eval).

    ``agent`` is ``NAME`` or ``NAME@VERSION``; ``category`` restricts to one task category;
    ``reference`` is an eval id (prefix) used for every agent name it ran instead of the stored
    references; ``record`` stores the alerts found (as a writer); ``today`` fixes the window's
    last day (default: today, UTC).

    Raises:
        SpecError: an unknown metric, a bad number of days, an unknown reference eval.
        UnknownEvalError: no evals in the home.
    """
    from evalfleet.api.reads import open_reader, open_store, resolve_eval_id
    from evalfleet.store.rollups import day_range

    _check(metric, days)
    settings = settings or load_settings()
    today = today or datetime.now(UTC).date()
    first_day, last_day = day_range(days, today)
    name, _, version = (agent or "").partition("@")
    store = open_reader(settings)
    try:
        rows = store.journal.rollup_rows(first_day=first_day, last_day=last_day,
                                         agent_name=name or None, category=category)
        if version:
            rows = [r for r in rows if r["agent_version"] == version]
        pending = len(store.journal.rollup_backfill_pending())
        missing_table = not store.journal.has_table("rollups")
        refs = store.journal.references()
        if reference is not None:
            ref_id = resolve_eval_id(store, reference)
            refs = {n: ref_id for n in _agent_names(store, ref_id)}
        series = _series(rows, metric)
        for s in series:
            _cusum(s, metric)
        if metric in PAIRED_METRICS:
            _paired_checks(store, series, refs, metric, category)
        for s in series:
            s["alerts"].sort(key=lambda a: (a["day"], a["kind"]))
            for a in s["alerts"]:
                a["category"] = category or ""
        stored = store.journal.list_alerts(first_day=first_day)
    finally:
        store.close()
    found = [a for s in series for a in s["alerts"]]
    recorded: int | None = None
    if record and found:
        writer = open_store(settings)
        try:
            recorded = writer.journal.record_alerts([_stored(a) for a in found])
        finally:
            writer.close()
    elif record:
        recorded = 0
    notes: list[str] = []
    if missing_table:
        notes.append("this journal has no rollups yet: run any eval (a writer) to create and "
                     "backfill them")
    if pending:
        notes.append(f"rollups are incomplete: {pending} batch(es) committed before rollups "
                     "existed are not rolled up yet (the next writer backfills them)")
    if not record and found:
        notes.append("alerts are not stored: `evalfleet trends --record` stores them")
    return {
        "metric": metric, "days": days, "first_day": first_day, "last_day": last_day,
        "agent": agent, "category": category, "confidence": CONFIDENCE,
        "method": _method(metric),
        "drift": {"cusum": {"k": CUSUM_K, "h": CUSUM_H, "reference_days": REFERENCE_DAYS},
                  "paired": {"alpha": ALPHA, "margin": MARGIN, "adjust": "holm",
                             "metrics": list(PAIRED_METRICS)}},
        "references": refs,
        "series": [{k: v for k, v in s.items() if k != "points_obj"} | {
            "points": [p.as_dict() for p in s["points_obj"]]} for s in series],
        "alerts": found, "recorded": recorded,
        "stored_alerts": [{**a, "evidence": json.loads(a["evidence"])} for a in stored],
        "notes": notes,
    }


def set_reference(eval_id: str, *, agent: str | None = None,
                  settings: Settings | None = None) -> dict[str, Any]:
    """Store ``eval_id`` as the frozen reference of its agents' trends (of ``agent`` only,
    a name, when given). A writer: it opens the store for writing.

    Raises:
        SpecError: the eval has no agent of that name.
        UnknownEvalError: no such eval.
    """
    from evalfleet.api.reads import open_store, resolve_eval_id

    settings = settings or load_settings()
    store = open_store(settings)
    try:
        eval_id = resolve_eval_id(store, eval_id)
        names = _agent_names(store, eval_id)
        if agent is not None:
            if agent not in names:
                raise SpecError(f"eval {eval_id} has no agent named '{agent}' (it has: "
                                f"{', '.join(names)})", field="--agent")
            names = [agent]
        for n in names:
            store.journal.set_reference(n, eval_id)
    finally:
        store.close()
    return {"eval_id": eval_id, "agents": names}


def _agent_names(store: Any, eval_id: str) -> list[str]:
    plan = store.journal.get_eval(eval_id)["plan"]
    return sorted({str(a.get("name")) for a in plan.get("agents", [])})


def _method(metric: str) -> str:
    return {
        "pass_rate": "passed / scored runs per day, Wilson 95% interval on runs (runs of one "
                     "task are treated as independent: with several runs per task the band "
                     "is too narrow)",
        "score": "mean score of the day's scored runs, mean +- t(n-1) SE from the rollups' "
                 "count, sum and sum of squares (runs treated as independent)",
        "cost_per_run": "model + infra dollars per executed run (reused runs cost 0 and are "
                        "left out), mean +- t(n-1) SE from count, sum and sum of squares",
        "latency_p50": "median latency of scored runs read from the rollups' log buckets "
                       "(within 15.5%); band: the order-statistic ranks of a 95% interval "
                       "mapped to the outer edges of their buckets",
    }[metric]


# series ---------------------------------------------------------------------------------------
def _series(rows: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per (agent name, version): the day's sums over evals, categories, difficulties."""
    from evalfleet.store.rollups import SUMS

    acc: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        day = acc.setdefault((r["agent_name"], r["agent_version"]), {}).setdefault(
            r["day"], {**{c: 0 for c in SUMS}, "evals": set()})
        for c in SUMS:
            day[c] += r[c]
        day["evals"].add(r["eval_id"])
    out: list[dict[str, Any]] = []
    for (name, version), by_day in sorted(acc.items()):
        points = [p for p in (_point(d, sums, metric) for d, sums in sorted(by_day.items()))
                  if p is not None]
        if points:
            out.append({"agent_name": name, "agent_version": version,
                        "label": f"{name}@{version}", "points_obj": points,
                        "cusum": None, "paired": None, "alerts": []})
    return out


def _point(day: str, s: dict[str, Any], metric: str) -> Point | None:
    from evalfleet import stats
    from evalfleet.stats._checks import critical_value

    evals = sorted(s["evals"])
    if metric == "pass_rate":
        n, x = int(s["scored"]), int(s["passed"])
        if n == 0:
            return None
        ci = stats.wilson_interval(x, n, confidence=CONFIDENCE)
        return Point(day, n, x / n, ci.ci_low, ci.ci_high, ci.se, evals)
    if metric in ("score", "cost_per_run"):
        if metric == "score":
            n, total, sq = int(s["scored"]), float(s["score_sum"]), float(s["score_sumsq"])
        else:
            n = int(s["runs"]) - int(s["reused"])
            total = float(s["model_cost_usd"]) + float(s["infra_cost_usd"])
            sq = float(s["cost_sumsq"])
        if n == 0:
            return None
        mean = total / n
        if n < 2:
            return Point(day, n, mean, math.nan, math.nan, math.nan, evals)
        var = max(0.0, (sq - total * total / n) / (n - 1))
        se = math.sqrt(var / n)
        crit = critical_value(CONFIDENCE, n - 1)
        return Point(day, n, mean, mean - crit * se, mean + crit * se, se, evals)
    return _latency_point(day, s, evals)


def _latency_point(day: str, s: dict[str, Any], evals: list[str]) -> Point | None:
    from scipy import stats as sps

    from evalfleet.store.rollups import bucket_at_rank, bucket_bounds, latency_quantile
    from evalfleet.store.schema import LATENCY_COLUMNS

    counts = [int(s[c]) for c in LATENCY_COLUMNS]
    n = sum(counts)
    if n == 0:
        return None
    value = latency_quantile(counts, 0.5)
    tail = (1 - CONFIDENCE) / 2
    dist = sps.binom(n, 0.5)
    lo_rank, hi_rank = int(dist.ppf(tail)), int(dist.isf(tail)) + 1
    lo_b, hi_b = bucket_at_rank(counts, lo_rank), bucket_at_rank(counts, hi_rank)
    low = bucket_bounds(lo_b)[0] if lo_b is not None else math.nan
    high = bucket_bounds(hi_b)[1] if hi_b is not None else math.nan
    z = float(sps.norm.ppf(1 - tail))
    se = (high - low) / (2 * z) if math.isfinite(high - low) else math.nan
    return Point(day, n, value, low, high, se, evals)


# drift: CUSUM ---------------------------------------------------------------------------------
def _cusum(s: dict[str, Any], metric: str) -> None:
    """Lower CUSUM over the days after the series' reference period (its first days with an
    SE): z_t = (mu0 - m_t) / sqrt(tau^2 + SE_t^2) turned so that worse is negative."""
    from evalfleet import stats

    pts = [p for p in s["points_obj"] if math.isfinite(p.se) and p.n >= 2]
    if len(pts) <= REFERENCE_DAYS:
        s["cusum"] = {"ran": False, "why": f"needs more than {REFERENCE_DAYS} days with an SE "
                                           f"(has {len(pts)})"}
        return
    ref, watch = pts[:REFERENCE_DAYS], pts[REFERENCE_DAYS:]
    mu0 = sum(p.value for p in ref) / len(ref)
    between = sum((p.value - mu0) ** 2 for p in ref) / (len(ref) - 1)

    def se_of(p: Point) -> float:
        if metric == "pass_rate":  # the in-control rate's binomial SE, never 0 at 0% or 100%
            return math.sqrt(max(mu0 * (1 - mu0), 1e-12) / p.n)
        return p.se

    within = sum(se_of(p) ** 2 for p in ref) / len(ref)
    tau2 = max(0.0, between - within)  # day-to-day variation beyond sampling (moments)
    sign = 1.0 if LOWER_IS_WORSE[metric] else -1.0
    zs: list[float] = []
    days: list[Point] = []
    for p in watch:
        sd = math.sqrt(tau2 + se_of(p) ** 2)
        if sd > 0:
            zs.append(sign * (p.value - mu0) / sd)
            days.append(p)
    chart = stats.cusum_lower(zs, k=CUSUM_K, h=CUSUM_H)
    s["cusum"] = {"ran": True, "mu0": _num(mu0), "tau": _num(math.sqrt(tau2)),
                  "reference_days": [p.day for p in ref], "k": CUSUM_K, "h": CUSUM_H,
                  "z": [_num(z) for z in zs], "statistic": [_num(v) for v in chart.statistic],
                  "days": [p.day for p in days], "method": chart.method}
    for i, alarm in enumerate(chart.alarms):
        if alarm and (i == 0 or not chart.alarms[i - 1]):  # the first day of an excursion
            s["alerts"].append({
                "kind": "cusum", "metric": metric, "agent": s["label"],
                "day": days[i].day, "statistic": _num(chart.statistic[i]), "threshold": CUSUM_H,
                "evidence": {"mu0": _num(mu0), "tau": _num(math.sqrt(tau2)),
                             "reference_days": [p.day for p in ref],
                             "value": _num(days[i].value), "n": days[i].n,
                             "z": [_num(z) for z in zs[:i + 1]],
                             "s": [_num(v) for v in chart.statistic[:i + 1]],
                             "days": [p.day for p in days[:i + 1]],
                             "k": CUSUM_K, "h": CUSUM_H, "method": chart.method}})


# drift: paired check against a reference eval -------------------------------------------------

def _paired_checks(store: Any, series: list[dict[str, Any]], refs: dict[str, str],
                   metric: str, category: str | None) -> None:
    """Per series with a reference eval: each day's per-task means against the reference's,
    paired on shared tasks (one-sided paired t), Holm over the series' days."""
    from evalfleet import stats
    from evalfleet.store.warehouse import SCORED_SQL as _SCORED
    from evalfleet.store.warehouse import connect

    value = "CAST(coalesce(passed, score >= 1) AS DOUBLE)" if metric == "pass_rate" else "score"
    cat = " AND category = ?" if category is not None else ""
    for s in series:
        ref_id = refs.get(s["agent_name"])
        if ref_id is None:
            continue
        day_evals = sorted({e for p in s["points_obj"] for e in p.evals if e != ref_id})
        paths = sorted({p for e in [ref_id, *day_evals] for p in store.results_paths(e)})
        con = connect(store.home, paths)
        try:
            args: list[Any] = [ref_id, s["agent_name"]] + ([category] if category else [])
            ref = dict(con.execute(
                f"SELECT task_id, avg({value}) FROM runs WHERE eval_id = ? AND agent_name = ? "
                f"AND {_SCORED}{cat} GROUP BY task_id", args).fetchall())
            per_day: dict[str, dict[str, float]] = {}
            if day_evals:
                marks = ", ".join("?" for _ in day_evals)
                args = [*day_evals, s["agent_name"], s["agent_version"]] + (
                    [category] if category else [])
                for dnum, task, v in con.execute(
                        f"SELECT CAST(floor(epoch(finished_at) / 86400) AS BIGINT) AS d, "
                        f"task_id, avg({value}) FROM runs WHERE eval_id IN ({marks}) "
                        f"AND agent_name = ? AND agent_version = ? AND {_SCORED}{cat} "
                        f"AND finished_at IS NOT NULL GROUP BY d, task_id", args).fetchall():
                    day = date.fromordinal(date(1970, 1, 1).toordinal() + int(dnum)).isoformat()
                    per_day.setdefault(day, {})[task] = float(v)
        finally:
            con.close()
        checks: list[dict[str, Any]] = []
        for day in sorted(per_day):
            shared = sorted(set(per_day[day]) & set(ref))
            if len(shared) < 2:
                continue
            flag = stats.regression_flag([per_day[day][t] for t in shared],
                                         [ref[t] for t in shared], margin=MARGIN, alpha=ALPHA)
            d = flag.difference
            checks.append({"day": day, "tasks": len(shared), "estimate": _num(d.estimate),
                           "se": _num(d.se), "ci_low": _num(d.ci_low),
                           "ci_high": _num(d.ci_high),
                           "p_value": _num(d.p_value) if math.isfinite(d.p_value) else None,
                           "practical": flag.practical, "method": flag.method})
        usable = [c for c in checks if c["p_value"] is not None]
        adj = stats.adjust_pvalues([c["p_value"] for c in usable], "holm", alpha=ALPHA)
        for c, p_adj, rej in zip(usable, adj.adjusted, adj.reject, strict=True):
            c["p_adjusted"] = _num(p_adj)
            c["alert"] = bool(rej and c["practical"])
            if c["alert"]:
                s["alerts"].append({
                    "kind": "paired", "metric": metric, "agent": s["label"], "day": c["day"],
                    "statistic": c["p_adjusted"], "threshold": ALPHA,
                    "evidence": {**c, "reference": ref_id, "adjust": "holm",
                                 "days_tested": len(usable), "margin": MARGIN}})
        s["paired"] = {"reference": ref_id, "days": checks,
                       "method": f"per-task means paired on shared tasks, one-sided paired t "
                                 f"(regression_flag, margin {MARGIN:g}), Holm over "
                                 f"{len(usable)} days at {ALPHA:g}"}


def _stored(a: dict[str, Any]) -> dict[str, Any]:
    return {"kind": a["kind"], "metric": a["metric"], "agent": a["agent"],
            "category": a.get("category") or "", "day": a["day"],
            "statistic": a["statistic"], "threshold": a["threshold"],
            "evidence": json.dumps(a["evidence"], sort_keys=True)}

