"""Wilson and Clopper-Pearson intervals: worked examples O1/O2 and statsmodels."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from evalfleet.stats import clopper_pearson_interval, wilson_interval

HYP = settings(max_examples=50, deadline=None, database=None)
TOL = 1e-6


def wilson_closed_form(x: int, n: int, confidence: float) -> tuple[float, float]:
    """The Wilson score interval, written out independently of the implementation."""
    z = sps.norm.ppf((1 + confidence) / 2)
    p = x / n
    center = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return max(0.0, center - half), min(1.0, center + half)


@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [
        (7, 10, 0.396778, 0.892209),  # O1
        (0, 10, 0.0, 0.277533),  # O2
        (10, 10, 0.722467, 1.0),
        (3, 3, 0.438503, 1.0),
        (1, 5, 0.036224, 0.624465),
    ],
)
def test_wilson_oracles(x: int, n: int, low: float, high: float) -> None:
    result = wilson_interval(x, n)
    assert result.ci_low == pytest.approx(low, abs=TOL)
    assert result.ci_high == pytest.approx(high, abs=TOL)
    assert result.estimate == x / n
    assert result.n == n and result.successes == x


@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [
        (7, 10, 0.347547, 0.933260),  # O1
        (0, 10, 0.0, 0.308497),  # O2
        (10, 10, 0.691503, 1.0),
        (3, 3, 0.292402, 1.0),
        (1, 5, 0.005051, 0.716418),
    ],
)
def test_clopper_pearson_oracles(x: int, n: int, low: float, high: float) -> None:
    result = clopper_pearson_interval(x, n)
    assert result.ci_low == pytest.approx(low, abs=TOL)
    assert result.ci_high == pytest.approx(high, abs=TOL)


def test_zero_failures_in_30_upper_bounds() -> None:
    # O2: two-sided upper limits, and the one-sided 95% CP bound 1 - 0.05^(1/30).
    assert wilson_interval(0, 30).ci_high == pytest.approx(0.113513, abs=TOL)
    assert clopper_pearson_interval(0, 30).ci_high == pytest.approx(0.115703, abs=TOL)
    one_sided = clopper_pearson_interval(0, 30, alternative="less")
    assert one_sided.ci_low == 0.0
    assert one_sided.ci_high == pytest.approx(0.095034, abs=TOL)
    assert one_sided.ci_high == pytest.approx(1 - 0.05 ** (1 / 30), abs=1e-12)
    assert one_sided.ci_high < 3 / 30  # the rule of three is a slight overstatement


@HYP
@given(
    n=st.integers(min_value=1, max_value=400),
    frac=st.floats(min_value=0, max_value=1),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_wilson_matches_statsmodels_and_the_closed_form(
    n: int, frac: float, confidence: float
) -> None:
    x = round(frac * n)
    result = wilson_interval(x, n, confidence=confidence)
    sm_low, sm_high = proportion_confint(x, n, alpha=1 - confidence, method="wilson")
    cf_low, cf_high = wilson_closed_form(x, n, confidence)
    assert result.ci_low == pytest.approx(max(0.0, sm_low), abs=TOL)
    assert result.ci_high == pytest.approx(min(1.0, sm_high), abs=TOL)
    assert result.ci_low == pytest.approx(cf_low, abs=TOL)
    assert result.ci_high == pytest.approx(cf_high, abs=TOL)
    assert 0.0 <= result.ci_low <= result.estimate <= result.ci_high <= 1.0


@HYP
@given(
    n=st.integers(min_value=1, max_value=400),
    frac=st.floats(min_value=0, max_value=1),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_clopper_pearson_matches_statsmodels_beta(n: int, frac: float, confidence: float) -> None:
    x = round(frac * n)
    result = clopper_pearson_interval(x, n, confidence=confidence)
    sm_low, sm_high = proportion_confint(x, n, alpha=1 - confidence, method="beta")
    assert result.ci_low == pytest.approx(sm_low, abs=TOL)
    assert result.ci_high == pytest.approx(sm_high, abs=TOL)
    assert 0.0 <= result.ci_low <= result.estimate <= result.ci_high <= 1.0


@HYP
@given(n=st.integers(min_value=1, max_value=200), frac=st.floats(min_value=0, max_value=1))
def test_one_sided_bounds_are_two_sided_limits_at_twice_the_error(n: int, frac: float) -> None:
    x = round(frac * n)
    for fn, method in ((clopper_pearson_interval, "beta"), (wilson_interval, "wilson")):
        low2, high2 = proportion_confint(x, n, alpha=0.10, method=method)
        upper = fn(x, n, confidence=0.95, alternative="less")
        lower = fn(x, n, confidence=0.95, alternative="greater")
        assert upper.ci_low == 0.0 and upper.ci_high == pytest.approx(min(1, high2), abs=TOL)
        assert lower.ci_high == 1.0 and lower.ci_low == pytest.approx(max(0, low2), abs=TOL)


def test_no_trials_gives_nan_not_a_number() -> None:
    for fn in (wilson_interval, clopper_pearson_interval):
        result = fn(0, 0)
        assert math.isnan(result.estimate) and math.isnan(result.ci_low)
        assert math.isnan(result.ci_high) and math.isnan(result.se)
        assert "n=0" in result.method


@pytest.mark.parametrize(
    ("x", "n", "message"),
    [
        (11, 10, "cannot exceed"),
        (-1, 10, "non-negative integer"),
        (2.5, 10, "non-negative integer"),
        (1, float("nan"), "non-negative integer"),
    ],
)
def test_invalid_counts_are_rejected(x: float, n: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wilson_interval(x, n)  # type: ignore[arg-type]


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1])
def test_invalid_confidence_is_rejected(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        clopper_pearson_interval(3, 10, confidence=confidence)


def test_unknown_alternative_is_rejected() -> None:
    with pytest.raises(ValueError, match="alternative"):
        wilson_interval(3, 10, alternative="upper")  # type: ignore[arg-type]
