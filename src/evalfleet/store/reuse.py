"""Plan reuse: take a run's result from an earlier committed run instead of executing it again.

With ``reuse: true`` in a plan, a pending run whose **reuse key** matches a committed, scored run
of another eval in the same home is not executed: a results row is committed for it that copies
the source's outcome (status, score, passed, metrics, tokens, latency, error) with ``cost_usd`` =
``infra_cost_usd`` = 0, ``reused_from`` = the source's run id and ``reused_cost_usd`` = what the
source cost (model + infra), i.e. what the reuse saved.

The key (:class:`ReuseKey`) is everything that can change a run's outcome:

- ``task_hash``: the task's files, hidden files, set-up, input, target, scorer and limits;
- ``agent_fingerprint``: the agent's name, version, kind, args (its parameters), model, tier and
  provider (its price and budget are left out: they do not change what it does);
- ``scorer_hash``: the scorer spec's hash (kind and args), explicit although ``task_hash``
  covers it too;
- ``sandbox``: the sandbox provider in use (``local``, ``bwrap``). A source that used no
  sandbox at all (an in-driver python agent graded by a text scorer, column ``sandbox`` empty)
  matches any provider, since no sandbox took part in its outcome;
- ``repeat``: the repeat index, so repeat k reuses an earlier repeat k and a deeper plan
  executes only its new repeats.

A source is a row with status ``completed`` or ``failed`` and a valid score (errored and
cancelled rows never), from an eval other than the one being run; the earliest (by
``finished_at``, then run id) wins. A source that was itself reused points on to its original:
``reused_from`` is ``coalesce(source.reused_from, source.run_id)`` and the saving is the
original's cost.

Reused rows are committed through :meth:`Store.commit`, in batches of
``execution.write_batch``: a batch is committed atomically and only for runs not yet done, so a
crash leaves some batches committed (their runs are done and never reused or executed again on
resume) and the rest pending (reused on resume).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.plan import Plan
from evalfleet.spec.result import RunResult, RunStatus
from evalfleet.spec.task import Suite, Task
from evalfleet.store.results import RowContext, scorer_hash
from evalfleet.store.store import Store
from evalfleet.store.warehouse import connect, scored_sql

REUSABLE = scored_sql("r")
"""Rows that may be a source: scored runs (completed, or agent failures with a valid score).
Errored and cancelled rows are missing data, never reused."""

_KEY_COLUMNS = ("task_hash", "agent_fingerprint", "scorer_hash", "sandbox", "repeat")
_OPTIONAL = ("error_kind", "error", "passed", "metrics", "tokens_in", "tokens_cached",
             "tokens_out", "latency_s", "cost_usd", "infra_cost_usd", "reused_from",
             "reused_cost_usd", "finished_at")


@dataclass(frozen=True, slots=True)
class ReuseKey:
    """What must match for a run to take an earlier run's result."""

    task_hash: str
    agent_fingerprint: str
    scorer_hash: str
    sandbox: str
    """The sandbox provider in use: ``local`` or ``bwrap``."""
    repeat: int
    services_hash: str = ""
    """The plan's :attr:`~evalfleet.spec.plan.Plan.services_hash` (the simulated model's spec):
    a run against another model server setting is another run."""


def reuse_key(task: Task, agent: AgentSpec, sandbox: str, repeat: int) -> ReuseKey:
    """The reuse key of repeat ``repeat`` of ``task`` by ``agent`` under provider ``sandbox``."""
    return ReuseKey(task.task_hash, agent.fingerprint, scorer_hash(task.scorer), sandbox, repeat)


def plan_keys(tasks: Iterable[Task], agents: Sequence[AgentSpec], sandbox: str,
              repeats: range, services_hash: str = "") -> list[ReuseKey]:
    """The keys of every run of ``tasks`` x ``agents`` x ``repeats`` (for a plan review)."""
    fps = [a.fingerprint for a in agents]
    hashes: dict[int, str] = {}
    out: list[ReuseKey] = []
    task_list = list(tasks)
    for k in repeats:
        for task in task_list:
            s = hashes.get(id(task.scorer))
            if s is None:
                s = hashes[id(task.scorer)] = scorer_hash(task.scorer)
            out.extend(ReuseKey(task.task_hash, fp, s, sandbox, k, services_hash)
                       for fp in fps)
    return out


@dataclass(frozen=True, slots=True)
class ReuseSource:
    """The committed run a pending run takes its result from."""

    run_id: str
    """The original run (a reused source's own source)."""
    eval_id: str
    """The eval of the row that matched."""
    status: RunStatus
    score: float
    passed: bool | None
    error_kind: str | None
    error: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_cached: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    sandbox: str = ""
    cost_usd: float = 0.0
    """What the original run cost, model + infra: what reusing it saves."""


def _columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {str(r[0]) for r in con.execute("SELECT name FROM pragma_table_info('runs')")
            .fetchall()}


def _matches(con: duckdb.DuckDBPyConnection, keys: Sequence[ReuseKey],
             exclude_eval: str | None, select_sql: str) -> list[tuple[Any, ...]] | None:
    """Run ``select_sql`` over the best source of each key (None: no row can be a source)."""
    cols = _columns(con)
    if not {"run_id", "eval_id", "status", "score", *_KEY_COLUMNS} <= cols:
        return None  # results written before scorer_hash existed: nothing to match them on
    opt = {c: f"r.{c}" if c in cols else "NULL" for c in _OPTIONAL}
    # the keys as a temporary table, from plain lists (an Arrow table would import pandas)
    con.execute("""
        CREATE TEMP TABLE reuse_keys AS SELECT
            unnest(range($n)) AS k, unnest($task_hash::VARCHAR[]) AS task_hash,
            unnest($agent_fingerprint::VARCHAR[]) AS agent_fingerprint,
            unnest($scorer_hash::VARCHAR[]) AS scorer_hash,
            unnest($sandbox::VARCHAR[]) AS sandbox, unnest($repeat::INTEGER[]) AS repeat,
            unnest($services_hash::VARCHAR[]) AS services_hash""",
                {"n": len(keys), "task_hash": [k.task_hash for k in keys],
                 "agent_fingerprint": [k.agent_fingerprint for k in keys],
                 "scorer_hash": [k.scorer_hash for k in keys],
                 "sandbox": [k.sandbox for k in keys], "repeat": [k.repeat for k in keys],
                 "services_hash": [k.services_hash for k in keys]})
    # rows written before the column existed ran without a recorded service: they match only
    # plans that start none
    services = "coalesce(r.services_hash, '')" if "services_hash" in cols else "''"
    # one join of the keys against every committed row; the earliest source per key wins
    sql = f"""
        WITH best AS (
            SELECT k.k,
                   coalesce({opt['reused_from']}, r.run_id) AS source_id,
                   r.eval_id, r.status, r.score, {opt['passed']} AS passed,
                   {opt['error_kind']} AS error_kind, {opt['error']} AS error,
                   {opt['metrics']} AS metrics, {opt['tokens_in']} AS tokens_in,
                   {opt['tokens_cached']} AS tokens_cached, {opt['tokens_out']} AS tokens_out,
                   {opt['latency_s']} AS latency_s, r.sandbox,
                   CASE WHEN {opt['reused_from']} IS NOT NULL
                        THEN coalesce({opt['reused_cost_usd']}, 0)
                        ELSE coalesce({opt['cost_usd']}, 0) + coalesce({opt['infra_cost_usd']}, 0)
                   END AS saved_usd
            FROM reuse_keys k JOIN runs r
              ON r.task_hash = k.task_hash AND r.agent_fingerprint = k.agent_fingerprint
             AND r.scorer_hash = k.scorer_hash AND r.repeat = k.repeat
             AND (r.sandbox = k.sandbox OR coalesce(r.sandbox, '') = '')
             AND {services} = k.services_hash
            WHERE {REUSABLE} AND r.eval_id IS DISTINCT FROM ?
            QUALIFY row_number() OVER (PARTITION BY k.k
                                       ORDER BY {opt['finished_at']} NULLS LAST, r.run_id) = 1
        )
        {select_sql}"""
    return con.execute(sql, [exclude_eval]).fetchall()


def find_sources(home: Path, paths: list[str], keys: Sequence[ReuseKey], *,
                 exclude_eval: str | None = None) -> dict[int, ReuseSource]:
    """For each key (by its index in ``keys``) that has one, the source a run would reuse.

    ``paths`` are the committed results files to look in (``Store.all_results_paths()``);
    rows of ``exclude_eval`` (the eval being run) are never sources. One DuckDB query.
    """
    if not keys or not paths:
        return {}
    con = connect(home, paths)
    try:
        rows = _matches(con, keys, exclude_eval, "SELECT * FROM best")
    finally:
        con.close()
    out: dict[int, ReuseSource] = {}
    for (k, source_id, eval_id, status, score, passed, error_kind, error, metrics, tin,
         tcached, tout, latency, sandbox, saved) in rows or ():
        out[int(k)] = ReuseSource(
            run_id=str(source_id), eval_id=str(eval_id), status=status, score=float(score),
            passed=None if passed is None else bool(passed), error_kind=error_kind, error=error,
            metrics={str(m): float(v) for m, v in (metrics or {}).items()},
            tokens_in=int(tin or 0), tokens_cached=int(tcached or 0), tokens_out=int(tout or 0),
            latency_s=float(latency or 0.0), sandbox=str(sandbox or ""), cost_usd=float(saved))
    return out


def count_reusable(home: Path, paths: list[str], keys: Sequence[ReuseKey], *,
                   exclude_eval: str | None = None) -> tuple[int, float]:
    """How many of ``keys`` an eval with ``reuse: true`` would take from earlier runs, and the
    dollars that saves (the sources' model + infra cost), without running anything.

    For a plan review: build the keys with :func:`plan_keys` from the tasks the plan would run,
    its agents, the sandbox provider it would use (``get_provider(...).name``) and its repeats;
    ``paths`` is ``Store.all_results_paths()`` of the home. The same single query as an eval's
    start, so it matches exactly what the eval would reuse.
    """
    if not keys or not paths:
        return 0, 0.0
    con = connect(home, paths)
    try:
        rows = _matches(con, keys, exclude_eval,
                        "SELECT count(*), coalesce(sum(saved_usd), 0) FROM best")
    finally:
        con.close()
    if not rows:
        return 0, 0.0
    n, saved = rows[0]
    return int(n), float(saved)


def _pending(store: Store, eval_id: str) -> list[tuple[str, str, int, int]]:
    """(run id, task id, agent index, repeat) of the eval's pending runs, in dispatch order."""
    return store.journal.pending_runs(eval_id)


def reused_result(run_id: str, task_id: str, agent_index: int, repeat: int,
                  src: ReuseSource, now: float) -> RunResult:
    """The row of a reused run: the source's outcome, no cost of its own, and a trajectory that
    says where the result came from."""
    return RunResult(
        run_id=run_id, task_id=task_id, agent_index=agent_index, repeat=repeat,
        status=src.status, error_kind=src.error_kind, error=src.error, score=src.score,
        passed=src.passed, metrics=dict(src.metrics), tokens_in=src.tokens_in,
        tokens_cached=src.tokens_cached, tokens_out=src.tokens_out, cost_usd=0.0,
        infra_cost_usd=0.0, latency_s=src.latency_s, attempts=0, worker="reuse",
        sandbox=src.sandbox, started_at=now, finished_at=now,
        trajectory={"events": [{"t": round(now, 4), "kind": "reused",
                                "reused_from": src.run_id, "source_eval": src.eval_id,
                                "note": f"not executed: result reused from run {src.run_id}"}]},
        reused_from=src.run_id, reused_cost_usd=src.cost_usd)


def apply_reuse(store: Store, eval_id: str, plan: Plan, suite: Suite, ctx: RowContext,
                provider_name: str) -> int:
    """Commit the eval's pending runs that have a reuse source; returns how many were reused.

    Does nothing unless ``plan.reuse``. Called by the driver at the start of each dispatch round,
    before any run of the round is leased: the runs it commits are done, so the dispatcher
    never leases them. Commits go through :meth:`Store.commit` in batches of
    ``plan.execution.write_batch`` (exactly once, crash- and resume-safe).
    """
    if not plan.reuse:
        return 0
    pending = _pending(store, eval_id)
    if not pending:
        return 0
    by_id = suite.by_id
    todo = [p for p in pending if p[1] in by_id and p[2] < len(plan.agents)]
    hashes: dict[int, str] = {}  # tasks of a suite share scorer objects
    keys: list[ReuseKey] = []
    for _, task_id, agent_index, repeat in todo:
        task = by_id[task_id]
        s = hashes.get(id(task.scorer))
        if s is None:
            s = hashes[id(task.scorer)] = scorer_hash(task.scorer)
        keys.append(ReuseKey(task.task_hash, plan.agents[agent_index].fingerprint, s,
                             provider_name, repeat, plan.services_hash))
    sources = find_sources(store.home, store.all_results_paths(), keys, exclude_eval=eval_id)
    if not sources:
        return 0
    now = time.time()
    results = [reused_result(*todo[i], sources[i], now) for i in sorted(sources)]
    committed = 0
    step = plan.execution.write_batch
    for i in range(0, len(results), step):
        committed += store.commit(ctx, results[i:i + step]).committed
    return committed
