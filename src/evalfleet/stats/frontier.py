"""Cost-accuracy Pareto frontiers (Kapoor et al. 2024, HAL 2025)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from evalfleet.stats._checks import as_values, check_same_length
from evalfleet.stats._types import ParetoFrontier

__all__ = ["pareto_frontier"]


def pareto_frontier(costs: npt.ArrayLike, accuracies: npt.ArrayLike) -> ParetoFrontier:
    """Non-dominated set and convex frontier of (cost, accuracy) points.

    * Non-dominated (minimise cost, maximise accuracy): P is dominated if some Q has
      cost_Q <= cost_P and acc_Q >= acc_P with at least one strict. Identical points do not
      dominate each other.
    * Convex frontier (what HAL draws): the upper convex hull of the points on a linear cost axis
      (Andrew's monotone chain over points sorted by cost, scanned in reverse; collinear interior
      points dropped), keeping only its non-dominated vertices. Randomising between two agents
      reaches any point of the segment between them, so points below the hull are never the best
      choice at any budget.

    Example (oracle O20): A(1, .50), B(2, .62), C(3, .60), F(4, .64), D(5, .70), E(10, .72) gives
    the non-dominated set {A, B, F, D, E} and the convex frontier {A, B, D, E}.
    Draw accuracy CIs on the plot and call "X dominates Y" only when the paired difference CI
    excludes 0.

    Args:
        costs: Cost per point (e.g. total or per-task USD of an agent run).
        accuracies: Accuracy per point, aligned with costs.

    Returns:
        Indices of both frontiers, each ordered by increasing cost.

    Raises:
        ValueError: on misaligned or non-finite inputs.
    """
    cost = as_values(costs, "costs")
    acc = as_values(accuracies, "accuracies")
    check_same_length(cost, acc, "costs and accuracies")
    n = cost.shape[0]
    order = np.lexsort((acc, cost))  # by cost, then accuracy
    non_dominated = [int(i) for i in order if not _dominated(int(i), cost, acc)]

    hull: list[int] = []
    for i in order[::-1].tolist():
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], i, cost, acc) <= 0:
            hull.pop()
        hull.append(i)
    on_hull = set(hull)
    convex = [i for i in non_dominated if i in on_hull]
    return ParetoFrontier(
        non_dominated=tuple(non_dominated),
        convex=tuple(convex),
        method=(
            f"{n} points; non-dominated by (cost <=, accuracy >=, one strict); convex = "
            "non-dominated vertices of the upper hull on a linear cost axis (HAL)"
        ),
    )


def _dominated(i: int, cost: npt.NDArray[np.float64], acc: npt.NDArray[np.float64]) -> bool:
    weakly = (cost <= cost[i]) & (acc >= acc[i])
    strictly = (cost < cost[i]) | (acc > acc[i])
    return bool(np.any(weakly & strictly))


def _cross(
    o: int, a: int, b: int, cost: npt.NDArray[np.float64], acc: npt.NDArray[np.float64]
) -> float:
    """Cross product (a - o) x (b - o); 0 when the three points are collinear up to rounding."""
    left = float((cost[a] - cost[o]) * (acc[b] - acc[o]))
    right = float((acc[a] - acc[o]) * (cost[b] - cost[o]))
    if abs(left - right) <= 1e-12 * (abs(left) + abs(right)):
        return 0.0
    return left - right
