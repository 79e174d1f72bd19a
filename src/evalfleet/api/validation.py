"""Checking a plan across layers before anything runs: agents, suite, scorers, resources,
sandbox and network promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalfleet.agents.registry import create_agent
from evalfleet.api.evals import planned_runs
from evalfleet.cost import sampling
from evalfleet.cost.prices import load_price_table, unpriced_warning
from evalfleet.errors import EvalfleetError, InfraError, SpecError
from evalfleet.sandbox import SandboxProvider, get_provider
from evalfleet.scoring.registry import create_scorer
from evalfleet.settings import Settings, load_settings
from evalfleet.spec.loaders import load_plan, load_suite_ref
from evalfleet.spec.plan import Plan
from evalfleet.spec.task import Suite


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
            raise SpecError(f"cannot create agent {spec.label}: {one_line(exc)}",
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
                                f"{one_line(exc)}", source=suite.name,
                                field="scorer") from None
        # on Ray the cluster's nodes declare resources too: the executor checks them at start
        for name, n in task.resources.items() if plan.execution.backend == "local" else ():
            if n > plan.resources.get(name, 0):
                raise SpecError(f"task {task.id} needs {n} {name} but the plan provides "
                                f"{plan.resources.get(name, 0)}", source=source,
                                field=f"resources.{name}")
    return suite


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception, for a one-line error."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def hidden_from_sandboxes(plan: Plan, home: Path) -> list[Path]:
    """Directories sandboxed code must not read, beyond what the sandbox always hides: the
    evalfleet home (journals, trajectories) and a suite of the user's own (its hidden tests and
    reference solutions), the folder of a folder suite or the folder holding a JSONL suite.

    /tmp and /var/tmp are left out: sandboxes have their own there, so nothing of the host's is
    visible in them anyway.
    """
    hidden = [home]
    if plan.suite.path:
        path = Path(plan.suite.path).resolve()
        folder = path if path.is_dir() else path.parent
        private = any(folder == Path(t) or Path(t) in folder.parents for t in ("/tmp", "/var/tmp"))
        if not private and folder != Path(folder.anchor):
            hidden.append(folder)
    return hidden


def check_network(plan: Plan, suite: Suite, provider: SandboxProvider) -> None:
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


_UNSANDBOXED_AGENTS = {"python"}


_UNSANDBOXED_SCORERS = {"python"}


def check_plan(plan_path: str | Path, *, settings: Settings | None = None) -> dict[str, Any]:
    """Validate a plan as ``run`` would, run nothing, and say what would run.

    Creates nothing (no home, no journal). The answer names the suite and its tasks, the
    agents, the runs planned, the sandbox provider that would be chosen here, and warnings:
    python agents (in the driver's process) and python scorers (in a worker process of the
    driver) run outside any sandbox, tasks that allow the network, and agents whose model has
    no price.

    Raises:
        SpecError: the same file:line: field message ``run`` would give.
    """
    settings = settings or load_settings()
    plan = load_plan(plan_path)
    suite = validate_plan(plan, str(plan_path))
    warnings: list[str] = []
    try:
        provider = get_provider(settings.sandbox or plan.execution.sandbox,
                                hidden_paths=hidden_from_sandboxes(plan, settings.home))
        check_network(plan, suite, provider)
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
    prices = load_price_table(settings.prices)
    warnings.extend(unpriced_warning(a) for a in prices.unpriced(plan.agents))
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
        "runs_per_task": plan.first_runs,
        "runs_planned": planned_runs(plan, suite),
        "sample": sampling.describe(sampling.select(suite, plan.sample)),
        "budget_usd": plan.budget_usd, "max_in_flight": plan.execution.max_in_flight,
        "sandbox": sandbox, "simulated_model": plan.simulator is not None,
        "warnings": warnings,
    }
