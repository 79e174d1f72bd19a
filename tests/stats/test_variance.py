"""Variance components and the K-projection: worked examples O6 and O8."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalfleet.stats import (
    VarianceComponents,
    paired_variance_components,
    task_means,
    variance_components,
)

HYP = settings(max_examples=50, deadline=None, database=None)
O6_A = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 1]], float)
O7_B = np.array([[1, 1, 1], [0, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]], float)


def test_o6_components_and_projected_se() -> None:
    vc = variance_components(O6_A)
    assert vc.within == pytest.approx(0.16666667, abs=1e-8)
    assert vc.var_task_means == pytest.approx(0.15185185, abs=1e-8)
    assert vc.between == pytest.approx(0.09629630, abs=1e-8)
    assert vc.se == pytest.approx(0.15908690, abs=1e-8)
    assert vc.n_tasks == 6 and vc.k_min == 3 and vc.k_mean == 3.0 and not vc.clipped
    assert vc.projected_se(1) == pytest.approx(0.20934937, abs=1e-8)
    assert vc.projected_se(3) == pytest.approx(0.15908690, abs=1e-8)
    assert vc.projected_se(10) == pytest.approx(0.13721210, abs=1e-8)
    assert vc.projected_se(math.inf) == pytest.approx(0.12668616, abs=1e-8)


@pytest.mark.parametrize(
    ("k", "ratio"), [(2, 0.666667), (4, 0.5), (6, 0.444444), (math.inf, 1 / 3)]
)
def test_o8_resampling_variance_ratio_for_uniform_pass_rates(k: float, ratio: float) -> None:
    # x ~ U[0, 1]: Var(x) = 1/12 and E[x(1-x)] = 1/6, so Var(K) / Var(1) = (1 + 2/K) / 3.
    vc = VarianceComponents(
        between=1 / 12,
        within=1 / 6,
        var_task_means=math.nan,
        n_tasks=100,
        k_min=1,
        k_mean=1.0,
        se=math.nan,
        clipped=False,
        method="population values",
    )
    assert (vc.projected_se(k) / vc.projected_se(1)) ** 2 == pytest.approx(ratio, abs=1e-6)


def test_ragged_list_padded_matrix_and_task_means_agree() -> None:
    ragged = [[1, 0, 1, 1], [0, 0], [1], [1, 1, 0]]
    padded = np.full((4, 4), np.nan)
    for i, row in enumerate(ragged):
        padded[i, : len(row)] = row
    values = [v for row in ragged for v in row]
    ids = [i for i, row in enumerate(ragged) for _ in row]
    results = [
        variance_components(ragged),
        variance_components(padded),
        variance_components(task_means(values, ids)),
    ]
    for other in results[1:]:
        assert other == results[0]
    vc = results[0]
    assert vc.k_min == 1 and vc.k_mean == 2.5
    # Within: mean of per-task ddof-1 variances over tasks with >= 2 runs.
    assert vc.within == pytest.approx(np.mean([0.25, 0.0, 1 / 3]), abs=1e-12)


@HYP
@given(
    n=st.integers(min_value=2, max_value=30),
    k=st.integers(min_value=2, max_value=8),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_balanced_within_variance_is_millers_formula(n: int, k: int, seed: int) -> None:
    scores = np.random.default_rng(seed).integers(0, 2, size=(n, k)).astype(float)
    vc = variance_components(scores)
    means = scores.mean(axis=1)
    miller = ((scores - means[:, None]) ** 2).sum() / (n * (k - 1))
    assert vc.within == pytest.approx(miller, abs=1e-12)
    raw_between = means.var(ddof=1) - miller / k
    assert vc.between == pytest.approx(max(0.0, raw_between), abs=1e-12)
    if abs(raw_between) > 1e-12:  # at exactly 0 rounding decides, either answer is right
        assert vc.clipped == (raw_between < 0)
    assert vc.projected_se(k) >= vc.se - 1e-12  # equality unless clipped


def test_negative_between_estimate_is_clipped() -> None:
    # Pure run noise: task means vary less than sigma^2 / K predicts.
    scores = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], float)
    vc = variance_components(scores)
    assert vc.clipped and vc.between == 0.0
    assert "clipped" in vc.method


def test_undefined_components_are_nan() -> None:
    single_runs = variance_components([[1.0], [0.0], [1.0]])
    assert math.isnan(single_runs.within) and math.isnan(single_runs.between)
    assert "within-task variance undefined" in single_runs.method
    one_task = variance_components([[1.0, 0.0, 1.0]])
    assert math.isnan(one_task.between) and math.isnan(one_task.se)
    empty = variance_components(np.empty((0, 3)))
    assert empty.n_tasks == 0 and math.isnan(empty.projected_se(3))
    with pytest.raises(ValueError, match="no scored runs"):
        variance_components([[1.0, 0.0], [np.nan, np.nan]])
    with pytest.raises(ValueError, match="positive"):
        variance_components(O6_A).projected_se(0)


def test_paired_components_on_the_o7_example() -> None:
    pc = paired_variance_components(O6_A, O7_B)
    d = O6_A.mean(axis=1) - O7_B.mean(axis=1)
    sa = O6_A.var(axis=1, ddof=1).mean()
    sb = O7_B.var(axis=1, ddof=1).mean()
    assert pc.sigma2_a == pytest.approx(sa, abs=1e-12)
    assert pc.sigma2_b == pytest.approx(sb, abs=1e-12)
    assert pc.var_differences == pytest.approx(d.var(ddof=1), abs=1e-12)
    assert pc.omega2 == pytest.approx(max(0.0, d.var(ddof=1) - sa / 3 - sb / 3), abs=1e-12)
    assert pc.n_tasks == 6 and pc.k_a_mean == 3.0


def test_paired_components_recover_the_population_values() -> None:
    # Large simulated suite with known omega^2 and sigma^2: the estimator is unbiased.
    rng = np.random.default_rng(7)
    n, k = 40_000, 4
    p_a = rng.beta(2.0, 1.5, size=n)
    p_b = np.clip(p_a - 0.1 + rng.normal(0, 0.1, size=n), 0.0, 1.0)
    runs_a = (rng.random((n, k)) < p_a[:, None]).astype(float)
    runs_b = (rng.random((n, k)) < p_b[:, None]).astype(float)
    pc = paired_variance_components(runs_a, runs_b)
    assert pc.omega2 == pytest.approx(np.var(p_a - p_b), rel=0.08)
    assert pc.sigma2_a == pytest.approx(np.mean(p_a * (1 - p_a)), rel=0.02)
    assert pc.sigma2_b == pytest.approx(np.mean(p_b * (1 - p_b)), rel=0.02)


def test_paired_components_need_the_same_tasks() -> None:
    with pytest.raises(ValueError, match="aligned"):
        paired_variance_components(O6_A, O7_B[:5])
    a = task_means([1, 0, 1], ["t1", "t1", "t2"])
    b = task_means([1, 0, 1], ["t1", "t1", "t3"])
    with pytest.raises(ValueError, match="same task ids"):
        paired_variance_components(a, b)
