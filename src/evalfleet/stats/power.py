"""Power analysis for paired comparisons with K runs per task (Miller 2024, section 5).

Per-task variance of the observed difference: V = omega^2 + sigma_A^2 / K_A + sigma_B^2 / K_B,
where omega^2 is the between-task variance of the true per-task difference and sigma_M^2 the mean
within-task run variance of version M (`paired_variance_components` estimates all three).
With clustered tasks multiply V by the design effect 1 + (m - 1) ICC, or pass cluster-adjusted
components (Miller Appendix C).
"""

from __future__ import annotations

import math

from evalfleet.stats._checks import check_probability, scipy_stats
from evalfleet.stats._types import DetectableEffect, SampleSize

__all__ = ["minimum_detectable_effect", "sample_size_for_difference"]


def sample_size_for_difference(
    omega2: float,
    sigma2_a: float,
    sigma2_b: float,
    k_a: float,
    k_b: float,
    delta: float,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
    *,
    design_effect: float = 1.0,
) -> SampleSize:
    """Tasks needed to detect a mean difference `delta` (Miller 2024, Eq. 9).

    n = (z_{alpha/2} + z_beta)^2 (omega^2 + sigma_A^2/K_A + sigma_B^2/K_B) / delta^2, with
    z_alpha instead of z_{alpha/2} for a one-sided ("regression only") test. Example (Miller):
    omega^2 = 1/9, sigma^2 = 0, delta = 0.03 gives n = 968.9975, so 969 tasks. For one binary run
    per task pass omega2 = Var(d) and zero sigmas.

    Args:
        omega2: Between-task variance of the true per-task difference.
        sigma2_a: Mean within-task run variance of version A.
        sigma2_b: Mean within-task run variance of version B.
        k_a: Runs per task of version A (math.inf for the noiseless limit).
        k_b: Runs per task of version B.
        delta: Difference to detect (its sign is ignored).
        alpha: Type-I error rate.
        power: Target power 1 - beta.
        two_sided: Use z_{alpha/2} (True) or z_alpha (False).
        design_effect: Variance multiplier for clustered tasks, 1 + (m - 1) ICC.

    Returns:
        The exact n and the whole number of tasks to run.

    Raises:
        ValueError: on negative variances, non-positive K, delta = 0, or alpha / power outside
            (0, 1).
    """
    if not (math.isfinite(float(delta)) and float(delta) != 0.0):
        raise ValueError(f"delta must be a non-zero finite number, got {delta!r}")
    variance, z_sum, label = _design(
        omega2, sigma2_a, sigma2_b, k_a, k_b, alpha, power, two_sided, design_effect
    )
    ratio = z_sum / float(delta)
    n = variance * ratio * ratio  # not / delta**2, which underflows to 0 for a tiny delta
    if not math.isfinite(n):
        raise ValueError(f"delta {delta!r} is too small: the number of tasks needed is "
                         "beyond any number that can be computed")
    return SampleSize(
        n=n,
        n_required=math.ceil(n - 1e-9),
        delta=abs(float(delta)),
        variance=variance,
        alpha=float(alpha),
        power=float(power),
        two_sided=bool(two_sided),
        method=f"Miller 2024 Eq. 9, {label}",
    )


def minimum_detectable_effect(
    omega2: float,
    sigma2_a: float,
    sigma2_b: float,
    k_a: float,
    k_b: float,
    n: float,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
    *,
    design_effect: float = 1.0,
) -> DetectableEffect:
    """Minimum detectable effect of a paired comparison over n tasks (Miller 2024, Eq. 10).

    delta = (z_{alpha/2} + z_beta) sqrt((omega^2 + sigma_A^2/K_A + sigma_B^2/K_B) / n), with
    z_alpha for a one-sided test (Appendix B: the threshold s~ satisfies z_{alpha/2} = s~/SE and
    z_beta = (delta - s~)/SE). Example (Miller): n = 198, omega^2 = 1/9, sigma_A^2 = sigma_B^2 = 1/6
    gives 0.132733 at K = 1 and 0.075670 at K = 10. Publish it next to every "no significant
    change" verdict.

    Args:
        omega2: Between-task variance of the true per-task difference.
        sigma2_a: Mean within-task run variance of version A.
        sigma2_b: Mean within-task run variance of version B.
        k_a: Runs per task of version A.
        k_b: Runs per task of version B.
        n: Number of tasks.
        alpha: Type-I error rate.
        power: Target power 1 - beta.
        two_sided: Use z_{alpha/2} (True) or z_alpha (False).
        design_effect: Variance multiplier for clustered tasks, 1 + (m - 1) ICC.

    Returns:
        The detectable difference and the SE of the mean difference for this design.

    Raises:
        ValueError: on negative variances, non-positive K or n, or alpha / power outside (0, 1).
    """
    if not (math.isfinite(float(n)) and float(n) > 0):
        raise ValueError(f"n must be a positive number of tasks, got {n!r}")
    variance, z_sum, label = _design(
        omega2, sigma2_a, sigma2_b, k_a, k_b, alpha, power, two_sided, design_effect
    )
    se = math.sqrt(variance / float(n))
    return DetectableEffect(
        delta=z_sum * se,
        se=se,
        n=float(n),
        variance=variance,
        alpha=float(alpha),
        power=float(power),
        two_sided=bool(two_sided),
        method=f"Miller 2024 Eq. 10, {label}",
    )


def _design(
    omega2: float,
    sigma2_a: float,
    sigma2_b: float,
    k_a: float,
    k_b: float,
    alpha: float,
    power: float,
    two_sided: bool,
    design_effect: float,
) -> tuple[float, float, str]:
    for name, value in (("omega2", omega2), ("sigma2_a", sigma2_a), ("sigma2_b", sigma2_b)):
        if not (math.isfinite(float(value)) and float(value) >= 0.0):
            raise ValueError(f"{name} must be a non-negative variance, got {value!r}")
    for name, value in (("k_a", k_a), ("k_b", k_b)):
        if not float(value) > 0:
            raise ValueError(f"{name} must be a positive number of runs, got {value!r}")
    if not (math.isfinite(float(design_effect)) and float(design_effect) >= 1.0):
        raise ValueError(f"design_effect must be at least 1, got {design_effect!r}")
    a = check_probability(alpha, "alpha")
    pw = check_probability(power, "power")
    variance = float(design_effect) * (
        float(omega2) + float(sigma2_a) / float(k_a) + float(sigma2_b) / float(k_b)
    )
    z_alpha = float(scipy_stats().norm.isf(a / 2.0 if two_sided else a))
    z_beta = float(scipy_stats().norm.ppf(pw))
    if z_alpha + z_beta <= 0:
        raise ValueError(f"power={pw:g} is too low for alpha={a:g}: z_alpha + z_beta must be > 0")
    sided = "two-sided" if two_sided else "one-sided"
    label = f"{sided} alpha={a:g}, power={pw:g}, z={z_alpha + z_beta:.6f}"
    return variance, z_alpha + z_beta, label
