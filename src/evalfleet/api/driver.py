"""Driving an eval: claim it, start what the plan declares, dispatch its pending runs in
sandboxes, commit results exactly once, and say how it ended."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from evalfleet._util.heap import frozen_heap
from evalfleet._util.plugins import find_kind
from evalfleet.api.evals import add_round, create_eval, planned_tasks
from evalfleet.api.journal_port import StorePool, StorePort, StoreQuarantine
from evalfleet.api.reads import open_reader, open_store, resolve_eval_id, strata_of
from evalfleet.api.validation import check_network, hidden_from_sandboxes, validate_plan
from evalfleet.cost.budget import Budgets, Tally
from evalfleet.cost.prices import PriceTable, load_price_table, unpriced_warning
from evalfleet.errors import ConfigError, SpecError
from evalfleet.execution.dispatcher import Dispatcher, DispatchOutcome, DispatchStats
from evalfleet.sandbox import SandboxProvider, get_provider
from evalfleet.settings import Settings, load_settings
from evalfleet.spec.loaders import load_plan, load_suite_ref
from evalfleet.spec.plan import Plan
from evalfleet.spec.task import Suite
from evalfleet.store import RowContext, Store, driver_name
from evalfleet.store.reuse import apply_reuse

SERVICE_GROUP = "evalfleet.services"
"""Entry-point group of services a plan can declare (the simulated model is one: ``simulator``).
A service is a context manager built from its spec and a log path, with a ``base_url``."""


class ProgressHook(Protocol):
    """Receives live progress of an eval (the CLI draws a progress bar from it)."""

    def start(self, eval_id: str, stats: DispatchStats, sandbox: str,
              warnings: Sequence[str] = ()) -> None:
        """The dispatcher started; ``stats`` updates live. ``warnings`` says what the sandbox
        here cannot enforce (show them before the run goes on)."""
        ...

    def stop(self) -> None:
        """The dispatcher ended."""
        ...


@dataclass(frozen=True, slots=True)
class EvalSummary:
    """How an execution of an eval ended."""

    eval_id: str
    status: str
    planned: int
    done: int
    cost_usd: float
    sandbox: str
    duration_s: float
    home: Path
    warnings: tuple[str, ...] = ()
    """What the sandbox could not enforce on this machine (also given to the progress hook)."""
    journal: str = ""
    """Where the journal is: its URL, password masked."""
    agents_stopped: tuple[str, ...] = ()
    """NAME@VERSION of agents whose own budget stopped their runs (status budget_stopped)."""
    eval_budget_stopped: bool = False
    """Whether the eval's budget stopped it (not only agents' budgets)."""
    quarantined_tasks: tuple[str, ...] = ()
    """Poison tasks quarantined (execution/quarantine.py), earlier drivers' included."""
    quarantined: int = 0
    """Runs that ended quarantined (never run)."""
    results: str = ""
    """Where the eval's results files are: a folder of the home or of the warehouse (a path,
    or a URL when the warehouse is on object storage)."""


@contextlib.contextmanager
def _services(plan: Plan, home: Path) -> Iterator[dict[str, str]]:
    """Start what the plan declares (the simulated model) and yield placeholder values.

    Services are plugins (entry-point group ``evalfleet.services``), so the driver does not
    depend on the test fixtures that provide the simulator.
    """
    if plan.simulator is None:
        yield {}
        return
    builtin: dict[str, Any] = {}
    factory, known = find_kind(builtin, SERVICE_GROUP, "simulator")
    if factory is None:
        raise SpecError("the plan declares a simulator, but no 'simulator' service is installed "
                        f"(known: {', '.join(known) or 'none'}); reinstall evalfleet",
                        field="simulator")
    with factory(plan.simulator, log_path=home / "simulator.log") as sim:
        yield {"simulator": sim.base_url}


def _install_signals(dispatcher: Dispatcher) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, dispatcher.stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread
            pass
    return installed


@dataclass
class _Started:
    """What an execution needs started before dispatch (the plan's services, the Ray
    executor), started by :func:`run` while the eval's runs were being inserted."""

    variables: dict[str, str]
    executor: Any
    provider: SandboxProvider


def execute(store: Store, eval_id: str, *, settings: Settings | None = None,
            progress: ProgressHook | None = None, handle_signals: bool = True,
            suite: Suite | None = None, backend: str | None = None,
            ray_address: str | None = None, metrics_port: int | None = None) -> EvalSummary:
    """Run the eval's pending runs to completion (or budget stop / interrupt).

    ``suite`` saves loading the suite again when the caller just loaded it. ``backend``
    (``local`` or ``ray``) overrides the plan's ``execution.backend`` for this execution;
    ``ray_address`` is the Ray cluster to connect to (default ``RAY_ADDRESS``, else a local
    Ray runtime is started). With ``metrics_port`` the live figures are served as Prometheus
    metrics on 127.0.0.1 (api/metrics.py) while the eval runs.
    """
    return _execute(store, eval_id, settings=settings, progress=progress,
                    handle_signals=handle_signals, suite=suite, backend=backend,
                    ray_address=ray_address, metrics_port=metrics_port)


def _execute(store: Store, eval_id: str, *, settings: Settings | None,
             progress: ProgressHook | None, handle_signals: bool = True,
             suite: Suite | None, backend: str | None, ray_address: str | None,
             metrics_port: int | None, started: _Started | None = None) -> EvalSummary:
    """:func:`execute`, with the services and executor already ``started`` or not."""
    settings = settings or load_settings(store.home)
    row = store.journal.get_eval(eval_id)
    plan = Plan.model_validate(row["plan"])
    backend = _check_backend(backend or plan.execution.backend)
    suite = suite or load_suite_ref(plan.suite, plan)
    if suite.suite_hash != row["suite_hash"]:
        raise SpecError(f"the suite changed since eval {eval_id} was created (hash "
                        f"{row['suite_hash']} then, {suite.suite_hash} now); start a new eval")
    driver = driver_name()
    store.journal.claim_driver(eval_id, driver, stale_after_s=plan.execution.lease_seconds)
    store.remove_orphans(eval_id, driver)  # a crashed driver's uncommitted batches, under claim
    store.auto_compact(eval_id, driver)  # small results files merge as batches commit
    store.journal.reset_leases(eval_id)
    # sandboxed code must not read this home's journals, nor a user suite's hidden tests
    provider = started.provider if started is not None else get_provider(
        settings.sandbox or plan.execution.sandbox,
        hidden_paths=hidden_from_sandboxes(plan, store.home))
    check_network(plan, suite, provider)
    prices = load_price_table(settings.prices)
    # an unpriced model's cost is unknown, not $0: said at the start, not only in the report
    warnings = (*getattr(provider, "warnings", ()),
                *(unpriced_warning(a) for a in prices.unpriced(plan.agents)))
    counts = store.journal.counts(eval_id)
    stats = DispatchStats(planned=row["planned"], already_done=counts.get("done", 0),
                          quarantined_runs=counts.get("quarantined", 0))
    spent = _spent(store, eval_id)
    stats.cost_usd = spent
    ctx = RowContext(eval_id=eval_id, plan_name=plan.name, suite=suite, agents=plan.agents,
                     services_hash=plan.services_hash)
    stats.already_done += apply_reuse(store, eval_id, plan, suite, ctx, provider.name)
    # budgets and the projection start from what the eval's earlier drivers committed
    stats.strata = strata_of(store, eval_id)
    finished: dict[int, Tally] = {}
    for (agent, _), st in stats.strata.items():
        t = finished.setdefault(agent, Tally())
        t.runs += st.ran
        t.usd += st.spent_usd
    budgets = Budgets.start(plan.budget_usd, [a.budget_usd for a in plan.agents], finished,
                            prior=_prior(plan, suite, prices))
    t0 = time.time()
    outcome: DispatchOutcome | None = None
    # the plan, the suite and the store live through the dispatch: no full pass of the cyclic
    # garbage collector walks them again while the runs' short-lived objects come and go
    # (_util/heap.py: 0.3-0.5 s of 10,000 no-op runs)
    with (contextlib.nullcontext(started.variables) if started is not None
          else _services(plan, store.home)) as variables, contextlib.ExitStack() as stack, \
            frozen_heap():
        # where attempts run: here (None), or on a Ray cluster's workers (docs/ray.md)
        if started is not None:
            executor = started.executor
        else:
            executor = None if backend == "local" else stack.enter_context(_ray_executor(
                plan, suite, provider.name, hidden_from_sandboxes(plan, store.home), prices,
                variables, driver, ray_address, progress is not None))

        def dispatch_round() -> DispatchOutcome:
            """One dispatch round: the eval's pending runs, until none is left, a budget
            stops it or it is interrupted."""
            dispatcher = Dispatcher(plan=plan, suite=suite,
                                    journal=StorePort(store, ctx, driver), provider=provider,
                                    prices=prices, owner=driver, variables=variables,
                                    budgets=budgets, stats=stats,
                                    quarantine=StoreQuarantine(store, eval_id),
                                    pool=None if plan.execution.pool is None else StorePool(
                                        store, eval_id, plan.execution.pool.name,
                                        plan.execution.lease_seconds),
                                    executor=executor)

            async def main() -> DispatchOutcome:
                sigs = _install_signals(dispatcher) if handle_signals else []
                try:
                    return await dispatcher.run()
                finally:
                    loop = asyncio.get_running_loop()
                    for sig in sigs:
                        loop.remove_signal_handler(sig)

            return asyncio.run(main())

        if metrics_port is not None:
            from evalfleet.api.metrics import MetricsServer

            stack.callback(MetricsServer(eval_id, stats, metrics_port).close)
        if progress is not None:
            progress.start(eval_id, stats, provider.name, warnings)
        try:
            while True:
                result = dispatch_round()
                # adaptive depth: once a round is all committed, its results choose the next
                # one, added as pending runs (a crash now leaves them for resume to dispatch)
                if result.status != "completed" or not add_round(store, eval_id, plan).inserted:
                    break
                stats.planned = store.journal.get_eval(eval_id)["planned"]
                stats.already_done += apply_reuse(store, eval_id, plan, suite, ctx, provider.name)
                stats.strata = strata_of(store, eval_id)
            outcome = result
        finally:
            if progress is not None:
                progress.stop()
            if outcome is None:
                store.journal.set_status(eval_id, "failed")
    final = outcome.status
    if final == "config_error":
        # left resumable: once the credentials or model name are fixed, resume finishes it
        store.journal.set_status(eval_id, "interrupted", finished=False)
        raise ConfigError(f"eval {eval_id} stopped: {outcome.error} (fix the plan or the "
                          f"environment, then: evalfleet resume {eval_id})")
    store.journal.set_status(eval_id, final, finished=final != "interrupted")
    # an ended eval's small files merged into as few as the targets allow (not on Ctrl-C:
    # the user wants out now, and resume compacts at its end)
    store.maintain(eval_id, driver, final=final != "interrupted")
    store.remove_orphans(eval_id, driver)  # those that were too young to remove at the start
    store.journal.release_driver(eval_id, driver)
    counts = store.journal.counts(eval_id)
    return EvalSummary(eval_id=eval_id, status=final, planned=stats.planned,
                       done=counts.get("done", 0), cost_usd=_spent(store, eval_id),
                       sandbox=provider.name, duration_s=time.time() - t0, home=store.home,
                       warnings=warnings, journal=store.journal.shown_url,
                       agents_stopped=tuple(stats.agents_stopped),
                       eval_budget_stopped=stats.eval_stopped,
                       quarantined_tasks=tuple(sorted(stats.quarantined_tasks)),
                       quarantined=counts.get("quarantined", 0),
                       results=store.results_location(eval_id))


def _check_backend(backend: str) -> str:
    if backend not in ("local", "ray"):
        raise SpecError(f"unknown backend {backend!r}; expected local or ray", field="--backend")
    return backend


@contextlib.contextmanager
def _ray_executor(plan: Plan, suite: Suite, sandbox: str, hidden: Sequence[Path],
                  prices: PriceTable, variables: Mapping[str, str], owner: str,
                  address: str | None, verbose: bool) -> Iterator[Any]:
    """A started Ray executor (connected, workers ready), closed at the end."""
    from evalfleet.execution.ray_backend import RayExecutor

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    executor = RayExecutor(plan=plan, suite=suite, sandbox=sandbox,
                           hidden_paths=[str(p) for p in hidden], prices=prices,
                           variables=variables, owner=owner, address=address,
                           say=say if verbose else None)
    executor.start()
    try:
        yield executor
    finally:
        executor.close()


def _prior(plan: Plan, suite: Suite, prices: PriceTable) -> list[float] | None:
    """What a run of each agent should cost before any has finished (the plan review's
    estimate from prices), when a budget needs it; see :class:`~evalfleet.cost.budget.Budgets`.
    """
    if plan.budget_usd is None and all(a.budget_usd is None for a in plan.agents):
        return None
    from evalfleet.api.review import prior_run_costs

    return prior_run_costs(plan, planned_tasks(plan, suite), prices)


def _spent(store: Store, eval_id: str) -> float:
    return float(sum(a["cost_usd"] for a in
                     store.journal.progress(eval_id)["agents"].values()))


def run(plan_path: str | Path, *, settings: Settings | None = None,
        progress: ProgressHook | None = None, workers: int | None = None,
        backend: str | None = None, ray_address: str | None = None,
        metrics_port: int | None = None) -> EvalSummary:
    """Load, validate and run a plan as a new eval.

    ``workers`` overrides the plan's ``execution.max_in_flight`` and ``backend`` its
    ``execution.backend`` (kept in the eval's plan, so ``resume`` uses it too);
    ``ray_address`` is the Ray cluster of the ``ray`` backend (see :func:`execute`);
    ``metrics_port`` serves the live figures as Prometheus metrics on 127.0.0.1.

    While the eval runs, the objects alive when its suite is loaded (the caller's included) are
    left out of the cyclic garbage collector's passes (``gc.freeze``; see ``docs/scale.md``,
    "Driver CPU"), as in :func:`execute` and :func:`resume`; the heap is unfrozen again when it
    returns, unless the caller had frozen it.
    """
    from evalfleet.api.metrics import check_metrics_port

    check_metrics_port(metrics_port)
    settings = settings or load_settings()
    plan = load_plan(plan_path)
    if backend is not None:
        plan = plan.model_copy(update={"execution": plan.execution.model_copy(
            update={"backend": _check_backend(backend)})})
    if workers is not None:
        if not 1 <= workers <= 10_000:
            raise SpecError(f"--workers must be between 1 and 10000, got {workers}")
        plan = plan.model_copy(update={"execution": plan.execution.model_copy(
            update={"max_in_flight": workers})})
    suite = validate_plan(plan, str(plan_path))
    store = open_store(settings)
    # the suite just loaded lives through the eval: as in _execute, the cyclic garbage
    # collector's full passes leave it (and what is alive now) alone
    with frozen_heap():
        try:
            if plan.execution.backend == "local":
                eval_id = create_eval(store, plan, suite)
                return execute(store, eval_id, settings=settings, progress=progress, suite=suite,
                               ray_address=ray_address, metrics_port=metrics_port)
            # on Ray, connecting and starting the workers (seconds) overlaps with inserting the
            # eval's runs, in a thread (the store is not used here meanwhile); Ray stays in the
            # main thread
            with contextlib.ExitStack() as stack, concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="evalfleet-create") as pool:
                creating = pool.submit(create_eval, store, plan, suite)
                try:
                    hidden = hidden_from_sandboxes(plan, store.home)
                    provider = get_provider(settings.sandbox or plan.execution.sandbox,
                                            hidden_paths=hidden)
                    variables = stack.enter_context(_services(plan, store.home))
                    executor = stack.enter_context(_ray_executor(
                        plan, suite, provider.name, hidden, load_price_table(settings.prices),
                        variables, driver_name(), ray_address, progress is not None))
                finally:
                    concurrent.futures.wait([creating])
                return _execute(store, creating.result(), settings=settings, progress=progress,
                                suite=suite, backend=None, ray_address=ray_address,
                                metrics_port=metrics_port,
                                started=_Started(variables=variables, executor=executor,
                                                 provider=provider))
        finally:
            store.close()


def _with_budgets(plan: dict[str, Any], budget_usd: float | None,
                  agent_budgets: Mapping[str, float]) -> Plan:
    """The stored plan with a new eval budget and new budgets for agents named NAME@VERSION.

    Raises:
        SpecError: an agent the eval does not have, or a budget out of range.
    """
    from pydantic import ValidationError

    agents = [dict(a) for a in plan["agents"]]
    labels = {f"{a['name']}@{a.get('version', '0')}": a for a in agents}
    for label, usd in agent_budgets.items():
        if label not in labels:
            raise SpecError(f"the eval has no agent {label} (it has: {', '.join(labels)})",
                            field="--agent-budget")
        labels[label]["budget_usd"] = usd
    new = {**plan, "agents": agents}
    if budget_usd is not None:
        new["budget_usd"] = budget_usd
    try:
        return Plan.model_validate(new)
    except ValidationError as exc:  # out of the plan's range (0, inf, 1e300 ...)
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        if loc[:1] == ("agents",) and len(loc) > 1 and isinstance(loc[1], int):
            a = agents[loc[1]]
            raise SpecError(f"budget {a['budget_usd']:g} for {a['name']}@"
                            f"{a.get('version', '0')}: {err['msg']}",
                            field="--agent-budget") from None
        raise SpecError(f"budget {budget_usd:g}: {err['msg']}", field="--budget") from None


def resume(eval_id: str, *, settings: Settings | None = None,
           progress: ProgressHook | None = None, budget_usd: float | None = None,
           agent_budgets: Mapping[str, float] | None = None, backend: str | None = None,
           ray_address: str | None = None, metrics_port: int | None = None) -> EvalSummary:
    """Finish an interrupted eval: runs already committed are never executed again.

    ``budget_usd`` replaces the plan's budget and ``agent_budgets`` (``NAME@VERSION ->
    dollars``) those of its agents, to continue an eval a budget stopped. Runs a budget
    cancelled are pending again. ``backend`` and ``ray_address`` as for :func:`execute`
    (default: the backend the eval's plan names); ``metrics_port`` as for :func:`run`.
    """
    from evalfleet.api.metrics import check_metrics_port

    check_metrics_port(metrics_port)
    settings = settings or load_settings()
    # the eval must exist before anything is created: a mistyped --home or id leaves no home
    # or journal behind, and says "no evals in HOME" like the readers
    reader = open_reader(settings)
    try:
        eval_id = resolve_eval_id(reader, eval_id)
    finally:
        reader.close()
    store = open_store(settings)
    try:
        row = store.journal.get_eval(eval_id)
        if budget_usd is not None or agent_budgets:
            plan = _with_budgets(row["plan"], budget_usd, agent_budgets or {})
            store.journal.update_plan(eval_id, plan.model_dump_json())
        if row["status"] == "completed":
            counts = store.journal.counts(eval_id)
            return EvalSummary(eval_id, "completed", row["planned"], counts.get("done", 0),
                               _spent(store, eval_id), "", 0.0, store.home,
                               results=store.results_location(eval_id))
        # runs only a budget cancels; any driver's (a crash after an agent's budget stopped
        # its runs leaves the eval "running", Ctrl-C leaves it "interrupted")
        store.journal.uncancel(eval_id)
        return execute(store, eval_id, settings=settings, progress=progress, backend=backend,
                       ray_address=ray_address, metrics_port=metrics_port)
    finally:
        store.close()
