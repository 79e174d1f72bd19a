"""Driving an eval: claim it, start what the plan declares, dispatch its pending runs in
sandboxes, commit results exactly once, and say how it ended."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from evalfleet._util.plugins import find_kind
from evalfleet.api.evals import create_eval
from evalfleet.api.journal_port import StorePort
from evalfleet.api.reads import open_reader, open_store, resolve_eval_id
from evalfleet.api.validation import check_network, hidden_from_sandboxes, validate_plan
from evalfleet.cost.budget import Budget
from evalfleet.cost.prices import load_price_table
from evalfleet.errors import ConfigError, SpecError
from evalfleet.execution.dispatcher import Dispatcher, DispatchOutcome, DispatchStats
from evalfleet.sandbox import get_provider
from evalfleet.settings import Settings, load_settings
from evalfleet.spec.loaders import load_plan, load_suite_ref
from evalfleet.spec.plan import Plan
from evalfleet.spec.task import Suite
from evalfleet.store import RowContext, Store, driver_name

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


def execute(store: Store, eval_id: str, *, settings: Settings | None = None,
            progress: ProgressHook | None = None, handle_signals: bool = True,
            suite: Suite | None = None) -> EvalSummary:
    """Run the eval's pending runs to completion (or budget stop / interrupt).

    ``suite`` saves loading the suite again when the caller just loaded it.
    """
    settings = settings or load_settings(store.home)
    row = store.journal.get_eval(eval_id)
    plan = Plan.model_validate(row["plan"])
    suite = suite or load_suite_ref(plan.suite, plan)
    if suite.suite_hash != row["suite_hash"]:
        raise SpecError(f"the suite changed since eval {eval_id} was created (hash "
                        f"{row['suite_hash']} then, {suite.suite_hash} now); start a new eval")
    driver = driver_name()
    store.journal.claim_driver(eval_id, driver, stale_after_s=plan.execution.lease_seconds)
    store.remove_orphans(eval_id, driver)  # a crashed driver's uncommitted batches, under claim
    store.journal.reset_leases(eval_id)
    # sandboxed code must not read this home's journals, nor a user suite's hidden tests
    provider = get_provider(settings.sandbox or plan.execution.sandbox,
                            hidden_paths=hidden_from_sandboxes(plan, store.home))
    check_network(plan, suite, provider)
    warnings = tuple(getattr(provider, "warnings", ()))
    counts = store.journal.counts(eval_id)
    stats = DispatchStats(planned=row["planned"], already_done=counts.get("done", 0))
    spent = _spent(store, eval_id)
    stats.cost_usd = spent
    prices = load_price_table(settings.prices)
    ctx = RowContext(eval_id=eval_id, plan_name=plan.name, suite=suite, agents=plan.agents)
    t0 = time.time()
    outcome: DispatchOutcome | None = None
    with _services(plan, store.home) as variables:
        dispatcher = Dispatcher(plan=plan, suite=suite, journal=StorePort(store, ctx, driver),
                                provider=provider, prices=prices, owner=driver,
                                variables=variables, budget=Budget(plan.budget_usd, spent),
                                stats=stats)

        async def main() -> DispatchOutcome:
            sigs = _install_signals(dispatcher) if handle_signals else []
            try:
                return await dispatcher.run()
            finally:
                loop = asyncio.get_running_loop()
                for sig in sigs:
                    loop.remove_signal_handler(sig)

        if progress is not None:
            progress.start(eval_id, stats, provider.name, warnings)
        try:
            outcome = asyncio.run(main())
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
    store.remove_orphans(eval_id, driver)  # those that were too young to remove at the start
    store.journal.release_driver(eval_id, driver)
    counts = store.journal.counts(eval_id)
    return EvalSummary(eval_id=eval_id, status=final, planned=row["planned"],
                       done=counts.get("done", 0), cost_usd=_spent(store, eval_id),
                       sandbox=provider.name, duration_s=time.time() - t0, home=store.home,
                       warnings=warnings)


def _spent(store: Store, eval_id: str) -> float:
    return float(sum(a["cost_usd"] for a in
                     store.journal.progress(eval_id)["agents"].values()))


def run(plan_path: str | Path, *, settings: Settings | None = None,
        progress: ProgressHook | None = None, workers: int | None = None) -> EvalSummary:
    """Load, validate and run a plan as a new eval.

    ``workers`` overrides the plan's ``execution.max_in_flight``.
    """
    settings = settings or load_settings()
    plan = load_plan(plan_path)
    if workers is not None:
        if not 1 <= workers <= 10_000:
            raise SpecError(f"--workers must be between 1 and 10000, got {workers}")
        plan = plan.model_copy(update={"execution": plan.execution.model_copy(
            update={"max_in_flight": workers})})
    suite = validate_plan(plan, str(plan_path))
    store = open_store(settings)
    try:
        eval_id = create_eval(store, plan, suite)
        return execute(store, eval_id, settings=settings, progress=progress, suite=suite)
    finally:
        store.close()


def resume(eval_id: str, *, settings: Settings | None = None,
           progress: ProgressHook | None = None, budget_usd: float | None = None) -> EvalSummary:
    """Finish an interrupted eval: runs already committed are never executed again.

    ``budget_usd`` replaces the plan's budget (to continue an eval the budget stopped).
    """
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
        if budget_usd is not None:
            from pydantic import ValidationError

            try:
                plan = Plan.model_validate({**row["plan"], "budget_usd": budget_usd})
            except ValidationError as exc:  # out of the plan's range (inf, 1e300 ...)
                raise SpecError(f"budget {budget_usd:g}: {exc.errors()[0]['msg']}",
                                field="--budget") from None
            store.journal.update_plan(eval_id, plan.model_dump_json())
        if row["status"] == "completed":
            counts = store.journal.counts(eval_id)
            return EvalSummary(eval_id, "completed", row["planned"], counts.get("done", 0),
                               _spent(store, eval_id), "", 0.0, store.home)
        if row["status"] == "budget_stopped":
            store.journal.uncancel(eval_id)
        return execute(store, eval_id, settings=settings, progress=progress)
    finally:
        store.close()
