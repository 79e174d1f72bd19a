"""Cost per success (delta method) and order-statistic quantile intervals (O24)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from evalfleet.stats import cost_per_success, quantile_interval

HYP = settings(max_examples=50, deadline=None, database=None)


@HYP
@given(
    tasks=st.lists(
        # Costs in cents and success rates over K = 10 runs, as the analysis layer passes them.
        st.tuples(
            st.integers(min_value=0, max_value=1000).map(lambda c: c / 100),
            st.integers(min_value=0, max_value=10).map(lambda s: s / 10),
        ),
        min_size=2,
        max_size=60,
    )
)
def test_cost_per_success_delta_method_matches_the_gradient_form(
    tasks: list[tuple[float, float]],
) -> None:
    cost, success = (np.array(v) for v in zip(*tasks, strict=True))
    result = cost_per_success(cost, success)
    if success.mean() == 0:
        assert math.isnan(result.estimate) and "no successes" in result.method
        return
    n = cost.size
    ratio = cost.sum() / success.sum()
    # Var(R) ~ g' Sigma g / n with g = (1/ybar, -cbar/ybar^2) and Sigma the sample covariance.
    grad = np.array([1 / success.mean(), -cost.mean() / success.mean() ** 2])
    sigma = np.cov(np.vstack([cost, success]), ddof=1)
    expected_var = float(grad @ sigma @ grad) / n
    # The gradient form cancels catastrophically when the residuals vanish; compare variances
    # with a tolerance on the scale of the terms that cancel.
    scale = (np.mean(cost**2) + ratio**2 * np.mean(success**2)) / (success.mean() ** 2 * n)
    assert result.estimate == pytest.approx(ratio, rel=1e-12)
    assert result.se**2 == pytest.approx(expected_var, rel=1e-7, abs=1e-12 * scale)
    assert result.mean_cost == pytest.approx(cost.mean()) and result.df == n - 1
    t = sps.t.ppf(0.975, n - 1)
    assert result.ci_high == pytest.approx(ratio + t * result.se, rel=1e-9, abs=1e-12)


def test_cost_per_success_with_clusters_and_edge_cases() -> None:
    cost = np.array([1.0, 2.0, 3.0, 4.0, 2.0, 2.0])
    success = np.array([1.0, 0.0, 1.0, 0.5, 1.0, 0.0])
    clustered = cost_per_success(cost, success, ["a", "a", "b", "b", "c", "c"])
    assert clustered.n_clusters == 3 and clustered.df == 2 and "CR1" in clustered.method
    no_success = cost_per_success([1.0, 2.0], [0.0, 0.0])
    assert math.isnan(no_success.estimate) and no_success.mean_cost == 1.5
    with pytest.raises(ValueError, match="between 0 and 1"):
        cost_per_success([1.0], [1.5])
    with pytest.raises(ValueError, match="non-negative"):
        cost_per_success([-1.0], [1.0])
    with pytest.raises(ValueError, match="aligned"):
        cost_per_success([1.0, 2.0], [1.0])


def test_o24_median_interval_for_twenty_observations() -> None:
    result = quantile_interval(np.arange(1, 21)[::-1])
    assert (result.ci_low, result.ci_high) == (6.0, 15.0)
    assert (result.lower_rank, result.upper_rank) == (6, 15)
    assert result.coverage == pytest.approx(0.958611, abs=1e-6)
    assert result.estimate == 10.5
    ci = sps.quantile_test(np.arange(1, 21), q=10.5, p=0.5).confidence_interval(0.95)
    assert (ci.low, ci.high) == (6.0, 15.0)


@HYP
@given(
    n=st.integers(min_value=1, max_value=300),
    p=st.sampled_from([0.1, 0.5, 0.9, 0.95, 0.99]),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_quantile_interval_matches_scipy_quantile_test(
    n: int, p: float, confidence: float, seed: int
) -> None:
    x = np.random.default_rng(seed).lognormal(size=n)
    result = quantile_interval(x, p, confidence=confidence)
    ci = sps.quantile_test(x, q=float(np.median(x)), p=p).confidence_interval(confidence)
    np.testing.assert_equal([result.ci_low, result.ci_high], [ci.low, ci.high])
    if not (math.isnan(result.ci_low) or math.isnan(result.ci_high)):
        assert result.coverage >= confidence - 1e-12
        assert result.ci_low <= result.estimate <= result.ci_high


def test_quantile_interval_small_samples_and_errors() -> None:
    small = quantile_interval([3.0, 1.0, 2.0], 0.5)
    assert math.isnan(small.ci_low) and math.isnan(small.ci_high) and "too small" in small.method
    empty = quantile_interval([], 0.9)
    assert empty.n == 0 and math.isnan(empty.estimate)
    with pytest.raises(ValueError, match="quantile"):
        quantile_interval([1.0, 2.0], 1.0)
