"""Means over tasks, SE_CLT and CR1: worked examples O4-O6, scipy and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from evalfleet.stats import clustered_se, mean_with_se, task_means

HYP = settings(max_examples=50, deadline=None, database=None)
TOL = 1e-6

O4 = [1, 1, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1]
O5_CLUSTERS = list("aaaabbbccddd")
O6_RUNS = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 1]], float)


def statsmodels_cr1(values: np.ndarray, groups: np.ndarray) -> float:
    _, codes = np.unique(groups, return_inverse=True)
    fit = sm.OLS(values, np.ones((len(values), 1))).fit(
        cov_type="cluster", cov_kwds={"groups": codes}
    )
    return float(fit.bse[0])


def test_o4_clt_standard_error() -> None:
    result = mean_with_se(O4)
    assert result.estimate == pytest.approx(0.583333, abs=TOL)
    assert result.se == pytest.approx(0.14864710, abs=1e-8)
    assert result.df == 11 and result.n == 12 and result.n_clusters is None
    t = sps.t.ppf(0.975, 11)
    assert result.ci_low == pytest.approx(result.estimate - t * result.se, abs=1e-12)
    assert "SE_CLT" in result.method and "t(11)" in result.method


def test_o4_normal_critical_value_on_request() -> None:
    result = mean_with_se(O4, distribution="normal")
    assert math.isinf(result.df)
    assert result.ci_high == pytest.approx(0.583333 + 1.959963985 * 0.14864710, abs=TOL)


def test_o5_clustered_conventions() -> None:
    assert clustered_se(O4, O5_CLUSTERS) == pytest.approx(0.19077220, abs=1e-8)
    assert clustered_se(O4, O5_CLUSTERS, kind="CR0") == pytest.approx(0.16521357, abs=1e-8)
    assert clustered_se(O4, O5_CLUSTERS, kind="miller-eq4") == pytest.approx(0.17069521, abs=1e-8)
    assert clustered_se(O4, np.arange(12)) == pytest.approx(0.14864710, abs=1e-8)


def test_o5_cr1_interval_with_t3_leaves_the_unit_interval() -> None:
    result = mean_with_se(O4, O5_CLUSTERS)
    assert result.se == pytest.approx(0.19077220, abs=1e-8)
    assert result.n_clusters == 4 and result.df == 3
    assert result.ci_low == pytest.approx(-0.023789, abs=TOL)
    assert result.ci_high == pytest.approx(1.190456, abs=TOL)
    assert "CR1" in result.method and "G=4" in result.method and "t(3)" in result.method


def test_o6_task_means_and_cr1_on_pooled_runs() -> None:
    values = O6_RUNS.ravel()
    tasks = np.repeat(np.arange(6), 3)
    tm = task_means(values, tasks)
    np.testing.assert_allclose(tm.means, [1, 2 / 3, 0, 2 / 3, 1 / 3, 1])
    np.testing.assert_array_equal(tm.counts, [3] * 6)
    result = mean_with_se(tm.means)
    assert result.estimate == pytest.approx(0.611111, abs=TOL)
    assert result.se == pytest.approx(0.15908690, abs=1e-8)
    # CR1 by task on the pooled runs equals the SE of task means when K is equal ...
    assert clustered_se(values, tasks) == pytest.approx(0.15908690, abs=1e-8)
    assert statsmodels_cr1(values, tasks) == pytest.approx(0.15908690, abs=1e-8)
    # ... and the naive pooled SE is 26% too small.
    assert mean_with_se(values).se == pytest.approx(0.11823564, abs=1e-8)


@HYP
@given(
    values=st.lists(st.floats(min_value=-5, max_value=5), min_size=3, max_size=60),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    n_groups=st.integers(min_value=2, max_value=12),
)
def test_cr1_matches_statsmodels_ols_cluster(values: list[float], seed: int, n_groups: int) -> None:
    arr = np.array(values)
    groups = np.random.default_rng(seed).integers(0, n_groups, size=arr.size)
    if np.unique(groups).size < 2:
        groups[0] = 1 - groups[1] if groups[1] in (0, 1) else 0
    expected = statsmodels_cr1(arr, groups)
    assert clustered_se(arr, groups) == pytest.approx(expected, rel=1e-6, abs=1e-9)
    result = mean_with_se(arr, groups)
    g = np.unique(groups).size
    assert result.n_clusters == g and result.df == g - 1


@HYP
@given(
    values=st.lists(st.floats(min_value=-5, max_value=5), min_size=2, max_size=60),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_clt_interval_matches_scipy_one_sample_t(values: list[float], confidence: float) -> None:
    arr = np.array(values)
    result = mean_with_se(arr, confidence=confidence)
    if np.ptp(arr) == 0:
        assert result.se == 0.0 and result.ci_low == result.ci_high == result.estimate
        return
    assert result.se == pytest.approx(float(sps.sem(arr)), rel=1e-9, abs=1e-12)
    ci = sps.ttest_1samp(arr, 0.0).confidence_interval(confidence)
    assert result.ci_low == pytest.approx(float(ci.low), rel=1e-9, abs=1e-9)
    assert result.ci_high == pytest.approx(float(ci.high), rel=1e-9, abs=1e-9)


@HYP
@given(values=st.lists(st.floats(min_value=-5, max_value=5), min_size=2, max_size=40))
def test_singleton_clusters_reduce_cr1_to_se_clt(values: list[float]) -> None:
    arr = np.array(values)
    assert clustered_se(arr, np.arange(arr.size)) == pytest.approx(
        mean_with_se(arr).se, rel=1e-9, abs=1e-12
    )


def test_no_tasks_one_task_identical_values_single_cluster() -> None:
    empty = mean_with_se([])
    assert empty.n == 0 and math.isnan(empty.estimate) and math.isnan(empty.se)
    assert "no tasks" in empty.method
    one = mean_with_se([0.4])
    assert one.estimate == 0.4 and math.isnan(one.se) and math.isnan(one.ci_low)
    assert "n=1" in one.method
    same = mean_with_se([0.1] * 7)
    assert same.se == 0.0 and same.ci_low == same.ci_high == same.estimate == 0.1
    single = mean_with_se([0.2, 0.5, 0.9], ["x", "x", "x"])
    assert single.n_clusters == 1 and math.isnan(single.se) and math.isnan(single.ci_high)
    assert "G=1" in single.method
    assert math.isnan(clustered_se([0.2, 0.5], ["x", "x"]))
    assert clustered_se([0.3, 0.3, 0.3], ["a", "b", "b"]) == 0.0


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        mean_with_se([0.1, float("nan")])
    with pytest.raises(ValueError, match="length"):
        mean_with_se([0.1, 0.2, 0.3], ["a", "b"])
    with pytest.raises(ValueError, match="one-dimensional"):
        mean_with_se([[0.1, 0.2]])
    with pytest.raises(ValueError, match="kind"):
        clustered_se([0.1, 0.2], ["a", "b"], kind="CR2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distribution"):
        mean_with_se([0.1, 0.2], distribution="z")  # type: ignore[arg-type]


@HYP
@given(
    runs=st.lists(
        st.tuples(st.integers(min_value=0, max_value=9), st.floats(min_value=0, max_value=1)),
        min_size=1,
        max_size=80,
    )
)
def test_task_means_matches_a_loop_and_weights_tasks_equally(
    runs: list[tuple[int, float]],
) -> None:
    ids = np.array([f"task-{t}" for t, _ in runs])
    values = np.array([v for _, v in runs])
    tm = task_means(values, ids)
    expected_ids = sorted(set(ids.tolist()))
    assert tm.task_ids.tolist() == expected_ids
    for i, task in enumerate(expected_ids):
        mine = values[ids == task]
        assert tm.means[i] == pytest.approx(mine.mean(), abs=1e-12)
        assert tm.counts[i] == mine.size
        if mine.size >= 2:
            assert tm.variances[i] == pytest.approx(mine.var(ddof=1), abs=1e-12)
        else:
            assert math.isnan(tm.variances[i])


def test_task_means_unequal_runs_differs_from_pooled_mean() -> None:
    tm = task_means([1, 1, 1, 1, 0], ["a", "a", "a", "a", "b"])
    assert mean_with_se(tm.means).estimate == 0.5  # equal task weight, not 4/5


def test_task_means_nan_policy_and_clusters() -> None:
    values = [1.0, np.nan, 0.0, 1.0, 0.5]
    tasks = ["t1", "t1", "t2", "t3", "t3"]
    families = ["r1", "r1", "r1", "r2", "r2"]
    with pytest.raises(ValueError, match="nan_policy"):
        task_means(values, tasks)
    tm = task_means(values, tasks, families, nan_policy="omit")
    np.testing.assert_allclose(tm.means, [1.0, 0.0, 0.75])
    np.testing.assert_array_equal(tm.counts, [1, 1, 2])
    assert tm.clusters is not None and tm.clusters.tolist() == ["r1", "r1", "r2"]
    assert tm.n_tasks == 3
    with pytest.raises(ValueError, match="more than one cluster"):
        task_means([1, 0], ["t1", "t1"], ["r1", "r2"])
    with pytest.raises(ValueError, match="length"):
        task_means([1, 0], ["t1"])


def test_task_means_on_200k_runs_matches_bincount() -> None:
    rng = np.random.default_rng(0)
    n_runs = 200_000
    ids = rng.integers(0, 20_000, size=n_runs)
    values = rng.integers(0, 2, size=n_runs).astype(float)
    tm = task_means(values, ids, ids // 10)
    assert tm.counts.sum() == n_runs
    np.testing.assert_array_equal(tm.counts, np.bincount(ids))
    np.testing.assert_allclose(tm.means, np.bincount(ids, values) / np.bincount(ids))
    assert tm.clusters is not None
    np.testing.assert_array_equal(tm.clusters, np.arange(20_000) // 10)
