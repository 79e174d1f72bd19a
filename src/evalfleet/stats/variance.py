"""Between-task and within-task variance components (Miller 2024, section 3 and Appendix C).

Var(mu_hat | K) = (Var(x) + E[sigma_i^2] / K) / n: more runs per task shrink only the second term;
Var(x) / n is a floor that only more tasks lower. The components feed the K-projection here and
the power analysis in `evalfleet.stats.power`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from evalfleet.stats._types import PairedVarianceComponents, TaskMeans, VarianceComponents

__all__ = ["paired_variance_components", "variance_components"]

Scores = npt.ArrayLike | Sequence[Sequence[float]] | TaskMeans
"""A tasks x K matrix (NaN-padded), a ragged list of per-task run scores, or `TaskMeans`."""


def variance_components(scores: Scores) -> VarianceComponents:
    """Estimate Var(x) (between tasks) and sigma^2 (within tasks) from K runs per task.

    sigma^2_hat = mean over tasks with K_i >= 2 of the per-task run variance (ddof 1), which is
    Miller's (1/(n(K-1))) sum_i sum_k (s_ik - x_i)^2 for equal K. The between-task variance is the
    method-of-moments Var_hat(x) = Var_i(x_i) - mean_i(s_i^2 / K_i), clipped at 0 (for equal K the
    subtracted term is sigma^2_hat / K; tasks with one run use sigma^2_hat / 1). The projected SE
    for K' runs per task is sqrt((Var_hat(x) + sigma^2_hat / K') / n) (`projected_se`).

    Args:
        scores: Run scores as a tasks x K matrix padded with NaN, a list of per-task lists of
            different lengths, or a `TaskMeans` from `task_means`.

    Returns:
        The components; nan where they cannot be estimated (fewer than 2 tasks, or no task with
        2 or more runs for the within-task part).

    Raises:
        ValueError: if a task has no scored runs or a score is infinite.
    """
    means, variances, counts = _summaries(scores, "scores")
    n = int(means.shape[0])
    if n == 0:
        return VarianceComponents(
            between=math.nan,
            within=math.nan,
            var_task_means=math.nan,
            n_tasks=0,
            k_min=0,
            k_mean=math.nan,
            se=math.nan,
            clipped=False,
            method="variance components: no tasks",
        )
    within, noise = _within(variances, counts)
    var_means = _sample_variance(means)
    raw_between = var_means - noise
    clipped = bool(raw_between < 0.0)
    notes = []
    if n < 2:
        notes.append("one task: between-task variance undefined")
    if math.isnan(within):
        notes.append("no task has 2+ runs: within-task variance undefined")
    if clipped:
        notes.append("between-task estimate negative, clipped to 0")
    note = "; " + "; ".join(notes) if notes else ""
    return VarianceComponents(
        between=max(0.0, raw_between) if not math.isnan(raw_between) else math.nan,
        within=within,
        var_task_means=var_means,
        n_tasks=n,
        k_min=int(counts.min()),
        k_mean=float(counts.mean()),
        se=math.sqrt(var_means / n) if not math.isnan(var_means) else math.nan,
        clipped=clipped,
        method=f"method of moments over {n} tasks (Miller 2024 section 3.1){note}",
    )


def paired_variance_components(scores_a: Scores, scores_b: Scores) -> PairedVarianceComponents:
    """Estimate omega^2, sigma_A^2 and sigma_B^2 for planning (Miller 2024, section 5).

    With per-task means x_A,i and x_B,i of K_A,i and K_B,i runs on the same tasks:
    sigma_M^2_hat = mean per-task run variance of version M (ddof 1), and
    omega^2_hat = Var_i(x_A,i - x_B,i) - mean_i(s_A,i^2 / K_A,i) - mean_i(s_B,i^2 / K_B,i),
    clipped at 0. Plug the three into `sample_size_for_difference` and
    `minimum_detectable_effect`. Estimate them from earlier data with K >= 2 (ideally K >> 1).

    Args:
        scores_a: Runs of version A, in any form accepted by `variance_components`.
        scores_b: Runs of version B on the same tasks, rows aligned with scores_a (TaskMeans
            inputs must carry identical task ids).

    Returns:
        The components; nan where they cannot be estimated.

    Raises:
        ValueError: if the two inputs do not cover the same tasks.
    """
    if (
        isinstance(scores_a, TaskMeans)
        and isinstance(scores_b, TaskMeans)
        and not (
            scores_a.task_ids.shape == scores_b.task_ids.shape
            and np.array_equal(scores_a.task_ids, scores_b.task_ids)
        )
    ):
        raise ValueError("scores_a and scores_b must cover the same task ids")
    means_a, var_a, counts_a = _summaries(scores_a, "scores_a")
    means_b, var_b, counts_b = _summaries(scores_b, "scores_b")
    if means_a.shape != means_b.shape:
        raise ValueError(
            f"scores_a and scores_b must be aligned per task, got {means_a.shape[0]} and "
            f"{means_b.shape[0]} tasks"
        )
    n = int(means_a.shape[0])
    within_a, noise_a = _within(var_a, counts_a)
    within_b, noise_b = _within(var_b, counts_b)
    var_d = _sample_variance(means_a - means_b)
    raw = var_d - noise_a - noise_b
    clipped = bool(raw < 0.0)
    note = "; omega^2 estimate negative, clipped to 0" if clipped else ""
    if math.isnan(raw):
        note = "; needs 2+ tasks and 2+ runs per task for each version"
    return PairedVarianceComponents(
        omega2=max(0.0, raw) if not math.isnan(raw) else math.nan,
        sigma2_a=within_a,
        sigma2_b=within_b,
        var_differences=var_d,
        n_tasks=n,
        k_a_mean=float(counts_a.mean()) if n else math.nan,
        k_b_mean=float(counts_b.mean()) if n else math.nan,
        clipped=clipped,
        method=f"method of moments over {n} paired tasks (Miller 2024 section 5){note}",
    )


def _within(
    variances: npt.NDArray[np.float64], counts: npt.NDArray[np.int64]
) -> tuple[float, float]:
    """Mean within-task variance, and the mean run-noise term mean_i(sigma_i^2 / K_i)."""
    several = counts >= 2
    if not several.any():
        return math.nan, math.nan
    within = float(variances[several].mean())
    per_task = np.where(several, variances, within) / counts
    return within, float(per_task.mean())


def _sample_variance(values: npt.NDArray[np.float64]) -> float:
    if values.shape[0] < 2:
        return math.nan
    if np.ptp(values) == 0.0:
        return 0.0
    return float(np.var(values, ddof=1))


def _summaries(
    scores: Scores, name: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    if isinstance(scores, TaskMeans):
        return scores.means, scores.variances, scores.counts
    try:
        matrix = np.asarray(scores, dtype=np.float64)
    except ValueError:
        rows = [np.asarray(row, dtype=np.float64).reshape(-1) for row in scores]  # type: ignore[union-attr]
        width = max((row.shape[0] for row in rows), default=0)
        matrix = np.full((len(rows), width), np.nan)
        for i, row in enumerate(rows):
            matrix[i, : row.shape[0]] = row
    if matrix.ndim == 1 and matrix.shape[0] == 0:
        matrix = matrix.reshape(0, 0)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a tasks x runs matrix, got shape {matrix.shape}")
    if np.isinf(matrix).any():
        raise ValueError(f"{name} contains infinite scores")
    scored = ~np.isnan(matrix)
    counts = scored.sum(axis=1).astype(np.int64)
    if matrix.shape[0] and counts.min() == 0:
        empty = int(np.flatnonzero(counts == 0)[0])
        raise ValueError(f"{name}: task at row {empty} has no scored runs")
    filled = np.where(scored, matrix, 0.0)
    means = filled.sum(axis=1) / np.maximum(counts, 1)
    deviations = np.where(scored, matrix - means[:, None], 0.0)
    sum_sq = (deviations * deviations).sum(axis=1)
    variances = np.full(matrix.shape[0], np.nan)
    several = counts >= 2
    variances[several] = sum_sq[several] / (counts[several] - 1)
    return means, variances, counts
