"""Local efficiency: a retry waits out its backoff outside the slots; sync agents share a
bounded thread pool."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evalfleet import api
from evalfleet.agents.base import AgentContext, AgentOutput
from evalfleet.agents.python_agent import AgentThreads, PythonAgent
from evalfleet.api.journal_port import StorePort
from evalfleet.cost.prices import load_price_table
from evalfleet.errors import InfraError
from evalfleet.execution import Dispatcher, DispatchOutcome
from evalfleet.sandbox import get_provider
from evalfleet.settings import Settings
from evalfleet.spec import load_plan
from evalfleet.store import RowContext, Store, driver_name


class _Top(random.Random):
    """Every draw at the top of [0, 1): each backoff is its full length."""

    def random(self) -> float:
        return 0.999


class _FailsFirstCall:
    """Spends $0.25 and 10 tokens an attempt; the first attempt it is ever given fails as an
    infrastructure error. Logs (run id, attempt, "start" | "end") in order."""

    def __init__(self, on_failure: Callable[[], None] | None = None) -> None:
        self.log: list[tuple[str, int, str]] = []
        self.on_failure = on_failure

    async def run(self, ctx: AgentContext) -> AgentOutput:
        ctx.usage.cost_usd += 0.25
        ctx.usage.tokens_in += 10
        first = not self.log
        self.log.append((ctx.run_id, ctx.attempt, "start"))
        await asyncio.sleep(0.01)
        self.log.append((ctx.run_id, ctx.attempt, "end"))
        if first:
            if self.on_failure is not None:
                self.on_failure()
            raise InfraError("the sandbox died")
        return AgentOutput("ok")


def _dispatch(make_plan: Callable[..., Path], settings: Settings, agent: _FailsFirstCall,
              *, n_tasks: int, backoff_s: float,
              stop_in_backoff: bool = False) -> tuple[DispatchOutcome, Store, str]:
    plan = load_plan(make_plan(n_tasks=n_tasks, execution={
        "max_in_flight": 1, "backoff_base_s": backoff_s, "backoff_max_s": backoff_s}))
    suite = api.validate_plan(plan)
    store = Store(settings.home)
    eval_id = api.create_eval(store, plan, suite)
    port = StorePort(store, RowContext(eval_id, plan.name, suite, plan.agents), driver_name())
    dispatcher = Dispatcher(plan=plan, suite=suite, journal=port, provider=get_provider("local"),
                            prices=load_price_table(), owner=driver_name(), rng=_Top(),
                            flush_interval_s=0.05)
    dispatcher.agents = [agent]
    if stop_in_backoff:  # Ctrl-C once the failed attempt's retry is waiting out its backoff

        def stop_soon() -> None:
            asyncio.get_running_loop().call_later(0.1, dispatcher.stop)

        agent.on_failure = stop_soon
    outcome = asyncio.run(dispatcher.run())
    return outcome, store, eval_id


def _rows(home: Path) -> list[tuple[str, int, float, int, str]]:
    con = duckdb.connect()
    try:
        return con.execute(
            "SELECT run_id, attempts, cost_usd, tokens_in, status FROM read_parquet("
            f"'{home}/results/**/*.parquet') ORDER BY run_id").fetchall()
    finally:
        con.close()


def test_a_retry_waits_out_its_backoff_outside_the_slot(make_plan: Callable[..., Path],
                                                         settings: Settings) -> None:
    # one slot; the first run fails and backs off 1.5 s; the other two runs take that slot
    # and finish during the backoff, then the retry runs and commits once, with both attempts'
    # cost and tokens
    agent = _FailsFirstCall()
    outcome, store, eval_id = _dispatch(make_plan, settings, agent, n_tasks=3, backoff_s=1.5)
    try:
        assert outcome.status == "completed" and outcome.stats.retries == 1
        failed = agent.log[0][0]
        others = [(rid, 1, edge) for rid, _, _ in agent.log[2:6:2] for edge in ("start", "end")]
        assert agent.log == [(failed, 1, "start"), (failed, 1, "end"), *others,
                             (failed, 2, "start"), (failed, 2, "end")]
        assert failed not in {rid for rid, _, _ in others} and len(others) == 4
        rows = {r[0]: r[1:] for r in _rows(settings.home)}
        assert len(rows) == 3 and len(_rows(settings.home)) == 3  # each run committed once
        assert rows[failed] == (2, 0.5, 20, "completed")
        assert sorted(v for k, v in rows.items() if k != failed) == \
            [(1, 0.25, 10, "completed")] * 2
        assert store.journal.counts(eval_id)["done"] == 3
        assert outcome.stats.cost_usd == 1.0  # the budgets saw every attempt's dollars
    finally:
        store.close()


def test_stop_during_a_backoff_still_runs_the_retry_and_commits_it(
        make_plan: Callable[..., Path], settings: Settings) -> None:
    # as when the backoff slept in the slot: stop() leases nothing more, but the run waiting
    # out its backoff makes its next attempt and is committed; the others stay pending
    agent = _FailsFirstCall()
    outcome, store, eval_id = _dispatch(make_plan, settings, agent, n_tasks=3, backoff_s=0.5,
                                        stop_in_backoff=True)
    try:
        assert outcome.status == "interrupted"
        failed = agent.log[0][0]
        assert agent.log[-2:] == [(failed, 2, "start"), (failed, 2, "end")]
        rows = _rows(settings.home)
        assert [r[0] for r in rows].count(failed) == 1
        assert dict((r[0], r[1:]) for r in rows)[failed] == (2, 0.5, 20, "completed")
        counts = store.journal.counts(eval_id)
        assert counts["done"] == len(rows) and counts["done"] + counts.get("pending", 0) == 3
        assert counts.get("leased", 0) == 0
    finally:
        store.close()


class _ThreadProbe:
    """A sync agent callable that records how many calls run at once and on how many threads
    (a thread-local tag: a new thread gets a new one, even when the OS reuses its id)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = self.peak = 0
        self.tags = itertools.count()
        self.local = threading.local()
        self.threads: set[int] = set()

    def __call__(self, task: dict[str, Any]) -> str:
        if not hasattr(self.local, "tag"):
            self.local.tag = next(self.tags)
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.threads.add(self.local.tag)
        time.sleep(0.02)
        with self.lock:
            self.active -= 1
        return "ok"


@pytest.mark.parametrize(("threads", "bound"), [(None, 8), (3, 3)])
def test_sync_agents_share_a_bounded_thread_pool(make_plan: Callable[..., Path],
                                                 settings: Settings, threads: int | None,
                                                 bound: int) -> None:
    # 40 runs of a sync agent on 8 slots: no more than `bound` threads ever run it (the
    # plan's max_in_flight, or the agent's `threads`), not one thread per run
    args: dict[str, Any] = {"callable": "evalfleet.testing.agents:noop"}
    if threads is not None:
        args["threads"] = threads
    plan = load_plan(make_plan(n_tasks=40, execution={"max_in_flight": 8}, agents=[
        {"name": "probe", "version": "1", "kind": "python", "args": args}]))
    suite = api.validate_plan(plan)
    store = Store(settings.home)
    try:
        eval_id = api.create_eval(store, plan, suite)
        port = StorePort(store, RowContext(eval_id, plan.name, suite, plan.agents),
                         driver_name())
        dispatcher = Dispatcher(plan=plan, suite=suite, journal=port,
                                provider=get_provider("local"), prices=load_price_table(),
                                owner=driver_name())
        probe = _ThreadProbe()
        agent = dispatcher.agents[0]
        assert isinstance(agent, PythonAgent)
        agent.fn = probe
        outcome = asyncio.run(dispatcher.run())
        assert outcome.status == "completed" and store.journal.counts(eval_id)["done"] == 40
        assert 1 < probe.peak <= bound
        assert len(probe.threads) <= bound
        assert agent.threads is None  # the pool was shut down with the dispatch
    finally:
        store.close()


def test_a_hung_call_leaves_the_pool_and_another_thread_takes_its_place() -> None:
    release = threading.Event()
    pool = AgentThreads(1)

    async def main() -> tuple[str, str]:
        hung = asyncio.create_task(asyncio.wait_for(pool.call(release.wait, 60), timeout=0.3))
        await asyncio.sleep(0.05)
        # the one thread is busy: this call waits in the queue; when the hung call times out
        # (the task's time limit: the run is a timeout) a new thread takes it
        waiting = asyncio.create_task(asyncio.wait_for(pool.call(lambda: "first"), timeout=30))
        with pytest.raises(TimeoutError):
            await hung
        first = str(await waiting)
        # the stuck thread is out of the pool: later calls do not wait for it either
        return first, str(await asyncio.wait_for(pool.call(lambda: "next"), timeout=30))

    try:
        assert asyncio.run(main()) == ("first", "next")
        assert pool.serving == 1  # the stuck thread is not counted: the bound still holds
    finally:
        release.set()
        pool.shutdown()


def test_calls_that_block_grow_the_pool_until_all_of_them_run_at_once() -> None:
    # 12 calls that each return only when all 12 are running: the pool must grow from its
    # eager threads to its bound (the barrier breaks after 30 s if it does not)
    pool = AgentThreads(12, eager=2, grow_after_s=0.01)
    barrier = threading.Barrier(12)

    async def main() -> list[object]:
        return list(await asyncio.gather(*(pool.call(barrier.wait, 30) for _ in range(12))))

    try:
        assert sorted(asyncio.run(main())) == list(range(12))
        assert pool.serving == 12
    finally:
        pool.shutdown()


def test_calls_that_return_at_once_are_served_by_the_eager_threads_alone() -> None:
    # 2,000 instant calls, 100 at a time, on a pool of 100: no call waits a whole second, so
    # the pool never grows past its 2 eager threads (a pool that starts a thread whenever none
    # is idle reaches 100 here)
    pool = AgentThreads(100, eager=2, grow_after_s=1.0)
    names: set[str] = set()

    def call() -> str:
        names.add(threading.current_thread().name + str(threading.get_ident()))
        return "ok"

    async def main() -> None:
        gate = asyncio.Semaphore(100)

        async def one() -> object:
            async with gate:
                return await pool.call(call)

        assert set(await asyncio.gather(*(one() for _ in range(2000)))) == {"ok"}

    try:
        asyncio.run(main())
        assert pool.serving == 2 and len(names) <= 2
    finally:
        pool.shutdown()


@dataclass
class _Leased:
    run_id: str
    task_id: str
    agent_index: int = 0
    repeat: int = 0
    attempts: int = 1


class _SlowJournal:
    """An in-memory journal whose commits take 0.2 s; it records on which thread each call ran,
    whether a commit is under way, and the order of the calls."""

    def __init__(self, task_ids: list[str]) -> None:
        self.pending = [_Leased(f"r-{t}", t) for t in task_ids]
        self.leased: dict[str, _Leased] = {}
        self.done: list[str] = []
        self.committing = False
        self.calls: list[tuple[str, str]] = []

    def _note(self, name: str) -> None:
        self.calls.append((name, threading.current_thread().name))

    def lease(self, owner: str, n: int, lease_s: float,
              skip_agents: Any = ()) -> list[_Leased]:
        self._note("lease")
        ok, self.pending = self.pending[:n], self.pending[n:]
        self.leased.update({lr.run_id: lr for lr in ok})
        return ok

    def renew(self, owner: str, run_ids: Any, lease_s: float) -> int:
        self._note("renew")
        return len(run_ids)

    def release(self, owner: str, run_ids: Any = None) -> None:
        self._note("release")
        for rid in list(self.leased) if run_ids is None else run_ids:
            self.pending.append(self.leased.pop(rid))

    def commit(self, results: Any) -> tuple[int, int]:
        self._note("commit")
        self.committing = True
        time.sleep(0.2)
        fresh = [r for r in results if r.run_id not in self.done]
        self.done.extend(r.run_id for r in fresh)
        for r in results:
            self.leased.pop(r.run_id, None)
        self.committing = False
        return len(fresh), len(results) - len(fresh)

    def lease_state(self) -> tuple[int, int, float | None]:
        self._note("lease_state")
        return len(self.pending), len(self.leased), None

    def cancel_pending(self, agent_index: int | None = None) -> int:
        return 0

    def heartbeat(self) -> None:
        self._note("heartbeat")


class _DuringCommits:
    """Counts the attempts that start while the journal is committing."""

    def __init__(self, journal: _SlowJournal) -> None:
        self.journal = journal
        self.started_during_commit = 0

    async def run(self, ctx: AgentContext) -> AgentOutput:
        self.started_during_commit += self.journal.committing
        await asyncio.sleep(0.005)
        return AgentOutput("ok")


def test_commits_and_leases_run_off_the_event_loop(make_plan: Callable[..., Path]) -> None:
    # commits take 0.2 s; runs keep starting while one is under way, every journal call runs
    # on the one journal thread, and every run is committed exactly once
    plan = load_plan(make_plan(n_tasks=300, execution={
        "max_in_flight": 4, "write_batch": 20, "heartbeat_seconds": 0.05}))
    suite = api.validate_plan(plan)
    journal = _SlowJournal([t.id for t in suite.tasks])
    dispatcher = Dispatcher(plan=plan, suite=suite, journal=journal,
                            provider=get_provider("local"), prices=load_price_table(),
                            owner="test", flush_interval_s=0.05)
    agent = _DuringCommits(journal)
    dispatcher.agents = [agent]
    outcome = asyncio.run(dispatcher.run())
    assert outcome.status == "completed" and outcome.stats.done == 300
    assert sorted(journal.done) == sorted(f"r-{t.id}" for t in suite.tasks)  # once each
    assert not journal.leased and not journal.pending
    assert agent.started_during_commit > 0
    names = {name for call, name in journal.calls if call != "release"}
    assert len(names) == 1 and names.pop().startswith("evalfleet-journal")
    assert {"lease", "commit", "renew", "heartbeat", "lease_state"} <= \
        {call for call, _ in journal.calls}


class _UsesSandboxLate:
    """Answers at once; keeps its context so the test can ask for the sandbox afterwards."""

    def __init__(self) -> None:
        self.ctx: AgentContext | None = None

    async def run(self, ctx: AgentContext) -> AgentOutput:
        self.ctx = ctx
        return AgentOutput("ok")


def _attempts(agent: Any, n: int) -> list[Any]:
    from evalfleet.agents.base import NoGate
    from evalfleet.cost.prices import PriceTable
    from evalfleet.execution.attempt import run_attempt
    from evalfleet.scoring.registry import create_scorer
    from evalfleet.spec.agent import AgentSpec
    from evalfleet.spec.task import Task

    task = Task.model_validate({"id": "t", "input": "x", "target": "ok",
                                "scorer": {"kind": "exact"}})
    spec = AgentSpec(name="a", kind="python", args={"callable": "m:f"})

    async def main() -> list[Any]:
        return [await run_attempt(
            task=task, spec=spec, agent=agent, scorer=create_scorer(task.scorer),
            provider=get_provider("local"), prices=PriceTable({}, {}, ""), gate=NoGate(),
            run_id=f"r{i}", attempt=1, variables={}) for i in range(n)]

    return asyncio.run(main())


def test_an_attempt_leaves_no_reference_cycle_behind() -> None:
    """An attempt's objects are freed by reference counting when it ends: none is left for the
    cyclic garbage collector (whose passes cost a driver 0.3-0.5 s of 10,000 runs). Its stages
    and their lazy sandboxes referred to each other through the sandbox factories: nine objects
    of garbage an attempt until closing a lazy sandbox dropped its factory (tried)."""
    import gc

    _attempts(_UsesSandboxLate(), 1)  # imports, caches and asyncio's own first-use objects
    gc.collect()
    gc.disable()
    try:
        outs = _attempts(_UsesSandboxLate(), 40)
        outs.clear()
        garbage = gc.collect()
    finally:
        gc.enable()
    assert garbage < 40, f"{garbage} objects in reference cycles after 40 attempts"


def test_the_sandbox_of_an_ended_attempt_is_never_made() -> None:
    """An agent that asks for its sandbox after its attempt ended (a sync agent still running
    past its time limit) gets an AgentError, not a sandbox that nobody would close."""
    from evalfleet.errors import AgentError

    agent = _UsesSandboxLate()
    [out] = _attempts(agent, 1)
    assert out.error is None and agent.ctx is not None
    with pytest.raises(AgentError, match="after the attempt ended"):
        asyncio.run(agent.ctx.sandbox.get())
    assert agent.ctx.sandbox.created is None


def test_frozen_heap_puts_the_heap_back_as_it_found_it() -> None:
    """Inside the block the objects alive at its start are out of the collector's passes; after
    it an unfrozen heap is unfrozen again (a library caller's cycles are collected as before),
    and a heap the caller froze stays frozen."""
    import gc

    from evalfleet._util.heap import frozen_heap

    assert gc.get_freeze_count() == 0
    before = object.__new__(_UsesSandboxLate)  # tracked: it has a __dict__
    assert gc.is_tracked(before)
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        assert not any(o is before for o in gc.get_objects())  # no pass visits it
        young = object.__new__(_UsesSandboxLate)
        assert any(o is young for o in gc.get_objects())  # objects made inside are collected
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()


FREEZE_COUNTS: list[int] = []


def freeze_count(task: dict[str, Any]) -> str:
    """A sync agent that notes how many objects are frozen while it runs."""
    import gc

    FREEZE_COUNTS.append(gc.get_freeze_count())
    return "ok"


def test_an_eval_runs_with_its_long_lived_objects_frozen(make_plan: Callable[..., Path],
                                                         tmp_path: Path) -> None:
    """api.run keeps the plan, the suite and everything alive before the dispatch out of the
    collector's passes while runs execute, and leaves the caller's heap unfrozen at the end
    (without the freeze in the driver the agent sees no frozen object: tried)."""
    import gc

    assert gc.get_freeze_count() == 0
    FREEZE_COUNTS.clear()
    plan = make_plan(4, agents=[{"name": "f", "version": "1", "kind": "python", "args": {
        "callable": "test_dispatch_efficiency:freeze_count"}}])
    summary = api.run(plan, settings=Settings(home=tmp_path / "home"))
    assert summary.done == 4
    assert gc.get_freeze_count() == 0
    assert len(FREEZE_COUNTS) == 4 and min(FREEZE_COUNTS) > 1000, FREEZE_COUNTS


def test_only_the_installed_command_leaves_the_heap_frozen(make_plan: Callable[..., Path],
                                                           tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`evalfleet run` as its own process (console_main) keeps the heap frozen until it exits;
    the CLI's main() called from a Python program (these tests) leaves the heap unfrozen."""
    import gc
    import importlib

    cli = importlib.import_module("evalfleet.cli.main")  # the module (the package exports main)
    plan = make_plan(2)
    for whole_process in (False, True):
        monkeypatch.setattr(cli, "_whole_process", whole_process)
        try:
            cli.main(["run", str(plan), "--quiet", "--home", str(tmp_path / f"h{whole_process}")])
            assert (gc.get_freeze_count() > 0) is whole_process
        finally:
            gc.unfreeze()
