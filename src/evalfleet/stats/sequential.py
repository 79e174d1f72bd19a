"""Monitoring over time: lower CUSUM for drift, mSPRT for streamed comparisons (section 4)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from evalfleet.stats._checks import as_values, check_probability
from evalfleet.stats._types import CusumResult, MsprtResult

__all__ = ["cusum_lower", "msprt_p_value"]


def cusum_lower(
    z: npt.ArrayLike,
    k: float = 0.5,
    h: float = 4.0,
    *,
    initial: float = 0.0,
    reset: bool = False,
) -> CusumResult:
    """Lower one-sided tabular CUSUM over standardised daily comparisons (Page 1954).

    S_0 = 0, S_t = max(0, S_{t-1} - z_t - k); alarm when S_t > h. Here z_t = Delta_t / SE_t is the
    day's paired difference against a frozen reference in SE units (the z_t must be independent
    across days, so do not compare with a rolling reference). k = delta*/2 for a shift of delta*
    SEs; k = 0.5 with h = 4 gives an in-control ARL of about 338 days and about 8.3 days at a
    1-SE drop (Siegmund 1985 approximation). Use h = 5 (ARL0 ~ 938)
    for paging.

    Args:
        z: Standardised daily differences, in time order.
        k: Reference value (allowance), >= 0, in SE units.
        h: Decision interval, > 0, in SE units.
        initial: Starting value S_0 >= 0, e.g. yesterday's `final`, to continue a running chart.
        reset: Restart S at 0 after each alarm (as after triage); by default S keeps running.

    Returns:
        S_t and the alarm flag for every day, and the index of the first alarm.

    Raises:
        ValueError: on non-finite z, k < 0, h <= 0 or initial < 0.
    """
    values = as_values(z, "z")
    kk, hh = float(k), float(h)
    if not (math.isfinite(kk) and kk >= 0.0):
        raise ValueError(f"k must be a non-negative number, got {k!r}")
    if not (math.isfinite(hh) and hh > 0.0):
        raise ValueError(f"h must be a positive number, got {h!r}")
    s = float(initial)
    if not (math.isfinite(s) and s >= 0.0):
        raise ValueError(f"initial must be a non-negative number, got {initial!r}")
    path: list[float] = []
    alarms: list[bool] = []
    for zt in values.tolist():
        s = max(0.0, s - zt - kk)
        alarm = s > hh
        path.append(s)
        alarms.append(alarm)
        if alarm and reset:
            s = 0.0
    first = alarms.index(True) if any(alarms) else None
    return CusumResult(
        statistic=tuple(path),
        alarms=tuple(alarms),
        first_alarm=first,
        final=s,
        k=kk,
        h=hh,
        method=f"lower one-sided CUSUM (Page 1954), k={kk:g}, h={hh:g}"
        + (", reset after alarm" if reset else ""),
    )


def msprt_p_value(
    d: npt.ArrayLike,
    sigma2: float,
    tau2: float,
    theta0: float = 0.0,
    *,
    alpha: float = 0.05,
) -> MsprtResult:
    """Always-valid p-value of the normal-mixture mSPRT (Johari, Pekelis and Walsh 2022).

    For differences d_i ~ (theta, sigma^2) arriving one by one and the mixture theta ~ N(theta0,
    tau^2), after n observations with running mean dbar_n:
    Lambda_n = sqrt(sigma^2 / (sigma^2 + n tau^2))
               * exp(n^2 tau^2 (dbar_n - theta0)^2 / (2 sigma^2 (sigma^2 + n tau^2))),
    p_0 = 1 and p_n = min(p_{n-1}, 1 / Lambda_n). By Ville's inequality
    P(exists n: Lambda_n >= 1/alpha) <= alpha under H0, whatever the stopping rule, so the
    comparison may be stopped as soon as p_n <= alpha. Choose tau at the scale of effects that
    matter (tau = 0.02 for 2 points); plug sigma^2 in from history.

    Args:
        d: Per-task differences in arrival order.
        sigma2: Variance of a single difference (known or from history), > 0.
        tau2: Variance of the mixing distribution, > 0.
        theta0: Null value of the mean difference.
        alpha: Level used to report the first rejection.

    Returns:
        The final and running always-valid p-values, the final Lambda_n, and the first n with
        Lambda_n >= 1/alpha. With no observations the p-value is 1.

    Raises:
        ValueError: on non-finite differences, or non-positive sigma2 or tau2.
    """
    values = as_values(d, "d")
    s2, t2, th0 = float(sigma2), float(tau2), float(theta0)
    if not (math.isfinite(s2) and s2 > 0.0):
        raise ValueError(f"sigma2 must be a positive variance, got {sigma2!r}")
    if not (math.isfinite(t2) and t2 > 0.0):
        raise ValueError(f"tau2 must be a positive variance, got {tau2!r}")
    if not math.isfinite(th0):
        raise ValueError(f"theta0 must be finite, got {theta0!r}")
    level = check_probability(alpha, "alpha")
    n_obs = values.shape[0]
    method = f"normal-mixture mSPRT (Johari et al. 2022), sigma2={s2:g}, tau2={t2:g}"
    if n_obs == 0:
        return MsprtResult(
            p_value=1.0,
            p_values=(),
            likelihood_ratio=1.0,
            estimate=math.nan,
            n=0,
            rejected_at=None,
            alpha=level,
            method=method + ": no observations",
        )
    n = np.arange(1, n_obs + 1, dtype=np.float64)
    running_mean = np.cumsum(values) / n
    spread = s2 + n * t2
    log_lambda = 0.5 * np.log(s2 / spread) + (n * n * t2 * (running_mean - th0) ** 2) / (
        2.0 * s2 * spread
    )
    p_values = np.minimum.accumulate(np.minimum(1.0, np.exp(-log_lambda)))
    crossed = np.flatnonzero(log_lambda >= math.log(1.0 / level))
    return MsprtResult(
        p_value=float(p_values[-1]),
        p_values=tuple(float(p) for p in p_values),
        likelihood_ratio=_exp(float(log_lambda[-1])),
        estimate=float(running_mean[-1]),
        n=int(n_obs),
        rejected_at=int(crossed[0]) + 1 if crossed.size else None,
        alpha=level,
        method=method,
    )


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
