"""Dispatcher behaviour: timeouts, retries, error classes, resources, leases, rate limits."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evalfleet import api
from evalfleet.agents.base import AgentContext, AgentOutput
from evalfleet.api.journal_port import StorePort
from evalfleet.cost.prices import load_price_table
from evalfleet.errors import InfraError, RunError
from evalfleet.execution import (
    ERROR_POLICY,
    Dispatcher,
    DispatchOutcome,
    RateLimiter,
    backoff_delay,
)
from evalfleet.sandbox import get_provider
from evalfleet.settings import Settings
from evalfleet.spec import RateLimit, load_plan
from evalfleet.spec.result import RunResult
from evalfleet.store import RowContext, Store, driver_name


def _rows(home: Path, sql: str) -> list[tuple[object, ...]]:
    # the committed rows only (compaction leaves superseded files on disk for a while)
    _, rows = api.query(sql.replace("RUNS", "runs"), settings=Settings(home=home))
    return [tuple(r) for r in rows]


def py_agent(fn: str, **kwargs: object) -> dict[str, object]:
    return {"name": fn.split(":")[-1].replace("_", "-"), "version": "1", "kind": "python",
            "args": {"callable": f"evalfleet.testing.agents:{fn}", "kwargs": kwargs}}


def test_error_policy_table() -> None:
    assert set(ERROR_POLICY) == {"agent_error", "task_timeout", "infra_error", "scorer_error",
                                 "config_error", "cancelled"}
    assert [k for k, p in ERROR_POLICY.items() if p.retried] == ["infra_error"]
    assert {k for k, p in ERROR_POLICY.items() if p.counts_in_pass_rate} == \
        {"agent_error", "task_timeout"}


def _run_error_classes() -> list[type[RunError]]:
    out: list[type[RunError]] = []
    todo: list[type[RunError]] = [RunError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_every_error_class_has_a_policy_that_agrees_with_it() -> None:
    # RunError.transient is documentation the dispatcher never reads: it must say what the
    # table does, for every class (subclasses such as RateLimitedError included)
    classes = _run_error_classes()
    # "cancelled" is what the journal records for runs a budget stop never started: no
    # exception carries it
    assert {c.error_kind for c in classes} | {"cancelled"} == set(ERROR_POLICY)
    for cls in classes:
        assert cls.transient == ERROR_POLICY[cls.error_kind].retried, cls.__name__


def test_backoff_is_jittered_exponential_and_capped() -> None:
    assert backoff_delay(1, 0.5, 30, 0.999) == pytest.approx(0.4995)
    assert backoff_delay(4, 0.5, 30, 0.5) == pytest.approx(2.0)
    assert backoff_delay(20, 0.5, 30, 0.999) <= 30
    assert backoff_delay(3, 0.5, 30, 0.0) == 0.0


def test_hanging_command_agent_killed_at_timeout(make_plan: Callable[..., Path],
                                                 settings: Settings) -> None:
    agent = {"name": "hang", "version": "1", "kind": "command", "args": {"command": [
        "python3", "-c",
        "import os, signal, time, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print(os.getpid(), file=sys.stderr)\n"
        "time.sleep(600)"]}}
    plan = make_plan(n_tasks=2, agents=[agent], suite_extra={"limits": {"timeout_s": 1.5}})
    t0 = time.monotonic()
    summary = api.run(plan, settings=settings)
    assert time.monotonic() - t0 < 300  # killed at 1.5 s, not after its 600 s sleep
    assert summary.status == "completed" and summary.done == 2
    rows = _rows(settings.home, "SELECT status, error_kind, score, latency_s FROM RUNS")
    assert all(r[:3] == ("failed", "task_timeout", 0.0) for r in rows), rows
    assert all(1.4 < float(r[3]) < 300 for r in rows)  # type: ignore[arg-type]


def test_a_command_agents_unreadable_output_is_its_own_failure(make_plan: Callable[..., Path],
                                                                settings: Settings) -> None:
    """Output json.loads refuses with a plain ValueError (an integer of 5,000 digits) is the
    agent's failure, worded for a person, as bad JSON syntax is."""
    agent = {"name": "huge", "version": "1", "kind": "command", "args": {"command": [
        "python3", "-c", """print('{"answer": "ok", "n": 1' + '0' * 5000 + '}')"""]}}
    plan = make_plan(n_tasks=1, agents=[agent])
    summary = api.run(plan, settings=settings)
    assert summary.done == 1
    [(status, kind, error)] = _rows(settings.home, "SELECT status, error_kind, error FROM RUNS")
    assert (status, kind) == ("failed", "agent_error")
    assert str(error).startswith("agent output is not JSON: Exceeds the limit "
                                 "(4300 digits)"), error
    assert "set_int_max_str_digits" not in str(error)


def test_async_hang_times_out(make_plan: Callable[..., Path], settings: Settings) -> None:
    plan = make_plan(n_tasks=3, agents=[py_agent("hang_async")],
                     suite_extra={"limits": {"timeout_s": 0.5}})
    summary = api.run(plan, settings=settings)
    rows = _rows(settings.home, "SELECT error_kind, count(*) FROM RUNS GROUP BY 1")
    assert summary.done == 3 and rows == [("task_timeout", 3)]


def test_sync_hang_times_out_and_does_not_block_exit(make_plan: Callable[..., Path],
                                                     settings: Settings) -> None:
    plan = make_plan(n_tasks=2, agents=[py_agent("hang")],
                     suite_extra={"limits": {"timeout_s": 0.5}})
    t0 = time.monotonic()
    summary = api.run(plan, settings=settings)
    assert time.monotonic() - t0 < 20
    rows = _rows(settings.home, "SELECT error_kind, count(*) FROM RUNS GROUP BY 1")
    assert summary.done == 2 and rows == [("task_timeout", 2)]


def test_infra_errors_retried_and_counted(make_plan: Callable[..., Path], settings: Settings,
                                         tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    plan = make_plan(n_tasks=4, agents=[py_agent("flaky_infra", marker_dir=str(markers),
                                                 failures=2)],
                     execution={"max_attempts": 5, "backoff_base_s": 0.01})
    summary = api.run(plan, settings=settings)
    assert summary.done == 4
    rows = _rows(settings.home, "SELECT status, attempts, score FROM RUNS")
    assert rows == [("completed", 3, 1.0)] * 4


def test_exhausted_infra_errors_are_missing_data(make_plan: Callable[..., Path],
                                                 settings: Settings, tmp_path: Path) -> None:
    markers = tmp_path / "m"
    markers.mkdir()
    agents = [py_agent("flaky_infra", marker_dir=str(markers), failures=99), py_agent("noop")]
    plan = make_plan(n_tasks=3, agents=agents,
                     execution={"max_attempts": 3, "backoff_base_s": 0.0})
    summary = api.run(plan, settings=settings)
    rep = api.report(summary.eval_id, settings=settings)
    assert rep["coverage"]["errored"] == 3
    flaky = rep["agents"][0]
    assert flaky["overall"]["n_tasks"] == 0  # missing data, not failures
    assert flaky["errors"] == {"infra_error": 3}
    assert _rows(settings.home, "SELECT DISTINCT attempts, score FROM RUNS WHERE "
                 "status = 'errored'") == [(3, None)]


def test_gpu_resource_bounds_concurrency(make_plan: Callable[..., Path],
                                         settings: Settings) -> None:
    from evalfleet.testing import agents as scripted

    scripted.max_active = 0
    plan = make_plan(n_tasks=6, agents=[py_agent("track_concurrency", sleep_s=0.05)],
                     suite_extra={"resources": {"gpu": 1}}, resources={"gpu": 1},
                     execution={"max_in_flight": 8})
    api.run(plan, settings=settings)
    assert scripted.max_active == 1
    scripted.max_active = 0
    plan2 = make_plan(n_tasks=6, agents=[py_agent("track_concurrency", sleep_s=0.05)],
                      name="free", execution={"max_in_flight": 8})
    api.run(plan2, settings=settings)
    assert scripted.max_active > 1


def test_stale_lease_reclaimed_and_late_result_dropped(make_plan: Callable[..., Path],
                                                      settings: Settings) -> None:
    plan = load_plan(make_plan(n_tasks=10, execution={"lease_seconds": 1.0,
                                                      "heartbeat_seconds": 0.2}))
    suite = api.validate_plan(plan)
    store = Store(settings.home)
    eval_id = api.create_eval(store, plan, suite)
    ghost = store.journal.lease(eval_id, "ghost-worker", 4, lease_s=1.0)  # never renewed
    ctx = RowContext(eval_id, plan.name, suite, plan.agents)
    port = StorePort(store, ctx, driver_name())
    dispatcher = Dispatcher(plan=plan, suite=suite, journal=port, provider=get_provider("local"),
                            prices=load_price_table(), owner="live-worker")
    t0 = time.monotonic()
    outcome = asyncio.run(dispatcher.run())
    assert outcome.status == "completed"
    assert time.monotonic() - t0 >= 0.9  # waited for the ghost's leases to expire
    assert store.journal.counts(eval_id)["done"] == 10
    late = [RunResult(run_id=lr.run_id, task_id=lr.task_id, agent_index=0, repeat=0,
                      status="completed", score=0.0, passed=False) for lr in ghost]
    rep = store.commit(ctx, late)
    assert (rep.committed, rep.duplicates) == (0, 4)
    attempts = dict(_rows(settings.home, "SELECT task_id, attempts FROM RUNS"))
    # the ghost's lapsed leases ended no attempt in the journal: not counted (a lease is not
    # an attempt), so every committed row says 1
    assert sorted(attempts.values()) == [1] * 10
    store.close()


def test_rate_limiter_never_exceeds_limit() -> None:
    limiter = RateLimiter({"p": RateLimit(requests_per_minute=1200)})  # 20 per second
    stamps: list[float] = []

    async def one() -> None:
        await limiter.acquire("p", 10)
        stamps.append(time.monotonic())

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(50)))

    asyncio.run(main())
    stamps.sort()
    for i, t in enumerate(stamps):
        in_window = sum(1 for u in stamps[i:] if u - t < 1.0)
        assert in_window <= 21
    assert stamps[-1] - stamps[0] >= 49 / 20 - 0.1


def test_rate_limiter_pause_honours_retry_after() -> None:
    limiter = RateLimiter({})
    limiter.pause("p", 0.3)

    async def main() -> float:
        t0 = time.monotonic()
        await limiter.acquire("p", 1)
        return time.monotonic() - t0

    assert asyncio.run(main()) >= 0.29


def test_pid_of_driver_recorded(make_plan: Callable[..., Path], settings: Settings) -> None:
    summary = api.run(make_plan(n_tasks=1), settings=settings)
    store = Store(settings.home)
    row = store.journal.get_eval(summary.eval_id)
    store.close()
    assert row["driver"].endswith(f":{os.getpid()}")


def test_heartbeat_keeps_a_slow_run_leased_so_it_runs_once(make_plan: Callable[..., Path],
                                                           settings: Settings,
                                                           tmp_path: Path) -> None:
    # each run outlives its 1.5 s lease twice over: only the heartbeat's renewals keep
    # this dispatcher from leasing (and running) it again
    log = tmp_path / "executions.log"
    plan = make_plan(n_tasks=2, agents=[py_agent("counting", log=str(log), sleep_s=3.5)],
                     execution={"lease_seconds": 1.5, "heartbeat_seconds": 0.2,
                                "max_in_flight": 8})
    summary = api.run(plan, settings=settings)
    assert summary.status == "completed" and summary.done == 2
    assert sorted(log.read_text().split()) == ["t00000", "t00001"]
    assert [r[0] for r in _rows(settings.home, "SELECT attempts FROM RUNS")] == [1, 1]


class _FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t


def test_token_per_minute_limit_holds_over_every_minute(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a fake clock: the limiter's waits advance it, so the test checks the schedule the
    # limiter produces, not how fast this machine is
    from types import SimpleNamespace

    import evalfleet.execution.ratelimit as ratelimit

    clock = _FakeClock()

    async def fake_sleep(seconds: float) -> None:
        clock.t += max(seconds, 0.0)
        await asyncio.sleep(0)

    monkeypatch.setattr(ratelimit, "time", clock)
    monkeypatch.setattr(ratelimit, "asyncio", SimpleNamespace(sleep=fake_sleep,
                                                              Lock=asyncio.Lock))
    tpm, size = 6000, 500  # 100 tokens/s; each request is five seconds' worth
    limiter = RateLimiter({"p": RateLimit(tokens_per_minute=tpm)})
    grants: list[float] = []

    async def one() -> None:
        await limiter.acquire("p", size)
        grants.append(clock.t)
        limiter.settle("p", size, size)

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(60)))

    asyncio.run(main())
    grants.sort()
    for i, t in enumerate(grants):
        in_minute = sum(1 for u in grants[i:] if u - t < 60.0)
        assert in_minute * size <= tpm + size, (i, in_minute)
    assert grants[-1] - grants[0] >= (60 * size - tpm - size) / (tpm / 60)


@dataclass
class _Leased:
    run_id: str
    task_id: str
    agent_index: int = 0
    repeat: int = 0
    attempts: int = 1


class _MemoryJournal:
    """An in-memory journal for one eval: enough of the port to drive a Dispatcher."""

    def __init__(self, task_ids: list[str]) -> None:
        self.pending = [_Leased(f"r-{t}", t) for t in task_ids]
        self.leased: dict[str, _Leased] = {}
        self.results: dict[str, RunResult] = {}
        self.cancelled = 0

    def lease(self, owner: str, n: int, lease_s: float,
              skip_agents: Collection[int] = ()) -> list[_Leased]:
        ok = [lr for lr in self.pending if lr.agent_index not in skip_agents][:n]
        self.pending = [lr for lr in self.pending if lr not in ok]
        self.leased.update({lr.run_id: lr for lr in ok})
        return ok

    def renew(self, owner: str, run_ids: Sequence[str], lease_s: float) -> int:
        return len(run_ids)

    def release(self, owner: str, run_ids: Sequence[str] | None = None) -> None:
        for rid in list(self.leased) if run_ids is None else run_ids:
            self.pending.append(self.leased.pop(rid))

    def commit(self, results: Sequence[RunResult]) -> tuple[int, int]:
        for r in results:
            self.results[r.run_id] = r
            self.leased.pop(r.run_id, None)
        return len(results), 0

    def lease_state(self) -> tuple[int, int, float | None]:
        return len(self.pending), len(self.leased), None

    def cancel_pending(self, agent_index: int | None = None) -> int:
        gone = [lr for lr in self.pending if agent_index in (None, lr.agent_index)]
        self.pending = [lr for lr in self.pending if lr not in gone]
        self.cancelled += len(gone)
        return len(gone)

    def heartbeat(self) -> None:
        return None


class _PricedAgent:
    """Spends ``cost`` dollars per attempt; the first ``infra_failures`` attempts of each run
    fail as infrastructure errors after spending."""

    def __init__(self, cost: float, infra_failures: int = 0) -> None:
        self.cost = cost
        self.infra_failures = infra_failures
        self.calls: dict[str, int] = {}

    async def run(self, ctx: AgentContext) -> AgentOutput:
        ctx.usage.cost_usd += self.cost
        n = self.calls[ctx.run_id] = self.calls.get(ctx.run_id, 0) + 1
        await asyncio.sleep(0.02)
        if n <= self.infra_failures:
            raise InfraError("provider hiccup after the tokens were billed")
        return AgentOutput(answer="ok")


def _dispatch(make_plan: Callable[..., Path], agent: Any, *, n_tasks: int,
              budget: float | None, **execution: Any) -> tuple[DispatchOutcome, _MemoryJournal]:
    plan = load_plan(make_plan(n_tasks=n_tasks, budget_usd=budget,
                               execution={"backoff_base_s": 0.0, **execution}))
    suite = api.validate_plan(plan)
    journal = _MemoryJournal([t.id for t in suite.tasks])
    dispatcher = Dispatcher(plan=plan, suite=suite, journal=journal,
                            provider=get_provider("local"), prices=load_price_table(),
                            owner="test", flush_interval_s=0.01)
    dispatcher.agents = [agent]
    return asyncio.run(dispatcher.run()), journal


def test_budget_counts_in_flight_runs_and_checks_between_launches(
        make_plan: Callable[..., Path]) -> None:
    # $1 a run, $6 budget, 4 in flight: the first wave (cost unknown yet) runs 4; after that
    # each launch must leave room for every run already in flight, so no more than 6 run
    outcome, journal = _dispatch(make_plan, _PricedAgent(1.0), n_tasks=20, budget=6.0,
                                 max_in_flight=4)
    assert outcome.status == "budget_stopped"
    spent = sum(r.cost_usd for r in journal.results.values())
    assert len(journal.results) <= 6 and spent <= 6.0
    assert journal.cancelled == 20 - len(journal.results)


def test_cost_of_failed_attempts_is_kept_and_counts_against_the_budget(
        make_plan: Callable[..., Path]) -> None:
    # each run bills one failed attempt and one good one: $2 a run, not $1
    outcome, journal = _dispatch(make_plan, _PricedAgent(1.0, infra_failures=1), n_tasks=10,
                                 budget=None, max_in_flight=1, max_attempts=2)
    assert outcome.status == "completed"
    assert {(r.attempts, r.cost_usd, r.status) for r in journal.results.values()} == \
        {(2, 2.0, "completed")}
    assert outcome.stats.cost_usd == pytest.approx(20.0)
    budgeted, journal = _dispatch(make_plan, _PricedAgent(1.0, infra_failures=1), n_tasks=10,
                                  budget=5.0, max_in_flight=1, max_attempts=2)
    assert budgeted.status == "budget_stopped"
    assert sum(r.cost_usd for r in journal.results.values()) <= 6.0  # 3 runs at most


class _TimingOut:
    """An agent whose own client times out (``early``), one that sleeps past the task's limit
    (``sleep``), and one that turns our cancellation into its own TimeoutError (``converts``)."""

    def __init__(self, how: str) -> None:
        self.how = how

    async def run(self, ctx: object) -> object:
        if self.how == "early":
            raise TimeoutError("read timed out")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if self.how == "converts":
                raise TimeoutError("request cancelled") from None
            raise
        raise AssertionError("the task's limit did not stop the agent")


@pytest.mark.parametrize(("how", "kind"), [("early", "infra_error"), ("sleep", "task_timeout"),
                                           ("converts", "task_timeout")])
def test_a_timeout_is_the_tasks_only_when_its_limit_fired(how: str, kind: str) -> None:
    """The task's limit ends an agent as a task timeout (even one that reports the
    cancellation as its own TimeoutError); a TimeoutError of the agent's own client before the
    limit is an infrastructure error, retried."""
    from evalfleet.agents.base import NoGate
    from evalfleet.cost.prices import PriceTable
    from evalfleet.execution.attempt import run_attempt
    from evalfleet.scoring.registry import create_scorer
    from evalfleet.spec.agent import AgentSpec
    from evalfleet.spec.task import Task

    task = Task.model_validate({"id": "t", "input": "x", "target": "ok",
                                "scorer": {"kind": "exact"}, "limits": {"timeout_s": 0.3}})
    out = asyncio.run(run_attempt(
        task=task, spec=AgentSpec(name="a", kind="python", args={"callable": "m:f"}),
        agent=_TimingOut(how), scorer=create_scorer(task.scorer), provider=None,  # type: ignore[arg-type]
        prices=PriceTable({}, {}, ""), gate=NoGate(), run_id="r", attempt=1, variables={}))
    assert out.error is not None and out.error.error_kind == kind, out.error
