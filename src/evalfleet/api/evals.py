"""New evals: their ids and their runs' deterministic ids, recorded as pending."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

from evalfleet._util import short_hash
from evalfleet.spec.plan import Plan
from evalfleet.spec.task import Suite, Task
from evalfleet.store import Store


def new_eval_id(plan: Plan) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{plan.name}-{stamp}-{secrets.token_hex(2)}"


def run_id(eval_id: str, task_id: str, fingerprint: str, repeat: int) -> str:
    """The deterministic id of repeat ``repeat`` of a task for an agent in an eval."""
    return short_hash(eval_id, task_id, fingerprint, repeat, length=24)


def planned_tasks(plan: Plan, suite: Suite) -> tuple[Task, ...]:
    """The tasks the eval runs: the whole suite, or the plan's stratified sample of it."""
    return suite.tasks


def run_ids(eval_id: str, plan: Plan, suite: Suite,
            repeats: range | None = None) -> Iterator[tuple[str, str, int, int, str]]:
    """The eval's runs in dispatch order: repeat-major, so a partial eval covers every task.

    Each is ``(run_id, task_id, agent_index, repeat, stratum)``; the stratum (the task's
    category) is what cost projections group by. ``repeats`` defaults to the runs created with
    the eval (``plan.first_runs``).
    """
    fps = [a.fingerprint for a in plan.agents]
    tasks = planned_tasks(plan, suite)
    for k in repeats if repeats is not None else range(plan.first_runs):
        for task in tasks:
            for i, fp in enumerate(fps):
                yield run_id(eval_id, task.id, fp, k), task.id, i, k, task.category


def planned_runs(plan: Plan, suite: Suite) -> int:
    """Runs created with the eval (an adaptive plan may add more later)."""
    return len(planned_tasks(plan, suite)) * len(plan.agents) * plan.first_runs


def create_eval(store: Store, plan: Plan, suite: Suite, eval_id: str | None = None) -> str:
    """Record a new eval and all its runs as pending; returns the eval id."""
    eval_id = eval_id or new_eval_id(plan)
    store.journal.create_eval(eval_id=eval_id, plan_name=plan.name,
                              plan_json=plan.model_dump_json(), suite_name=suite.name,
                              suite_hash=suite.suite_hash, planned=planned_runs(plan, suite),
                              rows=run_ids(eval_id, plan, suite))
    return eval_id
