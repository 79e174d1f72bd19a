"""Cost per success: a ratio estimator over tasks."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from evalfleet.stats._checks import (
    as_values,
    check_distribution,
    check_probability,
    check_same_length,
    critical_value,
    interval,
)
from evalfleet.stats._types import RatioEstimate
from evalfleet.stats.means import summarise

__all__ = ["cost_per_success"]


def cost_per_success(
    costs: npt.ArrayLike,
    successes: npt.ArrayLike,
    clusters: npt.ArrayLike | None = None,
    *,
    confidence: float = 0.95,
    distribution: Literal["t", "normal"] = "t",
) -> RatioEstimate:
    """Cost per success R = sum_i c_i / sum_i y_i = cbar / ybar, with a delta-method SE.

    With per-task mean cost c_i and per-task success rate y_i (each task weighted equally), the
    linearised residuals are e_i = c_i - R y_i and SE(R) = sqrt(s_e^2 / n) / ybar (ddof 1; the
    classical ratio-estimator variance, Cochran 1977 section 6.3). With clusters, CR1 on e_i and
    t(G-1). The ratio is undefined without successes; report cbar and ybar in any case. For small
    n the delta method understates the uncertainty (a paired or cluster bootstrap is better).

    Args:
        costs: Mean cost per task (e.g. USD per run), >= 0.
        successes: Success rate per task in [0, 1] (mean of passed over the task's runs).
        clusters: Optional cluster label per task.
        confidence: Two-sided confidence level.
        distribution: 't' (default) or 'normal' critical values.

    Returns:
        The ratio with SE and interval, and both means. With no successes the ratio, SE and
        interval are nan.

    Raises:
        ValueError: on misaligned or non-finite inputs, negative costs or success rates outside
            [0, 1].
    """
    conf = check_probability(confidence, "confidence")
    dist = check_distribution(distribution)
    cost = as_values(costs, "costs")
    success = as_values(successes, "successes")
    check_same_length(cost, success, "costs and successes")
    if np.any(cost < 0):
        raise ValueError("costs must be non-negative")
    if np.any((success < 0) | (success > 1)):
        raise ValueError("successes must be success rates between 0 and 1")
    n = int(cost.shape[0])
    mean_cost = float(cost.mean()) if n else math.nan
    mean_success = float(success.mean()) if n else math.nan
    if n == 0 or mean_success == 0.0:
        why = "no tasks" if n == 0 else "no successes"
        return RatioEstimate(
            estimate=math.nan,
            se=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            n=n,
            n_clusters=None,
            df=math.nan,
            mean_cost=mean_cost,
            mean_success=mean_success,
            confidence=conf,
            method=f"cost per success: {why}, ratio undefined",
        )
    ratio = mean_cost / mean_success
    residuals = cost - ratio * success
    _, se_resid, df, n_clusters, method = summarise(
        residuals, clusters, dist, "cost per success residuals"
    )
    se = se_resid / mean_success
    low, high = interval(ratio, se, critical_value(conf, df))
    return RatioEstimate(
        estimate=ratio,
        se=se,
        ci_low=low,
        ci_high=high,
        n=n,
        n_clusters=n_clusters,
        df=df,
        mean_cost=mean_cost,
        mean_success=mean_success,
        confidence=conf,
        method=f"ratio mean(cost)/mean(success), delta-method SE; {method}",
    )
