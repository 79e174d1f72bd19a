"""Paired differences and the regression flag: oracles O7, O8 and O10; scipy, statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from evalfleet.stats import (
    mean_with_se,
    paired_difference,
    paired_permutation_test,
    regression_flag,
)

HYP = settings(max_examples=50, deadline=None, database=None)
ALTERNATIVES = ["two-sided", "less", "greater"]
O6_A = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 1]], float)
O7_B = np.array([[1, 1, 1], [0, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]], float)
O10_D = np.array([1 / 3, 0, 2 / 3, 0, -1 / 3, 1 / 3, 0, 1, 1 / 3, 0, 2 / 3, -1 / 3])

# Partial-credit scores in [0, 1] at micro resolution (scipy warns on subnormal differences).
unit_scores = st.integers(min_value=0, max_value=10**6).map(lambda i: i / 10**6)


def test_o7_paired_difference_with_k_runs() -> None:
    result = paired_difference(O6_A.mean(axis=1), O7_B.mean(axis=1))
    assert result.estimate == pytest.approx(0.222222, abs=1e-6)
    assert result.se == pytest.approx(0.07027284, abs=1e-8)
    assert result.statistic == pytest.approx(3.162278, abs=1e-6)
    assert result.p_value == pytest.approx(0.02503102, abs=1e-8)
    assert result.df == 5 and result.n == 6
    z = paired_difference(O6_A.mean(axis=1), O7_B.mean(axis=1), distribution="normal")
    assert z.p_value == pytest.approx(0.00156540, abs=1e-8)


def test_o10_one_sample_t_and_exact_sign_flip() -> None:
    t = paired_difference(O10_D, np.zeros(12))
    assert t.statistic == pytest.approx(1.876166, abs=1e-6)
    assert t.p_value == pytest.approx(0.08740039, abs=1e-8)
    perm = paired_permutation_test(O10_D, np.zeros(12))
    assert perm.exact and perm.n_resamples == 4096
    assert perm.p_value == pytest.approx(0.140625, abs=1e-12)


def with_se_and_correlation(
    se_a: float, se_b: float, rho: float, n: int = 40
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of two agents on n tasks whose mean SEs are exactly se_a and se_b and whose
    per-task correlation is exactly rho (built from two orthonormal centred vectors)."""
    x = np.random.default_rng(0).normal(size=(n, 2))
    q, _ = np.linalg.qr(x - x.mean(axis=0))
    u, v = q[:, 0] / q[:, 0].std(ddof=1), q[:, 1] / q[:, 1].std(ddof=1)
    a = 0.5 + u * se_a * math.sqrt(n)
    b = 0.4 + (rho * u + math.sqrt(1 - rho**2) * v) * se_b * math.sqrt(n)
    return a, b


@pytest.mark.parametrize(
    ("se_a", "se_b", "rho", "se_paired"),
    [
        # Miller 2024, table 5 (MGSM/MATH): SE_A 1.6, SE_B 1.5, rho 0.37 give SE_paired 1.7418.
        (1.6, 1.5, 0.37, 1.7418),
        # Corrected section 4.2: Var = 1/12 each and rho = 0.5 give a paired variance of 1/12.
        (math.sqrt(1 / 12), math.sqrt(1 / 12), 0.5, math.sqrt(1 / 12)),
        # Uncorrelated scores: the paired SE is the unpaired one, sqrt(0.3^2 + 0.4^2) = 0.5.
        (0.3, 0.4, 0.0, 0.5),
    ],
)
def test_o8_paired_se_reproduces_millers_worked_numbers(
    se_a: float, se_b: float, rho: float, se_paired: float
) -> None:
    a, b = with_se_and_correlation(se_a, se_b, rho)
    assert mean_with_se(a).se == pytest.approx(se_a, rel=1e-9)
    assert mean_with_se(b).se == pytest.approx(se_b, rel=1e-9)
    result = paired_difference(a, b)
    assert result.correlation == pytest.approx(rho, abs=1e-9)
    assert result.se == pytest.approx(se_paired, abs=1e-4)


@HYP
@given(pairs=st.lists(st.tuples(unit_scores, unit_scores), min_size=3, max_size=50))
def test_paired_se_obeys_the_correlation_identity(pairs: list[tuple[float, float]]) -> None:
    a, b = np.array(pairs).T
    assume(np.ptp(a) > 1e-6 and np.ptp(b) > 1e-6)
    result = paired_difference(a, b)
    se_a, se_b = mean_with_se(a).se, mean_with_se(b).se
    expected = se_a**2 + se_b**2 - 2 * se_a * se_b * result.correlation
    assert result.se**2 == pytest.approx(expected, rel=1e-7, abs=1e-12)


@HYP
@given(
    pairs=st.lists(st.tuples(unit_scores, unit_scores), min_size=2, max_size=50),
    alternative=st.sampled_from(ALTERNATIVES),
    confidence=st.sampled_from([0.9, 0.95, 0.99]),
)
def test_paired_difference_matches_scipy_ttest_rel(
    pairs: list[tuple[float, float]], alternative: str, confidence: float
) -> None:
    a, b = np.array(pairs).T
    d = a - b
    assume(np.ptp(d) > 1e-6)
    result = paired_difference(a, b, alternative=alternative, confidence=confidence)  # type: ignore[arg-type]
    ref = sps.ttest_rel(a, b, alternative=alternative)
    assert result.statistic == pytest.approx(float(ref.statistic), rel=1e-7)
    assert result.p_value == pytest.approx(float(ref.pvalue), rel=1e-7, abs=1e-12)
    ci = sps.ttest_rel(a, b).confidence_interval(confidence)
    assert result.ci_low == pytest.approx(float(ci.low), abs=1e-9)
    assert result.ci_high == pytest.approx(float(ci.high), abs=1e-9)


@HYP
@given(
    diffs=st.lists(unit_scores.map(lambda x: 2 * x - 1), min_size=4, max_size=60),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    n_groups=st.integers(min_value=2, max_value=10),
)
def test_clustered_paired_difference_matches_statsmodels(
    diffs: list[float], seed: int, n_groups: int
) -> None:
    d = np.array(diffs)
    assume(np.ptp(d) > 1e-6)
    groups = np.random.default_rng(seed).integers(0, n_groups, size=d.size)
    assume(np.unique(groups).size >= 2)
    result = paired_difference(d, np.zeros_like(d), groups)
    fit = sm.OLS(d, np.ones((d.size, 1))).fit(
        cov_type="cluster", cov_kwds={"groups": groups}, use_t=True
    )
    assert result.se == pytest.approx(float(fit.bse[0]), rel=1e-7)
    assert result.p_value == pytest.approx(float(fit.pvalues[0]), rel=1e-6, abs=1e-12)
    low, high = fit.conf_int()[0]
    assert result.ci_low == pytest.approx(low, abs=1e-9)
    assert result.ci_high == pytest.approx(high, abs=1e-9)
    assert result.df == np.unique(groups).size - 1


def test_degenerate_paired_inputs() -> None:
    zero = paired_difference([0.5, 0.2, 0.9], [0.5, 0.2, 0.9])
    assert zero.estimate == 0.0 and zero.se == 0.0 and zero.p_value == 1.0
    shifted = paired_difference([0.6, 0.3, 1.0], [0.5, 0.2, 0.9])
    assert shifted.se == 0.0 and shifted.p_value == 0.0  # scipy's ttest gives the same limit
    one = paired_difference([1.0], [0.0])
    assert one.estimate == 1.0 and math.isnan(one.se) and math.isnan(one.p_value)
    none = paired_difference([], [])
    assert none.n == 0 and math.isnan(none.estimate) and math.isnan(none.mean_a)
    with pytest.raises(ValueError, match="aligned"):
        paired_difference([1.0, 0.0], [1.0])


def test_regression_flag_two_gates() -> None:
    rng = np.random.default_rng(4)
    reference = rng.random(400)
    noise = rng.normal(0, 0.05, 400)
    big_drop = regression_flag(reference - 0.05 + noise, reference, margin=0.02)
    assert big_drop.flagged and big_drop.significant and big_drop.practical
    small_drop = regression_flag(reference - 0.01 + noise, reference, margin=0.02)
    assert small_drop.significant and not small_drop.practical and not small_drop.flagged
    no_drop = regression_flag(reference + noise, reference, margin=0.0)
    assert not no_drop.significant
    for flag in (big_drop, small_drop, no_drop):
        d = flag.difference
        t95 = sps.t.ppf(0.95, d.df)
        assert flag.upper_bound == pytest.approx(d.estimate + t95 * d.se, abs=1e-12)
        assert flag.significant == (flag.p_value < 0.05)
        assert d.alternative == "less"


def test_regression_flag_does_not_fire_without_an_se() -> None:
    flag = regression_flag([0.0], [1.0], margin=0.1)
    assert not flag.flagged and not flag.significant and flag.practical
    assert "SE undefined" in flag.method


def test_regression_flag_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="margin"):
        regression_flag([0.1, 0.2], [0.2, 0.3], margin=-0.01)
    with pytest.raises(ValueError, match="alpha"):
        regression_flag([0.1, 0.2], [0.2, 0.3], alpha=0.6)
