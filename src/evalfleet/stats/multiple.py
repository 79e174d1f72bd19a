"""Multiple-comparison adjustment of p-values."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from evalfleet.stats._checks import check_probability
from evalfleet.stats._types import AdjustedPValues

__all__ = ["adjust_pvalues"]

_STATSMODELS_METHOD = {
    "holm": "holm",
    "bh": "fdr_bh",
    "by": "fdr_by",
    "bonferroni": "bonferroni",
}


def adjust_pvalues(
    p_values: npt.ArrayLike,
    method: Literal["holm", "bh", "by", "bonferroni"] = "holm",
    *,
    alpha: float = 0.05,
) -> AdjustedPValues:
    """Adjust p-values for multiple comparisons.

    With the m p-values sorted ascending, p_(1) <= ... <= p_(m):

    * Bonferroni: min(1, m p_(i)).
    * Holm (1979), FWER under any dependence: max_{j <= i} min(1, (m - j + 1) p_(j)).
    * Benjamini-Hochberg (1995), FDR under independence or PRDS: min_{j >= i} min(1, m p_(j) / j).
    * Benjamini-Yekutieli (2001), FDR under any dependence: BH times sum_{k=1}^m 1/k, capped at 1.

    The arithmetic of `statsmodels.stats.multitest.multipletests` (method 'holm', 'fdr_bh',
    'fdr_by', 'bonferroni'), step for step, so the same bits (a test compares them on random
    inputs): importing statsmodels, and the pandas and pyarrow it loads, costs over a second,
    which every `slice` and `compare` process paid for a few lines of arithmetic. Use Holm
    for release gates that page someone and BH for exploratory dashboards with many
    categories.

    Args:
        p_values: Raw p-values in [0, 1].
        method: 'holm' (default), 'bh', 'by' or 'bonferroni'.
        alpha: FWER (Holm, Bonferroni) or FDR (BH, BY) level for the reject decisions.

    Returns:
        Adjusted p-values and reject decisions in the input order (empty for no p-values).

    Raises:
        ValueError: if a p-value is NaN or outside [0, 1], or the method is unknown.
    """
    if method not in _STATSMODELS_METHOD:
        raise ValueError(f"method must be one of {sorted(_STATSMODELS_METHOD)}, got {method!r}")
    level = check_probability(alpha, "alpha")
    raw = np.asarray(p_values, dtype=np.float64)
    if raw.ndim != 1:
        raise ValueError(f"p_values must be one-dimensional, got shape {raw.shape}")
    if np.any(np.isnan(raw)) or np.any((raw < 0.0) | (raw > 1.0)):
        raise ValueError("p_values must all be between 0 and 1 (NaN is not allowed)")
    if raw.shape[0] == 0:
        return AdjustedPValues(p_values=(), adjusted=(), reject=(), alpha=level, method=method)
    reject, adjusted = _multipletests(raw, level, method)
    return AdjustedPValues(
        p_values=tuple(float(p) for p in raw),
        adjusted=tuple(float(p) for p in np.minimum(adjusted, 1.0)),
        reject=tuple(bool(r) for r in reject),
        alpha=level,
        method=method,
    )


def _multipletests(raw: npt.NDArray[np.float64], alpha: float, method: str
                   ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Reject decisions and adjusted p-values in input order, as ``multipletests`` computes
    them: on the p-values sorted ascending, Holm's step-down and Benjamini's step-up."""
    m = raw.shape[0]
    order = np.argsort(raw)
    p = np.take(raw, order)
    if method == "bonferroni":
        reject = raw <= alpha / m
        adjusted = raw * float(m)
        adjusted[adjusted > 1] = 1
        return reject, adjusted
    if method == "holm":
        not_rejected = p > alpha / np.arange(m, 0, -1)
        first = np.nonzero(not_rejected)[0]
        if first.size > 0:
            not_rejected[int(first.min()):] = True
        rej = ~not_rejected
        adj = np.maximum.accumulate(p * np.arange(m, 0, -1))
        adj[adj > 1] = 1
    else:  # "bh", "by"
        ecdf = np.arange(1, m + 1) / float(m)
        if method == "by":
            ecdf = ecdf / np.sum(1.0 / np.arange(1, m + 1))
        rej = p <= ecdf * alpha
        if rej.any():
            rej[:int(max(np.nonzero(rej)[0]))] = True
        adj = np.minimum.accumulate((p / ecdf)[::-1])[::-1]
        adj[adj > 1] = 1
    reject = np.empty_like(rej)
    reject[order] = rej
    adjusted = np.empty_like(adj)
    adjusted[order] = adj
    return reject, adjusted
