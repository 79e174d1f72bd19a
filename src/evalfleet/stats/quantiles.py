"""Distribution-free confidence intervals for quantiles (latency p50/p90/p95)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from evalfleet.stats._checks import as_values, binom_cdf, binom_isf, binom_ppf, check_probability
from evalfleet.stats._types import QuantileInterval

__all__ = ["quantile_interval"]


def quantile_interval(
    x: npt.ArrayLike,
    quantile: float = 0.5,
    *,
    confidence: float = 0.95,
) -> QuantileInterval:
    """Order-statistic confidence interval [x_(r), x_(s)] for the p-quantile.

    With B ~ Bin(n, p) and a = (1 - confidence) / 2: r = F_B^{-1}(a) (the smallest r with
    P(B <= r) >= a) and s = F_B^{-1}(1 - a) + 1 (1-based ranks). The coverage of the interval is
    P(r <= B <= s - 1) >= confidence for continuous data (e.g. David and Nagaraja 2003, 7.1;
    Conover 1999, 3.2). These are the ranks `scipy.stats.quantile_test(x, p=p)
    .confidence_interval(confidence)` uses; for n = 20 the median CI is [x_(6), x_(15)] with
    coverage 0.958611.

    Args:
        x: Observations (e.g. per-run latency in seconds).
        quantile: Quantile level p in (0, 1), e.g. 0.5, 0.9, 0.95.
        confidence: Minimum two-sided coverage.

    Returns:
        The sample quantile (numpy 'linear'), the interval and its exact coverage. A limit is nan
        when the sample is too small for the requested coverage (rank outside 1..n).

    Raises:
        ValueError: on non-finite data or levels outside (0, 1).
    """
    p = check_probability(quantile, "quantile")
    conf = check_probability(confidence, "confidence")
    data = np.sort(as_values(x, "x"))
    n = int(data.shape[0])
    if n == 0:
        return QuantileInterval(
            estimate=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            quantile=p,
            lower_rank=0,
            upper_rank=0,
            coverage=math.nan,
            n=0,
            confidence=conf,
            method="order-statistic interval: no observations",
        )
    tail = (1.0 - conf) / 2.0
    # scipy.stats.binom(n, p).ppf / .isf / .cdf, through the scipy.special functions they call
    lower_rank = int(binom_ppf(tail, n, p))
    upper_rank = int(binom_isf(tail, n, p)) + 1
    low = float(data[lower_rank - 1]) if lower_rank >= 1 else math.nan
    high = float(data[upper_rank - 1]) if upper_rank <= n else math.nan
    coverage = binom_cdf(upper_rank - 1, n, p) - binom_cdf(lower_rank - 1, n, p)
    note = ""
    if math.isnan(low) or math.isnan(high):
        note = f"; n={n} too small for {conf:g} coverage, open limit is nan"
    return QuantileInterval(
        estimate=float(np.quantile(data, p)),
        ci_low=low,
        ci_high=high,
        quantile=p,
        lower_rank=lower_rank,
        upper_rank=upper_rank,
        coverage=coverage,
        n=n,
        confidence=conf,
        method=(
            f"order statistics [x_({lower_rank}), x_({upper_rank})] of n={n} for the "
            f"{p:g}-quantile, binomial coverage {coverage:.6f}{note}"
        ),
    )
