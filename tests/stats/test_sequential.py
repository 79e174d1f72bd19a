"""CUSUM and mSPRT: the reference recursion, worked run-length numbers, Ville's bound."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalfleet.stats import cusum_lower, msprt_p_value

HYP = settings(max_examples=50, deadline=None, database=None)


def reference_cusum(z: list[float], k: float = 0.5, h: float = 4.0) -> list[tuple[float, bool]]:
    """The lower CUSUM recursion S_t = max(0, S_{t-1} - z_t - k), alarm when S_t > h (O17)."""
    s, out = 0.0, []
    for zt in z:
        s = max(0.0, s - zt - k)
        out.append((s, s > h))
    return out


def reference_msprt(dbar: float, n: int, s2: float, t2: float, th0: float = 0.0) -> float:
    """The normal-mixture mSPRT likelihood ratio Lambda_n (Johari et al. 2017) (O16)."""
    return math.sqrt(s2 / (s2 + n * t2)) * math.exp(
        n * n * t2 * (dbar - th0) ** 2 / (2 * s2 * (s2 + n * t2))
    )


@HYP
@given(
    z=st.lists(st.floats(min_value=-4, max_value=4), max_size=80),
    k=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    h=st.sampled_from([2.0, 4.0, 5.0]),
)
def test_cusum_matches_the_reference_recursion(z: list[float], k: float, h: float) -> None:
    result = cusum_lower(z, k, h)
    expected = reference_cusum(z, k, h)
    assert result.statistic == pytest.approx([s for s, _ in expected], abs=1e-12)
    assert result.alarms == tuple(a for _, a in expected)
    alarms = [i for i, (_, a) in enumerate(expected) if a]
    assert result.first_alarm == (alarms[0] if alarms else None)


def test_cusum_worked_example_reset_and_continuation() -> None:
    z = [0.0, -1.0, -2.0, -3.0, 1.0, -2.0]
    plain = cusum_lower(z)
    assert plain.statistic == (0.0, 0.5, 2.0, 4.5, 3.0, 4.5)
    assert plain.first_alarm == 3 and plain.alarms == (False, False, False, True, False, True)
    reset = cusum_lower(z, reset=True)
    assert reset.statistic[:4] == (0.0, 0.5, 2.0, 4.5)
    assert reset.statistic[4:] == (0.0, 1.5) and reset.final == 1.5
    # Running the chart day by day from yesterday's value gives the same path.
    s = 0.0
    for day, zt in enumerate(z):
        s = cusum_lower([zt], initial=s).final
        assert s == pytest.approx(plain.statistic[day])
    assert cusum_lower([]).first_alarm is None


def test_cusum_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="k must"):
        cusum_lower([0.0], k=-0.1)
    with pytest.raises(ValueError, match="h must"):
        cusum_lower([0.0], h=0.0)
    with pytest.raises(ValueError, match="initial"):
        cusum_lower([0.0], initial=-1.0)
    with pytest.raises(ValueError, match="NaN"):
        cusum_lower([0.0, float("nan")])


def run_lengths(shift: float, chains: int, seed: int, h: float = 4.0) -> np.ndarray:
    """Days until the first alarm of `chains` independent charts, run in 200-day blocks."""
    rng = np.random.default_rng(seed)
    lengths = np.empty(chains)
    for c in range(chains):
        s, day = 0.0, 0
        while True:
            result = cusum_lower(rng.normal(-shift, 1.0, 200), 0.5, h, initial=s)
            if result.first_alarm is not None:
                lengths[c] = day + result.first_alarm + 1
                break
            s, day = result.final, day + 200
    return lengths


@pytest.mark.slow
def test_cusum_average_run_lengths_match_section_4_2() -> None:
    # In control: ARL0 ~ 338 (Monte Carlo 337.5); at a 1-SE drop: ~8.34 (Monte Carlo 8.39).
    in_control = run_lengths(0.0, 20_000, seed=1)
    arl0_se = in_control.std() / math.sqrt(in_control.size)
    assert abs(in_control.mean() - 337.5) < 4 * arl0_se
    shifted = run_lengths(1.0, 20_000, seed=2)
    arl1_se = shifted.std() / math.sqrt(shifted.size)
    assert abs(shifted.mean() - 8.39) < 4 * arl1_se


def test_o16_msprt_price_of_always_validity() -> None:
    # dbar = -0.03 after n = 1000 differences with sigma^2 = 0.2 and tau = 0.02.
    d = np.full(1000, -0.03)
    result = msprt_p_value(d, 0.2, 0.02**2)
    assert result.likelihood_ratio == pytest.approx(2.5875, abs=1e-4)
    assert result.likelihood_ratio == pytest.approx(reference_msprt(-0.03, 1000, 0.2, 0.0004))
    assert result.p_value == pytest.approx(0.386, abs=1e-3)
    assert result.rejected_at is None and result.n == 1000
    assert result.estimate == pytest.approx(-0.03)


@HYP
@given(
    d=st.lists(st.floats(min_value=-1, max_value=1), min_size=1, max_size=60),
    tau=st.sampled_from([0.01, 0.05, 0.2]),
)
def test_msprt_p_values_are_the_running_minimum_of_one_over_lambda(
    d: list[float], tau: float
) -> None:
    result = msprt_p_value(d, 0.25, tau**2)
    expected, p = [], 1.0
    for n in range(1, len(d) + 1):
        lam = reference_msprt(float(np.mean(d[:n])), n, 0.25, tau**2)
        p = min(p, 1.0 / lam)
        expected.append(p)
    assert result.p_values == pytest.approx(expected, rel=1e-9)
    assert all(a >= b for a, b in itertools.pairwise(result.p_values))


def test_msprt_type_one_error_is_bounded_under_optional_stopping() -> None:
    # Ville: P(some n has p_n <= alpha) <= alpha under H0, however long we keep looking.
    rng = np.random.default_rng(0)
    sims, n, alpha = 2000, 300, 0.05
    ever = sum(
        msprt_p_value(rng.normal(0.0, 0.5, n), 0.25, 0.05**2).rejected_at is not None
        for _ in range(sims)
    )
    assert ever / sims <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / sims)
    # and it does stop early when there is a real effect
    hits = [msprt_p_value(rng.normal(-0.15, 0.5, n), 0.25, 0.05**2).rejected_at for _ in range(50)]
    assert sum(h is not None for h in hits) >= 45


def test_msprt_edge_cases() -> None:
    empty = msprt_p_value([], 0.2, 0.01)
    assert empty.p_value == 1.0 and empty.n == 0
    with pytest.raises(ValueError, match="sigma2"):
        msprt_p_value([0.1], 0.0, 0.01)
    with pytest.raises(ValueError, match="tau2"):
        msprt_p_value([0.1], 0.2, -1.0)
    huge = msprt_p_value(np.full(100_000, 1.0), 0.01, 1.0)
    assert huge.p_value == 0.0 and math.isinf(huge.likelihood_ratio)
