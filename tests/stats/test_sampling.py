"""Stratified and difference estimators, Neyman allocation: Cochran's formulas, example O18."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from evalfleet.stats import difference_estimator, neyman_allocation, stratified_mean

HYP = settings(max_examples=50, deadline=None, database=None)


def with_sd(n: int, sd: float, mean: float, seed: int) -> np.ndarray:
    """n values with exactly the given sample mean and sample SD (ddof 1)."""
    x = np.random.default_rng(seed).normal(size=n)
    x = (x - x.mean()) / x.std(ddof=1)
    return mean + sd * x


def test_o18_difference_estimator_beats_the_direct_subset_mean() -> None:
    # N = 2000 tasks, n = 100 sampled; S_y = 0.46 for scores, S_d = 0.35 for differences.
    direct = stratified_mean(with_sd(100, 0.46, 0.6, 1), None, 2000)
    assert direct.se == pytest.approx(0.044835, abs=1e-6)
    assert direct.df == pytest.approx(99)
    base = np.random.default_rng(2).random(100)
    new = base + with_sd(100, 0.35, -0.02, 3)
    diff = difference_estimator(new, base, 0.55, None, 2000)
    assert diff.se == pytest.approx(0.034114, abs=1e-6)
    assert diff.estimate == pytest.approx(0.55 - 0.02, abs=1e-12)
    assert diff.ci_low == pytest.approx(diff.estimate - sps.t.ppf(0.975, 99) * diff.se)
    assert "difference estimator" in diff.method


@HYP
@given(
    sizes=st.lists(st.integers(min_value=2, max_value=60), min_size=1, max_size=5),
    fractions=st.lists(st.floats(min_value=0.05, max_value=1.0), min_size=5, max_size=5),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_stratified_mean_matches_cochrans_formulas(
    sizes: list[int], fractions: list[float], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    labels, values, expected_mean, expected_var, satterthwaite = [], [], 0.0, 0.0, []
    big_n = sum(sizes)
    for h, (size, frac) in enumerate(zip(sizes, fractions[: len(sizes)], strict=True)):
        n_h = max(2, min(size, round(frac * size)))
        y = rng.random(n_h)
        labels += [f"s{h}"] * n_h
        values += y.tolist()
        w = size / big_n
        expected_mean += w * y.mean()
        term = w**2 * (1 - n_h / size) * y.var(ddof=1) / n_h
        expected_var += term
        satterthwaite.append((term, n_h))
    result = stratified_mean(values, labels, {f"s{h}": size for h, size in enumerate(sizes)})
    assert result.estimate == pytest.approx(expected_mean, abs=1e-12)
    assert result.se == pytest.approx(math.sqrt(expected_var), abs=1e-12)
    assert result.population_size == big_n and result.n_strata == len(sizes)
    if expected_var > 0:
        df = expected_var**2 / sum(t**2 / (n - 1) for t, n in satterthwaite if t > 0)
        assert result.df == pytest.approx(df, rel=1e-9)


def test_census_stratum_adds_no_variance_and_single_task_stratum_is_nan() -> None:
    census = stratified_mean([0.2, 0.4, 0.9], ["a", "a", "b"], {"a": 2, "b": 1})
    assert census.se == 0.0 and census.estimate == pytest.approx((0.3 * 2 + 0.9) / 3)
    partial = stratified_mean([0.2, 0.4, 0.9], ["a", "a", "b"], {"a": 2, "b": 5})
    assert math.isnan(partial.se) and "1 task" in partial.method


def test_stratified_mean_input_errors() -> None:
    with pytest.raises(ValueError, match="no sampled tasks"):
        stratified_mean([0.2, 0.4], ["a", "a"], {"a": 5, "b": 5})
    with pytest.raises(ValueError, match="missing from population_sizes"):
        stratified_mean([0.2, 0.4], ["a", "c"], {"a": 5})
    with pytest.raises(ValueError, match="N_h"):
        stratified_mean([0.2, 0.4, 0.5], ["a", "a", "a"], {"a": 2})
    with pytest.raises(ValueError, match="suite size"):
        stratified_mean([0.2, 0.4], None, {"a": 5})
    with pytest.raises(ValueError, match="length"):
        stratified_mean([0.2, 0.4], ["a"], {"a": 5})


def test_neyman_allocation_of_runs_is_proportional_to_sigma() -> None:
    result = neyman_allocation(100, [0.5, 0.3, 0.0, 0.2], minimum=5)
    assert result.exact == pytest.approx((47.5, 28.5, 5.0, 19.0))
    assert sum(result.counts) == 100 and min(result.counts) >= 5
    plain = neyman_allocation(10, [1.0, 1.0, 2.0])
    assert plain.counts == (2, 3, 5) or plain.counts == (3, 2, 5)
    even = neyman_allocation(9, [0.0, 0.0, 0.0])
    assert even.counts == (3, 3, 3)


def test_neyman_allocation_across_strata_gives_cochrans_variance() -> None:
    sizes = np.array([500.0, 300.0, 200.0])
    sds = np.array([0.2, 0.45, 0.5])
    n = 120
    result = neyman_allocation(n, sds, sizes)
    alloc = np.array(result.exact)
    np.testing.assert_allclose(alloc, n * sizes * sds / (sizes * sds).sum())
    w = sizes / sizes.sum()
    variance = float((w**2 * (1 - alloc / sizes) * sds**2 / alloc).sum())
    v_neyman = (w @ sds) ** 2 / n - (w @ sds**2) / sizes.sum()
    assert variance == pytest.approx(v_neyman, rel=1e-12)
    assert sum(result.counts) == n


@HYP
@given(
    sds=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=12),
    sizes_seed=st.integers(min_value=0, max_value=2**32 - 1),
    floor=st.integers(min_value=0, max_value=3),
    share=st.floats(min_value=0, max_value=1),
)
def test_neyman_allocation_respects_bounds_and_is_optimal(
    sds: list[float], sizes_seed: int, floor: int, share: float
) -> None:
    sizes = np.random.default_rng(sizes_seed).integers(1, 40, size=len(sds)).astype(float)
    lower = np.minimum(floor, sizes)
    total = round(float(lower.sum() + share * (sizes.sum() - lower.sum())))
    result = neyman_allocation(total, sds, sizes, minimum=floor)
    counts = np.array(result.counts)
    exact = np.array(result.exact)
    assert counts.sum() == total
    assert np.all(counts >= lower) and np.all(counts <= sizes)
    assert exact.sum() == pytest.approx(total, abs=1e-6)
    assert np.all(np.abs(counts - exact) < 1 + 1e-9)
    # KKT: units strictly inside their bounds share one ratio x / (N_h S_h). Weights below
    # 1e-12 of the largest count as 0 (documented), so they are left out of the check.
    w = np.array(sds) * sizes
    if w.max() == 0:
        return
    w = w / w.max()
    inside = (exact > lower + 1e-7) & (exact < sizes - 1e-7) & (w >= 1e-12)
    if inside.sum() >= 2:
        ratios = exact[inside] / w[inside]
        assert np.ptp(ratios) <= 1e-6 * ratios.max()


def test_neyman_allocation_input_errors() -> None:
    with pytest.raises(ValueError, match="floor"):
        neyman_allocation(5, [0.1, 0.2, 0.3], minimum=2)
    with pytest.raises(ValueError, match="exceeds the population"):
        neyman_allocation(50, [0.1, 0.2], [10, 10])
    with pytest.raises(ValueError, match="non-negative"):
        neyman_allocation(5, [0.1, -0.2])
    with pytest.raises(ValueError, match="positive integers"):
        neyman_allocation(5, [0.1, 0.2], [2.5, 4])
    with pytest.raises(ValueError, match="empty"):
        neyman_allocation(5, [])
