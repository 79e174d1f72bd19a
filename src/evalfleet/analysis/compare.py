"""Paired comparison of agent versions on their shared tasks (STATISTICS.md sections 3 and 4.1).

The difference is NEW - BASE, per task, on the task ids both sides scored. K = 1 binary runs
use McNemar's mid-p; otherwise the paired t on per-task mean differences (CR1 when clustered).
Categories are tested too, with Holm and Benjamini-Hochberg adjusted p-values; a regression is
a difference statistically below zero (one-sided, Holm across categories) AND worse than the
practical margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evalfleet import stats
from evalfleet.analysis.report import SCORED
from evalfleet.store.warehouse import connect


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a comparison: an agent's results in one eval."""

    eval_id: str
    agent_name: str
    agent_version: str
    paths: list[str]
    planned_tasks: frozenset[str] = field(default_factory=frozenset)

    @property
    def label(self) -> str:
        """``EVAL_ID/agent@version``."""
        return f"{self.eval_id}/{self.agent_name}@{self.agent_version}"


def _f(x: float) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def _load(home: Path, side: Side) -> dict[str, npt.NDArray[Any]]:
    if not side.paths:
        return {k: np.array([]) for k in ("task_id", "category", "repository", "n", "mean",
                                           "c", "binary", "cost", "latency")}
    con = connect(home, side.paths)
    try:
        tbl = con.execute(f"""
            SELECT task_id, any_value(category) AS category,
                   coalesce(any_value(repository), '') AS repository,
                   count(*) AS n, avg(score) AS mean,
                   sum(CASE WHEN passed THEN 1 ELSE 0 END) AS c,
                   bool_and(passed IS NOT NULL) AS binary,
                   avg(cost_usd) AS cost, avg(latency_s) AS latency
            FROM runs WHERE eval_id = ? AND agent_name = ? AND agent_version = ? AND {SCORED}
            GROUP BY task_id ORDER BY task_id""",
            [side.eval_id, side.agent_name, side.agent_version]).fetchnumpy()
    finally:
        con.close()
    return {k: np.asarray(v) for k, v in tbl.items()}


def _diff_dict(d: stats.PairedDifference) -> dict[str, Any]:
    return {"estimate": _f(d.estimate), "se": _f(d.se), "ci_low": _f(d.ci_low),
            "ci_high": _f(d.ci_high), "p_value": _f(d.p_value), "n_tasks": int(d.n),
            "n_clusters": d.n_clusters, "correlation": _f(d.correlation),
            "mean_base": _f(d.mean_b), "mean_new": _f(d.mean_a), "method": d.method}


def _unshared(a: Side, ta: set[str], b: Side, tb: set[str]) -> dict[str, Any]:
    """Task ids scored on one side only, with the reason."""
    out: dict[str, Any] = {}
    for name, mine, other, other_side in (("only_base", ta, tb, b), ("only_new", tb, ta, a)):
        ids = sorted(mine - other)
        not_planned = [t for t in ids if other_side.planned_tasks
                       and t not in other_side.planned_tasks]
        out[name] = {
            "count": len(ids),
            "not_in_other_plan": len(not_planned),
            "not_scored_in_other": len(ids) - len(not_planned),
            "examples": ids[:10],
        }
    return out


def compare_pair(home: Path, base: Side, new: Side, *, margin: float = 0.01,
                 alpha: float = 0.05, cluster: str | None = None,
                 data: dict[str, dict[str, npt.NDArray[Any]]] | None = None) -> dict[str, Any]:
    """Paired comparison NEW - BASE; see the module docstring for the methods."""
    data = data or {}
    tb = data.get(base.label) or _load(home, base)
    tn = data.get(new.label) or _load(home, new)
    ids_b, ids_n = tb["task_id"].tolist(), tn["task_id"].tolist()
    shared = sorted(set(ids_b) & set(ids_n))
    ib = {t: i for i, t in enumerate(ids_b)}
    inn = {t: i for i, t in enumerate(ids_n)}
    sb = np.array([ib[t] for t in shared], dtype=int)
    sn = np.array([inn[t] for t in shared], dtype=int)
    out: dict[str, Any] = {
        "base": base.label, "new": new.label, "n_shared_tasks": len(shared),
        "unshared": _unshared(base, set(ids_b), new, set(ids_n)),
        "margin": margin, "alpha": alpha,
    }
    if len(shared) == 0:
        out.update(diff=None, by_category=[], regressions=[], improvements=[], flips=[])
        return out
    xb, xn = tb["mean"][sb].astype(float), tn["mean"][sn].astype(float)
    cats = tn["category"][sn]
    clusters = None
    if cluster is not None:
        labels = tn[cluster][sn]
        clusters = labels if all(labels.tolist()) else None
    diff = stats.paired_difference(xn, xb, clusters)
    diff_out = _diff_dict(diff)
    binary_k1 = (bool(np.all(tb["binary"][sb])) and bool(np.all(tn["binary"][sn]))
                 and int(tb["n"][sb].max()) == 1 and int(tn["n"][sn].max()) == 1)
    if binary_k1 and clusters is None:
        pass_n, pass_b = xn >= 0.5, xb >= 0.5
        b = int(np.sum(pass_n & ~pass_b))
        c = int(np.sum(~pass_n & pass_b))
        mc = stats.mcnemar_test(b, c, len(shared))
        diff_out.update(p_value=_f(mc.p_value), method=mc.method,
                        mcnemar={"b_new_only": b, "c_base_only": c, "p_midp": _f(mc.p_midp),
                                 "p_exact": _f(mc.p_exact)})
    overall_reg = stats.regression_flag(xn, xb, clusters, margin=margin, alpha=alpha)
    overall_imp = stats.regression_flag(xb, xn, clusters, margin=margin, alpha=alpha)
    out["diff"] = diff_out
    out["overall_verdict"] = ("regression" if overall_reg.flagged else
                              "improvement" if overall_imp.flagged else "no significant change")
    out["mde_note"] = _mde_note(xn - xb, alpha)

    by_cat: list[dict[str, Any]] = []
    reg_p: list[float] = []
    imp_p: list[float] = []
    for cat in sorted(set(cats.tolist())):
        m = cats == cat
        d = stats.paired_difference(xn[m], xb[m])
        r = stats.regression_flag(xn[m], xb[m], margin=margin, alpha=alpha)
        i = stats.regression_flag(xb[m], xn[m], margin=margin, alpha=alpha)
        by_cat.append({"category": cat, **_diff_dict(d)})
        reg_p.append(1.0 if np.isnan(r.p_value) else float(r.p_value))
        imp_p.append(1.0 if np.isnan(i.p_value) else float(i.p_value))
    two_sided = [1.0 if r["p_value"] is None else r["p_value"] for r in by_cat]
    holm = stats.adjust_pvalues(two_sided, "holm", alpha=alpha)
    bh = stats.adjust_pvalues(two_sided, "bh", alpha=alpha)
    reg_holm = stats.adjust_pvalues(reg_p, "holm", alpha=alpha)
    imp_holm = stats.adjust_pvalues(imp_p, "holm", alpha=alpha)
    regressions: list[dict[str, Any]] = []
    improvements: list[dict[str, Any]] = []
    for j, row in enumerate(by_cat):
        row["p_holm"] = holm.adjusted[j]
        row["p_bh"] = bh.adjusted[j]
        est = row["estimate"]
        if est is not None and reg_holm.reject[j] and est < -margin:
            regressions.append({"category": row["category"], "estimate": est,
                                "p_one_sided_holm": reg_holm.adjusted[j]})
        if est is not None and imp_holm.reject[j] and est > margin:
            improvements.append({"category": row["category"], "estimate": est,
                                 "p_one_sided_holm": imp_holm.adjusted[j]})
    if overall_reg.flagged:
        regressions.insert(0, {"category": "(overall)", "estimate": diff_out["estimate"],
                               "p_one_sided": _f(overall_reg.p_value)})
    if overall_imp.flagged:
        improvements.insert(0, {"category": "(overall)", "estimate": diff_out["estimate"],
                                "p_one_sided": _f(overall_imp.p_value)})
    out["by_category"] = by_cat
    out["regressions"] = regressions
    out["improvements"] = improvements
    flips = []
    for k, t in enumerate(shared):
        before, after = float(xb[k]), float(xn[k])
        if (before >= 0.5) != (after >= 0.5):
            flips.append({"task_id": t, "category": cats[k], "base": before, "new": after,
                          "direction": "fixed" if after > before else "broke"})
    flips.sort(key=lambda f: (f["direction"], f["task_id"]))
    out["flips"] = flips
    cb, cn = tb["cost"][sb].astype(float), tn["cost"][sn].astype(float)
    lb, ln = tb["latency"][sb].astype(float), tn["latency"][sn].astype(float)
    out["cost"] = {"base_mean_per_run": float(cb.mean()), "new_mean_per_run": float(cn.mean()),
                   "diff": _diff_dict(stats.paired_difference(cn, cb))}
    out["latency"] = {"base_mean_s": float(lb.mean()), "new_mean_s": float(ln.mean()),
                      "diff": _diff_dict(stats.paired_difference(ln, lb))}
    return out


def _mde_note(d: npt.NDArray[np.float64], alpha: float) -> dict[str, Any]:
    """What this comparison could have detected (power 0.8), so 'no change' has a size."""
    n = d.size
    if n < 2:
        return {"mde": None}
    var = float(np.var(d, ddof=1))
    mde = stats.minimum_detectable_effect(omega2=var, sigma2_a=0.0, sigma2_b=0.0, k_a=1, k_b=1,
                                          n=n, alpha=alpha, power=0.8)
    return {"mde": _f(mde.delta), "power": 0.8, "alpha": alpha, "method": mde.method}


def compare(home: Path, sides: list[Side], *, margin: float = 0.01, alpha: float = 0.05,
            cluster: str | None = None) -> dict[str, Any]:
    """Compare every side after the first with the first; with 3+ sides, a Pareto view too."""
    data = {s.label: _load(home, s) for s in sides}
    base, news = sides[0], sides[1:]
    pairs = [compare_pair(home, base, n, margin=margin, alpha=alpha, cluster=cluster, data=data)
             for n in news]
    out: dict[str, Any] = dict(pairs[0]) if len(pairs) == 1 else {"base": base.label,
                                                                   "comparisons": pairs}
    points: list[dict[str, Any]] = []
    for s in sides:
        t = data[s.label]
        if t["task_id"].size:
            points.append({"side": s.label, "mean_score": float(t["mean"].mean()),
                           "mean_cost_per_run": float(t["cost"].mean()),
                           "n_tasks": int(t["task_id"].size)})
    if len(points) >= 2:
        front = stats.pareto_frontier([float(p["mean_cost_per_run"]) for p in points],
                                      [float(p["mean_score"]) for p in points])
        for i, p in enumerate(points):
            p["non_dominated"] = i in front.non_dominated
            p["on_convex_frontier"] = i in front.convex
    out["pareto"] = points
    return out
