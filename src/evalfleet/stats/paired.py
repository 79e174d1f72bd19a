"""Paired comparisons of two agent versions on the same tasks. The formulas are in docs/analysis.md.

Always pair when versions share tasks (Miller 2024, section 4): compare on the intersection of
task ids, with per-task differences d_i = a_i - b_i.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from evalfleet.stats._checks import (
    Alternative,
    as_count,
    as_labels,
    as_values,
    binom_cdf,
    check_alternative,
    check_distribution,
    check_probability,
    check_same_length,
    codes_for,
    critical_value,
    interval,
    scipy_special,
    t_test,
)
from evalfleet.stats._types import (
    McNemarResult,
    PairedDifference,
    PermutationTestResult,
    RegressionFlag,
)
from evalfleet.stats.means import summarise

__all__ = ["mcnemar_test", "paired_difference", "paired_permutation_test", "regression_flag"]

McNemarMethod = Literal["midp", "exact", "chi2", "chi2-corrected"]

_MAX_EXACT_UNITS = 40
"""Exact enumeration meets in the middle: 2 x 2^20 partial sums at most."""


def paired_difference(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    clusters: npt.ArrayLike | None = None,
    *,
    confidence: float = 0.95,
    alternative: Literal["two-sided", "less", "greater"] = "two-sided",
    distribution: Literal["t", "normal"] = "t",
) -> PairedDifference:
    """Mean per-task difference between two versions with the paired standard error.

    d_i = a_i - b_i, estimate dbar = mean(d). SE_paired = sqrt(sum_i (d_i - dbar)^2 / (n-1) / n)
    (Miller 2024, Eq. 7), equal to sqrt(SE_a^2 + SE_b^2 - 2 SE_a SE_b Corr(a, b)). With clusters
    the SE is CR1 on d (Miller Eq. 8 is the CR0 version) and the df is G-1. The test statistic is
    dbar / SE with t(n-1) (t(G-1)) critical values by default, which is `scipy.stats.ttest_rel`;
    distribution='normal' gives Miller's z-test (Eq. 6).

    Args:
        a: Per-task means of version A (e.g. the new version), aligned with b.
        b: Per-task means of version B (e.g. the reference) on the same tasks.
        clusters: Optional cluster label per task.
        confidence: Level of the two-sided interval (the interval is two-sided for every
            alternative).
        alternative: 'two-sided', 'less' (H1: mean a < mean b) or 'greater'.
        distribution: 't' (default) or 'normal'.

    Returns:
        The difference with SE, interval, p-value, correlation and method. nan where undefined
        (n < 2, a single cluster). If all d_i are equal the SE is 0 and p is 0, or 1 when all
        d_i are 0.

    Raises:
        ValueError: on mismatched lengths or non-finite values.
    """
    conf = check_probability(confidence, "confidence")
    alt = check_alternative(alternative)
    dist = check_distribution(distribution)
    a_arr = as_values(a, "a")
    b_arr = as_values(b, "b")
    check_same_length(a_arr, b_arr, "a and b")
    d = a_arr - b_arr
    estimate, se, df, n_clusters, method = summarise(d, clusters, dist, "paired difference")
    stat, p = t_test(estimate, se, df, alt)
    low, high = interval(estimate, se, critical_value(conf, df))
    n = int(d.shape[0])
    return PairedDifference(
        estimate=estimate,
        se=se,
        ci_low=low,
        ci_high=high,
        p_value=p,
        statistic=stat,
        df=df,
        n=n,
        n_clusters=n_clusters,
        mean_a=float(a_arr.mean()) if n else math.nan,
        mean_b=float(b_arr.mean()) if n else math.nan,
        correlation=_correlation(a_arr, b_arr),
        confidence=conf,
        alternative=alt,
        method=method,
    )


def _correlation(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    if a.shape[0] < 2 or np.ptp(a) == 0.0 or np.ptp(b) == 0.0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def mcnemar_test(
    b: int,
    c: int,
    n: int | None = None,
    *,
    method: McNemarMethod = "midp",
    confidence: float = 0.95,
) -> McNemarResult:
    """McNemar test for one binary run per task per version.

    b = tasks A passed and B failed, c = tasks A failed and B passed, m = b + c, k = min(b, c);
    under H0 the count b is Bin(m, 1/2). With F and f the Bin(m, 1/2) CDF and pmf:

    * exact conditional: p = min(1, 2 F(k)) (statsmodels `mcnemar(exact=True)`);
    * mid-p (default; Fagerland, Lydersen and Laake 2013, BMC Med. Res. Methodol. 13:91):
      p = min(1, 2 F(k) - f(k)), computed uncapped and then capped, so b = c gives exactly 1;
    * asymptotic: chi2 = (b - c)^2 / m, or (|b - c| - 1)^2 / m with continuity correction, df 1
      (statsmodels `mcnemar(exact=False)`).

    Fagerland et al. recommend the mid-p, and the uncorrected asymptotic test for large samples;
    the exact conditional test is over-conservative. With no discordant pairs (m = 0) the exact
    and mid-p values are 1 and the chi-square values are undefined (nan).

    Args:
        b: Pairs with A pass, B fail.
        c: Pairs with A fail, B pass.
        n: Total number of pairs (tasks). When given, the result also carries the difference in
            pass rates (b - c) / n with its paired SE (Miller Eq. 7) and a t(n-1) interval.
        method: Which p-value to report in `p_value`: 'midp', 'exact', 'chi2' or
            'chi2-corrected'. All four are in the result.
        confidence: Level of the interval for the difference.

    Returns:
        All four p-values, the selected one, and the difference when n is known.

    Raises:
        ValueError: on negative or non-integer counts, n < b + c, or an unknown method.
    """
    if method not in ("midp", "exact", "chi2", "chi2-corrected"):
        raise ValueError(
            f"method must be 'midp', 'exact', 'chi2' or 'chi2-corrected', got {method!r}"
        )
    conf = check_probability(confidence, "confidence")
    b_int, c_int = as_count(b, "b"), as_count(c, "c")
    m = b_int + c_int
    k = min(b_int, c_int)
    if m == 0:
        p_exact = p_midp = 1.0
        p_chi2 = p_chi2_cc = stat_chi2 = stat_chi2_cc = math.nan
    else:
        # statsmodels' mcnemar() arithmetic on the scipy.special functions scipy.stats' binom
        # and chi2 call (the same bits, tests/stats/test_scipy_special.py), without importing
        # statsmodels, pandas and scipy.stats (about a second of every `evalfleet slice`)
        special = scipy_special()
        cdf = binom_cdf(k, m, 0.5)
        p_exact = min(2.0 * cdf, 1.0)
        pmf = float(special._ufuncs._binom_pmf(float(k), m, 0.5))
        p_midp = min(1.0, 2.0 * cdf - pmf)
        stat_chi2 = abs(b_int - c_int) ** 2 / (1.0 * m)
        stat_chi2_cc = (abs(b_int - c_int) - 1) ** 2 / (1.0 * m)
        p_chi2 = float(special.chdtrc(1, stat_chi2))
        p_chi2_cc = float(special.chdtrc(1, stat_chi2_cc))
    p_value, statistic = {
        "midp": (p_midp, float(k)),
        "exact": (p_exact, float(k)),
        "chi2": (p_chi2, stat_chi2),
        "chi2-corrected": (p_chi2_cc, stat_chi2_cc),
    }[method]
    label = {
        "midp": "McNemar mid-p",
        "exact": "McNemar exact conditional",
        "chi2": "McNemar chi-square",
        "chi2-corrected": "McNemar chi-square with continuity correction",
    }[method]

    n_pairs: int | None = None
    estimate = se = low = high = math.nan
    if n is None:
        detail = "difference needs n"
    else:
        n_pairs = as_count(n, "n")
        if n_pairs < m:
            raise ValueError(f"n ({n_pairs}) cannot be smaller than b + c ({m})")
        if n_pairs == 0:
            detail = "no pairs"
        else:
            estimate = (b_int - c_int) / n_pairs
            if n_pairs >= 2:
                var_d = max(0.0, (m - n_pairs * estimate**2) / (n_pairs - 1))
                se = math.sqrt(var_d / n_pairs)
                low, high = interval(estimate, se, critical_value(conf, float(n_pairs - 1)))
                detail = f"difference (b-c)/n with paired SE (Miller Eq. 7), t({n_pairs - 1})"
            else:
                detail = "difference with n=1: SE undefined"
    return McNemarResult(
        estimate=estimate,
        se=se,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        statistic=statistic,
        b=b_int,
        c=c_int,
        n=n_pairs,
        p_exact=p_exact,
        p_midp=p_midp,
        p_chi2=p_chi2,
        p_chi2_corrected=p_chi2_cc,
        confidence=conf,
        method=f"{label} (b={b_int}, c={c_int}); {detail}",
    )


def paired_permutation_test(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    clusters: npt.ArrayLike | None = None,
    *,
    alternative: Literal["two-sided", "less", "greater"] = "two-sided",
    n_resamples: float = 100_000,
    seed: int | np.random.Generator | None = 0,
) -> PermutationTestResult:
    """Sign-flip permutation test of the mean paired difference.

    Under H0 each d_i = a_i - b_i is symmetric about 0, so every sign vector e in {-1, +1}^n is
    equally likely. The two-sided p-value is the share of sign vectors with
    |sum_i e_i d_i| >= |sum_i d_i|; one-sided alternatives count one
    tail. With clusters the signs flip whole clusters (cluster sums of d), which stays valid when
    tasks in a family are dependent.

    If 2^n <= n_resamples the p-value is exact: all sign vectors are enumerated (meeting in the
    middle, so up to 40 units is fast). Otherwise n_resamples sign vectors are drawn with a seeded
    `numpy.random.Generator` and p = (hits + 1) / (n_resamples + 1), which is a valid p-value.
    Ties are counted with a relative tolerance of 1e-11, so scores on a 1/K grid tie exactly.
    The exact two-sided value equals `scipy.stats.permutation_test((d,), np.mean,
    permutation_type='samples', n_resamples=np.inf)`.

    Args:
        a: Per-task values of version A, aligned with b.
        b: Per-task values of version B.
        clusters: Optional cluster label per task; signs then flip per cluster.
        alternative: 'two-sided', 'less' (H1: mean a < mean b) or 'greater'.
        n_resamples: Budget of sign vectors (math.inf forces exact enumeration).
        seed: Seed or Generator for the Monte Carlo draws; the seed is recorded in the result.

    Returns:
        The mean difference and the permutation p-value (nan with no tasks).

    Raises:
        ValueError: on mismatched lengths, non-finite values, n_resamples < 1, or an exact
            enumeration over more than 40 units.
    """
    alt = check_alternative(alternative)
    a_arr = as_values(a, "a")
    b_arr = as_values(b, "b")
    check_same_length(a_arr, b_arr, "a and b")
    if not n_resamples >= 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples!r}")
    d = a_arr - b_arr
    n = int(d.shape[0])
    unit_label = "tasks"
    if clusters is None:
        units = d
    else:
        codes, n_clusters = codes_for(as_labels(clusters, "clusters", n))
        units = np.bincount(codes, weights=d, minlength=n_clusters).astype(np.float64)
        unit_label = "clusters"
    n_units = int(units.shape[0])
    seed_used = int(seed) if isinstance(seed, (int, np.integer)) else None
    if n == 0:
        return PermutationTestResult(
            estimate=math.nan,
            p_value=math.nan,
            n=0,
            n_units=0,
            exact=True,
            n_resamples=0,
            seed=None,
            alternative=alt,
            method="sign-flip permutation: no tasks, p-value undefined",
        )
    estimate = float(d.mean())
    observed = float(units.sum())
    # Sums of grid-valued differences tie in exact arithmetic; the tolerance scales with the
    # task-level magnitudes because cluster sums carry their rounding error.
    tol = 1e-11 * max(float(np.abs(d).sum()), np.finfo(np.float64).tiny)
    exact = n_units <= 1024 and 2.0**n_units <= n_resamples
    if exact:
        if n_units > _MAX_EXACT_UNITS:
            raise ValueError(
                f"exact enumeration of 2^{n_units} sign vectors is infeasible; "
                "pass a finite n_resamples below 2^n for a Monte Carlo p-value"
            )
        hits = _exact_count(units, observed, tol, alt)
        total = 2**n_units
        p_value = hits / total
        method = f"sign-flip permutation, exact over 2^{n_units} sign vectors of {n_units} "
        seed_used = None
    else:
        total = int(n_resamples)
        rng = np.random.default_rng(seed)
        hits = _monte_carlo_count(units, observed, tol, alt, total, rng)
        p_value = (hits + 1) / (total + 1)
        seed_text = f"seed {seed_used}" if seed_used is not None else "caller's Generator"
        method = f"sign-flip permutation, Monte Carlo {total} draws ({seed_text}) over {n_units} "
    return PermutationTestResult(
        estimate=estimate,
        p_value=min(1.0, p_value),
        n=n,
        n_units=n_units,
        exact=exact,
        n_resamples=total,
        seed=seed_used,
        alternative=alt,
        method=method + unit_label,
    )


def _sign_sums(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    sums = np.zeros(1)
    for v in values:
        sums = np.concatenate((sums + v, sums - v))
    return sums


def _exact_count(
    units: npt.NDArray[np.float64], observed: float, tol: float, alternative: Alternative
) -> int:
    half = units.shape[0] // 2
    left = _sign_sums(units[:half])
    right = np.sort(_sign_sums(units[half:]))

    def at_least(threshold: float) -> int:
        idx = np.searchsorted(right, threshold - left, side="left")
        return int((right.shape[0] - idx).sum())

    def at_most(threshold: float) -> int:
        return int(np.searchsorted(right, threshold - left, side="right").sum())

    if alternative == "greater":
        return at_least(observed - tol)
    if alternative == "less":
        return at_most(observed + tol)
    threshold = abs(observed) - tol
    if threshold <= 0:
        return int(left.shape[0]) * int(right.shape[0])
    return at_least(threshold) + at_most(-threshold)


def _monte_carlo_count(
    units: npt.NDArray[np.float64],
    observed: float,
    tol: float,
    alternative: Alternative,
    n_draws: int,
    rng: np.random.Generator,
) -> int:
    n_units = units.shape[0]
    total = float(units.sum())
    rows = max(1, 2**22 // n_units)
    n_bytes = (n_units + 7) // 8
    hits = 0
    done = 0
    while done < n_draws:
        size = min(rows, n_draws - done)
        random_bytes = rng.integers(0, 256, size=(size, n_bytes), dtype=np.uint8)
        plus = np.unpackbits(random_bytes, axis=1, count=n_units)
        # A sign vector with "+" on the set P gives sum = 2 * sum_P u - sum u.
        sums = 2.0 * (plus.astype(np.float64) @ units) - total
        if alternative == "greater":
            hits += int(np.count_nonzero(sums >= observed - tol))
        elif alternative == "less":
            hits += int(np.count_nonzero(sums <= observed + tol))
        else:
            hits += int(np.count_nonzero(np.abs(sums) >= abs(observed) - tol))
        done += size
    return hits


def regression_flag(
    new: npt.ArrayLike,
    reference: npt.ArrayLike,
    clusters: npt.ArrayLike | None = None,
    *,
    margin: float = 0.0,
    alpha: float = 0.05,
    distribution: Literal["t", "normal"] = "t",
) -> RegressionFlag:
    """Two-gate regression rule for a paired comparison.

    With d_i = new_i - reference_i on shared tasks, dbar and its paired SE:

    * statistical gate: the one-sided upper (1 - alpha) bound dbar + t_{1-alpha} SE is below 0
      (equivalently the one-sided p-value of H0: difference >= 0 is below alpha);
    * practical gate: dbar < -margin.

    The flag fires only when both do. Under H0 (no true difference) it fires at most alpha of the
    time; at a true drop equal to `minimum_detectable_effect(..., two_sided=False)` it fires with
    about the planned power, provided margin < z_alpha SE. Apply Holm across suites
    (`adjust_pvalues` on the one-sided p-values) when several suites are checked each day.

    Args:
        new: Per-task means of the new version (today), aligned with reference.
        reference: Per-task means of the reference version.
        clusters: Optional cluster label per task (CR1, t(G-1)).
        margin: Practical margin, >= 0, in score units (0.02 = 2 percentage points).
        alpha: One-sided level of the statistical gate.
        distribution: 't' (default) or 'normal' critical values.

    Returns:
        The decision, both gates, the bound, and the underlying paired comparison. With too few
        tasks to estimate an SE, nothing is flagged and the method says why.

    Raises:
        ValueError: on bad inputs, a negative margin or alpha outside (0, 0.5).
    """
    level = check_probability(alpha, "alpha")
    if level >= 0.5:
        raise ValueError(f"alpha must be below 0.5 for a one-sided gate, got {alpha!r}")
    margin_value = float(margin)
    if not (math.isfinite(margin_value) and margin_value >= 0.0):
        raise ValueError(f"margin must be a non-negative number, got {margin!r}")
    diff = paired_difference(
        new,
        reference,
        clusters,
        confidence=1.0 - 2.0 * level,
        alternative="less",
        distribution=distribution,
    )
    upper = diff.ci_high
    significant = bool(upper < 0.0)  # False when the bound is nan
    practical = bool(diff.estimate < -margin_value)
    if math.isnan(upper):
        why = "SE undefined, not flagged"
    else:
        why = f"upper {1 - level:g} bound {upper:.6g}, margin {margin_value:g}"
    return RegressionFlag(
        flagged=significant and practical,
        significant=significant,
        practical=practical,
        estimate=diff.estimate,
        upper_bound=upper,
        p_value=diff.p_value,
        margin=margin_value,
        alpha=level,
        difference=diff,
        method=f"two-gate regression rule on {diff.method}; {why}",
    )
