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

    Computed by `statsmodels.stats.multitest.multipletests` (method 'holm', 'fdr_bh', 'fdr_by',
    'bonferroni'). Use Holm for release gates that page someone and BH for exploratory
    dashboards with many categories.

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
    # imported here: statsmodels (and the pandas it loads) costs about a second, which a
    # report that adjusts nothing should not pay
    from statsmodels.stats.multitest import multipletests

    reject, adjusted, _, _ = multipletests(raw, alpha=level, method=_STATSMODELS_METHOD[method])
    return AdjustedPValues(
        p_values=tuple(float(p) for p in raw),
        adjusted=tuple(float(p) for p in np.minimum(adjusted, 1.0)),
        reject=tuple(bool(r) for r in reject),
        alpha=level,
        method=method,
    )
