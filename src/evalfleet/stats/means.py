"""Means over tasks with task- or cluster-level standard errors (Miller 2024, sections 2 and 3).

The task is the unit of independence: run-level scores are first reduced to one mean per task
(`task_means`), then averaged with equal task weight. The standard error is the CLT standard
error across tasks (Miller Eq. 1), or the cluster-robust CR1 standard error when tasks come in
families (Miller section 2.2; Cameron and Miller 2015), with t critical values.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from evalfleet.stats._checks import (
    Distribution,
    as_labels,
    as_values,
    check_distribution,
    check_probability,
    codes_for,
    critical_value,
    df_label,
    effective_df,
    interval,
)
from evalfleet.stats._types import MeanEstimate, TaskMeans

__all__ = ["clustered_se", "mean_with_se", "task_means"]

ClusteredKind = Literal["CR1", "CR0", "miller-eq4"]


def task_means(
    values: npt.ArrayLike,
    task_ids: npt.ArrayLike,
    clusters: npt.ArrayLike | None = None,
    *,
    nan_policy: Literal["raise", "omit"] = "raise",
) -> TaskMeans:
    """Reduce run-level scores to one mean per task, x_i = (1/K_i) sum_k s_ik.

    Vectorised with `np.unique` and `np.bincount`, so it handles hundreds of thousands of runs
    without Python loops. Downstream estimators weight every task equally, whatever its K_i
    (the pooled run mean would weight tasks by how often they ran).

    Args:
        values: Score of each run (binary or partial credit).
        task_ids: Task id of each run (any sortable labels).
        clusters: Optional cluster (task family) label of each run. Every run of a task must carry
            the same label; the result then holds one label per task.
        nan_policy: 'raise' (default) rejects NaN scores; 'omit' drops those runs, e.g. runs that
            hit infrastructure failures and are missing data, not failures.

    Returns:
        Sorted task ids with their means, run counts and within-task variances (ddof 1).

    Raises:
        ValueError: on mismatched lengths, NaN scores with nan_policy='raise', or a task whose
            runs carry different cluster labels.
    """
    raw = np.asarray(values, dtype=np.float64)
    if raw.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {raw.shape}")
    ids = as_labels(task_ids, "task_ids", raw.shape[0])
    labels = None if clusters is None else as_labels(clusters, "clusters", raw.shape[0])
    finite = np.isfinite(raw)
    if not finite.all():
        if nan_policy == "raise":
            raise ValueError(
                "values contains NaN or infinite scores; pass nan_policy='omit' to drop those runs "
                "(infrastructure failures are missing data)"
            )
        if nan_policy != "omit":
            raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
        raw, ids = raw[finite], ids[finite]
        labels = None if labels is None else labels[finite]

    uniques, inverse = np.unique(ids, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_tasks = uniques.shape[0]
    counts = np.bincount(inverse, minlength=n_tasks).astype(np.int64)
    means = np.bincount(inverse, weights=raw, minlength=n_tasks) / np.maximum(counts, 1)
    deviations = raw - means[inverse]
    sum_sq = np.bincount(inverse, weights=deviations * deviations, minlength=n_tasks)
    variances = np.full(n_tasks, np.nan)
    several = counts >= 2
    variances[several] = sum_sq[several] / (counts[several] - 1)

    task_clusters = None
    if labels is not None:
        cluster_codes, n_clusters = codes_for(labels)
        pairs = np.unique(inverse.astype(np.int64) * max(n_clusters, 1) + cluster_codes)
        if pairs.shape[0] != n_tasks:
            task_of_pair = pairs // max(n_clusters, 1)
            duplicated = task_of_pair[1:][task_of_pair[1:] == task_of_pair[:-1]]
            bad = uniques[int(duplicated[0])]
            raise ValueError(f"task {bad!r} has runs in more than one cluster")
        first_run = np.empty(n_tasks, dtype=np.intp)
        first_run[inverse[::-1]] = np.arange(raw.shape[0] - 1, -1, -1)
        task_clusters = labels[first_run]
    return TaskMeans(
        task_ids=uniques,
        means=means,
        counts=counts,
        variances=variances,
        clusters=task_clusters,
    )


def clustered_se(
    values: npt.ArrayLike,
    clusters: npt.ArrayLike,
    *,
    kind: ClusteredKind = "CR1",
) -> float:
    """Cluster-robust standard error of the mean of `values`.

    With residuals u_i = s_i - mean(s) and cluster sums U_c = sum_{i in c} u_i:

    * CR0 (Miller 2024, Appendix A and Eq. 8): V0 = sum_c U_c^2 / n^2.
    * CR1 (default; Inspect `stderr(cluster=...)`, statsmodels `cov_type='cluster'`, Stata):
      V1 = G / (G - 1) * V0. With singleton clusters CR1 equals SE_CLT exactly.
    * 'miller-eq4' (Miller 2024, Eq. 4): SE_CLT^2 + V0 - sum_i u_i^2 / n^2.

    Use CR1 with t(G-1) critical values and always report G.

    Args:
        values: One value per task (e.g. per-task means).
        clusters: Cluster label of each task.
        kind: 'CR1', 'CR0' or 'miller-eq4'.

    Returns:
        The standard error; nan when it is undefined (no tasks, or a single cluster for CR1),
        0.0 when all values are identical.

    Raises:
        ValueError: on mismatched lengths, non-finite values or an unknown kind.
    """
    if kind not in ("CR1", "CR0", "miller-eq4"):
        raise ValueError(f"kind must be 'CR1', 'CR0' or 'miller-eq4', got {kind!r}")
    arr = as_values(values, "values")
    codes, n_clusters = codes_for(as_labels(clusters, "clusters", arr.shape[0]))
    return _clustered_se(arr, codes, n_clusters, kind)


def _clustered_se(
    arr: npt.NDArray[np.float64],
    codes: npt.NDArray[np.intp],
    n_clusters: int,
    kind: ClusteredKind,
) -> float:
    n = arr.shape[0]
    if n == 0:
        return math.nan
    if kind == "CR1" and n_clusters < 2:
        return math.nan
    if kind == "miller-eq4" and n < 2:
        return math.nan
    if np.ptp(arr) == 0.0:
        return 0.0
    resid = arr - arr.mean()
    sums = np.bincount(codes, weights=resid, minlength=n_clusters)
    v0 = float(sums @ sums) / n**2
    if kind == "CR0":
        return math.sqrt(v0)
    if kind == "CR1":
        return math.sqrt(n_clusters / (n_clusters - 1) * v0)
    ss = float(resid @ resid)
    return math.sqrt(max(0.0, ss / (n * (n - 1)) + v0 - ss / n**2))


def clt_se(arr: npt.NDArray[np.float64]) -> float:
    """SE_CLT = sqrt(Var(s) / n) with ddof 1 (Miller Eq. 1); nan for n < 2, 0 if constant."""
    n = arr.shape[0]
    if n < 2:
        return math.nan
    if np.ptp(arr) == 0.0:
        return 0.0
    return float(np.std(arr, ddof=1)) / math.sqrt(n)


def summarise(
    arr: npt.NDArray[np.float64],
    clusters: npt.ArrayLike | None,
    distribution: Distribution,
    what: str,
) -> tuple[float, float, float, int | None, str]:
    """Mean, SE, df, G and a method string for the values `arr` (one per task).

    Shared by the mean, paired-difference, pass@k and ratio estimators so that they all follow
    the same rules: SE_CLT with df n-1, or CR1 with df G-1; nan where undefined.
    """
    n = arr.shape[0]
    if n == 0:
        return math.nan, math.nan, math.nan, None, f"{what}: no tasks, estimate undefined"
    estimate = float(arr[0]) if np.ptp(arr) == 0.0 else float(arr.mean())
    if clusters is None:
        se = clt_se(arr)
        df = effective_df(float(n - 1), distribution)
        if n == 1:
            return estimate, se, math.nan, None, f"{what} over 1 task: SE undefined (n=1)"
        return (
            estimate,
            se,
            df,
            None,
            f"{what} over {n} tasks, SE_CLT (Miller Eq. 1), {df_label(df)}",
        )
    codes, n_clusters = codes_for(as_labels(clusters, "clusters", n))
    se = _clustered_se(arr, codes, n_clusters, "CR1")
    if n_clusters < 2:
        return (
            estimate,
            se,
            math.nan,
            n_clusters,
            f"{what} over {n} tasks in 1 cluster: CR1 SE undefined (G=1)",
        )
    df = effective_df(float(n_clusters - 1), distribution)
    return (
        estimate,
        se,
        df,
        n_clusters,
        f"{what} over {n} tasks, CR1 by cluster (G={n_clusters}), {df_label(df)}",
    )


def mean_with_se(
    values: npt.ArrayLike,
    clusters: npt.ArrayLike | None = None,
    *,
    confidence: float = 0.95,
    distribution: Literal["t", "normal"] = "t",
) -> MeanEstimate:
    """Mean over tasks of per-task means, with its standard error and confidence interval.

    Estimator mu = (1/n) sum_i x_i, each task weighted equally. Without clusters the SE is
    SE_CLT = sqrt(sum_i (x_i - mu)^2 / (n - 1) / n) (Miller 2024, Eq. 1) with t(n-1) critical
    values; with clusters it is CR1 = sqrt(G/(G-1) sum_c U_c^2) / n (Miller 2024, section 2.2 and
    Appendix A, with the finite-cluster factor of Inspect and statsmodels) with t(G-1).

    The t critical value is used at every n by default (as Inspect's `ci()` does): it converges
    to z for large n, so there is no jump at n = 50, and it is the right choice for few tasks or
    clusters. Pass distribution='normal' for Miller's z interval (Eq. 3).

    The interval is not clipped to [0, 1]: with few clusters it can leave that range, which is
    itself a warning sign.

    Args:
        values: One value per task (use `task_means` to reduce runs first).
        clusters: Optional cluster (task family) label per task.
        confidence: Two-sided confidence level.
        distribution: 't' (default) or 'normal'.

    Returns:
        The estimate with SE and interval. With no tasks everything is nan; with one task (or a
        single cluster) the SE and interval are nan; identical values give SE 0.

    Raises:
        ValueError: on non-finite values, mismatched cluster labels or a bad confidence level.
    """
    conf = check_probability(confidence, "confidence")
    dist = check_distribution(distribution)
    arr = as_values(values, "values")
    estimate, se, df, n_clusters, method = summarise(arr, clusters, dist, "mean")
    low, high = interval(estimate, se, critical_value(conf, df))
    return MeanEstimate(
        estimate=estimate,
        se=se,
        ci_low=low,
        ci_high=high,
        n=int(arr.shape[0]),
        n_clusters=n_clusters,
        df=df,
        confidence=conf,
        method=method,
    )
