"""Sign-flip permutation test: worked example O10, scipy and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from evalfleet.stats import paired_permutation_test

HYP = settings(max_examples=50, deadline=None, database=None)
ALTERNATIVES = ["two-sided", "less", "greater"]

# Per-task means of K runs live on a 1/K grid; differences of them on a 1/6 grid cover K = 1, 2,
# 3 and 6. Grid values tie exactly, as real eval data does.
grid_values = st.integers(min_value=-6, max_value=6).map(lambda i: i / 6)


@HYP
@given(
    diffs=st.lists(grid_values, min_size=2, max_size=11),
    alternative=st.sampled_from(ALTERNATIVES),
)
def test_exact_permutation_matches_scipy_permutation_test(
    diffs: list[float], alternative: str
) -> None:
    d = np.array(diffs)
    result = paired_permutation_test(d, np.zeros_like(d), alternative=alternative)  # type: ignore[arg-type]
    # scipy sees the same data scaled to integers (p-values are scale-free), so its sums are
    # exact; on the 1/6 grid its 1e-14 relative tie tolerance misses ties at a mean of zero.
    ref = sps.permutation_test(
        (np.round(d * 6),),
        np.mean,
        permutation_type="samples",
        vectorized=True,
        n_resamples=np.inf,
        alternative=alternative,
    )
    assert result.exact
    assert result.p_value == pytest.approx(float(ref.pvalue), abs=1e-12)


@HYP
@given(
    diffs=st.lists(grid_values, min_size=2, max_size=24),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    n_groups=st.integers(min_value=1, max_value=9),
    alternative=st.sampled_from(ALTERNATIVES),
)
def test_cluster_sign_flip_matches_brute_force(
    diffs: list[float], seed: int, n_groups: int, alternative: str
) -> None:
    d = np.array(diffs)
    groups = np.random.default_rng(seed).integers(0, n_groups, size=d.size)
    result = paired_permutation_test(d, np.zeros_like(d), groups, alternative=alternative)  # type: ignore[arg-type]
    sums = np.array([d[groups == g].sum() for g in np.unique(groups)])
    observed = sums.sum()
    flipped = np.array([np.dot(s, sums) for s in itertools.product([1, -1], repeat=sums.size)])
    tol = 1e-9
    if alternative == "two-sided":
        hits = np.abs(flipped) >= abs(observed) - tol
    elif alternative == "less":
        hits = flipped <= observed + tol
    else:
        hits = flipped >= observed - tol
    assert result.n_units == sums.size and result.exact
    assert result.p_value == pytest.approx(hits.mean(), abs=1e-12)


def test_monte_carlo_permutation_is_seeded_and_close_to_exact() -> None:
    rng = np.random.default_rng(11)
    d = rng.integers(-3, 4, size=18) / 3 + 0.15
    exact = paired_permutation_test(d, np.zeros(18), n_resamples=2**18)
    mc = paired_permutation_test(d, np.zeros(18), n_resamples=40_000, seed=5)
    again = paired_permutation_test(d, np.zeros(18), n_resamples=40_000, seed=5)
    other = paired_permutation_test(d, np.zeros(18), n_resamples=40_000, seed=6)
    assert exact.exact and not mc.exact and mc.seed == 5 and "seed 5" in mc.method
    assert mc.p_value == again.p_value and mc.p_value != other.p_value
    mc_se = math.sqrt(exact.p_value * (1 - exact.p_value) / 40_000)
    assert abs(mc.p_value - exact.p_value) < 4 * mc_se + 1 / 40_000


def test_monte_carlo_on_a_large_suite_runs_quickly_and_finds_a_real_effect() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 4, size=3000) / 3
    b = np.clip(a - rng.integers(0, 2, size=3000) / 3 * (rng.random(3000) < 0.2), 0, 1)
    result = paired_permutation_test(a, b, n_resamples=20_000, seed=1)
    assert result.p_value == pytest.approx(1 / 20_001)
    # Under the null (an independent agent with the same score distribution) the Monte Carlo
    # p-value agrees with the paired t-test, which is accurate at n = 3000, within MC error.
    other = rng.integers(0, 4, size=3000) / 3
    null = paired_permutation_test(a, other, n_resamples=2_000, seed=1)
    t_p = float(sps.ttest_rel(a, other).pvalue)
    assert 0.05 < t_p < 0.95  # a real null draw, so the comparison below is informative
    assert abs(null.p_value - t_p) < 4 * math.sqrt(t_p * (1 - t_p) / 2_000) + 1 / 2_001


def test_permutation_edge_cases() -> None:
    nothing = paired_permutation_test([], [])
    assert math.isnan(nothing.p_value) and nothing.n == 0
    tied = paired_permutation_test([0.5, 0.5], [0.5, 0.5])
    assert tied.p_value == 1.0
    with pytest.raises(ValueError, match="n_resamples"):
        paired_permutation_test([1.0], [0.0], n_resamples=0)
    with pytest.raises(ValueError, match="infeasible"):
        paired_permutation_test(np.ones(60), np.zeros(60), n_resamples=math.inf)
