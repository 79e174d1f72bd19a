"""The local dispatcher: leases runs, runs them with bounded concurrency, commits in batches.

It holds only what is in flight plus a write buffer, so a plan of any size runs in bounded
memory. Leases are renewed by a heartbeat; every retry decision comes from
:data:`~evalfleet.execution.policy.ERROR_POLICY` (retried classes get jittered backoff); the
eval's budget stops scheduling and keeps what ran, an agent's budget stops only that agent's
runs (see :class:`~evalfleet.cost.budget.Budgets`); the first configuration error (missing or
refused credentials, unknown model) stops leasing, since no later run could succeed.

The event loop only runs attempts and schedules: a retry waits out its backoff in a local queue,
not in a slot; attempts report their end by callback; every journal call (leases, renewals,
commits with their Parquet writes and compaction) runs on one journal thread, in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import heapq
import itertools
import os
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from evalfleet.agents.base import Agent, ModelGate, NoGate, Usage
from evalfleet.agents.registry import create_agent
from evalfleet.cost.budget import Budgets, Stratum, project_total
from evalfleet.cost.prices import PriceTable
from evalfleet.errors import RateLimitedError, ScorerError
from evalfleet.execution.attempt import AttemptOutcome
from evalfleet.execution.executor import AttemptExecutor, LocalExecutor
from evalfleet.execution.policy import ERROR_POLICY, backoff_delay
from evalfleet.execution.ports import LeasedRunLike, RunJournal
from evalfleet.execution.quarantine import Failure, Quarantine, QuarantineSink
from evalfleet.execution.ratelimit import RateLimiter
from evalfleet.execution.resources import ResourcePool
from evalfleet.execution.shares import PoolSink, entitlements
from evalfleet.sandbox.base import SandboxProvider
from evalfleet.scoring.base import Scorer
from evalfleet.scoring.registry import create_scorer
from evalfleet.spec.plan import Plan
from evalfleet.spec.result import RunResult
from evalfleet.spec.task import ScorerSpec, Suite, Task


@dataclass(slots=True)
class DispatchStats:
    """Live counters, read by progress displays from another thread."""

    planned: int = 0
    already_done: int = 0
    done: int = 0
    running: int = 0
    passed: int = 0
    """Scored runs that passed."""
    failed: int = 0
    """Scored runs that did not pass: failed tests, wrong answers, agent errors, timeouts."""
    errored: int = 0
    """Runs excluded as missing data: infra or scorer errors."""
    config_errors: int = 0
    """Runs a configuration error ended; not committed, they return to pending for ``resume``."""
    retries: int = 0
    attempts: int = 0
    """Attempts that ran and ended in this dispatch (retried ones included)."""
    infra_errors: int = 0
    """Of them, those that ended in an infrastructure error."""
    committed: dict[str, int] = field(default_factory=dict)
    """Rows committed by this driver, by status (completed, failed, errored, cancelled)."""
    by_worker: dict[str, int] = field(default_factory=dict)
    """Rows committed by this driver, by the worker of their last attempt (``local:<pid>``,
    a Ray node)."""
    quarantined_tasks: dict[str, int] = field(default_factory=dict)
    """Quarantined task ids (earlier drivers' too) with their infrastructure failures."""
    quarantined_runs: int = 0
    """Runs ended ``quarantined`` (not run: their task is quarantined), earlier drivers' too."""
    duplicates: int = 0
    cost_usd: float = 0.0
    """Total spent by the eval (model + infrastructure, every attempt), earlier drivers too."""
    budget_usd: float | None = None
    """The eval's budget, if any."""
    strata: dict[tuple[int, str | None], Stratum] = field(default_factory=dict)
    """(agent index, task category) -> planned, done and spent, for :attr:`projected_usd`;
    the driver fills it from the journal at start, the dispatcher adds each finished run."""
    budget_cancelled: int = 0
    """Runs the budgets cancelled (not run; ``resume`` with more budget runs them)."""
    agents_stopped: list[str] = field(default_factory=list)
    """NAME@VERSION of agents whose own budget stopped their runs."""
    eval_stopped: bool = False
    """The eval's budget stopped leasing (runs in flight finish)."""
    started: float = field(default_factory=time.monotonic)

    @property
    def projected_usd(self) -> float | None:
        """The eval's projected total cost (spent / done x planned, by stratum); None before
        any run finished."""
        return project_total(dict(self.strata))  # a copy: the dispatcher thread adds to it


_T = TypeVar("_T")


@dataclass(slots=True)
class _Run:
    """A leased run between attempts: the next attempt's number and what its attempts spent."""

    lr: LeasedRunLike
    attempts: int
    spent: Usage = field(default_factory=Usage)
    """Every attempt's tokens and dollars, retries included."""
    seconds: float = 0.0
    """Every attempt's sandbox (or, with none, wall) time."""
    not_before: float = 0.0
    """With a retry: the monotonic time its backoff ends."""
    last: AttemptOutcome | None = None
    """With a retry: the outcome of the attempt that failed (committed if its task is
    quarantined before the next attempt)."""
    last_worker: str | None = None
    """Where that attempt ran."""


@dataclass(slots=True)
class DispatchOutcome:
    """How a dispatch ended."""

    status: str  # completed | budget_stopped | interrupted | config_error
    stats: DispatchStats
    error: str | None = None
    """With ``config_error``: the first configuration error's message."""


class Dispatcher:
    """Runs an eval's pending runs on this process with asyncio."""

    def __init__(self, *, plan: Plan, suite: Suite, journal: RunJournal,
                 provider: SandboxProvider, prices: PriceTable, owner: str,
                 variables: dict[str, str] | None = None, budgets: Budgets | None = None,
                 stats: DispatchStats | None = None, flush_interval_s: float = 0.5,
                 rng: random.Random | None = None,
                 quarantine: QuarantineSink | None = None,
                 pool: PoolSink | None = None,
                 executor: AttemptExecutor | None = None) -> None:
        self.plan = plan
        self.suite = suite
        self.journal = journal
        self.provider = provider
        self.prices = prices
        self.owner = owner
        self.variables = variables or {}
        self.settings = plan.execution
        self.budgets = budgets or Budgets.start(plan.budget_usd,
                                                [a.budget_usd for a in plan.agents])
        self.stats = stats or DispatchStats()
        self.stats.budget_usd = plan.budget_usd
        self._eval_stop = False  # the eval's budget stopped leasing
        self._skip: set[int] = set()  # agents whose budget stopped their runs
        self.flush_interval_s = flush_interval_s
        self.rng = rng or random.Random()
        self.gate: ModelGate = RateLimiter(plan.rate_limits) if plan.rate_limits else NoGate()
        self.resources = ResourcePool(plan.resources)
        # where attempts run (execution/executor.py): None runs them here (LocalExecutor,
        # against the plan's resource pool); another executor checks resources itself
        self.executor = executor
        for task in suite.tasks if executor is None else ():
            if task.resources:
                self.resources.check(task.resources, task.id)
        self.agents: list[Agent] = [create_agent(spec) for spec in plan.agents]
        for agent in self.agents:  # sync python agents: a thread pool as large as the slots
            limit: Any = getattr(agent, "limit_threads", None)
            if limit is not None:
                limit(self.settings.max_in_flight)
        self._scorers: dict[str, Scorer] = {}
        self._scorer_of: dict[int, tuple[ScorerSpec, Scorer]] = {}
        self._buffer: list[RunResult] = []
        self._stop = asyncio.Event()
        self._config_error: str | None = None
        self._worker = f"local:{os.getpid()}"
        # every journal call of a dispatch runs on this one thread, in the order made: commits
        # (Parquet files, the journal transaction, compaction) and leases leave the event loop
        self._io: concurrent.futures.ThreadPoolExecutor | None = None
        self._committing: concurrent.futures.Future[tuple[int, int]] | None = None
        self._committing_statuses: Counter[str] = Counter()
        self._committing_workers: Counter[str] = Counter()
        # poison tasks (execution/quarantine.py): counts and decisions kept by ``quarantine``
        # (the journal); tasks quarantined by earlier drivers end their new runs at start.
        # Without a sink nothing could end a run as quarantined: failures are only counted
        self._qsink = quarantine
        self.quarantine = Quarantine.load(
            self.settings.quarantine_after if quarantine is not None else 0, quarantine)
        self.quarantine.fresh.extend(self.quarantine.quarantined)
        self.stats.quarantined_tasks.update(self.quarantine.quarantined)
        self._failures: list[Failure] = []  # infra failures not yet sent to the journal
        # a pool of slots shared with other evals (execution/shares.py): this eval's demand
        # is kept in the journal and its entitlement caps the attempts it runs at once
        self._pool = pool if self.settings.pool is not None else None
        self._cap = self.settings.max_in_flight
        # an executor that queues attempts on its workers takes this many beyond the cap and
        # starts them only in slots its running attempts free (not with a shared pool, whose
        # entitlement moves)
        self._prefetch = 0 if self._pool is not None or executor is None else executor.prefetch
        self._recording: list[concurrent.futures.Future[None]] = []

    def stop(self) -> None:
        """Ask the dispatcher to stop leasing; in-flight runs finish and are committed."""
        self._stop.set()

    def _scorer(self, task: Task) -> Scorer:
        """One scorer per distinct scorer spec, found by the spec object first (tasks share
        spec objects; the entry holds the spec, so its id is not reused) and by its JSON on
        the first sight of an object."""
        spec = task.scorer
        seen = self._scorer_of.get(id(spec))
        if seen is not None and seen[0] is spec:
            return seen[1]
        key = spec.model_dump_json()
        sc = self._scorers.get(key)
        if sc is None:
            sc = self._scorers[key] = create_scorer(spec)
        self._scorer_of[id(spec)] = (spec, sc)
        return sc

    async def _execute(self, run: _Run) -> RunResult | _Run:
        """One attempt of ``run``: its result, or ``run`` itself to be retried after
        ``run.not_before`` (the slot is free meanwhile; the lease stays held)."""
        lr = run.lr
        task = self.suite.by_id[lr.task_id]
        out, worker = await self._executor().run(task, lr.agent_index, lr.run_id, run.attempts)
        spent = run.spent
        spent.cost_usd += out.usage.cost_usd
        spent.tokens_in += out.usage.tokens_in
        spent.tokens_cached += out.usage.tokens_cached
        spent.tokens_out += out.usage.tokens_out
        run.seconds += out.duration_s
        self.stats.attempts += 1
        infra = out.error is not None and out.error.error_kind == "infra_error"
        if infra:
            self.stats.infra_errors += 1
            self._failures.append((lr.run_id, lr.task_id, run.attempts, str(out.error)))
        # a 429 is the provider's, not the task's: it says nothing about a poison task
        if not isinstance(out.error, RateLimitedError) \
                and self.quarantine.attempt_ended(lr.task_id, infra):
            self.stats.quarantined_tasks[lr.task_id] = self.quarantine.quarantined[lr.task_id]
        # the policy table alone decides whether another attempt is made; a quarantined
        # task's runs make none
        if out.error is None or not ERROR_POLICY[out.error.error_kind].retried \
                or run.attempts >= self.settings.max_attempts or self._stop.is_set() \
                or self.quarantine.is_quarantined(lr.task_id):
            return self._result(lr, out, run.attempts, spent, run.seconds, worker)
        delay = backoff_delay(run.attempts, self.settings.backoff_base_s,
                              self.settings.backoff_max_s, self.rng.random())
        # a provider's Retry-After only lengthens the wait, it never decides a retry
        retry_after = getattr(out.error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            delay = max(delay, float(retry_after))
        self.stats.retries += 1
        run.attempts += 1
        run.not_before = time.monotonic() + delay
        run.last, run.last_worker = out, worker
        return run

    def _executor(self) -> AttemptExecutor:
        """Where attempts run: the executor given, or this process (built from the dispatcher's
        agents, scorers, gate and resources as they are now)."""
        if self.executor is None:
            self.executor = LocalExecutor(
                specs=self.plan.agents, agents=self.agents, scorer=self._scorer,
                provider=self.provider, prices=self.prices, gate=self.gate,
                resources=self.resources, variables=self.variables, worker=self._worker)
        return self.executor

    def _result(self, lr: LeasedRunLike, out: AttemptOutcome, attempts: int, spent: Usage,
                seconds: float, worker: str | None = None) -> RunResult:
        """The run's row: the final attempt's outcome, with the tokens, model dollars and
        infrastructure dollars (sandbox seconds x the plan's rate) of all its attempts."""
        traj = out.trajectory.to_dict()
        traj["attempt"] = attempts
        result = RunResult(
            run_id=lr.run_id, task_id=lr.task_id, agent_index=lr.agent_index, repeat=lr.repeat,
            status="completed", tokens_in=spent.tokens_in, tokens_cached=spent.tokens_cached,
            tokens_out=spent.tokens_out, cost_usd=spent.cost_usd,
            infra_cost_usd=seconds * self.plan.costs.infra_rate / 3600.0,
            latency_s=round(out.duration_s, 6), attempts=attempts, worker=worker or self._worker,
            sandbox=out.sandbox, started_at=out.started_at, finished_at=time.time(),
            trajectory=traj, isolation=str(getattr(out, "isolation", "") or ""),
        )
        error = out.error
        if error is None and out.score is None:
            error = ScorerError("the scorer returned no score")
        elif error is None and out.score is not None:
            # run_attempt validated the grade (finite, in [0, 1], passed a bool or None)
            result.score = float(out.score.value)
            result.passed = out.score.passed
            result.metrics = dict(out.score.metrics)
        if error is not None:
            policy = ERROR_POLICY[error.error_kind]
            result.status = policy.status
            result.error_kind = error.error_kind
            result.error = str(error)[:2000]
            result.score = result.passed = None
            result.metrics = {}
            if policy.counts_in_pass_rate:
                result.score, result.passed = 0.0, False
            if error.error_kind == "config_error" and self._config_error is None:
                self._config_error = str(error)
                self._stop.set()  # no later run can succeed: stop leasing, let in-flight finish
        return result

    def _journal_sync(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Call the journal on the journal thread (after what is queued there) and wait."""
        if self._io is None:
            return fn(*args)
        return self._io.submit(fn, *args).result()

    async def _journal(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Call the journal on the journal thread (after what is queued there); the event
        loop runs the attempts meanwhile."""
        if self._io is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(
            self._io, functools.partial(fn, *args))

    def _start_flush(self) -> None:
        """Commit the buffer on the journal thread, one batch at a time: while a batch is being
        committed the next waits in the buffer. A failed commit ends the dispatch (:meth:`_reap`).
        """
        if self._io is None:
            self._flush()
            return
        self._reap()
        if not self._buffer or self._committing is not None:
            return
        batch, self._buffer = self._buffer, []
        self._committing_statuses = Counter(r.status for r in batch)
        self._committing_workers = Counter(r.worker or "" for r in batch)
        self._committing = self._io.submit(self.journal.commit, batch)

    def _reap(self) -> None:
        """Count the background commit once it is done; raise its error if it failed."""
        done = self._committing
        if done is not None and done.done():
            self._committing = None
            committed, dups = done.result()
            self.stats.duplicates += dups
            self.stats.done += committed
            for status, n in self._committing_statuses.items():
                self.stats.committed[status] = self.stats.committed.get(status, 0) + n
            for worker, n in self._committing_workers.items():
                self.stats.by_worker[worker] = self.stats.by_worker.get(worker, 0) + n

    async def _drain(self) -> None:
        """Commit everything buffered and wait until it is committed."""
        self._start_flush()
        while self._committing is not None:
            # asyncio.wait never cancels what it waits for: a cancelled dispatch still lets a
            # batch on its way finish (the end of the dispatch waits for it)
            await asyncio.wait([asyncio.wrap_future(self._committing)])
            self._start_flush()

    def _flush(self) -> None:
        """Commit the buffer now, after the background commit, and wait for both."""
        if self._committing is not None:
            concurrent.futures.wait([self._committing])
            self._reap()
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        committed, dups = self._journal_sync(self.journal.commit, batch)
        self.stats.duplicates += dups
        self.stats.done += committed
        for r in batch:
            self.stats.committed[r.status] = self.stats.committed.get(r.status, 0) + 1
            w = r.worker or ""
            self.stats.by_worker[w] = self.stats.by_worker.get(w, 0) + 1

    def _account(self, r: RunResult) -> None:
        usd = r.cost_usd + r.infra_cost_usd  # every attempt, model and infrastructure
        self.budgets.add(r.agent_index, usd)
        self.stats.cost_usd += usd
        category: str | None = self.suite.by_id[r.task_id].category
        if (r.agent_index, category) not in self.stats.strata \
                and (r.agent_index, None) in self.stats.strata:
            category = None  # runs recorded before the journal kept strata
        st = self.stats.strata.get((r.agent_index, category))
        if st is None:
            st = self.stats.strata[(r.agent_index, category)] = Stratum()
        st.done += 1
        st.ran += 1
        st.spent_usd += usd
        # scored runs are passed or failed (a wrong answer fails, not only an agent error);
        # everything excluded from the score is errored
        if r.status in ("completed", "failed") and r.score is not None:
            if r.passed or (r.passed is None and r.score >= 1.0):
                self.stats.passed += 1
            else:
                self.stats.failed += 1
        elif r.status == "errored":
            self.stats.errored += 1

    async def _heartbeat(self, held: Callable[[], list[str]],
                         running: Callable[[], int] = lambda: 0) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            ids = held()
            await self._journal(self.journal.renew, self.owner, ids, self.settings.lease_seconds)
            await self._journal(self.journal.heartbeat)
            await self._share(len(ids), running())

    async def _share(self, held: int, running: int) -> None:
        """Renew this eval's demand on its pool and take the entitlement the live demands
        give it as the cap on attempts at once (no pool: the plan's ``max_in_flight``)."""
        spec, pool = self.settings.pool, self._pool
        if spec is None or pool is None:
            return
        pending = (await self._journal(self.journal.lease_state))[0]
        want = min(self.settings.max_in_flight, max(held, running) + pending)
        await self._journal(pool.put, spec.priority, spec.share, want)
        live = await self._journal(pool.live)
        got = entitlements(spec.slots, live).get(pool.eval_id, 0)
        self._cap = min(self.settings.max_in_flight, got)

    def _budget_blocks(self, flying: Counter[int], queue: deque[LeasedRunLike]) -> bool:
        """Apply the budgets before more runs start; True once the eval's budget stopped.

        The eval stops when what it spent, plus the expected cost of the runs in flight and of
        one more run, would pass its budget; an agent whose own budget that would pass is
        stopped alone (:meth:`_stop_agent`). Both are final for this dispatch.
        """
        if not self.budgets.measured() and not self.budgets.eval.exhausted:
            return False  # an estimate only holds launches back (run); it never stops the eval
        if not self._eval_stop and self.budgets.eval_blocks(flying):
            self._eval_stop = self.stats.eval_stopped = True
        for i, spec in enumerate(self.plan.agents):
            if spec.budget_usd is not None and i not in self._skip \
                    and self.budgets.agent_blocks(i, flying[i]):
                self._stop_agent(i, queue)
        return self._eval_stop

    def _stop_agent(self, agent: int, queue: deque[LeasedRunLike]) -> None:
        """Lease no more runs of ``agent``; its runs not started end cancelled."""
        self._skip.add(agent)
        mine = [lr for lr in queue if lr.agent_index == agent]
        if mine:
            rest = [lr for lr in queue if lr.agent_index != agent]
            queue.clear()
            queue.extend(rest)
            self._journal_sync(self.journal.release, self.owner, [lr.run_id for lr in mine])
        n = self._journal_sync(self.journal.cancel_pending, agent)
        self.stats.budget_cancelled += n
        if n:
            self.stats.agents_stopped.append(self.plan.agents[agent].label)

    def _send_failures(self) -> None:
        """Record the infrastructure failures seen since the last call, on the journal thread
        after what is queued there (not awaited: a failed recording ends the dispatch at the
        next pass, like a failed commit)."""
        for f in [f for f in self._recording if f.done()]:
            self._recording.remove(f)
            f.result()
        if not self._failures or self._qsink is None:
            self._failures.clear()
            return
        batch, self._failures = self._failures, []
        if self._io is None:
            self._qsink.record_failures(batch)
        else:
            self._recording.append(self._io.submit(self._qsink.record_failures, batch))

    async def _apply_quarantine(self, queue: deque[LeasedRunLike],
                                delayed: list[tuple[float, int, _Run]],
                                flying: Counter[int]) -> None:
        """End the runs of newly quarantined tasks: those leased and not started and those
        pending end ``quarantined`` in the journal; one waiting out a retry's backoff is
        committed with its last attempt's error (its attempts ran)."""
        fresh = set(self.quarantine.fresh)
        self.quarantine.fresh.clear()
        self._send_failures()  # the evidence is in the journal before the decision
        mine = [lr for lr in queue if lr.task_id in fresh]
        if mine:
            rest = [lr for lr in queue if lr.task_id not in fresh]
            queue.clear()
            queue.extend(rest)
        waiting = [item for item in delayed if item[2].lr.task_id in fresh]
        if waiting:
            delayed[:] = [item for item in delayed if item[2].lr.task_id not in fresh]
            heapq.heapify(delayed)
        for _, _, run in waiting:
            assert run.last is not None  # a run is delayed only after a failed attempt
            flying[run.lr.agent_index] -= 1
            result = self._result(run.lr, run.last, run.attempts - 1, run.spent, run.seconds,
                                  run.last_worker)
            self._account(result)
            self._buffer.append(result)
        if self._qsink is None:  # pragma: no cover - nothing is quarantined without a sink
            return
        for task_id in sorted(fresh):
            ids = [lr.run_id for lr in mine if lr.task_id == task_id]
            self.stats.quarantined_runs += await self._journal(
                self._qsink.quarantine, task_id, self.quarantine.quarantined[task_id], ids)

    async def run(self) -> DispatchOutcome:
        """Run until nothing is left, the budget stops it, or :meth:`stop` is called."""
        s = self.settings
        queue: deque[LeasedRunLike] = deque()
        in_flight: dict[asyncio.Task[RunResult | _Run], LeasedRunLike] = {}
        # runs waiting out a retry's backoff, by the time it ends: out of the slots, still
        # leased (the heartbeat renews them) and still counted in `flying` for the budgets
        delayed: list[tuple[float, int, _Run]] = []
        order = itertools.count()
        # attempts report their end by callback: no pass of the loop waits on every task
        finished: deque[asyncio.Task[RunResult | _Run]] = deque()
        waiter: list[asyncio.Future[None]] = []

        def wake(_: object = None) -> None:
            if waiter and not waiter[0].done():
                waiter[0].set_result(None)

        def ended(t: asyncio.Task[RunResult | _Run]) -> None:
            finished.append(t)
            wake()

        def launch(run: _Run) -> None:
            t = asyncio.create_task(self._execute(run))
            t.add_done_callback(ended)
            in_flight[t] = run.lr

        def held() -> list[str]:
            return [lr.run_id for lr in in_flight.values()] + [lr.run_id for lr in queue] \
                + [r.lr.run_id for _, _, r in delayed]

        hb = asyncio.create_task(self._heartbeat(held, lambda: len(in_flight)))
        flying: Counter[int] = Counter()  # runs in flight per agent index
        last_flush = time.monotonic()
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="evalfleet-journal")
        try:
            await self._share(0, 0)  # a shared pool: the entitlement before the first lease
            while True:
                if self.quarantine.fresh:
                    await self._apply_quarantine(queue, delayed, flying)
                stopping = self._stop.is_set() or self._budget_blocks(flying, queue)
                # due retries take free slots before new runs; they run even when stopping,
                # like the attempt after a backoff always did
                now = time.monotonic()
                while delayed and delayed[0][0] <= now \
                        and len(in_flight) < self._cap + self._prefetch:
                    run = heapq.heappop(delayed)[2]
                    launch(run)
                while not stopping and len(in_flight) < self._cap + self._prefetch:
                    if not queue:
                        want = min(max(2 * s.max_in_flight, 64), 1024)
                        queue.extend(await self._journal(self.journal.lease, self.owner, want,
                                                         s.lease_seconds, frozenset(self._skip)))
                        if not queue:
                            break
                    # every launch leaves room for the runs in flight and this one; before
                    # any run finished the expectation is the plan's estimate, which holds
                    # launches back (one run always goes, to measure) but stops nothing
                    nxt = queue[0].agent_index
                    measured = self.budgets.measured()
                    agent_full = self.plan.agents[nxt].budget_usd is not None \
                        and self.budgets.agent_blocks(nxt, flying[nxt])
                    eval_full = self.budgets.eval_blocks(flying, nxt)
                    if (agent_full or eval_full) and not measured:
                        if in_flight or delayed:
                            break  # wait for a run to finish and say what a run costs
                    elif agent_full:
                        self._stop_agent(nxt, queue)
                        continue
                    elif eval_full:
                        self._eval_stop = self.stats.eval_stopped = True
                        break
                    if self.quarantine.is_quarantined(queue[0].task_id):
                        # an expired lease of a task quarantined meanwhile (another driver)
                        self.quarantine.fresh.append(queue[0].task_id)
                        await self._apply_quarantine(queue, delayed, flying)
                        continue
                    lr = queue.popleft()
                    launch(_Run(lr, lr.attempts))
                    flying[lr.agent_index] += 1
                    self.stats.running = min(len(in_flight), self._cap)
                if not in_flight and not delayed:
                    if stopping:
                        break
                    await self._drain()  # our buffered results count as leased until then
                    pending, leased, earliest = await self._journal(self.journal.lease_state)
                    if pending == 0 and leased == 0:
                        break
                    # runs leased by another worker: wait for them or for their leases to expire
                    # (or, with a shared pool, for an entitlement)
                    wait = 1.0 if earliest is None else min(max(earliest - time.time(), 0.05), 1.0)
                    await asyncio.sleep(wait)
                    await self._share(len(held()), 0)
                    continue
                timeout = self.flush_interval_s
                if delayed:
                    timeout = min(timeout, max(delayed[0][0] - time.monotonic(), 0.0))
                if not finished:
                    loop = asyncio.get_running_loop()
                    waiter[:] = [loop.create_future()]
                    timer = loop.call_later(timeout, wake)
                    try:
                        await waiter[0]
                    finally:
                        timer.cancel()
                        waiter.clear()
                while finished:
                    t = finished.popleft()
                    lr = in_flight.pop(t)
                    result = t.result()
                    if isinstance(result, _Run):
                        heapq.heappush(delayed, (result.not_before, next(order), result))
                        continue
                    flying[lr.agent_index] -= 1
                    if result.error_kind == "config_error":
                        # not a result of the agent: the run stays leased by us and goes back
                        # to pending at release, so `resume` runs it once the cause is fixed;
                        # what its attempts spent is spent all the same
                        self.budgets.charge(result.agent_index,
                                            result.cost_usd + result.infra_cost_usd)
                        self.stats.config_errors += 1
                        continue
                    self._account(result)
                    self._buffer.append(result)
                self.stats.running = min(len(in_flight), self._cap)
                self._send_failures()
                now = time.monotonic()
                self._reap()
                if len(self._buffer) >= s.write_batch or now - last_flush >= self.flush_interval_s:
                    self._start_flush()
                    last_flush = now
        except BaseException:
            for t in in_flight:
                t.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            raise
        finally:
            hb.cancel()
            await asyncio.gather(hb, return_exceptions=True)
            try:
                self._send_failures()
                self._flush()
            finally:
                io, self._io = self._io, None
                if io is not None:
                    io.shutdown(wait=True)  # nothing of this dispatch is left on the thread
            self.stats.running = 0
            queue.clear()
            delayed.clear()
            self.journal.release(self.owner)
            if self._pool is not None:
                self._pool.drop()  # the other evals of the pool have our slots at once
            for agent in self.agents:
                closer: Any = getattr(agent, "aclose", None)
                if closer is not None:
                    await closer()
        if self._config_error is not None:
            return DispatchOutcome("config_error", self.stats, self._config_error)
        if self._eval_stop:
            self.stats.budget_cancelled += self.journal.cancel_pending()
        else:
            for i in sorted(self._skip):  # runs released at the end (leased, never started)
                self.stats.budget_cancelled += self.journal.cancel_pending(i)
        # budget_stopped only if a budget left runs unrun (not when it was reached by the last)
        if self.stats.budget_cancelled and (self._eval_stop or not self._stop.is_set()):
            return DispatchOutcome("budget_stopped", self.stats)
        if self._stop.is_set():
            return DispatchOutcome("interrupted", self.stats)
        return DispatchOutcome("completed", self.stats)
