"""Paired comparison of agent versions on their shared tasks.

The difference is NEW - BASE, per task, on the task ids both sides scored. One test is chosen
per question (the overall difference, and each category on its own), by design and before
looking at the p-value, and the p-value printed is the one that decided:

* one binary run per task on both sides (every score 0 or 1), no clustering: McNemar's mid-p
  on the discordant tasks (the exact conditional p is reported beside it);
* fewer than ``SMALL_N`` shared tasks otherwise: the exact sign-flip permutation test of the mean
  difference (whole clusters flip when clustered);
* otherwise: the paired t-test on per-task mean differences (CR1 with t(G-1) when clustered).

The interval is the paired t interval (McNemar's own interval for binary K = 1). A change is a
regression (or an improvement) when the chosen test's two-sided p is below alpha (Holm-adjusted
across categories) AND the difference is beyond the practical margin. docs/analysis.md has
the formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evalfleet import stats
from evalfleet.analysis.report import SCORED
from evalfleet.store.warehouse import connect

SMALL_N = 30
"""Below this many shared tasks (and not binary K = 1) the exact permutation test is used."""


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
        out = {k: np.array([]) for k in ("task_id", "category", "repository", "n", "mean",
                                          "c", "binary", "cost", "latency")}
        out["excluded"] = np.array([0, 0])
        return out
    con = connect(home, side.paths)
    try:
        # runs left out of the score as infra or scorer errors, and runs scored
        excl = con.execute(f"""
            SELECT sum(CASE WHEN {SCORED} THEN 0 WHEN status = 'cancelled' THEN 0
                            WHEN error_kind = 'config_error' THEN 0 ELSE 1 END),
                   sum(CASE WHEN {SCORED} THEN 1 ELSE 0 END)
            FROM runs WHERE eval_id = ? AND agent_name = ? AND agent_version = ?""",
            [side.eval_id, side.agent_name, side.agent_version]).fetchone()
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
    out = {k: np.asarray(v) for k, v in tbl.items()}
    out["excluded"] = np.array([int(excl[0] or 0), int(excl[1] or 0)]) if excl \
        else np.array([0, 0])
    return out


def _is_binary_k1(t: dict[str, npt.NDArray[Any]], idx: npt.NDArray[np.intp]) -> bool:
    """One run per task, every one with a verdict and a 0/1 score."""
    if idx.size == 0:
        return False
    means = t["mean"][idx].astype(float)
    return (bool(np.all(t["binary"][idx])) and int(t["n"][idx].max()) == 1
            and bool(np.all((means == 0.0) | (means == 1.0))))


def paired_test(new: npt.NDArray[np.float64], base: npt.NDArray[np.float64], *,
                binary_k1: bool, clusters: npt.NDArray[Any] | None = None) -> dict[str, Any]:
    """The difference NEW - BASE with the test chosen for this design (module docstring).

    Returns the JSON form: estimate, se, interval, ``p_value`` of the chosen test, ``test``
    (``mcnemar-midp``, ``permutation-exact`` or ``paired-t``) and ``method`` in words.
    """
    diff = stats.paired_difference(new, base, clusters)
    out = _diff_dict(diff)
    interval_note = ""
    if diff.se == 0.0:
        # every task changed by the same amount (all ties, say): t * 0 would be a point
        # interval, certainty that a handful of tasks cannot give, so there is none
        out.update(ci_low=None, ci_high=None)
        interval_note = ("; SE 0 (every task changed by the same amount), so no interval: "
                         "a point would claim certainty")
    n = int(new.size)
    if binary_k1 and clusters is None:
        pass_n, pass_b = new >= 0.5, base >= 0.5
        b = int(np.sum(pass_n & ~pass_b))
        c = int(np.sum(~pass_n & pass_b))
        mc = stats.mcnemar_test(b, c, n, method="midp")
        out.update(p_value=_f(mc.p_value), test="mcnemar-midp",
                   method=f"McNemar mid-p on {b + c} discordant of {n} tasks "
                          f"({b} pass only in NEW, {c} only in BASE); interval: {diff.method}"
                          f"{interval_note}",
                   mcnemar={"b_new_only": b, "c_base_only": c, "p_midp": _f(mc.p_midp),
                            "p_exact": _f(mc.p_exact)})
    elif n < SMALL_N:
        perm = stats.paired_permutation_test(new, base, clusters, n_resamples=math.inf)
        out.update(p_value=_f(perm.p_value), test="permutation-exact",
                   method=f"exact {perm.method} (fewer than {SMALL_N} tasks); interval: "
                          f"{diff.method}{interval_note}")
    else:
        out.update(test="paired-t", method=f"paired t: {diff.method}{interval_note}")
    return out


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
    binary = _is_binary_k1(tb, sb) and _is_binary_k1(tn, sn)
    diff_out = paired_test(xn, xb, binary_k1=binary, clusters=clusters)
    out["diff"] = diff_out
    out["overall_verdict"] = _verdict(diff_out, alpha, margin)
    out["mde_note"] = _mde_note(xn - xb, alpha)

    by_cat: list[dict[str, Any]] = []
    for cat in sorted(set(cats.tolist())):
        m = cats == cat
        by_cat.append({"category": cat, **paired_test(xn[m], xb[m], binary_k1=binary)})
    two_sided = [1.0 if r["p_value"] is None else r["p_value"] for r in by_cat]
    holm = stats.adjust_pvalues(two_sided, "holm", alpha=alpha)
    bh = stats.adjust_pvalues(two_sided, "bh", alpha=alpha)
    regressions: list[dict[str, Any]] = []
    improvements: list[dict[str, Any]] = []
    for j, row in enumerate(by_cat):
        row["p_holm"] = holm.adjusted[j]
        row["p_bh"] = bh.adjusted[j]
        est = row["estimate"]
        flag = {"category": row["category"], "estimate": est, "p_holm": holm.adjusted[j],
                "test": row["test"]}
        if est is not None and holm.reject[j] and est < -margin:
            regressions.append(flag)
        if est is not None and holm.reject[j] and est > margin:
            improvements.append(flag)
    overall = {"category": "(overall)", "estimate": diff_out["estimate"],
               "p_value": diff_out["p_value"], "test": diff_out["test"]}
    if out["overall_verdict"] == "regression":
        regressions.insert(0, overall)
    if out["overall_verdict"] == "improvement":
        improvements.insert(0, overall)
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
    out["excluded"] = _excluded_flag(tb["excluded"], tn["excluded"])
    return out


def _verdict(d: dict[str, Any], alpha: float, margin: float) -> str:
    """Regression / improvement: the chosen test's two-sided p below alpha AND the difference
    beyond the practical margin; the p that decides is the p that is printed."""
    p, est = d["p_value"], d["estimate"]
    if p is None or est is None or not p < alpha:
        return "no significant change"
    if est < -margin:
        return "regression"
    if est > margin:
        return "improvement"
    return "no significant change"


def _excluded_flag(base: npt.NDArray[Any], new: npt.NDArray[Any]) -> dict[str, Any]:
    """Compare the share of runs lost to infra and scorer errors on both sides.

    No significance test: the flag says NEW lost a larger share of its runs than BASE, with
    both rates, because an agent that avoids being graded must not look better for it.
    """
    def side(v: npt.NDArray[Any]) -> dict[str, Any]:
        errored, scored = int(v[0]), int(v[1])
        total = errored + scored
        return {"errored": errored, "scored": scored,
                "rate": errored / total if total else None}

    b, n = side(base), side(new)
    flagged = n["rate"] is not None and n["rate"] > (b["rate"] or 0.0)
    return {"base": b, "new": n, "flagged": bool(flagged),
            "method": "share of runs excluded as infra or scorer errors; a flag, not a test"}


def _mde_note(d: npt.NDArray[np.float64], alpha: float) -> dict[str, Any]:
    """What this comparison could have detected (power 0.8), so 'no change' has a size.

    ``mde`` is None with a ``why`` when it cannot be computed or would be 0 (a 0 would claim
    that any change, however small, would have been seen).
    """
    n = d.size
    if n < 2:
        return {"mde": None, "why": f"{n} shared task(s): no task-to-task variation to size "
                                    "a detectable change"}
    var = float(np.var(d, ddof=1))
    if not var > 0.0:
        return {"mde": None, "why": "every shared task changed by exactly the same amount, so "
                                    "the variance is 0 and the detectable change is undefined"}
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
