"""Adaptive depth: the allocation rule, the round loop of the driver, and resume safety."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalfleet import api
from evalfleet.api.evals import add_round, extra_run_ids
from evalfleet.api.reads import open_store
from evalfleet.cost.adaptive import TaskRuns, next_round, stop_summary, task_variances
from evalfleet.settings import Settings
from evalfleet.spec.loaders import load_plan
from evalfleet.spec.plan import AdaptiveRuns, Plan

# --- the allocation ----------------------------------------------------------------------------


def _binary(passes: list[int], runs: list[int], cost: list[float] | None = None) -> TaskRuns:
    ids = [f"t{i:03d}" for i in range(len(runs))]
    return TaskRuns.build(ids, runs, runs, passes, passes, cost)


def _suite(n_each: int, runs: int, mixed_passes: int) -> TaskRuns:
    """``n_each`` tasks that passed every run, ``n_each`` that failed every run, ``n_each``
    that passed ``mixed_passes`` of ``runs``."""
    passes = [runs] * n_each + [0] * n_each + [mixed_passes] * n_each
    return _binary(passes, [runs] * (3 * n_each))


def test_always_pass_or_fail_tasks_get_fewer_runs_than_mixed_ones() -> None:
    data = _suite(50, 4, 2)
    rnd = next_round(data, AdaptiveRuns(min=2, max=10, target_halfwidth=0.065))
    assert rnd.stop is None
    extra = [rnd.extra.get(t, 0) for t in data.task_ids]
    always, never, mixed = extra[:50], extra[50:100], extra[100:]
    assert min(mixed) > max(always) and min(mixed) > max(never)
    # shrinkage: a task that passed (failed) all its runs is not certain, its variance is not 0
    var = task_variances(data.n, data.total, data.total_sq)
    assert 0 < var[0] < var[-1] and 0 < var[50] < var[-1]


def test_extreme_tasks_get_runs_when_the_target_needs_them() -> None:
    # few, but not never: a tighter target reaches past the mixed tasks; none more than doubles
    data = _suite(50, 4, 2)
    rnd = next_round(data, AdaptiveRuns(min=2, max=40, target_halfwidth=0.062))
    assert rnd.stop is None
    assert all(rnd.extra.get(t, 0) > 0 for t in data.task_ids)
    assert max(rnd.extra.values()) == 4  # at most doubling the 4 runs in one round
    assert rnd.predicted < rnd.halfwidth


def test_cheap_tasks_get_runs_first() -> None:
    base = _suite(50, 4, 2)
    cost = [1.0] * 125 + [10.0] * 25  # the last 25 mixed tasks cost ten times more a run
    data = TaskRuns.build(base.task_ids, base.runs, base.n, base.total, base.total_sq, cost)
    rnd = next_round(data, AdaptiveRuns(min=2, max=10, target_halfwidth=0.065))
    cheap = sum(rnd.extra.get(t, 0) for t in data.task_ids[100:125])
    dear = sum(rnd.extra.get(t, 0) for t in data.task_ids[125:])
    assert rnd.stop is None and cheap > dear


def test_max_is_respected_and_every_task_at_max_stops() -> None:
    data = _suite(50, 4, 2)
    rnd = next_round(data, AdaptiveRuns(min=2, max=5, target_halfwidth=0.0655))
    assert rnd.stop is None and rnd.extra
    assert all(4 + k <= 5 for k in rnd.extra.values())
    # a target tighter than the spread between tasks allows: the round still heads for the
    # narrowest interval runs can give...
    far = next_round(data, AdaptiveRuns(min=2, max=5, target_halfwidth=0.01))
    assert far.stop is None and far.extra and far.floor > 0.01
    assert far.predicted < far.halfwidth
    # ...and stops once the runs made are within SLACK of it, not chasing the last per cent
    near = next_round(_suite(50, 9, 4), AdaptiveRuns(min=1, max=10, target_halfwidth=0.01))
    assert near.stop == "unreachable" and not near.extra and near.floor > 0.01
    at_max = next_round(_suite(50, 5, 2), AdaptiveRuns(min=2, max=5, target_halfwidth=0.01))
    assert at_max.stop == "max" and not at_max.extra


def test_target_reached_stops() -> None:
    data = _suite(30, 4, 2)
    now = next_round(data, AdaptiveRuns(min=1, max=10, target_halfwidth=0.2)).halfwidth
    assert next_round(data, AdaptiveRuns(min=1, max=10, target_halfwidth=now)).stop == "target"
    below = next_round(data, AdaptiveRuns(min=1, max=10, target_halfwidth=now * 0.97))
    assert below.stop is None and below.predicted <= now


def test_stop_reasons_over_agents() -> None:
    data = _suite(10, 4, 2)
    go = next_round(data, AdaptiveRuns(min=1, max=100, target_halfwidth=0.15))
    done = next_round(data, AdaptiveRuns(min=1, max=10, target_halfwidth=0.5))
    assert go.stop is None and done.stop == "target"
    assert stop_summary([go, done]) is None
    assert stop_summary([done, done]) == "target"


def test_allocation_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    runs = rng.integers(1, 5, size=300)
    passes = rng.binomial(runs, rng.beta(0.4, 0.4, size=300))
    data = _binary(passes.tolist(), runs.tolist(), rng.lognormal(size=300).tolist())
    spec = AdaptiveRuns(min=1, max=10, target_halfwidth=0.047)
    first = next_round(data, spec)
    assert first.extra and first == next_round(data, spec)


def test_partial_credit_is_shrunk_too() -> None:
    ids = ["a", "b", "c", "d"]
    # a: constant 0.5 over 3 runs (sample variance 0); d: scores 0, 1, 0.5
    data = TaskRuns.build(ids, [3] * 4, [3] * 4, [1.5, 1.5, 2.4, 1.5],
                          [0.75, 0.77, 1.94, 1.25])
    var = task_variances(data.n, data.total, data.total_sq)
    assert 0 < var[0] < var[3]


# --- the driver's rounds -----------------------------------------------------------------------


def _adaptive_plan(make_plan: Callable[..., Path], tmp_path: Path, n_tasks: int,
                   runs: dict[str, Any]) -> Path:
    markers = tmp_path / "markers"
    markers.mkdir()
    agent = {"name": "rate", "version": "1", "kind": "python",
             "args": {"callable": "evalfleet.testing.agents:task_rate",
                      "kwargs": {"marker_dir": str(markers)}}}
    return make_plan(n_tasks=n_tasks, agents=[agent], runs=runs,
                     execution={"max_in_flight": 8})


RUNS = {"min": 2, "max": 8, "target_halfwidth": 0.12}


def test_adaptive_eval_adds_rounds_until_it_stops(make_plan: Callable[..., Path],
                                                  tmp_path: Path, settings: Settings) -> None:
    plan_path = _adaptive_plan(make_plan, tmp_path, 60, RUNS)
    summary = api.run(plan_path, settings=settings)
    assert summary.status == "completed"
    st = api.status(summary.eval_id, settings=settings)
    assert st["planned"] > 60 * 2  # at least one round beyond the first runs
    assert st["planned"] == st["done"] == summary.planned
    rep = api.report(summary.eval_id, settings=settings)
    per_task = rep["agents"][0]["runs_per_task"]
    assert 2 <= per_task["min"] < per_task["max"] <= 8, per_task  # depth differs by task
    # the allocation, asked again on the finished eval, has nothing to add
    store = open_store(settings)
    try:
        again = add_round(store, summary.eval_id, load_plan(plan_path))
        assert again.inserted == 0 and again.stop in ("target", "max", "unreachable")
    finally:
        store.close()


def test_round_step_twice_adds_no_duplicate(make_plan: Callable[..., Path], tmp_path: Path,
                                            settings: Settings) -> None:
    """A driver killed after adding a round, before dispatching it: computing the round again
    adds nothing, and resume runs each added run once."""
    plan_path = _adaptive_plan(make_plan, tmp_path, 60, RUNS)
    plan = load_plan(plan_path)
    store = open_store(settings)
    try:
        eval_id = api.evals.create_eval(store, plan, api.validation.validate_plan(
            plan, str(plan_path)))
        # the first runs only: a plan without runs: has no rounds
        fixed = Plan.model_validate({**plan.model_dump(exclude={"runs"}), "runs_per_task": 2})
        store.journal.update_plan(eval_id, fixed.model_dump_json())
        api.driver.execute(store, eval_id, settings=settings, handle_signals=False)
        store.journal.update_plan(eval_id, plan.model_dump_json())
        first = add_round(store, eval_id, plan)
        assert first.inserted == first.runs > 0
        second = add_round(store, eval_id, plan)
        assert second.runs == first.runs and second.inserted == 0
        ids = [r[0] for r in _journal_runs(store, eval_id)]
        assert len(ids) == len(set(ids)) == 120 + first.runs
        assert store.journal.get_eval(eval_id)["planned"] == len(ids)
        store.journal.set_status(eval_id, "running")  # as the killed driver left it
    finally:
        store.close()
    summary = api.resume(eval_id, settings=settings)
    st = api.status(eval_id, settings=settings)
    assert summary.status == "completed" and st["planned"] == st["done"]
    _, rows = api.query("SELECT run_id FROM runs", eval_id=eval_id, settings=settings)
    assert len(rows) == st["done"]
    assert not [r for r, n in Counter(r[0] for r in rows).items() if n > 1]


def _journal_runs(store: Any, eval_id: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import select

    from evalfleet.store.schema import runs

    with store.journal.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(runs.c.run_id, runs.c.repeat)
                                               .where(runs.c.eval_key
                                                      == store.journal.eval_key(eval_id)))]


def test_extra_run_ids_are_the_ids_of_those_repeats() -> None:
    plan = Plan.model_validate({"name": "p", "suite": {"builtin": "humaneval"},
                                "agents": [{"name": "a", "kind": "python", "args": {
                                    "callable": "evalfleet.testing.agents:noop"}}],
                                "runs": {"min": 1, "max": 4}})
    rows = extra_run_ids("e", plan, [(0, "x", 1, 2, "c"), (0, "w", 3, 1, None)])
    fp = plan.agents[0].fingerprint
    assert rows == [(api.evals.run_id("e", "x", fp, 1), "x", 0, 1, "c"),
                    (api.evals.run_id("e", "x", fp, 2), "x", 0, 2, "c"),
                    (api.evals.run_id("e", "w", fp, 3), "w", 0, 3, None)]


def test_runs_and_runs_per_task_together_is_an_error(make_plan: Callable[..., Path]) -> None:
    from evalfleet.errors import SpecError

    with pytest.raises(SpecError, match="runs_per_task"):
        load_plan(make_plan(runs_per_task=3, runs={"min": 1, "max": 4}))
