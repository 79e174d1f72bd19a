"""Pareto frontiers: worked example O20 and brute-force properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalfleet.stats import pareto_frontier

HYP = settings(max_examples=50, deadline=None, database=None)


def test_o20_non_dominated_and_convex_frontiers() -> None:
    names = ["A", "B", "C", "F", "D", "E"]
    costs = [1, 2, 3, 4, 5, 10]
    accuracies = [0.50, 0.62, 0.60, 0.64, 0.70, 0.72]
    result = pareto_frontier(costs, accuracies)
    assert [names[i] for i in result.non_dominated] == ["A", "B", "F", "D", "E"]
    assert [names[i] for i in result.convex] == ["A", "B", "D", "E"]


def test_order_of_input_does_not_matter() -> None:
    costs = np.array([10, 3, 1, 5, 2, 4])
    accuracies = np.array([0.72, 0.60, 0.50, 0.70, 0.62, 0.64])
    result = pareto_frontier(costs, accuracies)
    assert costs[list(result.non_dominated)].tolist() == [1, 2, 4, 5, 10]
    assert costs[list(result.convex)].tolist() == [1, 2, 5, 10]


points = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=20).map(float),
        st.integers(min_value=0, max_value=20).map(lambda a: a / 20),
    ),
    min_size=1,
    max_size=25,
)


@HYP
@given(pts=points)
def test_frontiers_match_brute_force(pts: list[tuple[float, float]]) -> None:
    cost, acc = (np.array(v) for v in zip(*pts, strict=True))
    result = pareto_frontier(cost, acc)
    dominated = {
        i
        for i in range(len(pts))
        for j in range(len(pts))
        if cost[j] <= cost[i] and acc[j] >= acc[i] and (cost[j] < cost[i] or acc[j] > acc[i])
    }
    assert set(result.non_dominated) == set(range(len(pts))) - dominated
    assert set(result.convex) <= set(result.non_dominated)
    assert list(cost[list(result.non_dominated)]) == sorted(cost[list(result.non_dominated)])
    # Every point lies on or below the convex frontier between its first and last vertex,
    # and each interior vertex lies strictly above the chord of its neighbours.
    fc, fa = cost[list(result.convex)], acc[list(result.convex)]
    inside = (cost >= fc[0]) & (cost <= fc[-1])
    assert np.all(acc[inside] <= np.interp(cost[inside], fc, fa) + 1e-12)
    for mid in range(1, len(fc) - 1):
        left, right = mid - 1, mid + 1
        chord = fa[left] + (fa[right] - fa[left]) * (fc[mid] - fc[left]) / (fc[right] - fc[left])
        assert fa[mid] > chord
    # The cheapest frontier point is the best of the cheapest agents; the last is the best overall.
    assert fa[-1] == acc.max() and fc[0] == cost.min()


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="aligned"):
        pareto_frontier([1, 2], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        pareto_frontier([1, float("nan")], [0.5, 0.6])
    assert pareto_frontier([], []).convex == ()
