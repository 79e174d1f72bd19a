"""Confidence intervals for a binomial proportion.

Use Wilson by default (Brown, Cai and DasGupta 2001): near-nominal coverage, never outside [0, 1].
Use Clopper-Pearson when coverage must be guaranteed (audits, zero-failure claims).
Per-task intervals over K <= 10 runs are wide; use them for flake triage, not decisions.
"""

from __future__ import annotations

import math
from typing import Literal

from evalfleet.stats._checks import (
    as_count,
    check_alternative,
    check_probability,
    ndtri,
    scipy_stats,
)
from evalfleet.stats._types import ProportionInterval

__all__ = ["clopper_pearson_interval", "wilson_interval"]


def wilson_interval(
    successes: int,
    n: int,
    *,
    confidence: float = 0.95,
    alternative: Literal["two-sided", "less", "greater"] = "two-sided",
) -> ProportionInterval:
    """Wilson score interval for a binomial proportion (Wilson 1927; Brown, Cai, DasGupta 2001).

    With p = x/n and z = z_{alpha/2}:
    center = (p + z^2/(2n)) / (1 + z^2/n),
    half = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/(4n^2)).
    Computed by `scipy.stats.binomtest(x, n).proportion_ci(method='wilson')`, which equals
    `statsmodels.stats.proportion.proportion_confint(x, n, method='wilson')`.

    Args:
        successes: Number of successes x, 0 <= x <= n.
        n: Number of trials.
        confidence: Confidence level.
        alternative: 'two-sided', 'less' (one-sided upper bound, interval [0, U]) or 'greater'
            (one-sided lower bound, interval [L, 1]); the scipy convention.

    Returns:
        The proportion and its interval; nan estimate and limits when n = 0.

    Raises:
        ValueError: if the counts are not integers with 0 <= successes <= n, or the confidence
            level is not in (0, 1).
    """
    return _binomial_interval(successes, n, confidence, alternative, "wilson")


def clopper_pearson_interval(
    successes: int,
    n: int,
    *,
    confidence: float = 0.95,
    alternative: Literal["two-sided", "less", "greater"] = "two-sided",
) -> ProportionInterval:
    """Clopper-Pearson ("exact") interval for a binomial proportion (Clopper and Pearson 1934).

    L = Beta^{-1}(alpha/2; x, n-x+1) (0 if x = 0), U = Beta^{-1}(1-alpha/2; x+1, n-x) (1 if x = n);
    one-sided bounds use alpha instead of alpha/2. Coverage is at least nominal (Brown, Cai,
    DasGupta 2001). For 0 failures in n runs the one-sided 95% upper bound on the failure rate is
    1 - 0.05^(1/n), about 3/n (the rule of three). Computed by
    `scipy.stats.binomtest(x, n).proportion_ci(method='exact')`.

    Args:
        successes: Number of successes x, 0 <= x <= n.
        n: Number of trials.
        confidence: Confidence level.
        alternative: 'two-sided', 'less' (one-sided upper bound, interval [0, U]) or 'greater'
            (one-sided lower bound, interval [L, 1]); the scipy convention.

    Returns:
        The proportion and its interval; nan estimate and limits when n = 0.

    Raises:
        ValueError: if the counts are not integers with 0 <= successes <= n, or the confidence
            level is not in (0, 1).
    """
    return _binomial_interval(successes, n, confidence, alternative, "exact")


def _binomial_interval(
    successes: int,
    n: int,
    confidence: float,
    alternative: str,
    scipy_method: Literal["wilson", "exact"],
) -> ProportionInterval:
    x = as_count(successes, "successes")
    trials = as_count(n, "n")
    if x > trials:
        raise ValueError(f"successes ({x}) cannot exceed n ({trials})")
    conf = check_probability(confidence, "confidence")
    alt = check_alternative(alternative)
    name = "Wilson score" if scipy_method == "wilson" else "Clopper-Pearson"
    if trials == 0:
        return ProportionInterval(
            estimate=math.nan,
            se=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            successes=0,
            n=0,
            confidence=conf,
            alternative=alt,
            method=f"{name} interval: n=0, proportion undefined",
        )
    p = x / trials
    if scipy_method == "wilson":
        ci_low, ci_high = _wilson_limits(x, trials, conf, alt)
    else:
        ci = scipy_stats().binomtest(x, trials, alternative=alt).proportion_ci(
            confidence_level=conf, method=scipy_method
        )
        ci_low, ci_high = float(ci.low), float(ci.high)
    low = 0.0 if x == 0 else min(1.0, max(0.0, ci_low))
    high = 1.0 if x == trials else min(1.0, max(0.0, ci_high))
    sided = "two-sided" if alt == "two-sided" else f"one-sided ({alt})"
    return ProportionInterval(
        estimate=p,
        se=math.sqrt(p * (1.0 - p) / trials),
        ci_low=low,
        ci_high=high,
        successes=x,
        n=trials,
        confidence=conf,
        alternative=alt,
        method=f"{name} interval, {sided}, {x}/{trials}",
    )


def _wilson_limits(k: int, n: int, confidence: float, alternative: str) -> tuple[float, float]:
    """The limits of ``scipy.stats.binomtest(k, n, alternative=...).proportion_ci(confidence,
    method='wilson')``, the same operations in the same order on the same ``ndtri`` (so the same
    bits), without importing scipy.stats (about a second)."""
    p = k / n
    z = ndtri(0.5 + 0.5 * confidence) if alternative == "two-sided" else ndtri(confidence)
    denom = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denom
    q = 1 - p
    delta = z / denom * math.sqrt(4 * n * p * q + z**2)
    lo = 0.0 if alternative == "less" or k == 0 else center - delta
    hi = 1.0 if alternative == "greater" or k == n else center + delta
    return float(lo), float(hi)
