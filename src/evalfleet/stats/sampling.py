"""Stratified subsets of a task suite and allocation of runs (Cochran, Sampling Techniques, ch. 5).

Daily or weekly subsets of a suite are stratified samples without replacement, so their SEs carry
the finite-population correction. When every task has a baseline score, the difference estimator
(a control variate) is far more precise than the direct subset mean.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import numpy as np
import numpy.typing as npt

from evalfleet.stats._checks import (
    as_count,
    as_labels,
    as_values,
    check_probability,
    check_same_length,
    critical_value,
    df_label,
    interval,
)
from evalfleet.stats._types import Allocation, StratifiedEstimate

__all__ = ["difference_estimator", "neyman_allocation", "stratified_mean"]


def stratified_mean(
    values: npt.ArrayLike,
    strata: npt.ArrayLike | None,
    population_sizes: Mapping[Hashable, int] | int,
    *,
    confidence: float = 0.95,
) -> StratifiedEstimate:
    """Stratified mean of tasks sampled without replacement, with finite-population correction.

    With N_h tasks in stratum h (W_h = N_h / N), n_h sampled (f_h = n_h / N_h), sample mean
    ybar_h and sample variance s_h^2 (ddof 1) (Cochran 1977, eqs. 5.1 and 5.6):
    ybar_st = sum_h W_h ybar_h,  V(ybar_st) = sum_h W_h^2 (1 - f_h) s_h^2 / n_h.
    The interval uses t with the Satterthwaite effective degrees of freedom
    (sum_h a_h s_h^2)^2 / sum_h (a_h s_h^2)^2 / (n_h - 1), a_h = W_h^2 (1 - f_h) / n_h
    (Cochran eq. 5A.42), which is n - 1 for a single stratum. A fully sampled stratum (f_h = 1)
    contributes no variance.

    Args:
        values: One value per sampled task.
        strata: Stratum label per sampled task, or None for a single stratum.
        population_sizes: Tasks per stratum in the full suite ({label: N_h}); an int N when
            strata is None.
        confidence: Two-sided confidence level.

    Returns:
        The estimate with SE and interval. The SE is nan when a partly sampled stratum has only
        one sampled task (its variance cannot be estimated).

    Raises:
        ValueError: if a stratum has no sampled task or more sampled tasks than its N_h, a label
            is missing from population_sizes, or the inputs are misaligned.
    """
    conf = check_probability(confidence, "confidence")
    arr = as_values(values, "values")
    codes, sizes = _strata(arr.shape[0], strata, population_sizes)
    n_strata = sizes.shape[0]
    n_h = np.bincount(codes, minlength=n_strata).astype(np.float64)
    big_n = float(sizes.sum())
    weights = sizes / big_n
    means = np.bincount(codes, weights=arr, minlength=n_strata) / n_h
    dev = arr - means[codes]
    sum_sq = np.bincount(codes, weights=dev * dev, minlength=n_strata)
    fraction = n_h / sizes
    census = fraction >= 1.0
    s2 = np.full(n_strata, np.nan)
    several = n_h >= 2
    s2[several] = sum_sq[several] / (n_h[several] - 1)
    s2[census] = np.where(np.isnan(s2[census]), 0.0, s2[census])
    terms = weights**2 * (1.0 - fraction) * s2 / n_h
    estimate = float(weights @ means)
    notes = ""
    if np.isnan(terms).any():
        se = df = math.nan
        notes = "; a partly sampled stratum has 1 task: SE undefined"
    else:
        var = float(terms.sum())
        se = math.sqrt(var)
        positive = terms > 0
        if var == 0.0:
            df = math.inf
        else:
            df = var**2 / float((terms[positive] ** 2 / (n_h[positive] - 1)).sum())
    low, high = interval(estimate, se, critical_value(conf, df))
    return StratifiedEstimate(
        estimate=estimate,
        se=se,
        ci_low=low,
        ci_high=high,
        n=int(arr.shape[0]),
        n_strata=n_strata,
        population_size=int(big_n),
        df=df,
        confidence=conf,
        method=(
            f"stratified mean over {n_strata} strata (n={arr.shape[0]} of N={int(big_n)}), "
            f"with fpc (Cochran 5.6), Satterthwaite {df_label(df)}{notes}"
        ),
    )


def difference_estimator(
    new: npt.ArrayLike,
    base: npt.ArrayLike,
    base_population_mean: float,
    strata: npt.ArrayLike | None,
    population_sizes: Mapping[Hashable, int] | int,
    *,
    confidence: float = 0.95,
) -> StratifiedEstimate:
    """Full-suite mean of a new version from a subset, using baseline scores as a control variate.

    mu_new = ybar_base,full + sum_h W_h mean_{i in S_h}(y_new,i - y_base,i), with variance
    sum_h W_h^2 (1 - f_h) S_d,h^2 / n_h (Cochran ch. 7, difference estimator).
    Because S_d << S_y when the baseline predicts today's score, this beats the direct subset
    mean: N = 2000, n = 100, S_d = 0.35 gives SE 0.034114 against 0.044835 for S_y = 0.46.

    Args:
        new: New-version value per sampled task.
        base: Baseline value per sampled task (aligned with new).
        base_population_mean: Baseline mean over the whole suite, each task weighted equally.
        strata: Stratum label per sampled task, or None for a single stratum.
        population_sizes: Tasks per stratum ({label: N_h}), or an int N when strata is None.
        confidence: Two-sided confidence level.

    Returns:
        The estimate of the new version's full-suite mean with SE and interval.

    Raises:
        ValueError: as for `stratified_mean`, or if the baseline mean is not finite.
    """
    new_arr = as_values(new, "new")
    base_arr = as_values(base, "base")
    check_same_length(new_arr, base_arr, "new and base")
    shift = float(base_population_mean)
    if not math.isfinite(shift):
        raise ValueError(f"base_population_mean must be finite, got {base_population_mean!r}")
    diff = stratified_mean(new_arr - base_arr, strata, population_sizes, confidence=confidence)
    return StratifiedEstimate(
        estimate=shift + diff.estimate,
        se=diff.se,
        ci_low=shift + diff.ci_low,
        ci_high=shift + diff.ci_high,
        n=diff.n,
        n_strata=diff.n_strata,
        population_size=diff.population_size,
        df=diff.df,
        confidence=diff.confidence,
        method=f"difference estimator (baseline control variate); {diff.method}",
    )


def _strata(
    n: int,
    strata: npt.ArrayLike | None,
    population_sizes: Mapping[Hashable, int] | int,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    if n == 0:
        raise ValueError("no sampled tasks: a stratified mean needs at least one per stratum")
    if strata is None:
        if isinstance(population_sizes, Mapping):
            raise ValueError("with strata=None, population_sizes must be the suite size N (an int)")
        big_n = as_count(population_sizes, "population_sizes")
        if big_n < n:
            raise ValueError(f"population size {big_n} is smaller than the sample size {n}")
        return np.zeros(n, dtype=np.intp), np.array([float(big_n)])
    if not isinstance(population_sizes, Mapping):
        raise ValueError("population_sizes must map each stratum label to its size N_h")
    labels = as_labels(strata, "strata", n)
    uniques, inverse = np.unique(labels, return_inverse=True)
    keys = list(population_sizes)
    sampled = {u.item() if hasattr(u, "item") else u for u in uniques}
    missing = [k for k in keys if k not in sampled]
    if missing:
        raise ValueError(f"strata {missing!r} have no sampled tasks; sample at least one each")
    sizes = np.empty(uniques.shape[0])
    counts = np.bincount(inverse.reshape(-1), minlength=uniques.shape[0])
    for j, label in enumerate(uniques):
        key = label.item() if hasattr(label, "item") else label
        if key not in population_sizes:
            raise ValueError(f"stratum {key!r} is missing from population_sizes")
        size = as_count(population_sizes[key], f"population_sizes[{key!r}]")
        if size < counts[j]:
            raise ValueError(f"stratum {key!r} has {counts[j]} sampled tasks but N_h = {size}")
        sizes[j] = size
    return inverse.astype(np.intp).reshape(-1), sizes


def neyman_allocation(
    total: int,
    stds: npt.ArrayLike,
    sizes: npt.ArrayLike | None = None,
    *,
    minimum: int = 0,
) -> Allocation:
    """Neyman allocation of a budget across strata or tasks (Cochran 1977, section 5.5).

    Without sizes (runs across tasks): K_i = B sigma_i / sum_j sigma_j, which
    minimises the run-noise variance sum_i sigma_i^2 / K_i for sum_i K_i = B. With stratum sizes
    N_h (tasks across strata): n_h = n N_h S_h / sum_k N_k S_k, capped at N_h; the variance is
    then V_Neyman = (sum_h W_h S_h)^2 / n - (1/N) sum_h W_h S_h^2.

    Bounds (a floor of `minimum` per unit, the cap N_h) are handled exactly: the constrained
    optimum is x_h = clip(lambda w_h, lower_h, upper_h) with lambda chosen so the x_h sum to the
    budget. Units whose weight is 0 (or below 1e-12 of the largest) get the floor, unless the
    others are full; if every weight is 0 the budget is split evenly. The continuous optimum
    is rounded by largest remainders within the bounds.
    For binary tasks use sigma_i = sqrt(p_i (1 - p_i)) with a shrunk p_i = (c_i + 1) / (K0 + 2)
    from a pilot of K0 runs, so that 0/K0 and K0/K0 tasks keep a small share.

    Args:
        total: Budget to allocate (runs, or sampled tasks).
        stds: Standard deviation per unit (sigma_i or S_h), >= 0.
        sizes: Optional population size per stratum N_h; weights become N_h S_h and N_h caps
            the allocation.
        minimum: Floor per unit (capped at N_h when sizes are given).

    Returns:
        Integer counts summing to `total`, with the continuous optimum.

    Raises:
        ValueError: on negative or non-finite stds, misaligned sizes, or a budget that the
            bounds make infeasible.
    """
    budget = as_count(total, "total")
    floor = as_count(minimum, "minimum")
    sd = as_values(stds, "stds")
    if np.any(sd < 0):
        raise ValueError("stds must be non-negative")
    m = sd.shape[0]
    if m == 0:
        raise ValueError("stds is empty: nothing to allocate to")
    if sizes is None:
        weights = sd
        upper = np.full(m, np.inf)
        what = "runs across units, proportional to sigma"
    else:
        size_arr = as_values(sizes, "sizes")
        check_same_length(sd, size_arr, "stds and sizes")
        if np.any(size_arr < 1) or np.any(size_arr != np.round(size_arr)):
            raise ValueError("sizes must be positive integers")
        weights = sd * size_arr
        upper = size_arr
        what = "sample across strata, proportional to N_h S_h, capped at N_h"
    lower = np.minimum(float(floor), upper)
    if lower.sum() > budget:
        raise ValueError(f"total {budget} is below the floor of {floor} per unit ({m} units)")
    if upper.sum() < budget:
        raise ValueError(f"total {budget} exceeds the population size {int(upper.sum())}")
    exact = _bounded_proportional(float(budget), weights, lower, upper)
    counts = np.floor(exact + 1e-9).astype(np.int64)
    remainder = budget - int(counts.sum())
    if remainder > 0:
        room = counts < upper
        fraction = np.where(room, exact - counts, -np.inf)
        order = np.argsort(-fraction, kind="stable")[:remainder]
        counts[order] += 1
    elif remainder < 0:  # only from the 1e-9 guard; take back from the smallest remainders
        fraction = np.where(counts > lower, exact - counts, np.inf)
        order = np.argsort(fraction, kind="stable")[:-remainder]
        counts[order] -= 1
    floor_text = f", floor {floor}" if floor else ""
    return Allocation(
        counts=tuple(int(c) for c in counts),
        exact=tuple(float(x) for x in exact),
        total=budget,
        method=f"Neyman allocation of {budget}: {what}{floor_text}, largest-remainder rounding",
    )


def _bounded_proportional(
    total: float,
    weights: npt.NDArray[np.float64],
    lower: npt.NDArray[np.float64],
    upper: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """x = clip(lambda w, lower, upper) with sum(x) = total (KKT optimum of sum w^2 / x)."""
    if not (weights > 0).any():
        return _bounded_proportional(total, np.ones_like(weights), lower, upper)
    # Scale-free weights; shares below 1e-12 of the largest are treated as 0 so that lambda
    # stays far from overflow.
    weights = weights / weights.max()
    weights = np.where(weights < 1e-12, 0.0, weights)
    positive = weights > 0
    capacity = float(np.where(positive, upper, lower).sum())
    if capacity < total:
        # The positive-weight units are full; spread the rest evenly over the others.
        x = np.where(positive, upper, lower)
        rest = ~positive
        x[rest] = _bounded_proportional(
            total - float(x[positive].sum()), np.ones(int(rest.sum())), lower[rest], upper[rest]
        )
        return x

    def allocated(lam: float) -> npt.NDArray[np.float64]:
        return np.clip(lam * weights, lower, upper)

    lo, hi = 0.0, 1.0
    while allocated(hi).sum() < total:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if allocated(mid).sum() < total:
            lo = mid
        else:
            hi = mid
    x = allocated(hi)
    free = positive & (x > lower) & (x < upper)
    if free.any():
        fixed_sum = float(x[~free].sum())
        lam = (total - fixed_sum) / float(weights[free].sum())
        x[free] = np.clip(lam * weights[free], lower[free], upper[free])
    return x
