"""New evals: their ids and their runs' deterministic ids, recorded as pending."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

from evalfleet._util import short_hash
from evalfleet.spec.plan import Plan
from evalfleet.spec.task import Suite
from evalfleet.store import Store


def new_eval_id(plan: Plan) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{plan.name}-{stamp}-{secrets.token_hex(2)}"


def run_ids(eval_id: str, plan: Plan, suite: Suite) -> Iterator[tuple[str, str, int, int]]:
    """The eval's runs in dispatch order: repeat-major, so a partial eval covers every task."""
    fps = [a.fingerprint for a in plan.agents]
    for k in range(plan.runs_per_task):
        for task in suite.tasks:
            for i, fp in enumerate(fps):
                yield short_hash(eval_id, task.id, fp, k, length=24), task.id, i, k


def create_eval(store: Store, plan: Plan, suite: Suite, eval_id: str | None = None) -> str:
    """Record a new eval and all its runs as pending; returns the eval id."""
    eval_id = eval_id or new_eval_id(plan)
    planned = len(suite.tasks) * len(plan.agents) * plan.runs_per_task
    store.journal.create_eval(eval_id=eval_id, plan_name=plan.name,
                              plan_json=plan.model_dump_json(), suite_name=suite.name,
                              suite_hash=suite.suite_hash, planned=planned,
                              rows=run_ids(eval_id, plan, suite))
    return eval_id
