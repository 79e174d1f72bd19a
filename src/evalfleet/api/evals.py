"""New evals: their ids and their runs' deterministic ids, recorded as pending."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from evalfleet._util import short_hash
from evalfleet.cost import sampling
from evalfleet.cost.adaptive import Round, TaskRuns, next_round, stop_summary
from evalfleet.cost.sampling import planned_tasks as planned_tasks  # re-exported
from evalfleet.spec.plan import Plan
from evalfleet.spec.task import Suite
from evalfleet.store import Store
from evalfleet.store.results import private_dir


def new_eval_id(plan: Plan) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{plan.name}-{stamp}-{secrets.token_hex(2)}"


def run_id(eval_id: str, task_id: str, fingerprint: str, repeat: int) -> str:
    """The deterministic id of repeat ``repeat`` of a task for an agent in an eval."""
    return short_hash(eval_id, task_id, fingerprint, repeat, length=24)


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


def extra_run_ids(eval_id: str, plan: Plan,
                  extra: Iterable[tuple[int, str, int, int, str | None]]
                  ) -> list[tuple[str, str, int, int, str | None]]:
    """The runs of an adaptive round, in dispatch order (repeat-major, like `run_ids`).

    ``extra`` holds ``(agent_index, task_id, first_repeat, count, stratum)``: the task gets
    repeats ``first_repeat .. first_repeat + count - 1`` for that agent. The ids are the same
    deterministic ids `run_ids` would give those repeats, so a recomputed round has the same ids.
    """
    fps = [a.fingerprint for a in plan.agents]
    rows = [(run_id(eval_id, task_id, fps[agent], k), task_id, agent, k, stratum)
            for agent, task_id, first, count, stratum in extra
            for k in range(first, first + count)]
    rows.sort(key=lambda r: (r[3], r[1], r[2]))
    return rows


@dataclass(frozen=True, slots=True)
class AddedRound:
    """What `add_round` did: runs in the round, how many were new, each agent's round."""

    runs: int
    inserted: int
    rounds: tuple[Round, ...]

    @property
    def stop(self) -> str | None:
        """Why the eval has no further round (see `evalfleet.cost.adaptive.StopReason`)."""
        return stop_summary(self.rounds)


_ROUND_SQL = """
    SELECT task_id, max("repeat") + 1 AS runs,
           count(*) FILTER (WHERE {scored}) AS n,
           coalesce(sum(score) FILTER (WHERE {scored}), 0) AS total,
           coalesce(sum(score * score) FILTER (WHERE {scored}), 0) AS total_sq,
           avg(coalesce(cost_usd, 0) + coalesce(infra_cost_usd, 0)
               + coalesce(reused_cost_usd, 0)) AS cost,
           any_value(category) AS category
    FROM runs WHERE agent_name = ? AND agent_version = ?
    GROUP BY task_id ORDER BY task_id"""


def add_round(store: Store, eval_id: str, plan: Plan) -> AddedRound:
    """Adaptive depth: add the eval's next round of runs as pending, from its committed runs.

    Call it once every run of the eval is committed. Each agent's round comes from
    `evalfleet.cost.adaptive.next_round` on its committed results (the report's scored runs);
    a run's cost counts model, infrastructure and, for a reused run, what its source cost.
    The round is deterministic and its run ids too: computed again before its runs commit
    (a crash between adding and dispatching), it adds nothing. ``planned`` becomes the eval's
    run count. Nothing is added for a plan without ``runs:``.
    """
    if plan.runs is None:
        return AddedRound(0, 0, ())
    from evalfleet.analysis.report import SCORED
    from evalfleet.store.warehouse import connect

    con = connect(store.home, store.results_paths(eval_id))
    rounds: list[Round] = []
    extra: list[tuple[int, str, int, int, str | None]] = []
    try:
        for i, agent in enumerate(plan.agents):
            t = con.execute(_ROUND_SQL.format(scored=SCORED),
                            [agent.name, agent.version]).fetchnumpy()
            ids = [str(x) for x in t["task_id"].tolist()]
            data = TaskRuns.build(ids, t["runs"], t["n"], t["total"], t["total_sq"], t["cost"])
            rnd = next_round(data, plan.runs)
            rounds.append(rnd)
            runs_of = dict(zip(ids, t["runs"].tolist(), strict=True))
            cat_of = dict(zip(ids, t["category"].tolist(), strict=True))
            extra.extend((i, tid, int(runs_of[tid]), k, cat_of[tid])
                         for tid, k in rnd.extra.items())
    finally:
        con.close()
    rows = extra_run_ids(eval_id, plan, extra)
    inserted = store.journal.add_runs(eval_id, rows) if rows else 0
    counts = store.journal.counts(eval_id)
    store.journal.set_planned(eval_id, sum(v for k, v in counts.items()
                                           if not k.startswith("outcome:")))
    return AddedRound(len(rows), inserted, tuple(rounds))


def planned_runs(plan: Plan, suite: Suite) -> int:
    """Runs created with the eval (an adaptive plan may add more later)."""
    return len(planned_tasks(plan, suite)) * len(plan.agents) * plan.first_runs


def create_eval(store: Store, plan: Plan, suite: Suite, eval_id: str | None = None, *,
                on: date | None = None) -> str:
    """Record a new eval and all its runs as pending; returns the eval id.

    A sampled plan is stored with its rotation pinned (``sample.seed``; a sample without a seed
    rotates with the UTC date ``on``, default today), and the selection (rotation, N_h and n_h
    per stratum) is written to ``<home>/samples/<eval_id>.json`` (0600) for the report's
    full-suite estimate.
    """
    eval_id = eval_id or new_eval_id(plan)
    today = on if on is not None else sampling.utc_today()
    selection = sampling.select(suite, plan.sample, on=today)
    plan = sampling.pin_rotation(plan, on=today)
    store.journal.create_eval(eval_id=eval_id, plan_name=plan.name,
                              plan_json=plan.model_dump_json(), suite_name=suite.name,
                              suite_hash=suite.suite_hash, planned=planned_runs(plan, suite),
                              rows=run_ids(eval_id, plan, suite))
    if selection.sampled:  # after the eval exists: an id clash must not overwrite its record
        _write_sample_record(store.home, eval_id, sampling.sample_record(
            selection, eval_id=eval_id, suite=suite))
    return eval_id


def _write_sample_record(home: Path, eval_id: str, record: dict[str, Any]) -> None:
    """``<home>/samples/<eval_id>.json``, private (0600 in a 0700 folder), written atomically."""
    folder = home / "samples"
    private_dir(folder)
    path = folder / f"{eval_id}.json"
    tmp = folder / f".{eval_id}.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as fh:
        json.dump(record, fh, separators=(",", ":"))
    os.replace(tmp, path)
