"""Unbiased pass@k (Chen et al. 2021) and pass^k (Yao et al. 2024), per task and over tasks."""

from __future__ import annotations

import math
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from evalfleet.stats._checks import (
    check_distribution,
    check_probability,
    critical_value,
    interval,
)
from evalfleet.stats._types import MeanEstimate
from evalfleet.stats.means import summarise

__all__ = ["aggregate_pass_k", "pass_at_k", "pass_hat_k"]


@overload
def pass_at_k(n: int, c: int, k: int) -> float: ...
@overload
def pass_at_k(n: npt.ArrayLike, c: npt.ArrayLike, k: int) -> npt.NDArray[np.float64]: ...
def pass_at_k(n: npt.ArrayLike, c: npt.ArrayLike, k: int) -> float | npt.NDArray[np.float64]:
    """Unbiased per-task pass@k (Chen et al. 2021, arXiv:2107.03374, section 2.1).

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{j=n-c+1}^{n} (1 - k/j), and 1 when n - c < k:
    the probability that at least one of k runs drawn without replacement from the n scored runs
    succeeds. Unbiased for 1 - (1 - p)^k under i.i.d. runs; pass@1 = c/n. Computed with exact
    integer binomial coefficients (one evaluation per distinct (n, c) pair), so it is vectorised
    over tasks and exact to rounding.

    Args:
        n: Scored runs per task (scalar or array).
        c: Successful runs per task, 0 <= c <= n (same shape as n, or broadcastable).
        k: Number of draws, 1 <= k <= n for every task.

    Returns:
        A float for scalar inputs, else an array of per-task values.

    Raises:
        ValueError: if counts are not non-negative integers, c > n, k < 1 or k > n. Tasks with
            fewer than k scored runs must be excluded, not scored.
    """
    return _per_task(n, c, k, "pass@k")


@overload
def pass_hat_k(n: int, c: int, k: int) -> float: ...
@overload
def pass_hat_k(n: npt.ArrayLike, c: npt.ArrayLike, k: int) -> npt.NDArray[np.float64]: ...
def pass_hat_k(n: npt.ArrayLike, c: npt.ArrayLike, k: int) -> float | npt.NDArray[np.float64]:
    """Unbiased per-task pass^k (Yao et al. 2024, tau-bench, arXiv:2406.12045).

    pass^k = C(c, k) / C(n, k): the probability that all k runs drawn without replacement from the
    n scored runs succeed. Unbiased for p^k under i.i.d. runs, unlike the plug-in (c/n)^k
    (n=10, c=7, k=3: 0.291667 against 0.343). pass^1 = c/n.

    Args:
        n: Scored runs per task (scalar or array).
        c: Successful runs per task, 0 <= c <= n.
        k: Number of draws, 1 <= k <= n for every task.

    Returns:
        A float for scalar inputs, else an array of per-task values.

    Raises:
        ValueError: if counts are not non-negative integers, c > n, k < 1 or k > n.
    """
    return _per_task(n, c, k, "pass^k")


def aggregate_pass_k(
    n: npt.ArrayLike,
    c: npt.ArrayLike,
    k: int,
    *,
    kind: Literal["pass@k", "pass^k"] = "pass@k",
    clusters: npt.ArrayLike | None = None,
    confidence: float = 0.95,
    distribution: Literal["t", "normal"] = "t",
) -> MeanEstimate:
    """Mean over tasks of per-task pass@k or pass^k, with its standard error.

    pass@k = (1/n_tasks) sum_i pass@k_i (likewise pass^k). The per-task estimates are independent
    across tasks, so the CLT SE across tasks (CR1 with t(G-1) when clustered) covers both
    between-task and within-task noise. Report K alongside, and never
    compare values computed with different k.

    Args:
        n: Scored runs per task.
        c: Successful runs per task.
        k: Number of draws.
        kind: 'pass@k' (at least one success) or 'pass^k' (all succeed).
        clusters: Optional cluster label per task.
        confidence: Two-sided confidence level.
        distribution: 't' (default) or 'normal' critical values.

    Returns:
        The mean with SE and interval, as `mean_with_se` computes them.

    Raises:
        ValueError: as for `pass_at_k`, or for an unknown kind.
    """
    if kind not in ("pass@k", "pass^k"):
        raise ValueError(f"kind must be 'pass@k' or 'pass^k', got {kind!r}")
    conf = check_probability(confidence, "confidence")
    dist = check_distribution(distribution)
    per_task = np.atleast_1d(np.asarray(_per_task(n, c, k, kind), dtype=np.float64))
    label = kind.replace("k", str(k))
    estimate, se, df, n_clusters, method = summarise(per_task, clusters, dist, f"mean {label}")
    low, high = interval(estimate, se, critical_value(conf, df))
    return MeanEstimate(
        estimate=estimate,
        se=se,
        ci_low=low,
        ci_high=high,
        n=int(per_task.shape[0]),
        n_clusters=n_clusters,
        df=df,
        confidence=conf,
        method=method,
    )


def _per_task(
    n: npt.ArrayLike, c: npt.ArrayLike, k: int, kind: str
) -> float | npt.NDArray[np.float64]:
    kk = _as_int_array(k, "k")
    if kk.ndim != 0:
        raise ValueError("k must be a single integer")
    k_int = int(kk)
    if k_int < 1:
        raise ValueError(f"k must be at least 1, got {k_int}")
    n_arr = _as_int_array(n, "n")
    c_arr = _as_int_array(c, "c")
    try:
        n_b, c_b = np.broadcast_arrays(n_arr, c_arr)
    except ValueError:
        raise ValueError(
            f"n and c must be aligned per task, got shapes {n_arr.shape} and {c_arr.shape}"
        ) from None
    if np.any(c_b > n_b):
        raise ValueError("c (successes) cannot exceed n (runs) for any task")
    if np.any(n_b < k_int):
        raise ValueError(
            f"k={k_int} exceeds the number of scored runs n={int(n_b.min())} of some task; "
            "exclude tasks with fewer than k runs"
        )
    # one key per distinct (n, c): a 1-D unique is ~20x faster than unique(axis=0) on the
    # 50,000 tasks of a large eval (0 <= c <= n, so n * (max n + 1) + c is one-to-one)
    n_flat = n_b.ravel().astype(np.int64)
    c_flat = c_b.ravel().astype(np.int64)
    width = int(n_flat.max()) + 1 if n_flat.size else 1
    keys, inverse = np.unique(n_flat * width + c_flat, return_inverse=True)
    values = np.array([_one(int(key // width), int(key % width), k_int, kind) for key in keys],
                      dtype=np.float64)
    out: npt.NDArray[np.float64] = values[np.asarray(inverse).reshape(-1)].reshape(n_b.shape)
    if out.ndim == 0:
        return float(out)
    return out


def _one(n: int, c: int, k: int, kind: str) -> float:
    # Integer binomials divided once: exact to the last bit, no overflow for any realistic n.
    if kind == "pass@k":
        if n - c < k:
            return 1.0
        return 1.0 - math.comb(n - c, k) / math.comb(n, k)
    return math.comb(c, k) / math.comb(n, k)


def _as_int_array(value: npt.ArrayLike, name: str) -> npt.NDArray[np.int64]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" and arr.dtype != np.bool_:
        raise ValueError(f"{name} must be integer counts, got dtype {arr.dtype}")
    as_float = arr.astype(np.float64)
    if not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
        raise ValueError(f"{name} must be integer counts")
    if np.any(as_float < 0):
        raise ValueError(f"{name} must be non-negative")
    return as_float.astype(np.int64)
