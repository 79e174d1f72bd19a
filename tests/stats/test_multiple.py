"""Multiple-testing adjustment: worked example O14, statsmodels and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from evalfleet.stats import adjust_pvalues

HYP = settings(max_examples=50, deadline=None, database=None)
O14 = [0.001, 0.008, 0.039, 0.041, 0.042, 0.060, 0.074, 0.205]


@pytest.mark.parametrize(
    ("method", "expected", "rejections"),
    [
        ("holm", [0.008, 0.056] + [0.234] * 6, 1),
        ("bh", [0.008, 0.032, 0.0672, 0.0672, 0.0672, 0.08, 0.084571, 0.205], 2),
        (
            "by",
            [0.021743, 0.086971, 0.182640, 0.182640, 0.182640, 0.217429, 0.229853, 0.557161],
            1,
        ),
        ("bonferroni", [0.008, 0.064, 0.312, 0.328, 0.336, 0.48, 0.592, 1.0], 1),
    ],
)
def test_o14_table(method: str, expected: list[float], rejections: int) -> None:
    result = adjust_pvalues(O14, method)  # type: ignore[arg-type]
    np.testing.assert_allclose(result.adjusted, expected, atol=1e-6)
    assert result.n_rejected == rejections
    assert result.p_values == tuple(O14) and result.method == method and result.alpha == 0.05


def holm(p: np.ndarray) -> np.ndarray:
    """Holm (docs/analysis.md), written out: max_{j<=i} min(1, (m-j+1) p_(j))."""
    m = p.size
    order = np.argsort(p)
    out = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg (docs/analysis.md), written out: min_{j>=i} min(1, m p_(j) / j)."""
    m = p.size
    order = np.argsort(p)
    out = np.empty(m)
    running = 1.0
    for rank in range(m - 1, -1, -1):
        idx = order[rank]
        running = min(running, m * p[idx] / (rank + 1))
        out[idx] = running
    return out


# statsmodels' Holm branch runs gc.collect() on every call (tens of ms), so fewer examples here.
@settings(max_examples=20, deadline=None, database=None)
@given(
    p=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=40),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_matches_statsmodels_scipy_and_the_formulas(p: list[float], alpha: float) -> None:
    arr = np.array(p)
    ours = {
        method: adjust_pvalues(arr, method, alpha=alpha)  # type: ignore[arg-type]
        for method in ("holm", "bh", "by", "bonferroni")
    }
    for method, theirs in (("bh", "fdr_bh"), ("by", "fdr_by"), ("bonferroni", "bonferroni")):
        reject, adjusted, _, _ = multipletests(arr, alpha=alpha, method=theirs)
        np.testing.assert_allclose(ours[method].adjusted, adjusted, atol=1e-12)
        assert ours[method].reject == tuple(bool(r) for r in reject)
    holm_adjusted = holm(arr)
    np.testing.assert_allclose(ours["holm"].adjusted, holm_adjusted, atol=1e-12)
    assert ours["holm"].reject == tuple(bool(r) for r in holm_adjusted <= alpha)
    bh = np.array(ours["bh"].adjusted)
    np.testing.assert_allclose(bh, benjamini_hochberg(arr), atol=1e-12)
    np.testing.assert_allclose(bh, sps.false_discovery_control(arr, method="bh"), atol=1e-12)
    by = ours["by"].adjusted
    np.testing.assert_allclose(by, sps.false_discovery_control(arr, method="by"), atol=1e-12)
    # Holm controls the FWER, so it is never less strict than BH.
    assert np.all(np.array(ours["holm"].adjusted) >= bh - 1e-15)


def test_empty_and_invalid_inputs() -> None:
    empty = adjust_pvalues([], "bh")
    assert empty.adjusted == () and empty.n_rejected == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        adjust_pvalues([0.2, 1.2])
    with pytest.raises(ValueError, match="between 0 and 1"):
        adjust_pvalues([0.2, float("nan")])
    with pytest.raises(ValueError, match="method"):
        adjust_pvalues([0.2], "hs")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        adjust_pvalues([0.2], alpha=0.0)


@settings(max_examples=30, deadline=None, database=None)
@given(
    p=st.lists(st.one_of(st.floats(min_value=0, max_value=1),
                         st.sampled_from([0.0, 0.001, 0.01, 0.0125, 0.025, 0.05, 1.0])),
               min_size=1, max_size=30),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_the_same_bits_as_statsmodels_ties_included(p: list[float], alpha: float) -> None:
    """adjust_pvalues does multipletests' arithmetic itself (statsmodels' import costs over a
    second): adjusted values and decisions are identical, not merely close."""
    arr = np.array(p)
    for method, theirs in (("holm", "holm"), ("bh", "fdr_bh"), ("by", "fdr_by"),
                           ("bonferroni", "bonferroni")):
        reject, adjusted, _, _ = multipletests(arr, alpha=alpha, method=theirs)
        ours = adjust_pvalues(arr, method, alpha=alpha)  # type: ignore[arg-type]
        assert ours.adjusted == tuple(float(x) for x in np.minimum(adjusted, 1.0)), method
        assert ours.reject == tuple(bool(r) for r in reject), method


def test_adjusting_does_not_import_statsmodels() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom evalfleet.stats import adjust_pvalues\n"
            "for m in ('holm', 'bh', 'by', 'bonferroni'):\n"
            "    adjust_pvalues([0.01, 0.04, 0.03], m)\n"
            "print(sorted({n.split('.')[0] for n in sys.modules} & {'statsmodels', 'pandas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
