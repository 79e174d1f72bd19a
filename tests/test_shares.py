"""Evals sharing a pool of slots: strict priority, then weighted fair share (execution/shares)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evalfleet import api
from evalfleet.execution.shares import Demand, entitlements
from evalfleet.settings import Settings
from evalfleet.store.journal import Journal
from evalfleet.testing import agents as testing_agents


def test_strict_priority_then_weighted_fair_share() -> None:
    d = Demand
    # a release gate wanting 3 of 10: the nightly gets the other 7; wanting 30: nothing
    assert entitlements(10, [d("gate", 10, 1, 3), d("nightly", 0, 1, 50)]) == \
        {"gate": 3, "nightly": 7}
    assert entitlements(10, [d("gate", 10, 1, 30), d("nightly", 0, 1, 50)]) == \
        {"gate": 10, "nightly": 0}
    # shares 1 and 3 of 10: 2.5 and 7.5, the odd slot to the larger remainder (a tie: the id)
    assert entitlements(10, [d("a", 0, 1, 50), d("b", 0, 3, 50)]) == {"a": 3, "b": 7}
    # one wants less than its share: the others split what it leaves
    assert entitlements(10, [d("a", 0, 1, 2), d("b", 0, 1, 50), d("c", 0, 1, 50)]) == \
        {"a": 2, "b": 4, "c": 4}
    assert entitlements(4, [d("a", 0, 1, 50), d("b", 0, 1, 50), d("c", 0, 1, 50)]) == \
        {"a": 2, "b": 1, "c": 1}
    assert entitlements(0, [d("a", 0, 1, 5)]) == {"a": 0}
    # never more than the pool, never more than an eval wants
    for slots in range(0, 12):
        got = entitlements(slots, [d("a", 1, 1, 3), d("b", 0, 2, 4), d("c", 0, 1, 9)])
        assert sum(got.values()) == min(slots, 16)
        assert got["a"] <= 3 and got["b"] <= 4 and got["c"] <= 9


def _plan(make_plan: Callable[..., Path], name: str, priority: int) -> Path:
    agent = {"name": "track", "version": "1", "kind": "python",
             "args": {"callable": "evalfleet.testing.agents:track_concurrency",
                      "kwargs": {"sleep_s": 0.05}}}
    return make_plan(n_tasks=12, agents=[agent], name=name,
                     execution={"max_in_flight": 4, "heartbeat_seconds": 0.2,
                                "sandbox": "local",
                                "pool": {"name": "farm", "slots": 4, "priority": priority}})


def test_a_lower_priority_eval_runs_only_in_the_slots_a_higher_one_leaves(
        make_plan: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path / "home")
    # a release gate's driver holds a live demand of 3 of the pool's 4 slots
    settings.home.mkdir(mode=0o700)
    j = Journal.open(settings.home)
    try:
        j.put_demand("farm", "gate-eval", 10, 1.0, 3)
    finally:
        j.close()
    monkeypatch.setattr(testing_agents, "max_active", 0)
    summary = api.run(_plan(make_plan, "nightly", 0), settings=settings)
    assert summary.status == "completed" and summary.done == 12
    assert testing_agents.max_active == 1  # 4 slots - the gate's 3
    j = Journal.open(settings.home)
    try:
        # the nightly withdrew its demand at its end; the gate's is still there
        assert [e for e, *_ in j.pool_demands("farm", 600)] == ["gate-eval"]
        j.drop_demand("farm", "gate-eval")
    finally:
        j.close()
    # alone on the pool, an eval uses all of its slots
    monkeypatch.setattr(testing_agents, "max_active", 0)
    summary = api.run(_plan(make_plan, "nightly2", 0), settings=settings)
    assert summary.status == "completed" and testing_agents.max_active > 1


def test_a_dead_drivers_demand_is_ignored(tmp_path: Path) -> None:
    j = Journal.open(tmp_path)
    try:
        j.put_demand("farm", "alive", 0, 1.0, 5)
        j.put_demand("farm", "alive", 1, 2.0, 6)  # renewed: one row, the latest values
        assert j.pool_demands("farm", 60) == [("alive", 1, 2.0, 6)]
        assert j.pool_demands("other", 60) == []
        assert j.pool_demands("farm", -1) == []  # not renewed within the window: dead
    finally:
        j.close()
