"""Full-suite estimates from a sampled eval (tiered execution): stratified or difference estimator.

What the interval covers (docs/analysis.md, "Full-suite estimate of a sampled eval"): the
**agent's full-suite mean of the per-task expected scores**, mu = (1/N) sum_i p_i over every
task of the suite, p_i being task i's expected score (its pass probability for binary scores).
That is the quantity a full eval's own interval is about, so the two can be compared.

A sampled task's value x_i (the mean of its K_i scored runs) is p_i plus run noise of variance
sigma_i^2 / K_i. Sampling n_h of the N_h tasks of stratum h without replacement, the error of
the stratified mean has two parts: which tasks were drawn (between-task variance, which the
finite-population correction (1 - f_h) shrinks) and the run noise of the drawn tasks (which no
correction shrinks: those tasks were still run only K_i times). Hence

    V = sum_h W_h^2 [ (1 - f_h) s_h^2 + f_h sigma_h^2 ] / n_h,

s_h^2 the sample variance of x_i (or of the paired differences for the difference estimator)
and sigma_h^2 the stratum's mean run-noise variance of a task mean. sigma_h^2 is estimated as
the mean of var_i / K_i when every sampled task of the stratum has 2+ scored runs; otherwise it
cannot be told apart from between-task variance (one binary run per task) and is bounded by the
stratum's s_h^2 of the task means (pooled over strata for a stratum with one task), which drops
the correction for that stratum: conservative by at most a factor 1 / (1 - f_h) in variance. At
f = 1 with one run per task this is SE_CLT, the full report's own SE.

The first part of V is `evalfleet.stats.stratified_mean` / `difference_estimator` (Cochran 5.6,
with fpc); the run-noise part is added here. The interval is t with Satterthwaite degrees of
freedom over the combined per-stratum terms.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from evalfleet import stats
from evalfleet.errors import EvalfleetError
from evalfleet.spec.plan import Plan
from evalfleet.stats._checks import scipy_stats
from evalfleet.store.warehouse import connect


class EvalCatalog(Protocol):
    """The evals of a home as a baseline is looked up in them: the journal, or a
    SQLAlchemy-free reader of it (``evalfleet.store.snapshot.JournalSnapshot``)."""

    def list_evals(self) -> list[dict[str, Any]]:
        """Every eval, newest first, without the plan."""
        ...

    def get_eval(self, eval_id: str) -> dict[str, Any]:
        """The eval's row, with its ``plan``."""
        ...


@dataclass(frozen=True, slots=True)
class FullSuiteEstimate:
    """The full-suite mean estimated from a stratified sample of tasks."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    df: float
    n: int
    """Sampled tasks with a score."""
    n_strata: int
    population: int
    """N, tasks in the suite."""
    se_sampling: float
    """The between-task part of the SE (with the finite-population correction)."""
    se_run_noise: float
    """The run-noise part of the SE (sampled tasks' run noise, not reduced by the fpc)."""
    confidence: float
    method: str


def _t(confidence: float, df: float) -> float:
    q = 0.5 + confidence / 2
    sps = scipy_stats()
    return float(sps.norm.ppf(q)) if not math.isfinite(df) else float(sps.t.ppf(q, df))


def full_suite_estimate(
    values: npt.ArrayLike,
    strata: Sequence[str] | None,
    population_sizes: Mapping[Hashable, int] | int,
    *,
    run_variance: npt.ArrayLike | None = None,
    base: npt.ArrayLike | None = None,
    base_population_mean: float | None = None,
    confidence: float = 0.95,
) -> FullSuiteEstimate:
    """The full-suite mean of per-task expected scores, from a stratified sample of tasks.

    Args:
        values: Per sampled task, the mean of its scored runs (x_i).
        strata: Stratum label per sampled task, or None for one stratum (simple random sample).
        population_sizes: N_h per stratum label, or the suite size N when ``strata`` is None.
        run_variance: Per task, the estimated variance of x_i from its runs (sample variance of
            its run scores / K_i); nan where it has one run. None: unknown for every task.
        base: Baseline per-task values, aligned with ``values``: the difference estimator.
        base_population_mean: The baseline's mean over every task of the suite (with ``base``).
        confidence: Two-sided confidence level.

    Returns:
        The estimate; its SE is nan (and the interval too) when a partly sampled stratum has
        one scored task.

    Raises:
        ValueError: misaligned inputs, or a stratum of ``population_sizes`` with no value.
    """
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    labels = np.asarray(["" for _ in range(n)] if strata is None else list(strata), dtype=object)
    if isinstance(population_sizes, Mapping):
        sizes: dict[Hashable, int] = {k: int(v) for k, v in population_sizes.items()}
    else:
        sizes = {"": int(population_sizes)}
    if labels.size != n:
        raise ValueError("values and strata differ in length")
    rv = (np.full(n, np.nan) if run_variance is None
          else np.asarray(run_variance, dtype=np.float64))
    if rv.size != n:
        raise ValueError("values and run_variance differ in length")
    if base is None:
        core = stats.stratified_mean(x, strata, population_sizes, confidence=confidence)
        u = x
        kind = "stratified estimator"
    else:
        if base_population_mean is None:
            raise ValueError("the difference estimator needs base_population_mean")
        b = np.asarray(base, dtype=np.float64)
        core = stats.difference_estimator(x, b, base_population_mean, strata, population_sizes,
                                          confidence=confidence)
        u = x - b
        kind = "difference estimator (baseline plus paired subset differences)"
    big_n = float(sum(sizes.values()))
    keys = list(sizes)
    n_h = np.array([float(np.sum(labels == k)) for k in keys])
    w = np.array([sizes[k] for k in keys]) / big_n
    f = n_h / np.array([float(sizes[k]) for k in keys])

    def svar(arr: npt.NDArray[np.float64], k: Hashable) -> float:
        sel = arr[labels == k]
        return float(np.var(sel, ddof=1)) if sel.size >= 2 else math.nan

    s2_u = np.array([svar(u, k) for k in keys])
    s2_x = np.array([svar(x, k) for k in keys])
    several = n_h >= 2
    pooled = (float(np.sum((n_h[several] - 1) * s2_x[several]) / np.sum(n_h[several] - 1))
              if several.any() and np.sum(n_h[several] - 1) > 0 else math.nan)
    noise = np.empty(len(keys))
    measured = 0
    for j, k in enumerate(keys):
        sel = rv[labels == k]
        if sel.size and np.all(np.isfinite(sel)):
            noise[j] = float(sel.mean())
            measured += 1
        else:
            noise[j] = s2_x[j] if several[j] else pooled
    fpc_terms = np.where(f >= 1.0, 0.0, w**2 * (1.0 - f) * s2_u / n_h)
    noise_terms = w**2 * f * noise / n_h
    terms = fpc_terms + noise_terms
    se_sampling = float(core.se)
    if math.isnan(se_sampling) or np.isnan(noise_terms).any():
        se = df = math.nan
        se_noise = math.nan if np.isnan(noise_terms).any() else math.sqrt(noise_terms.sum())
        lo = hi = math.nan
    else:
        se_noise = math.sqrt(float(noise_terms.sum()))
        var = se_sampling**2 + se_noise**2
        se = math.sqrt(var)
        denom = float(np.sum(terms[several] ** 2 / (n_h[several] - 1)))
        df = var**2 / denom if denom > 0 else math.inf
        half = _t(confidence, df) * se
        lo, hi = core.estimate - half, core.estimate + half
    how_noise = ("run noise from repeat variance in every stratum" if measured == len(keys)
                 else "run noise bounded by the task-mean variance where tasks have one run "
                      f"({len(keys) - measured} of {len(keys)} strata: no fpc there)")
    method = (f"{kind} over {len(keys)} strata, n={n} of N={int(big_n)} tasks; target: mean "
              f"of per-task expected scores over the suite; SE = between-task part with fpc "
              f"+ {how_noise}; t, Satterthwaite df="
              + ("inf" if math.isinf(df) else "nan" if math.isnan(df) else f"{df:.1f}"))
    return FullSuiteEstimate(estimate=float(core.estimate), se=se, ci_low=lo, ci_high=hi,
                             df=df, n=n, n_strata=len(keys), population=int(big_n),
                             se_sampling=se_sampling, se_run_noise=se_noise,
                             confidence=confidence, method=method)


# -- the report's side: sample record, baseline, per-agent estimate ----------------------------

def sample_record_path(home: Path, eval_id: str) -> Path:
    """Where `create_eval` recorded a sampled eval's selection."""
    return home / "samples" / f"{eval_id}.json"


def read_sample_record(home: Path, eval_id: str) -> dict[str, Any] | None:
    """The sample record of an eval, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads(sample_record_path(home, eval_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("strata"), list) else None


def _per_task(con: Any, scored: str, name: str, version: str) -> dict[str, tuple[int, float,
                                                                                 float]]:
    rows = con.execute(f"""
        SELECT task_id, count(*), avg(score), var_samp(score) FROM runs
        WHERE agent_name = ? AND agent_version = ? AND {scored}
        GROUP BY task_id""", [name, version]).fetchall()
    return {str(t): (int(k), float(m), float(v) if v is not None else math.nan)
            for t, k, m, v in rows}


@dataclass(frozen=True, slots=True)
class Baseline:
    """A full eval of the same suite in which one version of the agent ran every task."""

    eval_id: str
    agent_version: str
    means: dict[str, float]
    """Per-task mean score over the baseline's scored runs."""


class BaselineFinder:
    """Finds, per agent name, the most recent finished full eval of the suite covering it."""

    def __init__(self, catalog: EvalCatalog, home: Path, *, eval_id: str, suite: str,
                 scored: str, paths_of: Callable[[str], list[str]]) -> None:
        self._catalog, self._home, self._scored = catalog, home, scored
        # an eval's live results files as connect() takes them (the store's results_paths:
        # absolute paths or URLs when the warehouse is elsewhere)
        self._paths_of = paths_of
        self._eval_id, self._suite = eval_id, suite
        self._candidates: list[tuple[str, Plan]] | None = None
        self._tables: dict[tuple[str, str, str], dict[str, float]] = {}

    def _list(self) -> list[tuple[str, Plan]]:
        if self._candidates is None:
            rows = [r for r in self._catalog.list_evals()
                    if r["eval_id"] != self._eval_id and r.get("suite_name") == self._suite
                    and r.get("finished_at")]
            rows.sort(key=lambda r: float(r["finished_at"]), reverse=True)
            found: list[tuple[str, Plan]] = []
            for r in rows:
                try:
                    plan = Plan.model_validate(self._catalog.get_eval(r["eval_id"])["plan"])
                except (EvalfleetError, ValidationError):
                    continue
                if plan.sample is None or plan.sample.share >= 1.0:
                    found.append((str(r["eval_id"]), plan))
            self._candidates = found
        return self._candidates

    def _means(self, eval_id: str, name: str, version: str) -> dict[str, float]:
        key = (eval_id, name, version)
        if key not in self._tables:
            try:
                con = connect(self._home, self._paths_of(eval_id))
            except EvalfleetError:
                self._tables[key] = {}
                return {}
            try:
                self._tables[key] = {t: m for t, (_, m, _) in
                                     _per_task(con, self._scored, name, version).items()}
            finally:
                con.close()
        return self._tables[key]

    def find(self, agent_name: str, task_ids: set[str]) -> Baseline | None:
        """The most recent full eval in which ``agent_name`` (any version) scored every task."""
        for eval_id, plan in self._list():
            for spec in plan.agents:
                if spec.name != agent_name:
                    continue
                means = self._means(eval_id, spec.name, spec.version)
                if task_ids <= means.keys():
                    return Baseline(eval_id, spec.version, means)
        return None


def _none(reason: str, record: Mapping[str, Any]) -> dict[str, Any]:
    return {"estimate": None, "se": None, "ci_low": None, "ci_high": None, "method": None,
            "tier": record.get("tier"), "fraction": record.get("fraction"), "note": reason}


def _f(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def agent_full_suite(con: Any, *, scored: str, record: Mapping[str, Any], name: str,
                     version: str, finder: BaselineFinder | None) -> dict[str, Any]:
    """The JSON ``full_suite`` entry of one agent of a sampled eval."""
    per_task = _per_task(con, scored, name, version)
    stratum_of: dict[str, str] = {}
    sizes: dict[Hashable, int] = {}
    all_tasks: set[str] = set()
    for s in record["strata"]:
        sizes[s["label"]] = int(s["population"])
        all_tasks.update(s["tasks"])
        for tid in s["sampled"]:
            stratum_of[tid] = s["label"]
    ids = sorted(t for t in per_task if t in stratum_of)
    empty = sorted(str(k) for k in set(sizes) - {stratum_of[t] for t in ids})
    if empty:
        return _none(f"no scored task in {len(empty)} of {len(sizes)} strata (e.g. "
                     f"{empty[0]}): no full-suite estimate", record)
    values = np.array([per_task[t][1] for t in ids])
    runs = np.array([per_task[t][0] for t in ids], dtype=np.float64)
    rv = np.array([per_task[t][2] for t in ids]) / runs
    labels = [stratum_of[t] for t in ids]
    baseline = finder.find(name, all_tasks) if finder is not None else None
    alternative: dict[str, Any] | None = None
    if baseline is None:
        est = full_suite_estimate(values, labels, sizes, run_variance=rv)
        source = None
    else:
        base_mean = float(np.mean([baseline.means[t] for t in sorted(all_tasks)]))
        est = full_suite_estimate(values, labels, sizes, run_variance=rv,
                                  base=np.array([baseline.means[t] for t in ids]),
                                  base_population_mean=base_mean)
        source = {"eval_id": baseline.eval_id, "agent_version": baseline.agent_version,
                  "full_suite_mean": base_mean}
        plain = full_suite_estimate(values, labels, sizes, run_variance=rv)
        # the rule is fixed (a baseline means the difference estimator); the other is shown
        alternative = {"kind": "stratified", "estimate": _f(plain.estimate), "se": _f(plain.se),
                       "ci_low": _f(plain.ci_low), "ci_high": _f(plain.ci_high)}
    out: dict[str, Any] = {k: _f(v) if isinstance(v, float) else v
                           for k, v in asdict(est).items()}
    out.update(kind="difference" if baseline is not None else "stratified",
               baseline=source, alternative=alternative, tier=record.get("tier"),
               fraction=record.get("fraction"), rotation=record.get("rotation"), note=None)
    if math.isnan(est.se):
        out["note"] = "a partly sampled stratum has one scored task: SE undefined"
    return out


def add_full_suite(agents: list[dict[str, Any]], *, con: Any, home: Path,
                   eval_row: Mapping[str, Any], plan: Plan, catalog: EvalCatalog | None,
                   scored: str, paths_of: Callable[[str], list[str]] | None = None) -> None:
    """Set ``agents[i]["full_suite"]``: the full-suite estimate of a sampled eval, else None.

    The baseline for the difference estimator is looked up in ``catalog``, its results files
    found with ``paths_of`` (no baseline without both).
    """
    sampled = plan.sample is not None and plan.sample.share < 1.0
    record = read_sample_record(home, str(eval_row["eval_id"])) if sampled else None
    finder = (BaselineFinder(catalog, home, eval_id=str(eval_row["eval_id"]),
                             suite=str(eval_row["suite_name"]), scored=scored,
                             paths_of=paths_of)
              if catalog is not None and paths_of is not None and record is not None else None)
    for a, spec in zip(agents, plan.agents, strict=True):
        if not sampled:
            a["full_suite"] = None
        elif record is None:
            a["full_suite"] = _none("no sample record for this eval (samples/EVAL_ID.json): "
                                    "no full-suite estimate", {})
        elif not a.get("overall"):
            a["full_suite"] = _none("no scored run yet", record)
        else:
            try:
                a["full_suite"] = agent_full_suite(con, scored=scored, record=record,
                                                   name=spec.name, version=spec.version,
                                                   finder=finder)
            except (KeyError, TypeError, ValueError) as exc:  # a damaged record
                a["full_suite"] = _none(f"the sample record samples/EVAL_ID.json cannot be "
                                        f"used ({type(exc).__name__}: {exc}): no full-suite "
                                        "estimate", {})
