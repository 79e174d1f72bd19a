"""McNemar exact, mid-p and asymptotic tests: worked example O3 and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar

from evalfleet.stats import mcnemar_test, paired_difference

HYP = settings(max_examples=50, deadline=None, database=None)


def test_o3_mcnemar_all_methods() -> None:
    result = mcnemar_test(10, 2)
    assert result.p_exact == pytest.approx(0.03857422, abs=1e-8)
    assert result.p_exact == pytest.approx(158 / 4096, abs=1e-15)
    assert result.p_midp == pytest.approx(92 / 4096, abs=1e-12)
    assert result.p_chi2_corrected == pytest.approx(0.04330814, abs=1e-8)
    assert result.p_chi2 == pytest.approx(0.02092134, abs=1e-8)
    assert result.p_value == result.p_midp and result.statistic == 2
    assert mcnemar_test(10, 2, method="exact").statistic == 2
    assert mcnemar_test(10, 2, method="chi2-corrected").statistic == pytest.approx(4.083333, 1e-6)
    assert mcnemar_test(10, 2, method="chi2").statistic == pytest.approx(5.333333, 1e-6)
    assert mcnemar_test(10, 2, method="chi2").p_value == result.p_chi2


def test_o3_edge_cases() -> None:
    tied = mcnemar_test(5, 5)
    assert tied.p_exact == 1.0
    assert tied.p_midp == pytest.approx(1.0, abs=1e-12)  # not 0.753906 (pmf off a capped p)
    one_sided = mcnemar_test(7, 0)
    assert one_sided.p_exact == pytest.approx(0.015625, abs=1e-12)
    assert one_sided.p_midp == pytest.approx(0.0078125, abs=1e-12)
    nothing = mcnemar_test(0, 0, 50)
    assert nothing.p_exact == nothing.p_midp == nothing.p_value == 1.0
    assert math.isnan(nothing.p_chi2) and nothing.estimate == 0.0 and nothing.se == 0.0


def test_mcnemar_difference_equals_paired_difference_on_binary_outcomes() -> None:
    # 100 tasks, one run each: 50 both pass, 10 only A, 2 only B, 38 both fail (O3's table).
    a = np.array([1] * 50 + [1] * 10 + [0] * 2 + [0] * 38, float)
    b = np.array([1] * 50 + [0] * 10 + [1] * 2 + [0] * 38, float)
    result = mcnemar_test(10, 2, 100)
    paired = paired_difference(a, b)
    assert result.estimate == pytest.approx(0.08, abs=1e-12)
    assert result.se == pytest.approx(paired.se, abs=1e-12)
    assert result.ci_low == pytest.approx(paired.ci_low, abs=1e-12)


@HYP
@given(b=st.integers(min_value=0, max_value=300), c=st.integers(min_value=0, max_value=300))
def test_mcnemar_matches_statsmodels_and_the_mid_p_formula(b: int, c: int) -> None:
    assume(b + c > 0)
    result = mcnemar_test(b, c)
    table = [[0, b], [c, 0]]
    assert result.p_exact == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-12)
    assert result.p_chi2 == pytest.approx(mcnemar(table, exact=False, correction=False).pvalue)
    assert result.p_chi2_corrected == pytest.approx(mcnemar(table, exact=False).pvalue)
    m, k = b + c, min(b, c)
    midp = min(1.0, 2 * sps.binom.cdf(k, m, 0.5) - sps.binom.pmf(k, m, 0.5))
    assert result.p_midp == pytest.approx(midp, abs=1e-12)
    assert result.p_midp <= result.p_exact + 1e-15


def test_mcnemar_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="b"):
        mcnemar_test(-1, 2)
    with pytest.raises(ValueError, match="smaller than b"):
        mcnemar_test(10, 2, 5)
    with pytest.raises(ValueError, match="method"):
        mcnemar_test(10, 2, method="fisher")  # type: ignore[arg-type]
