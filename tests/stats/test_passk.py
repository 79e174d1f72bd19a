"""pass@k and pass^k: worked examples O7/O13, Chen's product form, unbiasedness."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from evalfleet.stats import aggregate_pass_k, pass_at_k, pass_hat_k

HYP = settings(max_examples=50, deadline=None, database=None)


def chen_product_form(n: int, c: int, k: int) -> float:
    """The numpy estimator from Chen et al. (2021), figure 3."""
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


@pytest.mark.parametrize(
    ("n", "c", "k", "at_k", "hat_k"),
    [
        (10, 3, 1, 0.3, 0.3),
        (10, 3, 5, 0.9166666667, 0.0),
        (10, 3, 8, 1.0, 0.0),
        (10, 7, 3, 0.9916666667, 0.2916666667),
        (5, 5, 3, 1.0, 1.0),
        (10, 0, 5, 0.0, 0.0),
    ],
)
def test_o13_table(n: int, c: int, k: int, at_k: float, hat_k: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(at_k, abs=1e-9)
    assert pass_hat_k(n, c, k) == pytest.approx(hat_k, abs=1e-9)


def test_o13_large_n() -> None:
    assert pass_at_k(200, 13, 10) == pytest.approx(0.4975511147, abs=1e-9)


def test_plug_in_is_biased_and_not_what_we_compute() -> None:
    assert pass_hat_k(10, 7, 3) != pytest.approx(0.7**3, abs=1e-3)


def test_o7_aggregate_pass_at_2_and_pass_hat_2() -> None:
    runs = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 1]])
    n, c = np.full(6, 3), runs.sum(axis=1)
    np.testing.assert_allclose(pass_at_k(n, c, 2), [1, 1, 0, 1, 2 / 3, 1], atol=1e-12)
    np.testing.assert_allclose(pass_hat_k(n, c, 2), [1, 1 / 3, 0, 1 / 3, 0, 1], atol=1e-12)
    at = aggregate_pass_k(n, c, 2)
    assert at.estimate == pytest.approx(0.777778, abs=1e-6)
    assert at.se == pytest.approx(0.164804, abs=1e-6)
    assert at.n == 6 and "pass@2" in at.method
    hat = aggregate_pass_k(n, c, 2, kind="pass^k")
    assert hat.estimate == pytest.approx(0.444444, abs=1e-6)
    assert hat.se == pytest.approx(0.185924, abs=1e-6)
    assert "pass^2" in hat.method


def test_aggregate_with_clusters_uses_cr1() -> None:
    n = np.full(6, 3)
    c = np.array([3, 2, 0, 2, 1, 3])
    result = aggregate_pass_k(n, c, 1, clusters=["a", "a", "b", "b", "c", "c"])
    assert result.n_clusters == 3 and result.df == 2
    assert "CR1" in result.method


@HYP
@given(
    n=st.integers(min_value=1, max_value=60),
    frac=st.floats(min_value=0, max_value=1),
    kfrac=st.floats(min_value=0, max_value=1),
)
def test_matches_chen_product_form_and_binomial_form(n: int, frac: float, kfrac: float) -> None:
    c = round(frac * n)
    k = max(1, round(kfrac * n))
    assert pass_at_k(n, c, k) == pytest.approx(chen_product_form(n, c, k), abs=1e-12)
    assert pass_hat_k(n, c, k) == pytest.approx(math.comb(c, k) / math.comb(n, k), abs=1e-12)
    if k == 1:
        assert pass_at_k(n, c, 1) == pytest.approx(c / n) == pass_hat_k(n, c, 1)


@HYP
@given(
    n=st.integers(min_value=1, max_value=30),
    kfrac=st.floats(min_value=0, max_value=1),
    p=st.integers(min_value=0, max_value=1000).map(lambda i: i / 1000),
)
def test_estimators_are_unbiased_under_iid_runs(n: int, kfrac: float, p: float) -> None:
    # E[pass@k] over c ~ Bin(n, p) equals 1 - (1 - p)^k exactly; E[pass^k] equals p^k.
    k = max(1, round(kfrac * n))
    c = np.arange(n + 1)
    weights = sps.binom.pmf(c, n, p)
    assert weights @ pass_at_k(np.full(n + 1, n), c, k) == pytest.approx(1 - (1 - p) ** k, abs=1e-9)
    assert weights @ pass_hat_k(np.full(n + 1, n), c, k) == pytest.approx(p**k, abs=1e-9)


def test_vectorised_equals_scalar_and_keeps_shape() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(5, 12, size=200)
    c = rng.integers(0, 6, size=200)
    vector = pass_at_k(n, c, 4)
    assert vector.shape == (200,)
    np.testing.assert_array_equal(
        vector, [pass_at_k(int(a), int(b), 4) for a, b in zip(n, c, strict=True)]
    )
    assert isinstance(pass_at_k(10, 3, 2), float)


@pytest.mark.parametrize(
    ("n", "c", "k", "message"),
    [
        (3, 2, 4, "exceeds the number of scored runs"),
        (3, 4, 2, "cannot exceed"),
        (3, 1, 0, "at least 1"),
        (3.5, 1, 1, "integer"),
        (-1, 0, 1, "non-negative"),
        ([3, 5], [1, 2, 3], 1, "aligned"),
    ],
)
def test_invalid_inputs_are_rejected(n: object, c: object, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        pass_hat_k(n, c, k)  # type: ignore[arg-type]


def test_k_larger_than_some_tasks_runs_is_rejected_not_scored() -> None:
    with pytest.raises(ValueError, match="exclude tasks"):
        aggregate_pass_k([5, 5, 2], [1, 2, 2], 3)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="kind"):
        aggregate_pass_k([5], [1], 1, kind="pass@any")  # type: ignore[arg-type]
