"""Input validation and small numeric helpers shared by the statistics modules."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Alternative = Literal["two-sided", "less", "greater"]
Distribution = Literal["t", "normal"]

_ALTERNATIVES = ("two-sided", "less", "greater")
_DISTRIBUTIONS = ("t", "normal")


def scipy_stats() -> Any:
    """``scipy.stats``, imported on first use: importing it costs about a second, which every
    command that imports evalfleet.stats paid even when it computed nothing."""
    from scipy import stats

    return stats


def scipy_special() -> Any:
    """``scipy.special``, imported on first use: the functions behind scipy.stats' normal, t and
    binomial distributions (``ndtri``, ``stdtrit``, ``_binom_ppf``...), at about a third of the
    import cost of scipy.stats. Called as scipy.stats calls them, they give the same bits
    (tests/stats/test_scipy_special.py checks that on random inputs)."""
    from scipy import special

    return special


_NORMAL_QUANTILES: dict[float, float] = {
    0.975: 1.959963984540054, 0.025: -1.9599639845400545,
    0.95: 1.6448536269514722, 0.05: -1.6448536269514729,
    0.995: 2.5758293035489004, 0.005: -2.575829303548901,
    0.99: 2.3263478740408408, 0.01: -2.3263478740408408,
    0.9: 1.2815515655446004, 0.1: -1.2815515655446004,
}
"""``scipy.special.ndtri`` at the levels of the usual 90%, 95% and 99% intervals, bit for bit
(tests/stats/test_scipy_special.py compares each with scipy): a report at those levels needs
no scipy.special import (0.2-0.35 s with scipy 1.17, which loads much of NumPy with it)."""


def ndtri(q: float) -> np.float64:
    """``scipy.special.ndtri(q)``, the standard normal quantile: from the table of the usual
    levels when ``q`` is one of them (the same bits), else from scipy.special."""
    z = _NORMAL_QUANTILES.get(q)
    return np.float64(z) if z is not None else np.float64(scipy_special().ndtri(q))


def binom_ppf(q: float, n: int, p: float) -> float:
    """``scipy.stats.binom(n, p).ppf(q)`` for 0 < q < 1, 0 < p < 1, n >= 1: the smallest k with
    P(B <= k) >= q, by the same scipy.special function scipy.stats calls."""
    return float(scipy_special()._ufuncs._binom_ppf(q, n, p))


def binom_isf(q: float, n: int, p: float) -> float:
    """``scipy.stats.binom(n, p).isf(q)`` for 0 < q < 1, 0 < p < 1, n >= 1."""
    return float(scipy_special()._ufuncs._binom_isf(q, n, p))


def binom_cdf(k: int, n: int, p: float) -> float:
    """``scipy.stats.binom(n, p).cdf(k)`` for an integer k: 0 below the support, 1 from n on."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return float(np.clip(scipy_special()._ufuncs._binom_cdf(float(k), n, p), 0, 1))


def as_values(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """Return `values` as a 1-D float array of finite numbers, or raise ValueError."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} contains NaN or infinite values; drop missing tasks "
            "(e.g. infrastructure failures) before computing statistics"
        )
    return arr


def as_labels(labels: npt.ArrayLike, name: str, n: int) -> npt.NDArray[np.generic]:
    """Return `labels` as a 1-D array of length `n`, or raise ValueError."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has length {arr.shape[0]} but the values have length {n}")
    return arr


def codes_for(labels: npt.NDArray[np.generic]) -> tuple[npt.NDArray[np.intp], int]:
    """Integer codes 0..G-1 for the labels (sorted unique order) and the number of groups G."""
    if labels.shape[0] == 0:
        return np.zeros(0, dtype=np.intp), 0
    uniques, inverse = np.unique(labels, return_inverse=True)
    return inverse.astype(np.intp).reshape(-1), int(uniques.shape[0])


def check_same_length(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], names: str) -> None:
    """Raise ValueError unless the two arrays have the same length."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{names} must be aligned per task, got lengths {a.shape[0]} and {b.shape[0]}"
        )


def check_probability(value: float, name: str, *, open_interval: bool = True) -> float:
    """Return `value` as a float, or raise ValueError if it is not in (0, 1) ([0, 1] if closed)."""
    v = float(value)
    ok = 0.0 < v < 1.0 if open_interval else 0.0 <= v <= 1.0
    if not ok:
        bounds = "strictly between 0 and 1" if open_interval else "between 0 and 1"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return v


def check_alternative(alternative: str) -> Alternative:
    """Return `alternative` if it is a known alternative hypothesis, else raise ValueError."""
    if alternative == "two-sided":
        return "two-sided"
    if alternative == "less":
        return "less"
    if alternative == "greater":
        return "greater"
    raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")


def check_distribution(distribution: str) -> Distribution:
    """Return `distribution` if it is 't' or 'normal', else raise ValueError."""
    if distribution == "t":
        return "t"
    if distribution == "normal":
        return "normal"
    raise ValueError(f"distribution must be one of {_DISTRIBUTIONS}, got {distribution!r}")


def as_count(value: object, name: str) -> int:
    """Return `value` as a non-negative int, or raise ValueError."""
    try:
        as_float = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}") from None
    if not math.isfinite(as_float) or as_float < 0 or as_float != int(as_float):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(as_float)


def effective_df(df: float, distribution: Distribution) -> float:
    """Degrees of freedom actually used: `df` for the t distribution, inf for the normal."""
    return math.inf if distribution == "normal" else df


def critical_value(confidence: float, df: float) -> float:
    """Two-sided critical value t_{df, (1+confidence)/2}; the normal quantile when df is inf."""
    q = (1.0 + confidence) / 2.0
    if math.isnan(df) or df <= 0:
        return math.nan
    return _quantile(q, df)


def _quantile(q: float, df: float) -> float:
    """``scipy.stats.norm.ppf(q)`` when df is inf, else ``scipy.stats.t.ppf(q, df)``, for
    df > 0: for 0 < q < 1 the scipy.special functions those call (same bits)."""
    if not 0.0 < q < 1.0:  # the edges and nan: scipy.stats' own conventions
        dist = scipy_stats().norm if math.isinf(df) else scipy_stats().t(df)
        return float(dist.ppf(q))
    if math.isinf(df):
        return float(ndtri(q))
    return float(scipy_special().stdtrit(df, q))


def one_sided_critical_value(level: float, df: float) -> float:
    """One-sided critical value t_{df, level} (normal quantile when df is inf)."""
    if math.isnan(df) or df <= 0:
        return math.nan
    return _quantile(level, df)


def t_test(estimate: float, se: float, df: float, alternative: Alternative) -> tuple[float, float]:
    """Statistic estimate/se and its p-value under t(df) (normal when df is inf).

    With se = 0 the statistic is +-inf (p = 0) unless the estimate is also 0, in which case there
    is no evidence against the null and the statistic is 0 with p = 1.
    """
    if math.isnan(se) or math.isnan(estimate) or math.isnan(df) or df <= 0:
        return math.nan, math.nan
    if se == 0.0:
        stat = 0.0 if estimate == 0.0 else math.copysign(math.inf, estimate)
    else:
        stat = estimate / se
    # the scipy.special functions scipy.stats' norm and t call for cdf and sf (same bits:
    # tests/stats/test_scipy_special.py), without importing scipy.stats (about a second)
    special = scipy_special()

    def cdf(x: float) -> float:
        return float(special.ndtr(x) if math.isinf(df) else special.stdtr(df, x))

    if alternative == "two-sided":
        p = 2.0 * cdf(-abs(stat))
    elif alternative == "less":
        p = cdf(stat)
    else:
        p = cdf(-stat)
    return stat, min(1.0, p)


def interval(estimate: float, se: float, crit: float) -> tuple[float, float]:
    """estimate -+ crit * se, or (nan, nan) when the SE is undefined."""
    if math.isnan(se) or math.isnan(crit):
        return math.nan, math.nan
    if se == 0.0:
        return estimate, estimate
    return estimate - crit * se, estimate + crit * se


def df_label(df: float) -> str:
    """'z' for an infinite df, else 't(df)' with df printed without a trailing .0."""
    if math.isinf(df):
        return "z"
    if math.isnan(df):
        return "t(undefined)"
    return f"t({df:g})"
