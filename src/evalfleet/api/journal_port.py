"""The store seen through the dispatcher's journal port, for one eval.

The execution package does not import the store; this adapter is the one place the two meet.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from evalfleet.execution.shares import Demand
from evalfleet.spec.result import RunResult
from evalfleet.store import RowContext, Store
from evalfleet.store.journal import LeasedRun


class StorePort:
    """Adapts the store to the dispatcher's RunJournal port for one eval."""

    def __init__(self, store: Store, ctx: RowContext, driver: str) -> None:
        self.store = store
        self.ctx = ctx
        self.driver = driver

    def lease(self, owner: str, n: int, lease_s: float,
              skip_agents: Collection[int] = ()) -> Sequence[LeasedRun]:
        return self.store.journal.lease(self.ctx.eval_id, owner, n, lease_s, skip_agents)

    def renew(self, owner: str, run_ids: Sequence[str], lease_s: float) -> int:
        return self.store.journal.renew(self.ctx.eval_id, owner, run_ids, lease_s)

    def release(self, owner: str, run_ids: Sequence[str] | None = None) -> None:
        self.store.journal.release(self.ctx.eval_id, owner, run_ids)

    def commit(self, results: Sequence[RunResult]) -> tuple[int, int]:
        rep = self.store.commit(self.ctx, results)
        return rep.committed, rep.duplicates

    def lease_state(self) -> tuple[int, int, float | None]:
        return self.store.journal.lease_state(self.ctx.eval_id)

    def cancel_pending(self, agent_index: int | None = None) -> int:
        return self.store.journal.cancel_pending(self.ctx.eval_id, agent_index)

    def heartbeat(self) -> None:
        self.store.journal.heartbeat_driver(self.ctx.eval_id, self.driver)


class StoreQuarantine:
    """The journal as the dispatcher's quarantine sink (execution/quarantine.py), for one
    eval: infrastructure failures per task and quarantined tasks survive ``resume``."""

    def __init__(self, store: Store, eval_id: str) -> None:
        self.store = store
        self.eval_id = eval_id

    def infra_failures(self) -> dict[str, int]:
        return self.store.journal.infra_failures(self.eval_id)

    def quarantined_tasks(self) -> dict[str, int]:
        return {q["task_id"]: q["failures"]
                for q in self.store.journal.quarantined(self.eval_id, evidence=0)}

    def record_failures(self, failures: Sequence[tuple[str, str, int, str]]) -> None:
        self.store.journal.record_failures(self.eval_id, failures)

    def quarantine(self, task_id: str, failures: int, run_ids: Sequence[str] = ()) -> int:
        return self.store.journal.quarantine_task(self.eval_id, task_id, failures, run_ids)


class StorePool:
    """The journal as the dispatcher's pool sink (execution/shares.py): one eval's demand on
    a pool of slots shared with other evals; demands not renewed for ``fresh_s`` are dead."""

    def __init__(self, store: Store, eval_id: str, pool: str, fresh_s: float) -> None:
        self.store = store
        self.eval_id = eval_id
        self.pool = pool
        self.fresh_s = fresh_s

    def put(self, priority: int, share: float, want: int) -> None:
        self.store.journal.put_demand(self.pool, self.eval_id, priority, share, want)

    def live(self) -> list[Demand]:
        return [Demand(e, p, s, w)
                for e, p, s, w in self.store.journal.pool_demands(self.pool, self.fresh_s)]

    def drop(self) -> None:
        self.store.journal.drop_demand(self.pool, self.eval_id)
