"""The library facade: run, resume, status, report. The CLI is a thin layer over this."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evalfleet._util import short_hash
from evalfleet.agents.registry import create_agent
from evalfleet.cost.budget import Budget
from evalfleet.cost.prices import load_price_table
from evalfleet.errors import ConfigError, EvalfleetError, InfraError, SpecError, UnknownEvalError
from evalfleet.execution.dispatcher import Dispatcher, DispatchOutcome, DispatchStats
from evalfleet.sandbox import SandboxProvider, get_provider
from evalfleet.scoring.registry import create_scorer
from evalfleet.settings import Settings, load_settings
from evalfleet.spec.loaders import load_plan, load_suite_ref
from evalfleet.spec.plan import Plan
from evalfleet.spec.result import RunResult
from evalfleet.spec.task import Suite
from evalfleet.store import RowContext, Store, driver_name
from evalfleet.store.journal import LeasedRun, driver_alive

if TYPE_CHECKING:
    from evalfleet.analysis.compare import Side

# Analysis (scipy, statsmodels, duckdb) is imported where it is used, so that running an eval
# does not pay its import time and memory (about 100 MB) in the driver.
CLUSTER_KEYS = ("repository", "category")
"""Coarser keys a report or comparison may cluster the SE by."""

__all__ = ["EvalSummary", "ProgressHook", "check_plan", "compare", "create_eval", "execute",
           "list_suites", "list_tasks", "open_reader", "open_store", "query", "report", "resume",
           "run", "show_run", "status", "validate_plan"]


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


def open_store(settings: Settings) -> Store:
    """The store of the configured home, for writing (creates the home 0700 if missing)."""
    return Store(settings.home, settings.journal_url)


def open_reader(settings: Settings) -> Store:
    """The store of the configured home, read-only: creates, sweeps and locks nothing.

    Raises:
        UnknownEvalError: the home or its journal does not exist ("no evals in HOME").
    """
    return Store.open_readonly(settings.home, settings.journal_url)


def validate_plan(plan: Plan, source: str | None = None) -> Suite:
    """Check everything a run needs before it spends anything; returns the suite.

    Raises:
        SpecError: naming the plan file and the field (agents.N..., suite...).
    """
    for i, spec in enumerate(plan.agents):
        try:
            create_agent(spec)
        except SpecError as exc:
            raise SpecError(exc.message, source=source,
                            field=f"agents.{i}.{exc.field}" if exc.field else f"agents.{i}") \
                from None
        except EvalfleetError:
            raise
        except (Exception, SystemExit) as exc:
            # a plugin's factory (or the code it imports) failed: a mistake in the plan's
            # agent, reported as one line naming it rather than a traceback
            raise SpecError(f"cannot create agent {spec.label}: {_one_line(exc)}",
                            source=source, field=f"agents.{i}") from None
    try:
        suite = load_suite_ref(plan.suite, plan)
    except SpecError as exc:
        if exc.source is None:
            raise SpecError(exc.message, source=source, field=exc.field) from None
        raise
    seen: set[str] = set()
    for task in suite.tasks:
        key = task.scorer.model_dump_json()
        if key not in seen:
            seen.add(key)
            try:
                create_scorer(task.scorer)
            except SpecError as exc:
                raise SpecError(f"task {task.id}: {exc.message}", source=suite.name,
                                field=exc.field) from None
            except EvalfleetError:
                raise
            except (Exception, SystemExit) as exc:  # e.g. a python scorer's module raising
                raise SpecError(f"task {task.id}: cannot create its {task.scorer.kind} scorer: "
                                f"{_one_line(exc)}", source=suite.name,
                                field="scorer") from None
        for name, n in task.resources.items():
            if n > plan.resources.get(name, 0):
                raise SpecError(f"task {task.id} needs {n} {name} but the plan provides "
                                f"{plan.resources.get(name, 0)}", source=source,
                                field=f"resources.{name}")
    return suite


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception, for a one-line error."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _new_eval_id(plan: Plan) -> str:
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
    eval_id = eval_id or _new_eval_id(plan)
    planned = len(suite.tasks) * len(plan.agents) * plan.runs_per_task
    store.journal.create_eval(eval_id=eval_id, plan_name=plan.name,
                              plan_json=plan.model_dump_json(), suite_name=suite.name,
                              suite_hash=suite.suite_hash, planned=planned,
                              rows=run_ids(eval_id, plan, suite))
    return eval_id


class _StorePort:
    """Adapts the store to the dispatcher's RunJournal port for one eval."""

    def __init__(self, store: Store, ctx: RowContext, driver: str) -> None:
        self.store = store
        self.ctx = ctx
        self.driver = driver

    def lease(self, owner: str, n: int, lease_s: float) -> Sequence[LeasedRun]:
        return self.store.journal.lease(self.ctx.eval_id, owner, n, lease_s)

    def renew(self, owner: str, run_ids: Sequence[str], lease_s: float) -> int:
        return self.store.journal.renew(self.ctx.eval_id, owner, run_ids, lease_s)

    def release(self, owner: str) -> None:
        self.store.journal.release(self.ctx.eval_id, owner)

    def commit(self, results: Sequence[RunResult]) -> tuple[int, int]:
        rep = self.store.commit(self.ctx, results)
        return rep.committed, rep.duplicates

    def lease_state(self) -> tuple[int, int, float | None]:
        return self.store.journal.lease_state(self.ctx.eval_id)

    def cancel_pending(self) -> int:
        return self.store.journal.cancel_pending(self.ctx.eval_id)

    def heartbeat(self) -> None:
        self.store.journal.heartbeat_driver(self.ctx.eval_id, self.driver)


@contextlib.contextmanager
def _services(plan: Plan, home: Path) -> Iterator[dict[str, str]]:
    """Start what the plan declares (the simulated model) and yield placeholder values."""
    if plan.simulator is None:
        yield {}
        return
    from evalfleet.testing.simulator import SimulatorProcess

    with SimulatorProcess(plan.simulator, log_path=home / "simulator.log") as sim:
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
    # sandboxed code must not read this home's journals and trajectories
    provider = get_provider(settings.sandbox or plan.execution.sandbox, hidden_paths=[store.home])
    _check_network(plan, suite, provider)
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
        dispatcher = Dispatcher(plan=plan, suite=suite, journal=_StorePort(store, ctx, driver),
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


def _check_network(plan: Plan, suite: Suite, provider: SandboxProvider) -> None:
    """A task that forbids the network never runs where the sandbox leaves it open, unless the
    plan says that is acceptable."""
    if getattr(provider, "isolates_network", True) or plan.execution.allow_open_network:
        return
    closed = [t.id for t in suite.tasks if not t.network]
    if closed:
        raise SpecError(f"the {provider.name} sandbox cannot cut the network on this machine, "
                        f"but {len(closed)} task(s) forbid it (e.g. {closed[0]}); use the bwrap "
                        "sandbox, run as root, or set execution.allow_open_network: true",
                        field="execution.sandbox")


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


def resolve_eval_id(store: Store, eval_id: str) -> str:
    """An exact eval id, or a unique prefix of one."""
    try:
        store.journal.get_eval(eval_id)
        return eval_id
    except UnknownEvalError:
        matches = store.journal.find_evals(eval_id)
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownEvalError(f"'{eval_id}' matches {len(matches)} evals: "
                                   f"{', '.join(matches[:5])}") from None
        raise


def resume(eval_id: str, *, settings: Settings | None = None,
           progress: ProgressHook | None = None, budget_usd: float | None = None) -> EvalSummary:
    """Finish an interrupted eval: runs already committed are never executed again.

    ``budget_usd`` replaces the plan's budget (to continue an eval the budget stopped).
    """
    settings = settings or load_settings()
    store = open_store(settings)
    try:
        eval_id = resolve_eval_id(store, eval_id)
        row = store.journal.get_eval(eval_id)
        if budget_usd is not None:
            plan = Plan.model_validate({**row["plan"], "budget_usd": budget_usd})
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


def status(eval_id: str | None = None, *, settings: Settings | None = None) -> dict[str, Any]:
    """Status of every eval, or of one with per-agent progress (read-only)."""
    settings = settings or load_settings()
    store = open_reader(settings)
    try:
        if eval_id is None:
            return {"evals": [_status_row(store, e) for e in store.journal.list_evals()]}
        eval_id = resolve_eval_id(store, eval_id)
        row = store.journal.get_eval(eval_id)
        out = _status_row(store, row)
        prog = store.journal.progress(eval_id)["agents"]
        agents = Plan.model_validate(row["plan"]).agents
        out["agents"] = [{"agent_name": a.name, "agent_version": a.version, "model": a.model,
                          **prog.get(i, {})} for i, a in enumerate(agents)]
        out["duplicates_dropped"] = row["duplicates_dropped"]
        return out
    finally:
        store.close()


def _status_row(store: Store, e: dict[str, Any]) -> dict[str, Any]:
    prog = store.journal.progress(e["eval_id"])["agents"].values()
    status_value = e["status"]
    if status_value == "running" and not driver_alive(e.get("driver"), e.get("driver_heartbeat")):
        status_value = "interrupted"  # the driver died without saying so (crash, SIGKILL)
    return {
        "eval_id": e["eval_id"], "plan_name": e["plan_name"], "status": status_value,
        "planned": e["planned"], "done": sum(a["done"] for a in prog),
        "errored": sum(a["errored"] for a in prog), "running": sum(a["running"] for a in prog),
        "cancelled": sum(a["cancelled"] for a in prog),
        "cost_usd": round(sum(a["cost_usd"] for a in prog), 6),
        "started_at": _iso(e.get("started_at") or e.get("created_at")),
        "finished_at": _iso(e.get("finished_at")),
    }


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds") if t else None


def report(eval_id: str, *, settings: Settings | None = None, cluster: str | None = None,
           max_tasks: int | None = None) -> dict[str, Any]:
    """The report of an eval, complete or partial (read-only).

    ``cluster`` (repository or category) clusters the overall SE by that key (CR1);
    ``max_tasks`` keeps only the first (worst) tasks of each agent's per-task list.
    """
    _check_cluster(cluster)
    settings = settings or load_settings()
    store = open_reader(settings)
    try:
        eval_id = resolve_eval_id(store, eval_id)
        row = store.journal.get_eval(eval_id)
        plan = Plan.model_validate(row["plan"])
        st = _status_row(store, row)
        from evalfleet.analysis.report import build_report

        prog = store.journal.progress(eval_id)["agents"]
        rep = build_report(home=store.home, paths=store.results_paths(eval_id),
                           eval_row={**row, "status": st["status"],
                                     "cancelled": st["cancelled"],
                                     "cancelled_by_agent": [
                                         prog.get(i, {}).get("cancelled", 0)
                                         for i in range(len(plan.agents))]},
                           plan=plan, cluster=cluster, max_tasks=max_tasks)
        prices = load_price_table(settings.prices)
        for agent_rep, spec in zip(rep["agents"], plan.agents, strict=True):
            # an unpriced model's $0 is not a measurement: say so rather than show it as cost
            agent_rep["priced"] = prices.knows(spec.model)
            agent_rep["model"] = spec.model
        return rep
    finally:
        store.close()


def _check_cluster(cluster: str | None) -> None:
    if cluster is not None and cluster not in CLUSTER_KEYS:
        raise SpecError(f"cannot cluster by '{cluster}' (choose {', '.join(CLUSTER_KEYS)})",
                        field="--cluster")


def resolve_side(store: Store, ref: str) -> Side:
    """``EVAL_ID``, ``EVAL_ID/AGENT@VERSION`` or ``AGENT@VERSION`` (its latest eval) as a Side."""
    eval_part, _, agent_part = ref.partition("/")
    if not agent_part and "@" in ref:
        name, _, version = ref.partition("@")
        for e in store.journal.list_evals():  # newest first
            agents = Plan.model_validate(store.journal.get_eval(e["eval_id"])["plan"]).agents
            for i, a in enumerate(agents):
                if a.name == name and a.version == version:
                    return _side(store, e["eval_id"], i, a.name, a.version)
        raise UnknownEvalError(f"no eval has agent {ref}")
    eval_id = resolve_eval_id(store, eval_part)
    agents = Plan.model_validate(store.journal.get_eval(eval_id)["plan"]).agents
    if not agent_part:
        if len(agents) != 1:
            raise SpecError(f"eval {eval_id} has {len(agents)} agents; name one as "
                            f"{eval_id}/AGENT@VERSION (one of: "
                            f"{', '.join(a.label for a in agents)})")
        return _side(store, eval_id, 0, agents[0].name, agents[0].version)
    for i, a in enumerate(agents):
        if a.label == agent_part or (a.name == agent_part and len(agents) == 1):
            return _side(store, eval_id, i, a.name, a.version)
    raise SpecError(f"eval {eval_id} has no agent {agent_part} (it has: "
                    f"{', '.join(a.label for a in agents)})")


def _side(store: Store, eval_id: str, index: int, name: str, version: str) -> Side:
    from evalfleet.analysis.compare import Side

    return Side(eval_id=eval_id, agent_name=name, agent_version=version,
                paths=store.results_paths(eval_id),
                planned_tasks=store.journal.planned_tasks(eval_id, index))


def compare(refs: Sequence[str], *, settings: Settings | None = None, margin: float = 0.01,
            alpha: float = 0.05, cluster: str | None = None) -> dict[str, Any]:
    """Paired comparison of BASE (first) with NEW (the others) on their shared tasks."""
    if len(refs) < 2:
        raise SpecError("compare needs a BASE and at least one NEW")
    if not 0 <= margin < 1:
        raise SpecError(f"margin must be in [0, 1) as a fraction, got {margin}", field="--margin")
    _check_cluster(cluster)
    settings = settings or load_settings()
    store = open_reader(settings)
    try:
        from evalfleet.analysis.compare import compare as compare_sides

        sides = [resolve_side(store, r) for r in refs]
        out = compare_sides(store.home, sides, margin=margin, alpha=alpha, cluster=cluster)
        out["status"] = {s.eval_id: _status_row(store, store.journal.get_eval(s.eval_id))["status"]
                         for s in sides}
        return out
    finally:
        store.close()


def query(sql: str, *, eval_id: str | None = None,
          settings: Settings | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """One SELECT over the view ``runs`` of the committed results (of one eval, or all).

    Read-only and confined: the SQL must be a single SELECT, and DuckDB runs it in memory with
    access to nothing but the committed Parquet files (no COPY, ATTACH, other files, settings).

    Raises:
        SpecError: the SQL is not one SELECT, or DuckDB refused or failed it.
        UnknownEvalError: no such eval, or no evals in the home.
    """
    from evalfleet.store.warehouse import check_read_only
    from evalfleet.store.warehouse import query as run_query

    check_read_only(sql)  # before touching the store: a refused query reads nothing
    settings = settings or load_settings()
    store = open_reader(settings)
    try:
        if eval_id:
            paths = store.results_paths(resolve_eval_id(store, eval_id))
        else:
            paths = store.all_results_paths()
    finally:
        store.close()
    return run_query(settings.home, paths, sql)


def show_run(run_ref: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """One committed run, read-only: its results row, its trajectory's events in order, and
    the scorer's reports (the trajectory events of kind ``scorer``).

    ``run_ref`` is a run id or a unique prefix of one (matched literally).

    Raises:
        SpecError: no committed run matches, or the prefix matches several.
        UnknownEvalError: the home has no evals.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from evalfleet.store import read_trajectory

    if not run_ref:
        raise SpecError("give a run id (or a unique prefix of one)", field="RUN_ID")
    settings = settings or load_settings()
    store = open_reader(settings)
    try:
        found: dict[str, str] = {}  # run id -> results file
        for rel in store.all_results_paths():
            ids = pq.read_table(store.home / rel, columns=["run_id"]).column("run_id")
            hits = ids.filter(pc.starts_with(ids, pattern=run_ref)).to_pylist()
            found.update({rid: rel for rid in hits})
        if not found:
            raise SpecError(f"no committed run '{run_ref}' in {store.home} (runs appear once "
                            "committed; `evalfleet query` lists run ids)", field="RUN_ID")
        if len(found) > 1:
            some = ", ".join(sorted(found)[:5])
            raise SpecError(f"'{run_ref}' matches {len(found)} runs: {some}"
                            f"{', ...' if len(found) > 5 else ''}", field="RUN_ID")
        (run_id, rel), = found.items()
        table = pq.read_table(store.home / rel)
        row = table.filter(pc.equal(table.column("run_id"), run_id)).to_pylist()[0]
        row["metrics"] = dict(row.get("metrics") or [])
        uri = row.get("trajectory_uri")
        trajectory = read_trajectory(store.home, uri) if uri else None
    finally:
        store.close()
    events = list((trajectory or {}).get("events", []))
    return {"run": row, "events": events,
            "dropped_events": (trajectory or {}).get("dropped_events", 0),
            "trajectory_found": trajectory is not None or not uri,
            "scorer_reports": [e for e in events if e.get("kind") == "scorer"]}


def _suite_summary(suite: Suite, ref: str) -> dict[str, Any]:
    cats: dict[str, int] = {}
    for t in suite.tasks:
        cats[t.category] = cats.get(t.category, 0) + 1
    return {"suite": ref, "name": suite.name, "version": suite.version,
            "description": suite.description, "tasks": len(suite.tasks),
            "categories": dict(sorted(cats.items()))}


def list_suites() -> list[dict[str, Any]]:
    """The built-in suites a plan can name (``suite: {builtin: NAME}``), with their task counts
    and categories. A plan may also point at a suite folder or JSONL file (``suite: {path}``)."""
    from evalfleet.spec.loaders import BUILTIN_SUITES
    from evalfleet.spec.plan import SuiteRef

    return [_suite_summary(load_suite_ref(SuiteRef(builtin=name)), name)
            for name in BUILTIN_SUITES]


def list_tasks(suite_ref: str, *, categories: Sequence[str] = ()) -> dict[str, Any]:
    """A suite's tasks (id, category, difficulty, scorer kind): ``suite_ref`` is a built-in
    suite's name or the path of a suite folder or JSONL file.

    Raises:
        SpecError: no such suite, or a category it does not have.
    """
    from evalfleet.spec.loaders import BUILTIN_SUITES, filter_suite
    from evalfleet.spec.plan import SuiteRef

    if suite_ref in BUILTIN_SUITES:
        ref = SuiteRef(builtin=suite_ref, categories=tuple(categories))
    elif Path(suite_ref).exists():
        ref = SuiteRef(path=str(Path(suite_ref).resolve()), categories=tuple(categories))
    else:
        raise SpecError(f"no suite '{suite_ref}': give a built-in suite "
                        f"({', '.join(BUILTIN_SUITES)}) or a suite folder or JSONL file",
                        field="SUITE")
    suite = load_suite_ref(ref.model_copy(update={"categories": ()}))
    summary = _suite_summary(suite, suite_ref)
    suite = filter_suite(suite, ref)
    summary["tasks_listed"] = [
        {"id": t.id, "category": t.category, "difficulty": t.difficulty,
         "scorer": t.scorer.kind, "network": t.network, "timeout_s": t.limits.timeout_s}
        for t in suite.tasks]
    return summary


_UNSANDBOXED_AGENTS = {"python"}
_UNSANDBOXED_SCORERS = {"python"}


def check_plan(plan_path: str | Path, *, settings: Settings | None = None) -> dict[str, Any]:
    """Validate a plan as ``run`` would, run nothing, and say what would run.

    Creates nothing (no home, no journal). The answer names the suite and its tasks, the
    agents, the runs planned, the sandbox provider that would be chosen here, and warnings:
    python agents (in the driver's process) and python scorers (in a worker process of the
    driver) run outside any sandbox, and tasks that allow the network.

    Raises:
        SpecError: the same file:line: field message ``run`` would give.
    """
    settings = settings or load_settings()
    plan = load_plan(plan_path)
    suite = validate_plan(plan, str(plan_path))
    warnings: list[str] = []
    try:
        provider = get_provider(settings.sandbox or plan.execution.sandbox,
                                hidden_paths=[settings.home])
        _check_network(plan, suite, provider)
        sandbox = provider.name
        warnings.extend(getattr(provider, "warnings", ()))
    except InfraError as exc:
        sandbox = None
        warnings.append(f"no sandbox: {exc}")
    for i, a in enumerate(plan.agents):
        if a.kind in _UNSANDBOXED_AGENTS:
            warnings.append(f"agent {a.label} (agents.{i}, kind {a.kind}) runs in the driver's "
                            "process, unsandboxed: it can read and write whatever you can")
    scorer_kinds = sorted({t.scorer.kind for t in suite.tasks})
    for kind in scorer_kinds:
        if kind in _UNSANDBOXED_SCORERS:
            n = sum(t.scorer.kind == kind for t in suite.tasks)
            warnings.append(f"{n} task(s) use the {kind} scorer, which runs unsandboxed, "
                            "with your permissions (in a worker process of the driver)")
    networked = [t.id for t in suite.tasks if t.network]
    if networked:
        warnings.append(f"{len(networked)} task(s) allow the network in the sandbox "
                        f"({', '.join(networked[:5])}{', ...' if len(networked) > 5 else ''})")
    cats: dict[str, int] = {}
    for t in suite.tasks:
        cats[t.category] = cats.get(t.category, 0) + 1
    return {
        "plan": str(plan_path), "name": plan.name, "ok": True,
        "suite": {"name": suite.name, "version": suite.version, "tasks": len(suite.tasks),
                  "categories": dict(sorted(cats.items())), "scorers": scorer_kinds},
        "agents": [{"label": a.label, "kind": a.kind, "model": a.model} for a in plan.agents],
        "runs_per_task": plan.runs_per_task,
        "runs_planned": len(suite.tasks) * len(plan.agents) * plan.runs_per_task,
        "budget_usd": plan.budget_usd, "max_in_flight": plan.execution.max_in_flight,
        "sandbox": sandbox, "simulated_model": plan.simulator is not None,
        "warnings": warnings,
    }


def dumps(obj: Any) -> str:
    """JSON for ``--json`` output (NaN becomes null)."""
    return json.dumps(_clean(obj), indent=2, default=str)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj

