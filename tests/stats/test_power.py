"""Sample size and MDE: Miller's (2024) worked numbers and examples O8 and O11."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.power import NormalIndPower

from evalfleet.stats import minimum_detectable_effect, sample_size_for_difference

HYP = settings(max_examples=50, deadline=None, database=None)


def var_d(pa: float, pb: float, rho: float) -> float:
    """Variance of a binary paired difference with per-task outcome correlation rho (1.7)."""
    va, vb = pa * (1 - pa), pb * (1 - pb)
    return va + vb - 2 * rho * math.sqrt(va * vb)


def test_o8_millers_worked_numbers() -> None:
    n = sample_size_for_difference(1 / 9, 0, 0, 1, 1, 0.03)
    assert n.n == pytest.approx(968.9975, abs=1e-4)
    assert n.n_required == 969
    assert minimum_detectable_effect(1 / 9, 1 / 6, 1 / 6, 1, 1, 198).delta == pytest.approx(
        0.132733, abs=1e-6
    )
    assert minimum_detectable_effect(1 / 9, 1 / 6, 1 / 6, 10, 10, 198).delta == pytest.approx(
        0.075670, abs=1e-6
    )


def test_section_1_8_corrected_numbers() -> None:
    assert sample_size_for_difference(1 / 12, 0, 0, 1, 1, 0.03).n == pytest.approx(726.75, abs=0.01)
    assert minimum_detectable_effect(1 / 12, 1 / 6, 1 / 6, 1, 1, 198).delta == pytest.approx(
        0.128518, abs=1e-6
    )
    assert minimum_detectable_effect(1 / 12, 1 / 6, 1 / 6, 10, 10, 198).delta == pytest.approx(
        0.068006, abs=1e-6
    )


@pytest.mark.parametrize(
    ("rho", "variance", "n", "n_required"),
    [
        (0.0, 0.427600, 8390.45, 8391),
        (0.5, 0.213834, 4195.89, 4196),
        (0.7, 0.128327, 2518.06, 2519),
    ],
)
def test_o11_two_points_at_seventy_percent(
    rho: float, variance: float, n: float, n_required: int
) -> None:
    v = var_d(0.70, 0.68, rho)
    assert v == pytest.approx(variance, abs=1e-6)
    result = sample_size_for_difference(v, 0, 0, 1, 1, 0.02)
    assert result.n == pytest.approx(n, abs=0.01)
    assert result.n_required == n_required


def test_o11_cross_checks() -> None:
    v = var_d(0.70, 0.68, 0.5)
    ours = sample_size_for_difference(v, 0, 0, 1, 1, 0.02).n
    statsmodels_n = NormalIndPower().solve_power(
        effect_size=0.02 / math.sqrt(v), alpha=0.05, power=0.8, ratio=0
    )
    assert ours == pytest.approx(statsmodels_n, rel=1e-5)
    one_sided = sample_size_for_difference(v, 0, 0, 1, 1, 0.02, two_sided=False)
    assert one_sided.n == pytest.approx(3305.10, abs=0.01)
    clustered = sample_size_for_difference(v, 0, 0, 1, 1, 0.02, design_effect=1 + 7 * 0.25)
    assert clustered.n == pytest.approx(11538.7, abs=0.05)


@pytest.mark.parametrize(("k", "n_required"), [(1, 4317), (3, 2748), (5, 2434), (10, 2198)])
def test_section_1_7_runs_per_task(k: int, n_required: int) -> None:
    result = sample_size_for_difference(0.10, 0.06, 0.06, k, k, 0.02)
    assert result.n_required == n_required


@pytest.mark.parametrize(
    ("n", "binary_pp", "k5_pp"),
    [(200, 9.2, 7.0), (500, 5.8, 4.4), (1000, 4.1, 3.1), (2000, 2.9, 2.2)],
)
def test_section_1_7_what_a_fixed_suite_can_detect(n: int, binary_pp: float, k5_pp: float) -> None:
    binary = minimum_detectable_effect(var_d(0.70, 0.68, 0.5), 0, 0, 1, 1, n).delta
    runs = minimum_detectable_effect(0.10, 0.06, 0.06, 5, 5, n).delta
    assert round(100 * binary, 1) == binary_pp
    assert round(100 * runs, 1) == k5_pp


@pytest.mark.parametrize(("n", "se", "mde_pp"), [(500, 0.008729, 2.17), (100, 0.019518, 4.85)])
def test_section_4_1_daily_check_against_a_trailing_reference(
    n: int, se: float, mde_pp: float
) -> None:
    # Same version: omega^2 cancels; today has K=3 runs, the reference averages W=7 days of K=3.
    result = minimum_detectable_effect(0.0, 0.10, 0.10 / 7, 3, 3, n, two_sided=False)
    assert result.se == pytest.approx(se, abs=1e-6)
    assert round(100 * result.delta, 2) == mde_pp


@HYP
@given(
    omega2=st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=0.3)),
    s2=st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=0.25)),
    k=st.integers(min_value=1, max_value=20),
    delta=st.floats(min_value=0.005, max_value=0.3),
    two_sided=st.booleans(),
)
def test_sample_size_and_mde_are_inverse(
    omega2: float, s2: float, k: int, delta: float, two_sided: bool
) -> None:
    if omega2 + s2 == 0:
        return
    n = sample_size_for_difference(omega2, s2, s2, k, k, delta, two_sided=two_sided)
    back = minimum_detectable_effect(omega2, s2, s2, k, k, n.n, two_sided=two_sided)
    assert back.delta == pytest.approx(delta, rel=1e-9)
    more_runs = minimum_detectable_effect(omega2, s2, s2, k + 1, k + 1, n.n, two_sided=two_sided)
    assert more_runs.delta <= back.delta + 1e-15
    # Eq. 9 with omega^2 only is NormalIndPower's one-sample normal power equation (whose
    # root finder warns for designs of a handful of tasks, so compare from 10 tasks up).
    if s2 == 0 and two_sided and n.n >= 10:
        sm_n = NormalIndPower().solve_power(
            effect_size=delta / math.sqrt(omega2), alpha=0.05, power=0.8, ratio=0
        )
        assert n.n == pytest.approx(sm_n, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delta": 0.0}, "delta"),
        ({"omega2": -0.1}, "omega2"),
        ({"k_a": 0}, "k_a"),
        ({"alpha": 1.5}, "alpha"),
        ({"power": 0.0}, "power"),
        ({"power": 0.01}, "too low"),
        ({"design_effect": 0.5}, "design_effect"),
    ],
)
def test_invalid_designs_are_rejected(kwargs: dict[str, float], message: str) -> None:
    args: dict[str, float] = {
        "omega2": 0.1,
        "sigma2_a": 0.1,
        "sigma2_b": 0.1,
        "k_a": 1,
        "k_b": 1,
        "delta": 0.02,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sample_size_for_difference(**args)  # type: ignore[arg-type]


def test_mde_rejects_non_positive_n() -> None:
    with pytest.raises(ValueError, match="n must be"):
        minimum_detectable_effect(0.1, 0.1, 0.1, 1, 1, 0)
