"""The statistics a report needs call scipy.special directly instead of importing scipy.stats
(about a second of every report): the same functions scipy.stats calls, so the same bits.

Each test draws random inputs and asks for exact equality with scipy.stats (and statsmodels for
the report's vectorised Wilson interval), so a formula that drifts by one rounding fails."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.stats as st
from statsmodels.stats.proportion import proportion_confint as sm_confint

from evalfleet import stats
from evalfleet.analysis.report import proportion_confint
from evalfleet.stats._checks import (
    _NORMAL_QUANTILES,
    binom_cdf,
    binom_isf,
    binom_ppf,
    critical_value,
    ndtri,
    one_sided_critical_value,
)

RNG_SEED = 20261202


def test_critical_values_equal_scipy_stats() -> None:
    rng = np.random.default_rng(RNG_SEED)
    for _ in range(400):
        conf = float(rng.uniform(0.5, 0.999))
        df = float(rng.choice([rng.integers(1, 60), rng.integers(60, 200_000),
                               rng.uniform(0.5, 30.0)]))
        q = (1.0 + conf) / 2.0
        assert critical_value(conf, df) == float(st.t.ppf(q, df))
        assert critical_value(conf, np.inf) == float(st.norm.ppf(q))
        assert one_sided_critical_value(conf, df) == float(st.t.ppf(conf, df))
        assert one_sided_critical_value(1 - conf, np.inf) == float(st.norm.ppf(1 - conf))
    # the edges keep scipy.stats' conventions
    assert one_sided_critical_value(1.0, 5.0) == float(st.t.ppf(1.0, 5.0)) == np.inf
    assert one_sided_critical_value(0.0, np.inf) == -np.inf


def test_the_table_of_normal_quantiles_equals_scipy_special() -> None:
    from scipy import special

    for q, z in _NORMAL_QUANTILES.items():
        assert z == float(special.ndtri(q)), q
    # the levels as the call sites compute them (two-sided critical values, Wilson, the
    # report's vectorised Wilson) are keys of the table, not near misses
    for conf, alpha in ((0.9, 0.1), (0.95, 0.05), (0.99, 0.01)):
        assert (1.0 + conf) / 2.0 in _NORMAL_QUANTILES
        assert 0.5 + 0.5 * conf in _NORMAL_QUANTILES
        assert alpha / 2.0 in _NORMAL_QUANTILES and conf in _NORMAL_QUANTILES
    rng = np.random.default_rng(RNG_SEED + 9)
    for q in [*_NORMAL_QUANTILES, *rng.uniform(0.001, 0.999, size=200).tolist()]:
        assert ndtri(q) == special.ndtri(q) and isinstance(ndtri(q), np.float64)


def test_binomial_functions_equal_scipy_stats() -> None:
    rng = np.random.default_rng(RNG_SEED + 1)
    for _ in range(400):
        n = int(rng.choice([rng.integers(1, 50), rng.integers(50, 2_000_000)]))
        p = float(rng.uniform(0.001, 0.999))
        q = float(rng.uniform(0.0005, 0.5))
        dist = st.binom(n, p)
        assert binom_ppf(q, n, p) == float(dist.ppf(q))
        assert binom_isf(q, n, p) == float(dist.isf(q))
        for k in (-1, 0, int(rng.integers(0, n + 1)), n - 1, n, n + 1):
            assert binom_cdf(k, n, p) == float(dist.cdf(k))


def test_quantile_interval_equals_scipy_quantile_test() -> None:
    rng = np.random.default_rng(RNG_SEED + 2)
    for _ in range(60):
        x = rng.lognormal(0.0, 1.0, size=int(rng.integers(5, 3000)))
        p = float(rng.choice([0.5, 0.9, 0.99, rng.uniform(0.05, 0.95)]))
        res = stats.quantile_interval(x, p)
        ref = st.quantile_test(x, p=p).confidence_interval(0.95)
        assert (np.isnan(res.ci_low) and np.isnan(ref.low)) or res.ci_low == ref.low
        assert (np.isnan(res.ci_high) and np.isnan(ref.high)) or res.ci_high == ref.high
        dist = st.binom(x.size, p)
        assert res.coverage == float(dist.cdf(res.upper_rank - 1)
                                     - dist.cdf(res.lower_rank - 1))


def test_wilson_interval_equals_scipy_binomtest() -> None:
    rng = np.random.default_rng(RNG_SEED + 3)
    for _ in range(400):
        n = int(rng.integers(1, 100_000))
        x = int(rng.integers(0, n + 1))
        conf = float(rng.uniform(0.5, 0.999))
        for alt in ("two-sided", "less", "greater"):
            res = stats.wilson_interval(x, n, confidence=conf, alternative=alt)
            ci = st.binomtest(x, n, alternative=alt).proportion_ci(conf, method="wilson")
            low = 0.0 if x == 0 else min(1.0, max(0.0, float(ci.low)))
            high = 1.0 if x == n else min(1.0, max(0.0, float(ci.high)))
            assert (res.ci_low, res.ci_high) == (low, high)


def test_report_wilson_equals_statsmodels() -> None:
    rng = np.random.default_rng(RNG_SEED + 4)
    n = rng.integers(1, 5000, size=2000)
    c = rng.integers(0, n + 1)
    for alpha in (0.05, float(rng.uniform(0.001, 0.3))):
        lo, hi = proportion_confint(c, n, alpha=alpha)
        ref_lo, ref_hi = sm_confint(c, n, alpha=alpha, method="wilson")
        assert np.array_equal(lo, ref_lo) and np.array_equal(hi, ref_hi)


@pytest.mark.parametrize("module", ["evalfleet.stats", "evalfleet.analysis.report"])
def test_report_statistics_do_not_import_scipy_stats(module: str) -> None:
    """Means with t intervals, Wilson intervals, pass@k, cost per success and quantile intervals
    (everything a report computes) run without importing scipy.stats or statsmodels."""
    code = f"""
import sys
import numpy as np
import {module}
from evalfleet import stats
from evalfleet.analysis.report import proportion_confint
rng = np.random.default_rng(0)
v = rng.random(50)
stats.mean_with_se(v)
stats.mean_with_se(v, rng.integers(0, 5, size=50))
stats.wilson_interval(3, 10)
proportion_confint(np.array([3, 4]), np.array([10, 10]))
stats.quantile_interval(rng.lognormal(size=200), 0.9)
stats.aggregate_pass_k(np.full(50, 5), rng.integers(0, 6, size=50), 2, kind="pass@k")
stats.cost_per_success(rng.random(50), rng.random(50))
print(sorted(m for m in ("scipy.stats", "statsmodels", "pandas") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_t_test_p_values_equal_scipy_stats() -> None:
    from evalfleet.stats._checks import t_test

    rng = np.random.default_rng(RNG_SEED + 7)
    cases = [(float(rng.normal() * rng.choice([0.01, 1.0, 30.0])),
              float(rng.choice([0.0, 0.5, 1.0, 3.0])),
              float(rng.choice([1.0, 2.5, 9.0, 40.0, 1e6, np.inf])))
             for _ in range(3000)]
    cases += [(0.0, 0.0, 5.0), (1.0, 0.0, np.inf), (-2.0, 0.0, 3.0)]
    for estimate, se, df in cases:
        for alt in ("two-sided", "less", "greater"):
            stat, p = t_test(estimate, se, df, alt)  # type: ignore[arg-type]
            dist = st.norm if np.isinf(df) else st.t(df)
            want = {"two-sided": 2.0 * float(dist.sf(abs(stat))),
                    "less": float(dist.cdf(stat)), "greater": float(dist.sf(stat))}[alt]
            assert p == min(1.0, want), (estimate, se, df, alt)


def test_a_paired_comparison_imports_no_scipy_stats() -> None:
    code = ("import sys\nfrom evalfleet import stats\n"
            "stats.paired_difference([0.1, 0.5, 0.9, 1.0], [0.0, 0.5, 0.7, 0.2])\n"
            "stats.adjust_pvalues([0.01, 0.2], 'holm')\n"
            "print(sorted(m for m in ('scipy.stats', 'statsmodels', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_mcnemar_equals_statsmodels() -> None:
    """mcnemar_test does statsmodels' mcnemar() arithmetic on scipy.special: same bits."""
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(RNG_SEED + 7)
    cases = [(0, 1), (1, 0), (5, 5), (10, 2), (0, 40), (3, 4)]
    cases += [(int(rng.integers(0, 3_000)), int(rng.integers(0, 3_000))) for _ in range(300)]
    for b, c in cases:
        if b + c == 0:
            continue
        ours = stats.mcnemar_test(b, c)
        table = [[0, b], [c, 0]]
        assert ours.p_exact == float(mcnemar(table, exact=True).pvalue)
        for corrected, method in ((False, "chi2"), (True, "chi2-corrected")):
            res = stats.mcnemar_test(b, c, method=method)  # type: ignore[arg-type]
            ref = mcnemar(table, exact=False, correction=corrected)
            assert (res.p_value, res.statistic) == (float(ref.pvalue), float(ref.statistic))
        assert ours.p_chi2 == stats.mcnemar_test(b, c, method="chi2").p_value
        k, m = min(b, c), b + c
        assert ours.p_midp == min(1.0, 2.0 * float(st.binom.cdf(k, m, 0.5))
                                  - float(st.binom.pmf(k, m, 0.5)))
